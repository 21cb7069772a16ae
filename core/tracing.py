"""Whether this process traces, and which trace the current request belongs to.

Tracing is off unless ``taskql.ops.telemetry`` turns it on at startup (``OTEL_TRACES_EXPORTER``). Off,
``span``
returns one shared no-op context manager: no span object, no context change, a function call and nothing
else; code below the app (dataloader batches, the cache's pipelined Redis connection) uses it to make spans
of its own.

``current_trace_id`` is the id log lines carry: the current span's when tracing is on, else the one the
request came with in its ``traceparent`` header (so that the lines still join the caller's trace).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
_tracer: Tracer | None = None
_incoming: ContextVar[str | None] = ContextVar("taskql_incoming_trace_id", default=None)


def enable(tracer: Tracer | None) -> None:
    """Set (or, with None, clear) the tracer every ``span`` uses."""
    global _tracer
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, client: bool = False
) -> AbstractContextManager[Any]:
    """A child span of the current one while tracing is on; nothing at all when it is off."""
    if _tracer is None:
        return _NOTHING
    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    return _tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def incoming_trace_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (version-traceid-parentid-flags), if valid."""
    for name, value in headers:
        if name == b"traceparent":
            parts = value.split(b"-")
            if len(parts) != 4 or len(parts[1]) != 32 or not parts[1].strip(b"0"):  # all zeros is invalid
                return None
            try:
                int(parts[1], 16)
            except ValueError:
                return None
            return parts[1].decode().lower()
    return None


def join(trace_id: str | None) -> Token[str | None]:
    """The current request came with ``trace_id`` (reset with the token when it ends)."""
    return _incoming.set(trace_id)


def leave(token: Token[str | None]) -> None:
    _incoming.reset(token)


def current_trace_id() -> str | None:
    if _tracer is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return trace.format_trace_id(context.trace_id)
    return _incoming.get()
