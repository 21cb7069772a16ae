"""One record per HTTP request: what the access log line and the request metrics say about it.

``Observed`` wraps the whole app, in front of the cache's express lane, so cache hits are seen too. It keeps
a ``RequestRecord`` in a context variable for the request; the parts of taskql that know something fill it
in (``RequestFacts`` the operation and the viewer, the view the error codes, the express lane what a hit
was), and when the response is complete it writes one log line (``taskql.access``, INFO) and updates the
metrics. What it reads of the response is its status and two headers (``X-Request-Id``, ``X-Cache``).

Never in the line: headers, the query string, the document or its variables (passwords and tokens travel
there). The operation name is the client's: cut to ``MAX_NAME`` characters in the log, and bounded to the
trusted documents' names in the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strawberry.extensions import SchemaExtension

from core import tracing
from resolvers.context import Context
from taskql.ops import metrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from strawberry.types import ExecutionResult

logger = logging.getLogger("taskql.access")
MAX_NAME = 100
UNLOGGED_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))  # probes and scrapes, every few seconds


@dataclass(slots=True)
class RequestRecord:
    started: float
    graphql: bool
    operation: str | None = None
    operation_type: str | None = None
    viewer_id: str | None = None
    error_codes: tuple[str, ...] = ()
    cost: Any = None  # the query cost, when the cost analysis put one in the context


_current: ContextVar[RequestRecord | None] = ContextVar("taskql_request", default=None)


def current() -> RequestRecord | None:
    return _current.get()


def cache_hit(operation: str, user_id: str) -> None:
    """The express lane answered from the cache (no operation ran)."""
    record = _current.get()
    if record is not None:
        record.operation, record.operation_type = operation or None, "query"
        record.viewer_id = user_id or None


def note_result(result: ExecutionResult) -> None:
    """The view's final result: the codes of its errors (every error has one by now)."""
    record = _current.get()
    if record is not None and result.errors:
        record.error_codes = tuple(
            str((error.extensions or {}).get("code", "INTERNAL_SERVER_ERROR")) for error in result.errors
        )


def operation_name() -> str:
    """The operation of the current request ('' when unnamed or unknown): kept with a cached answer."""
    record = _current.get()
    return (record.operation or "")[:MAX_NAME] if record is not None else ""


class RequestFacts(SchemaExtension):
    """Once the operation ran: its name and type, the viewer, and the cost when there is one."""

    def on_operation(self) -> Iterator[None]:
        yield
        record = _current.get()
        if record is None:  # an operation over a WebSocket: not an HTTP request
            return
        execution = self.execution_context
        record.operation = execution.operation_name
        try:
            record.operation_type = execution.operation_type.value
        except Exception:  # no document (it did not parse), or no such operation in it
            record.operation_type = None
        context = execution.context
        viewer = context.who.viewer if isinstance(context, Context) else None
        if viewer is not None:
            record.viewer_id = str(viewer.user_id)
        record.cost = context.points.cost if isinstance(context, Context) else None


class Observed:
    """The outermost wrapper of the app (inside the tracing one, when tracing is on)."""

    def __init__(self, app: ASGIApp, *, graphql_path: str = "/graphql") -> None:
        self.app = app
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLOGGED_PATHS:
            await self.app(scope, receive, send)
            return
        record = RequestRecord(time.perf_counter(), scope["path"] == self.graphql_path)
        token = _current.set(record)
        trace_id = tracing.incoming_trace_id(scope["headers"])
        joined = tracing.join(trace_id) if trace_id is not None else None  # none: the default, None
        response = _Response()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.started(message)
                await send(message)
                return
            await send(message)
            if not message.get("more_body", False) and not response.done:
                # Done when the answer's last byte left, not when the app returns (the cache stores its
                # copy after that, in the background).
                response.done = True
                _finish(scope, record, response)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if not response.done:  # the app failed, or the client left, before the answer was complete
                response.done = True
                _finish(scope, record, response)
            if joined is not None:
                tracing.leave(joined)
            _current.reset(token)


class _Response:
    __slots__ = ("cache", "done", "request_id", "status")

    def __init__(self) -> None:
        self.status = 500  # the app failed before it answered
        self.request_id: str | None = None
        self.cache: str | None = None
        self.done = False

    def started(self, message: Message) -> None:
        self.status = message["status"]
        for name, value in message.get("headers", ()):
            if name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"x-cache":
                self.cache = value.decode("latin-1")


def _finish(scope: Scope, record: RequestRecord, response: _Response) -> None:
    seconds = time.perf_counter() - record.started
    if record.graphql:
        metrics.observe_request(
            record.operation, response.status, record.error_codes, response.cache, seconds
        )
    if logger.isEnabledFor(logging.INFO):
        _log(scope, record, response, seconds)


def _log(scope: Scope, record: RequestRecord, response: _Response, seconds: float) -> None:
    trace_id = tracing.current_trace_id()
    operation = (record.operation or "")[:MAX_NAME] or None
    method, path = scope["method"], scope["path"]
    fields = {
        "access": True,
        "request_id": response.request_id,
        "trace_id": trace_id,
        "method": method,
        "path": path,
        "status": response.status,
        "duration_ms": round(seconds * 1000, 3),
        "operation": operation,
        "operation_type": record.operation_type,
        "viewer_id": record.viewer_id,
        "cache": response.cache,
        "errors": list(record.error_codes),
        "cost": record.cost,
    }
    summary = " ".join(
        f"{key}={value}"
        for key, value in (
            ("cache", response.cache),
            ("viewer", record.viewer_id),
            ("cost", record.cost),
            ("errors", ",".join(record.error_codes) or None),
            ("request", response.request_id),
            ("trace", trace_id),
        )
        if value is not None
    )
    described = (
        f"{record.operation_type or 'operation'} {operation or '(anonymous)'}"
        if operation or record.operation_type
        else "-"
    )
    logger.info(
        "%s %s %d %s %.1f ms %s",
        method,
        path,
        response.status,
        described,
        seconds * 1000,
        summary,
        extra=fields,
    )
