"""The composition root: the schema, the view, the lifespan's resources, middleware order and routes."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from opentelemetry.trace import Tracer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry import Schema

from core.settings import Settings
from schema.build import build_schema
from schema.extensions.query_limits import Limits
from schema.planning.strawberry_compat import graphql_schema_of
from taskql import pages
from taskql.cache.express import CachedGraphQL
from taskql.http import graphiql
from taskql.http.limits import BodyLimit
from taskql.http.security import SecurityMiddleware, SecurityPolicy
from taskql.ops import metrics, telemetry
from taskql.ops.access_log import Observed, RequestFacts
from taskql.ops.health import healthz, readyz
from taskql.ops.release import code_digest
from taskql.ops.telemetry import ServerSpans
from taskql.resources import Resources, opened
from taskql.view import GraphQLView

ALLOWED_HEADERS = [
    "authorization",
    "content-type",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "x-request-id",
    "idempotency-key",
]
EXPOSED_HEADERS = ["x-request-id", "x-trace-id", "traceresponse", "idempotent-replayed"]


class TaskqlApp(Starlette):
    """Starlette, behind the layers that run before its middleware, outermost first: the request's span
    when tracing is on (``taskql.ops.telemetry``), the access log and metrics (``taskql.ops.access_log``),
    the body limit (``taskql.http.limits``) and the response cache's express lane (``taskql.cache.express``).
    ``resources`` is what the lifespan opened (also in each request's state: ``taskql.resources``)."""

    resources: Resources

    def __init__(
        self, *, settings: Settings, security: SecurityPolicy, tracer: Tracer | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        limited = BodyLimit(
            CachedGraphQL(super().__call__, express=True, security=security),
            max_bytes=settings.max_body_bytes,
            idle_seconds=settings.body_idle_timeout_seconds,
            headers=security.headers,
        )
        outer: ASGIApp = Observed(limited)
        self._express = ServerSpans(outer, tracer) if tracer is not None else outer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._express(scope, receive, send)


def schema_id_of(settings: Settings, schema: Schema, limits: Limits) -> str:
    """What cache entries are keyed by besides the request: the code, the schema, the persisted-query mode,
    whether introspection answers and the limits (a hit is not checked against them again). A deploy that
    changes any of them never serves answers computed under the old one (a fixed resolver's old answers
    included), while instances running the same release share their entries."""
    modes = f"{settings.persisted_queries}\0{settings.introspection_enabled}\0{code_digest()}\0{limits}"
    return hashlib.sha256(f"{modes}\0{schema.as_str()}".encode()).hexdigest()[:16]


def create_app(settings: Settings | None = None) -> TaskqlApp:
    """Build the app. ``settings`` must be resolved (``taskql.cli.services.resolve``); by default they are
    read from the environment, where ``serve`` put them for its workers."""
    settings = settings or Settings()
    tracer = telemetry.configure()
    extensions: list[Any] = [RequestFacts]
    if tracer is not None:
        extensions.append(telemetry.operation_span_factory(tracer))
    limits = Limits.of(settings)
    schema = build_schema(
        extensions,
        introspection=settings.introspection_enabled,
        limits=limits,
        planned=settings.planned_completion,
    )
    if tracer is not None:
        telemetry.trace_resolvers(graphql_schema_of(schema), tracer)
    security = SecurityPolicy.of(settings)
    schema_id = schema_id_of(settings, schema, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: TaskqlApp) -> AsyncIterator[dict[str, Any]]:
        async with opened(settings, schema, schema_id=schema_id, limits=limits, tracer=tracer) as resources:
            app.resources = resources
            yield resources.state()

    graphql = GraphQLView(
        schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=True,
        multipart_uploads_enabled=False,
        keep_alive=True,  # the legacy graphql-ws protocol's "ka" messages
        keep_alive_interval=15,
        connection_init_wait_timeout=timedelta(seconds=10),
        allowed_origins=settings.cors_origins,  # WebSockets from browsers: the CORS allowlist
    )
    graphql.max_variables_bytes = settings.max_variables_bytes
    middleware = [
        Middleware(SecurityMiddleware, policy=security),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        ),
    ]
    routes = [
        Route("/graphql", CachedGraphQL(graphql)),  # every method: the view answers the others with 405
        WebSocketRoute("/graphql", graphql),
        Route(graphiql.PREFIX + "{name}", graphiql.graphiql_asset, methods=["GET"]),
        *pages.ROUTES,  # where the account mails' links lead
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint(settings), methods=["GET"]),
        Route("/", lambda _: JSONResponse({"graphql": "/graphql"}), methods=["GET"]),
    ]
    return TaskqlApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        settings=settings,
        security=security,
        tracer=tracer,
    )
