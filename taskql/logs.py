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
