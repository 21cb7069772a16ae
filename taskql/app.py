"""The application factory: Starlette routes, middleware, lifespan and the GraphQL view."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from opentelemetry.trace import Tracer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult

from auth.sessions import load_viewer
from auth.tokens import TokenConfig, decode_access_token
from auth.viewer import Viewer
from core.cache_tags import Policy
from core.errors import ServiceUnavailable, Unauthenticated
from core.settings import Settings
from resolvers.context import Context
from resolvers.writes import Written
from schema.build import build_schema
from schema.extensions.query_limits import Limits, limit_rules
from schema.planning.strawberry_compat import graphql_schema_of
from taskql.cache.express import PROBE_STATE, CachedGraphQL, http_cache_headers
from taskql.cache.store import Probe, ResponseCache, etag_of
from taskql.data.engine import Outage, create_engine, create_sessionmaker
from taskql.data.readers import PRIMARY, REPLICA, create_reader
from taskql.data.routing import ReadRouting
from taskql.http import graphiql, request_ids
from taskql.http.conformance import (
    MEDIA_TYPE_STATE,
    OPERATIONS_BY_METHOD,
    admit,
    operation_not_chosen,
    refused_operation,
    response_of,
)
from taskql.http.graphiql import graphiql_asset
from taskql.http.limits import BodyLimit
from taskql.http.media import CONTENT_TYPES, JSON, status_of
from taskql.http.params import from_body, from_query_params
from taskql.http.refusals import RequestRefused, refusal_response
from taskql.http.security import SecurityMiddleware, SecurityPolicy
from taskql.http.unavailable import mark_unavailable, unavailable_response
from taskql.ops import access_log, metrics, telemetry
from taskql.ops.access_log import Observed, RequestFacts
from taskql.ops.health import healthz, readyz
from taskql.ops.telemetry import ServerSpans
from taskql.outbox.relay import Outbox
from taskql.policy import idempotency
from taskql.policy.idempotency import IdempotencyKeys
from taskql.policy.persisted import PersistedQueries, PersistedQueryError, load_manifest
from taskql.policy.rate_limits import RateLimits, response_headers, split_cost
from taskql.realtime.hub import EventHub
from taskql.realtime.sockets import (
    LegacyWSHandler,
    SocketEvents,
    TransportWSHandler,
    authenticate,
    forget,
    recheck_sessions,
)
from taskql.redis.client import RedisGuard, RedisUnavailable, create_redis, greeted, greeting
from taskql.redis.pipeline import PipelinedRedis

logger = logging.getLogger("taskql.app")
CODE_PACKAGES = ("core", "models", "auth", "resolvers", "schema", "taskql")


@dataclass
class Resources:
    """What lives as long as the process: born in the lifespan, shared by every request."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    guard: RedisGuard
    tokens: TokenConfig
    persisted: PersistedQueries
    cache: ResponseCache | None  # None when RESPONSE_CACHE is off
    events: EventHub
    outbox: Outbox
    reads: ReadRouting  # the read pools (raw asyncpg): the primary's, and the replica's if configured
    idempotency: IdempotencyKeys  # mutations sent with an Idempotency-Key (taskql.policy.idempotency)
    limits: RateLimits | None = None  # None when RATE_LIMITS is off

    async def after_writes(self, context: Context) -> None:
        """After commit, before the answer: once a write is acknowledged, no instance serves an answer
        computed before it, and its events are on their way to every subscriber. Runs to the end even if
        the request is cancelled (the writes are committed)."""
        await asyncio.shield(self._settle(list(context.writes.written), list(context.writes.changed)))

    async def _settle(self, written: list[Written], changed: list[str]) -> None:
        await self.reads.mark(changed)  # before the bump: see taskql.data.routing
        try:
            await self.outbox.publish_now(written)
        except RedisUnavailable:
            # Not lost: the outbox relay publishes them once Redis answers; until then this instance serves
            # no hit (the epoch is replaced first, as after any invalidation that could not be delivered).
            if self.cache is not None:
                self.cache.undelivered()
            logger.warning(
                "%d writes' side effects deferred to the outbox relay: Redis unavailable", len(written)
            )


