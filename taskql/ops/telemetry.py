"""Tracing with OpenTelemetry, configured by the standard ``OTEL_*`` environment variables. Off by default.

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``, or any other installed one) and
``OTEL_SDK_DISABLED`` is not ``true``. The SDK's own configurator (``opentelemetry-distro``) reads the rest:
``OTEL_SERVICE_NAME`` (default here ``taskql``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_HEADERS`` / ``_TIMEOUT``, ``OTEL_BSP_*``, ``OTEL_PROPAGATORS``.
``otlp`` is OTLP over HTTP/protobuf (port 4318) unless ``OTEL_EXPORTER_OTLP_PROTOCOL`` says otherwise (gRPC
needs ``opentelemetry-exporter-otlp-proto-grpc`` installed).

What is traced when it is on:

- every HTTP request (``ServerSpans``, a SERVER span continuing the caller's ``traceparent``, answered with
  ``X-Trace-Id`` and W3C ``traceresponse``), the cache's express-lane hits included;
- every GraphQL operation (``OperationSpans``: ``query TaskPage``, ``mutation CreateTask``), with the
  operation's SQL and Redis work as children;
- the resolvers that do I/O: those with an async resolver (the root fields, ``User.tasks``,
  ``Connection.totalCount``, ...; plain fields are not traced), and each dataloader batch;
- each SQL statement (``opentelemetry-instrumentation-asyncpg``) and Redis command
  (``opentelemetry-instrumentation-redis`` on the app's client; the cache's own pipelined connection traces
  its lookups itself).

Never recorded: the document, variables, headers or SQL parameters (the asyncpg instrumentation records
statements with their placeholders, the Redis one commands with ``?`` for every argument).

Off, none of this is installed: no wrapper, no extension, no span object, no patched driver.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from strawberry.extensions import SchemaExtension

from core import tracing
from core.errors import AppError
from graphql import GraphQLError, GraphQLObjectType, GraphQLSchema
from resolvers.context import Context

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from redis.asyncio import Redis
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("taskql.ops.telemetry")
TRACER_NAME = "taskql"
ROUTES = frozenset(("/graphql", "/", "/healthz", "/readyz", "/metrics"))
UNTRACED_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))  # probes and scrapes

_provider: Any = None  # the process's TracerProvider, once configured


def requested(environ: Any = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() not in {"", "none"}


def configure(span_processors: Sequence[SpanProcessor] = ()) -> Tracer | None:
    """Turn tracing on for this process if the environment asks for it; the tracer, or None when off.

    The SDK is configured once per process (its tracer provider is global); a later call with other
    ``span_processors`` (tests) adds them to it."""
    global _provider
    if not requested():
        disable()
        return None
    if _provider is None:
        _provider = _configure_sdk(span_processors)
    else:
        for processor in span_processors:
            _provider.add_span_processor(processor)
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=_provider)
    tracer = _provider.get_tracer(TRACER_NAME)
    tracing.enable(tracer)
    return tracer  # type: ignore[no-any-return]


def _configure_sdk(span_processors: Sequence[SpanProcessor]) -> Any:
    from opentelemetry.distro import OpenTelemetryConfigurator

    # Defaults of our own, before the SDK reads the environment: the exporter taskql ships speaks OTLP
    # over HTTP, and a service has a name.
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    os.environ.setdefault("OTEL_SERVICE_NAME", "taskql")
    try:
        OpenTelemetryConfigurator().configure(span_processors=list(span_processors))  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(
            f"OTEL_TRACES_EXPORTER={os.environ.get('OTEL_TRACES_EXPORTER')!r} could not be set up ({error}). "
            "taskql ships 'otlp' (OTLP over HTTP/protobuf) and 'console'; 'none' turns tracing off."
        ) from error
    provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):
        raise RuntimeError("OpenTelemetry's tracer provider was set elsewhere, not by the SDK.")
    logger.info("tracing on: exporter %s", os.environ.get("OTEL_TRACES_EXPORTER"))
    return provider


def disable() -> None:
    """Tracing off for what follows (tests; a process's provider stays, unused)."""
    tracing.enable(None)
    if _provider is not None:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def flush() -> None:
    """Export what is still buffered (at shutdown: the batch processor would wait for its next round)."""
    if _provider is not None:
        _provider.force_flush()


def instrument_redis(redis: Redis) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(redis, tracer_provider=_provider)


# HTTP --------------------------------------------------------------------------------------------------


class ServerSpans:
    """A SERVER span per HTTP request, continuing the trace of an incoming ``traceparent`` (and whatever
    else ``OTEL_PROPAGATORS`` names); the trace id goes back in ``X-Trace-Id`` and ``traceresponse``."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method, path = scope["method"], scope["path"]
        route = path if path in ROUTES else None
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,  # never the query string: documents and variables travel there
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if route is not None:
            attributes["http.route"] = route
        if scope.get("client"):
            attributes["client.address"] = scope["client"][0]
        if "user-agent" in carrier:
            attributes["user_agent.original"] = carrier["user-agent"]
        with self.tracer.start_as_current_span(
            f"{method} {route}" if route else method,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            ids = span.get_span_context()
            trace_id = trace.format_trace_id(ids.trace_id)
            answer = [
                (b"x-trace-id", trace_id.encode()),
                (
                    b"traceresponse",
                    f"00-{trace_id}-{trace.format_span_id(ids.span_id)}-{ids.trace_flags:02x}".encode(),
                ),
            ]

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    message = {**message, "headers": [*message.get("headers", ()), *answer]}
                await send(message)

            await self.app(scope, receive, traced_send)


# GraphQL -----------------------------------------------------------------------------------------------


def _unexpected(error: GraphQLError) -> BaseException | None:
    """The exception behind an error that is a bug (a client's mistake is not a failed span)."""
    original = error.original_error
    if original is None or isinstance(original, (AppError, GraphQLError)):
        return None
    return original


def operation_span_factory(tracer: Tracer) -> type[SchemaExtension]:
    class OperationSpans(SchemaExtension):
        """A span per GraphQL operation, current while it runs (its SQL and Redis spans are children),
        named as OpenTelemetry's GraphQL conventions say: ``query TaskPage``."""

        def on_operation(self) -> Iterator[None]:
            execution = self.execution_context
            context = execution.context
            if isinstance(context, Context) and context.origin.connection is not None:
                yield  # a subscription over a WebSocket: it lasts as long as the socket, no span
                return
            span = tracer.start_span("GraphQL operation", kind=SpanKind.INTERNAL)
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                yield
            finally:
                otel_context.detach(token)
                _describe(span, execution)
                span.end()

    return OperationSpans


def _describe(span: Any, execution: Any) -> None:
    name = execution.operation_name
    try:
        kind = execution.operation_type.value
    except Exception:  # the document did not parse, or names no such operation
        kind = "operation"
    span.update_name(f"{kind} {name}" if name else kind)
    span.set_attribute("graphql.operation.type", kind)
    if name:
        span.set_attribute("graphql.operation.name", name)
    result = execution.result
    errors = list(result.errors or ()) if result is not None else []
    errors = errors or list(execution.pre_execution_errors or ())
    if errors:
        span.set_attribute("graphql.errors", len(errors))
    for original in {id(found): found for found in map(_unexpected, errors) if found is not None}.values():
        span.record_exception(original)
        span.set_status(Status(StatusCode.ERROR, type(original).__name__))


def trace_resolvers(schema: GraphQLSchema, tracer: Tracer) -> list[str]:
    """Wrap each field whose resolver is async (it awaits I/O: SQL, a dataloader, Redis) in a span; the
    fields traced, as ``Type.field``. Subscriptions are left alone (they last as long as their socket)."""
    traced = []
    subscription = schema.subscription_type
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__") or type_ is subscription:
            continue
        for field_name, field in type_.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            resolver = getattr(definition, "base_resolver", None)
            if field.resolve is None or resolver is None or not resolver.is_async:
                continue
            field.resolve = _traced(field.resolve, tracer, f"{type_.name}.{field_name}")
            traced.append(f"{type_.name}.{field_name}")
    return traced


def _traced(resolve: Any, tracer: Tracer, name: str) -> Any:
    async def traced(source: Any, info: Any, **arguments: Any) -> Any:
        with tracer.start_as_current_span(
            name,
            attributes={"graphql.field.path": ".".join(map(str, info.path.as_list()))},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                value = resolve(source, info, **arguments)
                return await value if inspect.isawaitable(value) else value
            except AppError as error:  # the client's: said, not failed
                span.set_attribute("graphql.error.code", error.code)
                raise
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    required_role = getattr(resolve, "required_role", None)
    if required_role is not None:  # what the @auth guard says it checks stays readable
        traced.required_role = required_role  # type: ignore[attr-defined]
    return traced
