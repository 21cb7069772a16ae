"""The GraphQL view: Strawberry's hooks, each delegating to the room that owns the step."""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult

from auth.sessions import load_viewer
from auth.tokens import bearer_token, decode_access_token
from auth.viewer import Viewer
from core.errors import ServiceUnavailable, Unauthenticated
from core.settings import Settings
from resolvers.context import Context
from taskql.cache.express import PROBE
from taskql.cache.keep import Keep, keep
from taskql.http import graphiql, request_ids
from taskql.http.compression import CONTENT_ENCODING, VARY, Compression, accepts_gzip, gzip, gzip_with_tail
from taskql.http.conformance import (
    MEDIA_TYPE,
    OPERATIONS_BY_METHOD,
    admit,
    operation_not_chosen,
    refused_operation,
    response_of,
)
from taskql.http.media import CONTENT_TYPES, JSON, encode, status_of
from taskql.http.params import from_body, from_query_params
from taskql.http.refusals import RequestRefused, refusal_response
from taskql.http.unavailable import mark_unavailable, unavailable_response
from taskql.ops import access_log
from taskql.policy import idempotency
from taskql.policy.persisted import PersistedQueryError
from taskql.policy.rate_limits import response_headers, split_cost
from taskql.realtime.sockets import LegacyWSHandler, SocketEvents, SocketInbox, TransportWSHandler
from taskql.resources import RESOURCES, Resources


