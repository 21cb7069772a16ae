"""WebSocket connections: who is on the other end, and when the server ends them.

- The access token travels in ``connection_init``'s payload (browsers cannot set headers on a WebSocket):
  ``{"authorization": "Bearer …"}``, or ``Authorization``, ``authToken``, ``token``, or Apollo's old
  ``{"headers": {"authorization": …}}``; a non-browser client may send the ``Authorization`` header on the
  handshake instead. A missing, invalid or expired token, or a session that ended, closes the socket 4403.
- When the token expires, the socket is closed (4403) at that moment: clients reconnect with a fresh one
  (graphql-ws calls its ``connectionParams`` again). A logout, a deactivation or a role change closes the
  user's sockets on every instance (``EventHub``'s control channel).
- "Expires" as an HTTP request to this instance would see it: at ``exp`` plus ``JWT_LEEWAY_SECONDS``
  (``auth.tokens.accepted_until``), the clock skew allowed between instances. Closed at ``exp`` itself, a
  client that reconnected with the same token would be accepted (inside the leeway), then closed at once.
- A subscriber that falls too far behind is closed 1013 (try again later): it resumes with its last cursor.
  So is a ``connection_init`` whose session cannot be checked because PostgreSQL is unavailable.
- On shutdown, sockets are closed 1001 (going away), so that clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from starlette.websockets import WebSocket, WebSocketState
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from auth.sessions import load_viewer
from auth.tokens import TokenConfig, accepted_until, bearer_token, decode_access_token
from core.errors import ServiceUnavailable, Unauthenticated
from core.reader import Reader
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from resolvers.context import Context
from resolvers.events import TaskEvent
from resolvers.notifications import NotificationRecord
from taskql.ops import metrics
from taskql.realtime.hub import TOO_FAR_BEHIND, Connection, EventHub
from taskql.realtime.inbox import Inbox
from taskql.state import StateKey

logger = logging.getLogger("taskql.realtime.sockets")
TOKEN_KEYS = ("authorization", "Authorization", "authToken", "token")
CONNECTION = StateKey[Connection]("taskql.connection")
EXPIRY = StateKey[asyncio.TimerHandle]("taskql.expiry")  # when the socket's access token expires
INIT_TIMEOUT_SECONDS = 10
TRY_AGAIN_LATER = 1013  # RFC 6455's code for "come back later", which clients reconnect on
EXPIRED_REASON = "Forbidden: the access token expired"
UNAVAILABLE_REASON = "Try again later: the database is unavailable"
T = TypeVar("T")


def token_of(payload: Mapping[str, Any] | None, handshake_authorization: str | None) -> str | None:
    """Where the client put its access token, in any of the usual places (``auth.tokens.bearer_token``
    reads it); None if it sent none."""
    payload = payload or {}
    headers = payload.get("headers")
    candidates = [payload.get(key) for key in TOKEN_KEYS]
    if isinstance(headers, Mapping):
        candidates += [headers.get("authorization"), headers.get("Authorization")]
    candidates.append(handshake_authorization)
    return next((value for value in candidates if isinstance(value, str) and value.strip()), None)


async def _while_allowed(websocket: WebSocket, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Each item is sent only while the socket's session and rights are still the ones it was opened with
    (``Connection.revoked``: set by a control message or the periodic recheck, as soon as known)."""
    connection = CONNECTION.get(websocket.scope)
    async for item in items:
        if connection is None:
            return
        if connection.revoked:
            # Its socket is being closed (4403), which cancels this operation. Ending the stream here
            # instead would have Strawberry send `complete` while that close forgets the operation: a
            # KeyError in its worker task, logged with a traceback (seen by bench.fault_run).
            await asyncio.Future()
        yield item


