"""uvicorn's protocols, subclassed: bounds on connections, below the app, and WebSockets that close 1001
(going away) on shutdown.

Bounds on connections: how long a connection may take to send a request head, how many
one client address may hold open, and how many files the process may open at all.

uvicorn (0.54, httptools and h11 alike) bounds none of the first two. Its keep-alive timer starts only once a
response is sent, and any byte received cancels it until the next response. So a connection that sends
nothing, that sends a request head a byte at a time (slowloris), or that sends a response's worth of
requests and then half of a head, is kept for ever, holding one of the process's file descriptors: 1,000 of
them from one client, under the usual soft limit of 1,024, and nobody else is answered.

- ``REQUEST_HEAD_TIMEOUT_SECONDS``: a connection must send a complete request head (request line and
  headers) within this long of being opened, and within this long of the first byte of each later request.
  The clock is never reset by data: a trickle gains nothing. Past it, the connection is closed; with a 408
  when part of a head had arrived (a client that was slow, not one that never spoke). Between requests the
  keep-alive timeout (``serve --timeout-keep-alive``) applies, as uvicorn does it; while a request runs,
  the app's own bounds do (``BODY_IDLE_TIMEOUT_SECONDS``, the statement timeout).
- ``MAX_CONNECTIONS_PER_CLIENT``: connections one address may hold open in one process (HTTP and WebSocket
  alike; 0: no bound). One more is closed as soon as it is accepted, before anything is read: a 503 would
  first need its request head, and holding the connection until then is what the bound is there to avoid.
  The refusals are logged, at most once per ``REFUSAL_LOG_SECONDS``.
- ``raise_open_files_limit``: ``serve`` raises the soft limit of open files to the hard limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import resource
from collections import Counter
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from core.settings import Settings

logger = logging.getLogger("taskql.connections")

REFUSAL_LOG_SECONDS = 10.0
# Where the hard limit is "unlimited" (macOS, some containers) the soft one cannot be: Linux caps it at
# fs.nr_open, 1,048,576 unless raised.
UNLIMITED_FALLBACK = 1 << 20
HEAD_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 38\r\n"
    b"connection: close\r\n\r\nThe request head took too long to send."
)


class OpenFiles(NamedTuple):
    before: int  # the soft limit the process started with
    soft: int
    hard: int


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft limit of open files (RLIMIT_NOFILE) as far as the hard limit allows. Every connection
    holds a descriptor: 1,024, a common default, is a few hundred clients. Worker processes inherit it."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FALLBACK if hard == resource.RLIM_INFINITY else hard
    if before != resource.RLIM_INFINITY and before < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:  # e.g. macOS's OPEN_MAX: keep what there is, say so
            logger.warning("could not raise the open files limit from %d to %d: %s", before, target, error)
    return OpenFiles(before, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)


class ClientSlots:
    """How many connections each client address holds open in this process, bounded by ``limit`` (0: no
    bound, nothing counted)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._refused: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def open(self, host: str) -> int:
        return self._open.get(host, 0)

    def take(self, host: str) -> bool:
        """Count one more connection of ``host``; False (nothing counted) when it holds ``limit`` already."""
        held = self._open.get(host, 0)
        if held >= self.limit:
            self._refused_one(host)
            return False
        self._open[host] = held + 1
        return True

    def release(self, host: str) -> None:
        held = self._open.get(host, 0) - 1
        if held > 0:
            self._open[host] = held
        else:
            self._open.pop(host, None)

    def _refused_one(self, host: str) -> None:
        """The first refusal is logged at once; those that follow, summed up every REFUSAL_LOG_SECONDS for
        as long as they go on (a client retrying in a loop must not flood the log)."""
        if self._summary is None:
            logger.warning(
                "refused a connection from %s: it holds %d open (MAX_CONNECTIONS_PER_CLIENT)",
                host,
                self.limit,
            )
            self._schedule_summary()
        else:
            self._refused[host] += 1

    def _schedule_summary(self) -> None:
        self._summary = asyncio.get_running_loop().call_later(REFUSAL_LOG_SECONDS, self._summarize)

    def _summarize(self) -> None:
        self._summary = None
        if not self._refused:
            return
        worst = ", ".join(f"{host} ({count})" for host, count in self._refused.most_common(5))
        logger.warning(
            "refused %d more connections in %.0f s (MAX_CONNECTIONS_PER_CLIENT=%d), the most from: %s",
            self._refused.total(),
            REFUSAL_LOG_SECONDS,
            self.limit,
            worst,
        )
        self._refused.clear()
        self._schedule_summary()


