"""Task events across instances: Redis streams and pub/sub to deliver them fast, PostgreSQL to never lose one.

- **Published** from the outbox (``taskql.outbox.relay``): each write's events are appended to the stream
of every
  audience that may see it (``taskql:ev:*`` for admins, ``taskql:ev:<owner>`` for an owner) under one id, and
  published on one channel that every instance listens to. That id is the event's **position**, recorded in
  the outbox row: its cursor, durable.
- **Deliver**: each instance holds one pub/sub connection, whatever the number of subscribers, and hands each
  event to its local subscribers of that audience through bounded queues: a slow client never delays the
  others, nor the write. One that falls ``max_queue`` events behind is closed (1013, try again later): it
  resumes with its last cursor.
- **Resume**: a subscriber registers for live events first, then reads what it missed, then goes on with the
  live ones, skipping any it already had (positions only grow): no gap and no duplicate at the seam. What it
  missed is read from the Redis stream when Redis holds everything after the cursor (the cursor's entry is
  there, and it is past the horizon a Redis restart leaves, ``taskql.redis.client.HORIZON_KEY``), else
  from the
  outbox in PostgreSQL merged with the stream. A cursor older than ``EVENTS_RETENTION_SECONDS`` is
  ``CURSOR_EXPIRED``, never a silent gap. If the pub/sub connection drops, every subscriber catches up the
  same way once it is back; while Redis is away, subscribers wait (no error reaches them).
- **Once**: an event published twice (its request and the relay racing across a crash) carries its outbox
  row's id; a subscriber skips ids it delivered recently.
- **Control**: writes that end sessions or change a role or an activation are published on a second
  channel; every instance closes the affected sockets (4403), and the clients reconnect with their tokens,
  checked again. ``SESSION_RECHECK_SECONDS`` bounds the rest (``taskql.realtime.sockets``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from core.errors import BadUserInput
from core.reader import DEAD_CONNECTION
from resolvers.events import CursorExpired, TaskEvent, decode_event
from taskql.ops import metrics
from taskql.outbox.relay import CONTROL_CHANNEL, LIVE_CHANNEL, stream_key
from taskql.redis.client import HORIZON_KEY

logger = logging.getLogger("taskql.realtime.hub")

REPLAY_PAGE = 500
STOP_SECONDS = 1.0  # the listener's wait for a cancellation, then again after its connection is closed
TOO_FAR_BEHIND = 1013  # "try again later": graphql-ws clients reconnect by themselves
REDIS_RETRY_SECONDS = 0.5  # a subscriber's wait before asking a Redis that failed again
RECENT_IDS = 256  # outbox ids a subscriber remembers, to skip an event published twice
FUTURE_SLACK_MS = 60_000  # a cursor further ahead of the clock than this is not one we gave

# What a subscriber waits out: Redis or PostgreSQL not answering (not an error in what they answered).
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    *DEAD_CONNECTION,  # a connection PostgreSQL ended under a statement (core.reader)
)
Position = tuple[int, int]  # (milliseconds, sequence): a Redis stream id


def _id(raw: str) -> Position:
    milliseconds, _, sequence = raw.partition("-")
    return int(milliseconds), int(sequence or 0)


def _raw(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(_raw(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        position = _id(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("after: not a cursor of taskEvents.", field="after") from None
    if position[0] < 0 or position[1] < 0 or position[0] > time.time() * 1000 + FUTURE_SLACK_MS:
        raise BadUserInput("after: not a cursor of taskEvents.", field="after")
    return position


# An event as delivered: its position, its outbox row's id, the event.
Delivery = tuple[Position, int, TaskEvent]


def _delivery(position: Position, outbox_id: int | str | bytes, payload: str | bytes) -> Delivery:
    return position, int(outbox_id), decode_event(encode_cursor(position), payload)


class _Gap:
    """Live delivery was interrupted: read what was missed again from the last event delivered."""


GAP = _Gap()


@dataclass(eq=False, slots=True)
class Subscriber:
    """One subscriber's live events, at most ``max_queue`` of them: a list, and a future only while the
    subscriber waits. (An asyncio.Queue holds four deques and an Event, about 3 kB, and a deque alone 0.7
    kB, on every idle subscriber; thousands of them idle per instance, with nothing queued.)"""

    max_queue: int
    on_overflow: Callable[[], None]
    overflowed: bool = False
    items: list[Delivery | _Gap] = field(default_factory=list)
    waiter: asyncio.Future[None] | None = None

    def offer(self, item: Delivery | _Gap) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.max_queue:
            self.overflowed = True
            self.on_overflow()
            return
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Delivery | _Gap:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)  # at most max_queue long, and mostly one: cheaper than a deque's block


@dataclass(eq=False)
class Connection:
    """One WebSocket: whose it is, with which role, and how to close it. ``revoked`` is set the moment the
    server learns its session ended or its rights changed: no event is sent to it after that."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    close: Callable[[int, str], Awaitable[None]]
    role: str = "USER"
    revoked: bool = False