@dataclass(eq=False)
class SocketEvents:
    """The event source of one socket: a subscriber that falls behind closes it."""

    hub: EventHub
    websocket: WebSocket
    closing: set[asyncio.Task[None]] = field(default_factory=set)

    def stream(self, audience: str, after: str | None) -> AsyncIterator[TaskEvent]:
        events = self.hub.stream(audience, after, on_overflow=self._too_far_behind)
        return metrics.delivered(_while_allowed(self.websocket, events))

    def _too_far_behind(self) -> None:
        task = asyncio.create_task(
            close(self.websocket, TOO_FAR_BEHIND, "Too far behind: subscribe again with your last cursor")
        )
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)


@dataclass(eq=False, frozen=True, slots=True)
class SocketInbox:
    """The live inbox of one socket. (Nothing queues: a slow client reads its inbox at its own pace.)"""

    inbox: Inbox
    websocket: WebSocket

    def stream(self, user_id: uuid.UUID, after: int | None) -> AsyncIterator[NotificationRecord]:
        notifications = self.inbox.stream(user_id, after)
        return metrics.delivered(_while_allowed(self.websocket, notifications), metrics.NOTIFICATIONS)


CLOSE_TIMEOUT_SECONDS = 5.0


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close the socket, in at most ``CLOSE_TIMEOUT_SECONDS``."""
    if websocket.application_state is not WebSocketState.CONNECTED:
        return
    # A stalled peer's close frame may never leave: give up after a while (its socket then ends with
    # uvicorn's ping timeout); a peer that went away first leaves nothing to close.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await websocket.close(code=code, reason=reason)


@dataclass(frozen=True, slots=True)
class Sockets:
    """Who is on the other end of each socket, and forgetting them when it ends."""

    tokens: TokenConfig
    primary: Reader  # sessions are checked on the primary: a replica may not have the logout yet
    hub: EventHub

    async def authenticate(self, context: Context, websocket: WebSocket) -> None:
        """``connection_init``: the viewer from the token, checked in PostgreSQL; else 4403."""
        sent = token_of(context.connection_params, websocket.headers.get("authorization"))
        context.connection_params = None  # read once: the token is not kept with the socket
        if sent is None:
            raise ConnectionRejectionError({"message": "Send the access token in connection_init."})
        try:
            claims = decode_access_token(self.tokens, bearer_token(sent, bare=True) or "")
            # Its roles are not kept: the socket's events read them afresh, each time.
            context.who.viewer = (await load_viewer(self.primary, claims)).viewer
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message, **error.extensions}) from None
        connection = Connection(
            claims.user_id,
            claims.session_id,
            lambda code, reason: close(websocket, code, reason),
            role=context.who.viewer.role.value,
        )
        self.hub.add_connection(connection)
        metrics.websocket_opened()
        CONNECTION.set(websocket.scope, connection)
        # Ends the socket when the token does: a subscription never outlives the right to read it.
        delay = max(0.0, accepted_until(self.tokens, claims) - time.time())
        expiry = asyncio.get_running_loop().call_later(
            delay,
            lambda: asyncio.ensure_future(close(websocket, 4403, EXPIRED_REASON)),
        )
        EXPIRY.set(websocket.scope, expiry)

    def forget(self, websocket: WebSocket) -> None:
        connection = CONNECTION.pop(websocket.scope)
        if connection is not None:
            self.hub.remove_connection(connection)
            metrics.websocket_closed()
        expiry = EXPIRY.pop(websocket.scope)
        if expiry is not None:
            expiry.cancel()


def _subscription_only(query: object, operation_name: object) -> str | None:
    """Why an operation may not run over the socket (None: it may). Queries and mutations go over HTTP:
    there each one gets its own context, cache and invalidation."""
    try:
        operation = get_operation_ast(
            parse(str(query)), operation_name if isinstance(operation_name, str) else None
        )
    except GraphQLError:
        return None  # the handler answers the syntax error itself
    if operation is not None and operation.operation is not OperationType.SUBSCRIPTION:
        return "Only subscriptions are served over WebSocket: send queries and mutations over HTTP."
    return None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler: subscriptions only, and letting go of what it needs only
    until connection_init."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except ServiceUnavailable:  # the session could not be checked: the client should retry, not log in
            await self.websocket.close(TRY_AGAIN_LATER, UNAVAILABLE_REASON)
            return
        # The init timeout is cancelled by now, and done, as on_ws_connect awaited PostgreSQL. Kept, the
        # task (its coroutine, its CancelledError) would stay as long as the socket: about 1 kB.
        # shutdown() skips a None.
        timeout = self.connection_init_timeout_task
        if timeout is not None and timeout.done():
            self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: Any) -> None:
        payload = message.get("payload") or {}
        refusal = _subscription_only(payload.get("query"), payload.get("operationName"))
        if refusal is not None and self.connection_acknowledged:
            error = {"message": refusal, "extensions": {"code": "BAD_REQUEST"}}
            await self.send_message(cast("Any", {"id": message["id"], "type": "error", "payload": [error]}))
            return
        await super().handle_subscribe(message)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Strawberry's handler of the legacy graphql-ws protocol, with the rules graphql-transport-ws has:
    one connection_init, within ``INIT_TIMEOUT_SECONDS`` (4408), and subscriptions only."""

    async def handle(self) -> None:
        timer = asyncio.get_running_loop().call_later(INIT_TIMEOUT_SECONDS, self._init_timed_out)
        try:
            await super().handle()
        finally:
            timer.cancel()

    def _init_timed_out(self) -> None:
        if not self.connection_acknowledged:
            self._closing = asyncio.ensure_future(self._close(4408, "Connection initialisation timeout"))

    async def _close(self, code: int, reason: str) -> None:
        await close(cast("Any", self.websocket).ws, code, reason)

    async def handle_connection_init(self, message: Any) -> None:
        if self.connection_acknowledged:
            await self._close(4429, "Too many initialisation requests")
            return
        try:
            await super().handle_connection_init(message)
        except ServiceUnavailable:
            await self._close(TRY_AGAIN_LATER, UNAVAILABLE_REASON)

    async def handle_start(self, message: Any) -> None:
        payload = message.get("payload") or {}
        refusal = _subscription_only(payload.get("query"), payload.get("operationName"))
        if refusal is not None and self.connection_acknowledged:
            error = {"message": refusal, "extensions": {"code": "BAD_REQUEST"}}
            await self.send_message(cast("Any", {"type": "error", "id": message["id"], "payload": error}))
            return
        await super().handle_start(message)