@functools.cache
def _bounds() -> tuple[float, ClientSlots | None]:
    """This process's head timeout and client slots. Read from the environment, as the app's settings are
    in every worker (``serve`` passes uvicorn this module's classes, not instances)."""
    settings = Settings()
    limit = settings.max_connections_per_client
    return settings.request_head_timeout_seconds, ClientSlots(limit) if limit else None


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head timeout and the per-client bound."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout, self.slots = _bounds()
        self.slot: str | None = None  # the address whose count this connection is in
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_begun = False
        self.upgraded = False  # a WebSocket now: its bytes are frames, no HTTP head is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None  # None: a Unix socket
        if host is not None and self.slots is not None:
            if not self.slots.take(host):
                transport.close()
                return
            self.slot = host
        self.head_timer = self.loop.call_later(self.head_timeout, self.head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        waiting = self.cycle is None or self.cycle.response_complete  # for a (next) request's head
        if waiting and data and not self.upgraded and not self.transport.is_closing():
            self.head_begun = True
            if self.head_timer is None:  # the first byte of a later request; the keep-alive timer is off
                self.head_timer = self.loop.call_later(self.head_timeout, self.head_timed_out)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self.head_begun = False
        super().on_headers_complete()

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_begun:
            self.transport.write(HEAD_TIMED_OUT)
        self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self.upgraded = True
        self._stop_head_timer()
        super().handle_websocket_upgrade()
        # The socket keeps this connection's slot: the WebSocket protocol, now the transport's, gives it back.
        successor = self.transport.get_protocol()
        if isinstance(successor, BoundedWebSocketProtocol):
            successor.slot, self.slot = self.slot, None
        else:
            self._release()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._release()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _release(self) -> None:
        if self.slot is not None and self.slots is not None:
            self.slots.release(self.slot)
        self.slot = None


def _wake_next(waiters: list[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            return


class Inbox:
    """What uvicorn's protocol uses of its receive queue (``put_nowait``, ``get``, ``empty``), with
    asyncio.Queue's semantics but in two lists: an asyncio.Queue holds four deques, about 3 kB, on every
    idle socket. uvicorn pauses reading after each message until the app has taken them all, so the lists
    stay short."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] = []

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        _wake_next(self._getters)

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
                if self._items and not getter.cancelled():
                    _wake_next(self._getters)  # the wake-up this getter will not use
                raise
        return self._items.pop(0)


class Flag:
    """asyncio.Event's ``set``, ``clear``, ``is_set`` and ``wait``, its waiters in a list (an Event holds a
    deque, 0.8 kB): uvicorn's ``writable``."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (the websockets sans-I/O one, uvicorn's default), closing with 1001
    (going away) on shutdown instead of 1012, and keeping less per idle socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn keeps the handshake's response (with its headers) and request for the socket's whole
            # life, and never reads them after the accept; the response goes (about 2.5 kB of RSS per
            # socket). The request stays alive all the same, a local of websockets' parser generator: its
            # headers are emptied (about 2 kB more; the ASGI scope has its own copy, which the app reads).
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]

    def shutdown(self) -> None:
        if self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
        self.conn.send_close(1001, "Server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()


class BoundedWebSocketProtocol(GoingAwayWebSocketProtocol):
    """The WebSocket protocol, giving back the slot its HTTP connection took when the socket closes."""

    slot: str | None = None  # a class default: nothing more per socket when there is no bound

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            _, slots = _bounds()
            if self.slot is not None and slots is not None:
                slots.release(self.slot)
            self.slot = None