def token_config(settings: Settings) -> TokenConfig:
    return TokenConfig(
        secret=settings.secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        leeway=timedelta(seconds=settings.jwt_leeway_seconds),
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the access token as 'Authorization: Bearer <token>'.", reason="TOKEN_INVALID"
        )
    return token.strip()


@dataclass(frozen=True, slots=True)
class PendingStore:
    """An answer to keep once it is encoded (after the response is sent)."""

    cache: ResponseCache
    probe: Probe
    viewer: Viewer | None
    policy: Policy | None
    ttl: int
    method: str
    operation: str


class SubResponse(Response):
    """Strawberry's per-request response (headers, status), plus the media type it is answered in and what
    the cache keeps of the answer."""

    pending_store: PendingStore | None = None
    answer_type = JSON  # not `media_type`: Starlette would send that one as a header too


def _probe_of(request: Request | WebSocket) -> Probe | None:
    probe = request.scope.get("state", {}).get(PROBE_STATE)
    return probe if isinstance(probe, Probe) else None


def _entry_ttl(context: Context) -> int:
    """Seconds the answer may be kept: its policy's max-age, cut short where the data changes by itself."""
    policy = context.caching.policy
    if policy is None or not policy.cacheable:
        return 0
    ttl = policy.max_age
    if context.caching.valid_until is not None:
        ttl = min(ttl, int((context.caching.valid_until - context.now()).total_seconds()))
    return max(ttl, 0)


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    max_variables_bytes = Settings.model_fields["max_variables_bytes"].default

    @property
    def graphql_ide_html(self) -> str:
        return graphiql.page()

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Browsers ask for text/html; API clients (Apollo sends "*/*") with a persisted query's GET
        # parameters and no `query` must get JSON, not the IDE.
        params = request.query_params
        return (
            request.method == "GET"
            and not any(params.get(name) for name in ("query", "extensions", "documentId"))
            and "text/html" in request.headers.get("accept", "")
        )

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """The request's parameters, checked (``taskql.http.params``); the method and the content type were
        checked on admission."""
        limit = self.max_variables_bytes
        if request.method == "GET":
            return from_query_params(request.query_params, max_variables_bytes=limit)
        return from_body(await request.get_body(), max_variables_bytes=limit)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        resources: Resources = request.app.state.resources
        client = (
            str(context.who.viewer.user_id)
            if context.who.viewer
            else (request.client.host if request.client else "")
        )
        try:
            request_data = await resources.persisted.resolve(request_data, client)
        except PersistedQueryError as error:
            sub_response.status_code = error.status
            refused = ExecutionResult(data=None, errors=[error.as_graphql_error()])
            access_log.note_result(refused)
            return refused
        if not request_data.query:
            raise RequestRefused(
                400, 'No GraphQL document: send {"query": "..."} (or a persisted query\'s hash).'
            )
        # A POSTed mutation with an Idempotency-Key holds its key, or is answered with its first outcome.
        await idempotency.claim_key(
            resources.idempotency, request, context.who.viewer, context.origin.client, request_data
        )
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=OPERATIONS_BY_METHOD[request.method],
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            refused_operation(error, request.method)
        except CannotGetOperationTypeError:
            result = operation_not_chosen(request_data.operation_name)
        access_log.note_result(result)
        mark_unavailable(result, sub_response, wrote=bool(context.writes.changed))
        self._keep(resources, request, sub_response, context, result)
        status, headers = response_headers(context.points.charge, result)
        sub_response.headers.update(headers)
        if status is not None:
            sub_response.status_code = status
        return result

    @staticmethod
    def _keep(
        resources: Resources,
        request: Request,
        sub_response: Response,
        context: Context,
        result: ExecutionResult,
    ) -> None:
        """Decide what the cache keeps of this answer: never errors or partial results, never writes."""
        probe = _probe_of(request)
        if resources.cache is None:
            return
        sub_response.headers["X-Cache"] = "MISS"
        if (
            probe is None
            or result.errors
            or context.writes.changed
            or not isinstance(sub_response, SubResponse)
        ):
            return
        sub_response.pending_store = PendingStore(
            resources.cache,
            probe,
            context.who.viewer,
            context.caching.policy,
            _entry_ttl(context),
            request.method,
            access_log.operation_name(),
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's ``run``, after admission (``taskql.http.conformance``), with every refusal answered as
        a GraphQL response in the media type the client accepts; and a 503 when PostgreSQL fails a request
        before execution (while checking the viewer's session)."""
        request = Request(scope, receive)
        media_type = JSON
        try:
            media_type = admit(request, renders_ide=self.should_render_graphql_ide(request))
            scope.setdefault("state", {})[MEDIA_TYPE_STATE] = media_type
            response = await self.run(request)
        except idempotency.Replayed as replayed:  # the first outcome of this Idempotency-Key
            response = replayed.response
        except HTTPException as error:  # ours (RequestRefused) and Strawberry's
            response = refusal_response(error, media_type)
        except ServiceUnavailable as error:
            response = unavailable_response(error)
            response.headers["content-type"] = CONTENT_TYPES[media_type]
        await idempotency.settle(request, response)  # an Idempotency-Key keeps the answer before it is sent
        await response(scope, receive, send)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = SubResponse()
        sub_response.status_code = None  # type: ignore[assignment]
        del sub_response.headers["content-length"]
        sub_response.answer_type = request.scope.get("state", {}).get(MEDIA_TYPE_STATE, JSON)
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        return response_of(result, process_result(result))

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        media_type = sub_response.answer_type if isinstance(sub_response, SubResponse) else JSON
        pending = sub_response.pending_store if isinstance(sub_response, SubResponse) else None
        # The cache keeps the answer without this request's cost report (a hit carries none): it is encoded
        # once, and the report added to what is sent.
        answer, cost = split_cost(response_data) if pending is not None else (response_data, None)
        body = self._json(answer)
        sent = body
        if cost is not None:
            if "extensions" in answer:  # other extensions too (none today): encode it all again
                sent = self._json(response_data)
            else:  # a JSON object: its closing brace goes after the report
                sent = body[:-1] + b',"extensions":{"cost":' + self._json(cost) + b"}}"
        response = Response(
            sent,
            status_code=status_of(response_data, media_type, sub_response.status_code),
            media_type=CONTENT_TYPES[media_type],
        )
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        if pending is None:
            return response
        if pending.method == "GET" and pending.policy is not None and pending.policy.cacheable:
            for name, value in http_cache_headers(
                etag_of(body), public=pending.policy.public, max_age=pending.policy.max_age
            ):
                response.headers[name.decode()] = value.decode()
        # Stored after the response is sent: the entry is checked against versions read before the data,
        # so storing late can never make it stale.
        response.background = BackgroundTask(
            pending.cache.store,
            pending.probe,
            pending.viewer,
            body,
            pending.policy,
            pending.ttl,
            pending.operation,
        )
        return response

    def _json(self, data: object) -> bytes:
        """An HTTP answer's bytes: orjson, several times faster than the json module on a page of tasks, and
        the same JSON (compact, UTF-8). What orjson refuses (an integer beyond 64 bits from a custom scalar)
        goes the json module's way. WebSocket messages keep Strawberry's ``encode_json`` (text frames)."""
        try:
            return orjson.dumps(data)
        except TypeError:  # orjson.JSONEncodeError is one
            encoded = self.encode_json(data)
            return encoded if isinstance(encoded, bytes) else encoded.encode()

    async def on_ws_connect(self, context: Context) -> None:
        websocket = context.origin.connection
        assert isinstance(websocket, WebSocket)
        await authenticate(websocket.app.state.resources, context, websocket)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._http(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            forget(scope["app"].state.resources, WebSocket(scope, receive, send))

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        resources: Resources = request.app.state.resources
        if isinstance(request, WebSocket):  # the viewer comes with connection_init (on_ws_connect)
            context = self._context(resources)
            context.origin.request_id = request_ids.of(request.scope) or context.origin.request_id
            context.origin.client = request.client.host if request.client else ""
            context.origin.connection = request
            context.hooks.event_source = SocketEvents(resources.events, request)
            return context
        viewer: Viewer | None = None
        auth_error: Unauthenticated | None = None
        user = None
        probe = _probe_of(request)
        try:
            # A session Redis vouches for (see taskql.cache.store) needs no SQL for a query; otherwise,
            # and for
            # every mutation, PostgreSQL decides.
            viewer = probe.viewer() if probe is not None else None
            token = bearer_token(request.headers.get("authorization"))
            if token is not None and viewer is None:
                claims = decode_access_token(resources.tokens, token)
                viewer, user = await load_viewer(resources.reads.primary, claims)
        except Unauthenticated as error:
            auth_error = error
        context = self._context(resources, viewer=viewer, auth_error=auth_error)
        context.origin.client = request.client.host if request.client else ""
        if user is not None:
            context.who.from_database = True  # else a mutation reads it first (schema.write_authorization)
            context.loaders.users.prime(user.id, user)
        # The security middleware gave the request its id, and puts it on the response.
        context.origin.request_id = request_ids.of(request.scope) or context.origin.request_id
        return context

    @staticmethod
    def _context(
        resources: Resources, *, viewer: Viewer | None = None, auth_error: Unauthenticated | None = None
    ) -> Context:
        context = Context(
            resources.reads.primary,
            resources.sessions,
            resources.tokens,
            viewer=viewer,
            auth_error=auth_error,
        )
        context.hooks.after_writes = resources.after_writes
        if resources.reads.replica is not None:
            context.hooks.route_reads = resources.reads.route
        context.hooks.budget = resources.limits
        return context


class TaskqlApp(Starlette):
    """Starlette, with the response cache's express lane in front of its middleware
    (``taskql.cache.express``),
    the body limit in front of that (``taskql.http.limits``), and in front of both the access log and
    metrics (``taskql.ops.access_log``), and the request's span when tracing is on
    (``taskql.ops.telemetry``)."""

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


def source_digest(root: Path, packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """A digest of the Python sources of ``packages`` under ``root``: names and contents."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def code_digest() -> str:
    """The release: the digest of the server's own sources (a few hundred kilobytes, read once)."""
    return source_digest(Path(__file__).resolve().parent.parent)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. ``settings`` must be resolved (``taskql.cli.services.resolve``); by default they
    are read
    from the environment, where ``serve`` put them for its workers."""
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
    # Entries are keyed by the code, the schema, the persisted-query mode, whether introspection answers and
    # the limits (a hit is not checked against them again): a deploy that changes any of them never serves
    # answers computed under the old one (a fixed resolver's old answers included), while instances running
    # the same release share their entries.
    modes = f"{settings.persisted_queries}\0{settings.introspection_enabled}\0{code_digest()}\0{limits}"
    schema_id = hashlib.sha256(f"{modes}\0{schema.as_str()}".encode()).hexdigest()[:16]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        outage = Outage()  # the primary's: one for the engine (writes) and the read pool
        engine = create_engine(settings, outage)
        redis = create_redis(settings)
        tokens = token_config(settings)
        guard = RedisGuard(redis, open_seconds=settings.redis_circuit_open_seconds)
        pool_capacity = settings.db_pool_size + settings.db_max_overflow
        metrics.worker_started()
        metrics.watch_pool(engine, pool_capacity)
        metrics.watch_redis(guard)
        if tracer is not None:
            telemetry.instrument_redis(redis)
        assert settings.redis_url
        assert settings.database_url
        pipe = PipelinedRedis(
            settings.redis_url,
            timeout=settings.redis_socket_timeout_seconds,
            greeting=greeting,
            greeted=greeted,
        )
        reads = ReadRouting(
            await create_reader(settings, settings.database_url, name=PRIMARY, outage=outage),
            await create_reader(settings, settings.database_read_url, name=REPLICA, outage=Outage())
            if settings.database_read_url
            else None,
            guard=guard,
            pipe=pipe,
            window_seconds=settings.database_read_after_write_seconds,
        )
        reads.start()
        hub = EventHub(
            redis,
            retention_seconds=settings.events_retention_seconds,
            max_queue=settings.events_max_queue,
            pool=reads.primary.pool,
        )
        await hub.start()
        outbox = Outbox(
            guard,
            pipe,
            reads.primary.pool,
            retention_seconds=settings.events_retention_seconds,
            max_per_stream=settings.events_max_per_stream,
            relay_seconds=settings.outbox_relay_seconds,
        )
        outbox.start()
        recheck = asyncio.create_task(
            recheck_sessions(hub, reads.primary.pool, settings.session_recheck_seconds),
            name="taskql-socket-recheck",
        )
        read_pools = {PRIMARY: reads.primary.pool}
        if reads.replica is not None:
            read_pools[REPLICA] = reads.replica.pool
        sampling = asyncio.create_task(metrics.sample(read_pools), name="taskql-metrics")
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            redis=redis,
            guard=guard,
            tokens=tokens,
            cache=ResponseCache(
                guard, pipe, schema_id=schema_id, viewer_ttl_seconds=settings.access_token_ttl_seconds
            )
            if settings.response_cache
            else None,
            events=hub,
            outbox=outbox,
            reads=reads,
            idempotency=IdempotencyKeys.of(settings, engine, max_tokens=limits.max_tokens),
            limits=RateLimits(settings, guard, pipe) if settings.rate_limits else None,
            persisted=PersistedQueries(
                mode=settings.persisted_queries,
                guard=guard,
                schema=graphql_schema_of(schema),
                rules=limit_rules(schema.limits),
                trusted=load_manifest(),
                ttl_seconds=settings.apq_ttl_seconds,
                max_document_bytes=settings.apq_max_document_bytes,
                registrations_per_minute=settings.apq_registrations_per_minute,
            ),
        )
        # What startup made lives as long as the process: out of the collector's sight, full collections
        # stay short; and young collections run less often (a request allocates a few hundred objects).
        gc.freeze()
        gc.set_threshold(10_000, 20, 50)
        try:
            yield
        finally:
            sampling.cancel()
            recheck.cancel()
            await hub.close_all(1001, "Server shutting down")
            await hub.stop()
            await outbox.stop()
            if app.state.resources.limits is not None:
                await app.state.resources.limits.close()
            pipe.close()
            await redis.aclose()
            await reads.close()
            await engine.dispose()
            metrics.unwatch_pool(pool_capacity)
            metrics.worker_stopping()
            telemetry.flush()

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
            allow_headers=[
                "authorization",
                "content-type",
                "apollo-require-preflight",
                "x-apollo-operation-name",
                "x-request-id",
                "idempotency-key",
            ],
            expose_headers=["x-request-id", "x-trace-id", "traceresponse", "idempotent-replayed"],
            max_age=600,
        ),
    ]
    routes = [
        Route("/graphql", CachedGraphQL(graphql)),  # every method: the view answers the others with 405
        WebSocketRoute("/graphql", graphql),
        Route(graphiql.PREFIX + "{name}", graphiql_asset, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
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