# Every open socket's session, account and role, in one statement for the whole instance.
_RECHECK = """
SELECT s.id, u.role::text, u.is_active AND s.revoked_at IS NULL
FROM auth_sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.id = ANY($1::uuid[])
"""


async def recheck_sessions(hub: EventHub, pool: Any, period: float) -> None:
    """Every ``period`` seconds, close the sockets whose session ended, whose account was deactivated or whose
    role changed, whatever reached or missed this instance's control channel: revocation within ``period``
    even when Redis was away when it was committed."""
    while True:
        await asyncio.sleep(period)
        try:
            await recheck_once(hub, pool)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # PostgreSQL away: try again next period (the sockets stay as they are)
            logger.warning("socket sessions not rechecked (%s)", type(error).__name__)


async def recheck_once(hub: EventHub, pool: Any) -> int:
    """One recheck; the number of sockets revoked."""
    connections = hub.open_connections()
    if not connections:
        return 0
    rows = await pool.fetch(_RECHECK, list({connection.session_id for connection in connections}))
    current = {row[0]: (row[1], row[2]) for row in rows}
    revoked = 0
    for connection in connections:
        role, live = current.get(connection.session_id, (None, False))
        if not live or role != connection.role:
            hub.revoke(connection, "Forbidden: the session, role or account changed", source="recheck")
            revoked += 1
    return revoked