@dataclass
class _Seen:
    """The outbox ids a subscriber delivered last (an event published twice is skipped)."""

    order: deque[int] = field(default_factory=deque)
    ids: set[int] = field(default_factory=set)

    def add(self, outbox_id: int) -> bool:
        """False if ``outbox_id`` was delivered already."""
        if outbox_id in self.ids:
            return False
        self.ids.add(outbox_id)
        self.order.append(outbox_id)
        if len(self.order) > RECENT_IDS:
            self.ids.discard(self.order.popleft())
        return True


_PG_REPLAY = """
SELECT position_ms, position_seq, id, effects->'events'->>$1
FROM outbox
WHERE position_ms IS NOT NULL AND (position_ms, position_seq) > ($2::bigint, $3::bigint)
  AND effects->'events' ? $1
ORDER BY position_ms, position_seq
LIMIT $4
"""
_PG_LATEST = """
SELECT position_ms, position_seq FROM outbox WHERE position_ms IS NOT NULL
ORDER BY position_ms DESC, position_seq DESC LIMIT 1
"""


@dataclass
class EventHub:
    redis: Redis
    retention_seconds: int
    max_queue: int
    pool: Any = None  # asyncpg.Pool of the primary: the outbox, where events outlive Redis
    _subscribers: defaultdict[str, set[Subscriber]] = field(default_factory=lambda: defaultdict(set))
    _connections: set[Connection] = field(default_factory=set)
    _listener: asyncio.Task[None] | None = None
    _pubsub: PubSub | None = None
    _stopping: bool = False
    _closing: set[asyncio.Future[None]] = field(default_factory=set)

    # Connections ------------------------------------------------------------------------------------

    def add_connection(self, connection: Connection) -> None:
        self._connections.add(connection)

    def remove_connection(self, connection: Connection) -> None:
        self._connections.discard(connection)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def open_connections(self) -> list[Connection]:
        return [connection for connection in self._connections if not connection.revoked]

    def revoke(self, connection: Connection, reason: str, source: str = "control") -> None:
        """No more events to ``connection`` from now on, and its socket closed (4403) in the background: the
        listener never waits on a client's socket."""
        if connection.revoked:
            return
        connection.revoked = True
        metrics.socket_revoked(source)
        task = asyncio.ensure_future(connection.close(4403, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _control(self, tags: list[str]) -> None:
        users = {tag.removeprefix("user:") for tag in tags if tag.startswith("user:")}
        sessions = {tag.removeprefix("session:") for tag in tags if tag.startswith("session:")}
        for connection in list(self._connections):
            if str(connection.user_id) in users or str(connection.session_id) in sessions:
                self.revoke(connection, "Forbidden: the session, role or account changed")

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(
            *(connection.close(code, reason) for connection in list(self._connections)),
            return_exceptions=True,
        )

    # Listening --------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="taskql-events")

    async def stop(self) -> None:
        self._stopping = True
        listener = self._listener
        if listener is None:
            return
        listener.cancel()
        done, _ = await asyncio.wait({listener}, timeout=STOP_SECONDS)
        if not done and self._pubsub is not None:
            # A cancellation that lands while redis-py is still connecting can be swallowed by it, and the
            # listener then waits on the connection for good: closing it under the listener ends the wait.
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            done, _ = await asyncio.wait({listener}, timeout=STOP_SECONDS)
        if not done:
            logger.warning("the task event listener did not stop within %.0f s", 2 * STOP_SECONDS)
        elif not listener.cancelled() and listener.exception() is not None:
            logger.warning("the task event listener ended with %r", listener.exception())

    async def _listen(self) -> None:
        """One pub/sub connection for the whole process, reconnecting after failures."""
        while not self._stopping:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    self._pubsub = pubsub
                    await pubsub.subscribe(LIVE_CHANNEL, CONTROL_CHANNEL)
                    self._everyone(GAP)  # anything published while we were not listening is in the streams
                    async for message in pubsub.listen():
                        try:
                            self._dispatch(message)
                        except Exception:  # one bad message must not end delivery for the instance
                            logger.exception("could not dispatch a task event message")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                if self._stopping:
                    return
                logger.warning("event listener lost Redis (%s); reconnecting", type(error).__name__)
                await asyncio.sleep(REDIS_RETRY_SECONDS)

    def _dispatch(self, message: dict[str, Any]) -> None:
        data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        if channel == CONTROL_CHANNEL:
            self._control(json.loads(data))
            return
        event_id, _, rest = data.partition(" ")
        outbox_id, _, bundle = rest.partition(" ")
        position = _id(event_id)
        for audience, payload in json.loads(bundle).items():
            subscribers = self._subscribers.get(audience)
            if subscribers:
                item = _delivery(position, outbox_id, payload)
                for subscriber in list(subscribers):
                    subscriber.offer(item)

    def _everyone(self, item: _Gap) -> None:
        for subscribers in self._subscribers.values():
            for subscriber in list(subscribers):
                subscriber.offer(item)

    # Subscribing ------------------------------------------------------------------------------------

    def stream(
        self, audience: str, after: str | None, on_overflow: Callable[[], None] | None = None
    ) -> AsyncIterator[TaskEvent]:
        return self._stream(audience, after, on_overflow or (lambda: None))

    async def _stream(
        self, audience: str, after: str | None, on_overflow: Callable[[], None]
    ) -> AsyncIterator[TaskEvent]:
        # Where to start: the client's cursor, or the latest event now (read before registering: whatever
        # comes between is caught by the first replay, and whatever comes twice is skipped by its position).
        if after is not None:
            last = decode_cursor(after)
            if last[0] < (time.time() - self.retention_seconds) * 1000:
                raise CursorExpired(
                    "This cursor is older than the events kept: refetch, then subscribe without `after`.",
                    retentionSeconds=self.retention_seconds,
                )
            complete = False  # whether Redis holds every event after `last`: to be checked
        else:
            last = await self._patiently(self._latest)
            complete = True
        seen = _Seen()
        subscriber = Subscriber(self.max_queue, on_overflow)
        self._subscribers[audience].add(subscriber)
        try:
            replay = True
            while True:
                if replay:
                    async for position, outbox_id, event in self._replay(audience, last, complete):
                        last = position
                        if seen.add(outbox_id):
                            yield event
                complete = False
                item = await subscriber.get()
                replay = isinstance(item, _Gap)
                if isinstance(item, _Gap):
                    continue
                position, outbox_id, event = item
                if position > last:  # else: delivered already, by a replay
                    last = position
                    if seen.add(outbox_id):
                        yield event
        finally:
            self._subscribers[audience].discard(subscriber)
            if not self._subscribers[audience]:
                del self._subscribers[audience]

    async def _patiently(self, read: Callable[[], Awaitable[Any]]) -> Any:
        """``read()`` once Redis (and PostgreSQL, for what Redis lacks) answers: a subscriber waits out an
        outage, it never fails for one."""
        while True:
            try:
                return await read()
            except UNREACHABLE:
                await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _latest(self) -> Position:
        """The position of the latest event of all (the admins' stream has them all), else in the outbox."""
        entries = await self.redis.xrevrange(stream_key("*"), count=1)
        if entries:
            entry_id: Any = entries[0][0]
            return _id(entry_id.decode())
        if self.pool is not None:
            row = await self.pool.fetchrow(_PG_LATEST)
            if row is not None:
                return int(row[0]), int(row[1])
        return 0, 0

    async def _replay(
        self, audience: str, after: Position, complete: bool
    ) -> AsyncIterator[tuple[Position, int, TaskEvent]]:
        """Every event of ``audience`` after ``after``, in order (from Redis, or PostgreSQL and Redis)."""
        while True:
            page = await self._patiently(functools.partial(self._page, audience, after, complete))
            for delivery in page:
                after = delivery[0]
                yield delivery
            if len(page) < REPLAY_PAGE:
                return

    async def _page(self, audience: str, after: Position, complete: bool) -> list[Delivery]:
        redis_page = await self._redis_page(audience, after)
        if complete or self.pool is None or await self._redis_has_all(audience, after):
            return redis_page
        # Redis may lack some (restarted, trimmed, evicted): the outbox has every event it recorded as
        # published; Redis the ones published a moment ago and not yet recorded. Both, by position, up to
        # where neither page may be missing anything.
        rows = await self.pool.fetch(_PG_REPLAY, audience, after[0], after[1], REPLAY_PAGE)
        stored = [_delivery((int(row[0]), int(row[1])), row[2], row[3]) for row in rows]
        merged = {delivery[0]: delivery for delivery in stored}
        for delivery in redis_page:
            merged.setdefault(delivery[0], delivery)
        page = sorted(merged.values(), key=lambda delivery: delivery[0])
        # A full page may have more after its end: past the earlier end of the full pages, nothing is sure.
        ends = [part[-1][0] for part in (stored, redis_page) if len(part) == REPLAY_PAGE]
        return [delivery for delivery in page if delivery[0] <= min(ends)] if ends else page

    async def _redis_page(self, audience: str, after: Position) -> list[Delivery]:
        raw: Any = await self.redis.xrange(
            stream_key(audience), min="(" + _raw(after), max="+", count=REPLAY_PAGE
        )
        return [
            _delivery(_id(entry_id.decode()), fields.get(b"o", b"0"), fields[b"e"])
            for entry_id, fields in raw or ()
        ]

    async def _redis_has_all(self, audience: str, after: Position) -> bool:
        """Whether the stream holds every event after ``after``: its entry is there (streams lose their
        oldest entries first), and it is past the horizon a Redis restart leaves."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(HORIZON_KEY)
            pipe.xrange(stream_key(audience), min=_raw(after), max=_raw(after), count=1)
            horizon, entry = await pipe.execute()
        return bool(entry) and after[0] > int(horizon or 0)