class SubResponse(Response):
    """Strawberry's per-request response (headers, status), plus the media type it is answered in and what
    the cache keeps of the answer."""

    keep: Keep | None = None
    answer_type = JSON  # not `media_type`: Starlette would send that one as a header too
    # A query's answer may be sent gzipped (taskql.http.compression): when COMPRESSION is on, and (gzip)
    # when the client accepts it.
    compression: Compression | None = None
    gzip = False


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._http(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            RESOURCES.of(scope).sockets.forget(WebSocket(scope, receive, send))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's ``run``, after admission (``taskql.http.conformance``), with every refusal answered as
        a GraphQL response in the media type the client accepts; and a 503 when PostgreSQL fails a request
        before execution (while checking the viewer's session)."""
        request = Request(scope, receive)
        media_type = JSON
        try:
            media_type = admit(request, renders_ide=self.should_render_graphql_ide(request))
            MEDIA_TYPE.set(scope, media_type)
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

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """The request's parameters, checked (``taskql.http.params``); the method and the content type were
        checked on admission."""
        limit = self.max_variables_bytes
        if request.method == "GET":
            return from_query_params(request.query_params, max_variables_bytes=limit)
        return from_body(await request.get_body(), max_variables_bytes=limit)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        resources = RESOURCES.of(request.scope)
        if isinstance(request, WebSocket):  # the viewer comes with connection_init (on_ws_connect)
            context = _context(resources, request)
            context.origin.connection = request
            context.hooks.event_source = SocketEvents(resources.events, request)
            context.hooks.inbox_source = SocketInbox(resources.inbox, request)
            return context
        viewer: Viewer | None = None
        auth_error: Unauthenticated | None = None
        loaded = None
        probe = PROBE.get(request.scope)
        try:
            # A session Redis vouches for (see taskql.cache.store) needs no SQL for a query; otherwise, and
            # for every mutation, PostgreSQL decides.
            viewer = probe.viewer() if probe is not None else None
            token = bearer_token(request.headers.get("authorization"))
            if token is not None and viewer is None:
                claims = decode_access_token(resources.tokens, token)
                loaded = await load_viewer(resources.reads.primary, claims)
                viewer = loaded.viewer
        except Unauthenticated as error:
            auth_error = error
        context = _context(resources, request, viewer=viewer, auth_error=auth_error)
        if loaded is not None:
            # Else a mutation reads it first (schema.extensions.write_authorization).
            context.who.from_database = True
            context.loaders.prime_viewer(loaded.user, loaded.roles)
        return context

    async def on_ws_connect(self, context: Context) -> None:
        websocket = context.origin.connection
        assert isinstance(websocket, WebSocket)
        await RESOURCES.of(websocket.scope).sockets.authenticate(context, websocket)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = SubResponse()
        sub_response.status_code = None  # type: ignore[assignment]
        del sub_response.headers["content-length"]
        sub_response.answer_type = MEDIA_TYPE.get(request.scope) or JSON
        return sub_response

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        resources = RESOURCES.of(request.scope)
        try:  # an APQ hash or a trusted document's id becomes its document (taskql.policy.persisted)
            client = str(context.who.viewer.user_id) if context.who.viewer else context.origin.client
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
        if resources.cache is not None:
            sub_response.headers["X-Cache"] = "MISS"
            if isinstance(sub_response, SubResponse):
                sub_response.keep = keep(
                    resources.cache,
                    PROBE.get(request.scope),
                    context,
                    result,
                    method=request.method,
                    operation=access_log.operation_name(),
                )
        if isinstance(sub_response, SubResponse) and context.caching.policy is not None:  # a query's
            sub_response.compression = resources.compression
            sub_response.gzip = accepts_gzip(request.headers.get("accept-encoding"))
        status, headers = response_headers(context.points.charge, result)
        sub_response.headers.update(headers)
        if status is not None:
            sub_response.status_code = status
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        return response_of(result, process_result(result))

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        ours = sub_response if isinstance(sub_response, SubResponse) else None
        media_type = ours.answer_type if ours is not None else JSON
        kept = ours.keep if ours is not None else None
        # The cache keeps the answer without this request's cost report (a hit carries none): it is encoded
        # once, and the report added to what is sent.
        answer, cost = split_cost(response_data) if kept is not None else (response_data, None)
        body = sent = encode(answer)
        tail = None
        if cost is not None:
            if "extensions" in answer:  # other extensions too (none today): encode it all again
                sent = encode(response_data)
            else:  # a JSON object: its closing brace goes after the report
                tail = b',"extensions":{"cost":' + encode(cost) + b"}}"
                sent = body[:-1] + tail
        # Whether it is worth compressing is decided on the answer the cache keeps, as its hits decide.
        compression = ours.compression if ours is not None else None
        encodings = compression is not None and compression.worth(body)
        gzipped_sent = encodings and ours is not None and ours.gzip
        gzipped = None  # the body gzipped, for the cache, when making it costs nothing more
        if gzipped_sent:
            if tail is not None:
                gzipped, sent = gzip_with_tail(body, tail)
            elif sent is body:
                gzipped = sent = gzip(body)
            else:
                sent = gzip(sent)
        response = Response(
            sent,
            status_code=status_of(response_data, media_type, sub_response.status_code),
            media_type=CONTENT_TYPES[media_type],
        )
        if gzipped_sent:
            response.headers.raw.append(CONTENT_ENCODING)
        if encodings:
            response.headers.raw.append((b"vary", VARY))
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        if kept is not None:
            kept.attach(response, body, encodings=encodings, gzipped_sent=gzipped_sent, gzipped=gzipped)
        return response


def request_context(resources: Resources, request: Request) -> Context:
    """The context of a request served outside GraphQL (``taskql.pages``), built as the view's own."""
    return _context(resources, request)


def _context(
    resources: Resources,
    connection: Request | WebSocket,
    *,
    viewer: Viewer | None = None,
    auth_error: Unauthenticated | None = None,
) -> Context:
    context = Context(
        resources.reads.primary,
        resources.sessions,
        resources.tokens,
        viewer=viewer,
        auth_error=auth_error,
    )
    # The security middleware gave the request its id, and puts it on the response.
    context.origin.request_id = request_ids.of(connection.scope) or context.origin.request_id
    context.origin.client = connection.client.host if connection.client else ""
    context.origin.user_agent = connection.headers.get("user-agent", "")[:300] or None
    context.hooks.after_writes = resources.after_writes
    if resources.reads.replica is not None:
        context.hooks.route_reads = resources.reads.route
    context.hooks.budget = resources.limits
    context.hooks.webhooks = resources.webhooks
    return context
