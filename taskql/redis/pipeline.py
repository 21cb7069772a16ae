"""An auto-pipelined Redis connection for the cache's hot path.

Every cache hit costs one Redis round trip, and on a busy server most of a round trip's cost is the system
calls around it. Here all commands issued during one turn of the event loop leave in a single write on one
shared connection, and their replies (Redis answers in order) are matched first in, first out as they come
back; so sixteen concurrent hits pay one write and usually one read, not sixteen of each (the same idea as
ioredis' ``enableAutoPipelining``). Replies are parsed by hiredis, the parser redis-py uses. It carries
plain commands only (no transactions, no pub/sub).

Failures behave as redis-py's do, so ``RedisGuard`` treats both alike: a reply slower than ``timeout``
closes the connection and fails every command in flight (``TimeoutError``), a lost connection fails them
with ``ConnectionError``, and the next command opens a new connection. A cancelled caller leaves its reply
to be read and dropped: replies can never shift onto other callers.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import tracing


def encode(*args: str | bytes | int) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Sent:
    """Commands sent together, waiting for their replies: one future for all of them."""

    __slots__ = ("deadline", "expected", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int, deadline: float) -> None:
        self.future = future
        self.expected = expected
        self.deadline = deadline
        self.replies: list[Any] = []

    def answered(self, reply: Any) -> bool:
        """Add a reply; True once all have come (the future then has them, or the first error reply)."""
        replies = self.replies
        replies.append(reply)
        if len(replies) < self.expected:
            return False
        if not self.future.done():  # else its caller was cancelled: the replies are read and dropped
            error = next((reply for reply in replies if isinstance(reply, ResponseError)), None)
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(replies)
        return True


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: PipelinedRedis) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pipe.pending
        while (reply := self.reader.gets()) is not False:
            if pending[0].answered(reply):
                pending.popleft()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.lost(self, ConnectionError("Redis closed the connection"))


class PipelinedRedis:
    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        greeting: Callable[[], tuple[str | bytes | int, ...]] | None = None,
        greeted: Callable[[Any], None] | None = None,
    ) -> None:
        self.url = urlparse(url)
        self.timeout = timeout
        # A command every new connection sends before any caller's (taskql.redis.client.NEW_RUN), and
        # what is told
        # its reply.
        self.greeting = greeting
        self.greeted = greeted
        # Commands in flight, oldest first, with the time by which each must be answered.
        self.pending: deque[_Sent] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        # Chosen once (the pipe is made after tracing is set up): untraced, a lookup pays nothing for it.
        self.send: Callable[[bytes, int], Awaitable[list[Any]]] = (
            self._traced_send if tracing.enabled() else self._send
        )

    async def execute(self, *args: str | bytes | int) -> Any:
        return (await self.pipeline(args))[0]

    async def pipeline(self, *commands: tuple[str | bytes | int, ...]) -> list[Any]:
        """Send ``commands`` together; their replies, in order (a Redis error reply raises)."""
        return await self.send(b"".join(encode(*command) for command in commands), len(commands))

    async def _traced_send(self, data: bytes, replies: int) -> list[Any]:
        # redis-py's instrumentation does not see this connection: its commands are traced here.
        with tracing.span(
            "redis pipeline", {"db.system": "redis", "db.operation.batch.size": replies}, client=True
        ):
            return await self._send(data, replies)

    async def _send(self, data: bytes, replies: int) -> list[Any]:
        """Send ``data``, ``replies`` commands already in RESP (see ``encode``); their replies, in order."""
        if replies == 0:
            return []
        protocol = self._protocol or await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        future.add_done_callback(_retrieved)  # a caller that stopped waiting leaves no warning
        self.pending.append(_Sent(future, replies, loop.time() + self.timeout))
        self._buffer.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:  # one timer for all commands in flight, not one each
            self._watchdog = loop.call_later(self.timeout, self._watch, protocol)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        data, self._buffer = b"".join(self._buffer), []
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and data:
            protocol.transport.write(data)

    def _watch(self, protocol: _Protocol) -> None:
        """Replies come in order: if the oldest command is overdue, the connection is stuck."""
        self._watchdog = None
        if not self.pending or protocol is not self._protocol:
            return
        loop = asyncio.get_running_loop()
        deadline = self.pending[0].deadline
        if loop.time() >= deadline:
            self.lost(protocol, RedisTimeoutError(f"no reply from Redis within {self.timeout} s"))
        else:
            self._watchdog = loop.call_at(deadline, self._watch, protocol)

    def lost(self, protocol: _Protocol, error: Exception) -> None:
        """The connection is unusable: fail what is in flight; the next command reconnects."""
        if protocol is not self._protocol:
            return
        self._protocol = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if protocol.transport is not None:
            protocol.transport.abort()
        pending, self.pending = self.pending, deque()
        self._buffer = []
        for sent in pending:
            if not sent.future.done():
                sent.future.set_exception(error)

    async def _connect(self) -> _Protocol:
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        url = self.url
        try:
            async with asyncio.timeout(self.timeout):
                if url.scheme == "unix":
                    _, protocol = await loop.create_unix_connection(lambda: _Protocol(self), url.path)
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self),
                        url.hostname or "localhost",
                        url.port or 6379,
                        ssl=ssl.create_default_context() if url.scheme == "rediss" else None,
                    )
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"cannot reach Redis: {error}") from error
        self._protocol = protocol
        self.pending = deque()
        # Sent together, first in the buffer: no command of another caller can run before them.
        setup: list[tuple[str | bytes | int, ...]] = []
        if url.password is not None:
            user = unquote(url.username) if url.username else None
            setup.append(("AUTH", *((user,) if user else ()), unquote(url.password)))
        database = parse_qs(url.query).get("db", [""])[0] if url.scheme == "unix" else url.path.lstrip("/")
        if database not in {"", "0"}:
            setup.append(("SELECT", int(database)))
        if self.greeting is not None:
            setup.append(self.greeting())
        if setup:
            replies = await self.pipeline(*setup)
            if self.greeting is not None and self.greeted is not None:
                self.greeted(replies[-1])
        return protocol

    def close(self) -> None:
        if self._protocol is not None:
            self.lost(self._protocol, ConnectionError("closed"))
