"""Task events across instances: Redis streams to resume from, Redis pub/sub to deliver live.

- **Publish** (after a write commits): one Lua call appends the write's event to the stream of every
  audience that may see it (``taskql:ev:*`` for admins, ``taskql:ev:<owner>`` for an owner), all under the
  one id Redis gives the first append, trims the streams to the retention window, and publishes the event on
  one channel that every instance listens to.
- **Deliver**: each instance holds one pub/sub connection, whatever the number of subscribers, and hands each
  event to its local subscribers of that audience through bounded queues: a slow client never delays the
  others, nor the write. One that falls ``max_queue`` events behind is closed (1013, try again later): it
  resumes with its last cursor.
- **Resume**: a subscriber registers for live events first, then reads what it missed from the stream, then
  goes on with the live ones, skipping any it already had (ids only grow): no gap and no duplicate at the
  seam. A cursor is valid while its own event is still in the stream (streams lose their oldest entries
  first), else ``CURSOR_EXPIRED``. If the pub/sub connection drops, every subscriber catches up from the
  stream once it is back.
- **Control**: writes that end sessions or change a role or an activation are published on a second
  channel; every instance closes the affected sockets (4403), and the clients reconnect with their tokens,
  checked again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from core.errors import BadUserInput
from models import TaskPriority, TaskRecord, TaskStatus
from resolvers.events import CursorExpired, EventDraft, TaskEvent, TaskEventKind

logger = logging.getLogger("taskql.events")

STREAM_PREFIX = "taskql:ev:"
LIVE_CHANNEL = "taskql:ev-live"
CONTROL_CHANNEL = "taskql:ev-control"
REPLAY_PAGE = 500
STOP_SECONDS = 1.0  # the listener's wait for a cancellation, then again after its connection is closed
TOO_FAR_BEHIND = 1013  # "try again later": graphql-ws clients reconnect by themselves

# KEYS: the audiences' streams (the admins' first)   ARGV: max length, min id, retention ms, live bundle,
# then one payload per stream
PUBLISH = (
    """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for i = 2, #KEYS do
  redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], id, 'e', ARGV[4 + i])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
for i = 1, #KEYS do redis.call('XTRIM', KEYS[i], 'MINID', '~', ARGV[2]) end
redis.call('PUBLISH', '"""
    + LIVE_CHANNEL
    + """', id .. ' ' .. ARGV[4])
return id
"""
)


def stream_key(audience: str) -> str:
    return STREAM_PREFIX + audience


def _id(raw: str) -> tuple[int, int]:
    milliseconds, _, sequence = raw.partition("-")
    return int(milliseconds), int(sequence or 0)


def encode_cursor(event_id: str) -> str:
    return base64.urlsafe_b64encode(event_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        _id(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("after: not a cursor of taskEvents.", field="after") from None
    return raw


def _payload(draft: EventDraft, at: datetime) -> str:
    task = None
    if draft.task is not None:
        task = {
            **asdict(draft.task),
            "id": str(draft.task.id),
            "owner_id": str(draft.task.owner_id),
            **{
                name: value.isoformat() if value is not None else None
                for name in ("due_at", "created_at", "updated_at", "completed_at")
                for value in [getattr(draft.task, name)]
            },
        }
    return json.dumps(
        {"kind": draft.kind.value, "taskId": str(draft.task_id), "task": task, "at": at.isoformat()},
        separators=(",", ":"),
    )


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _event(event_id: str, payload: str | bytes) -> TaskEvent:
    data = json.loads(payload)
    task = data["task"]
    record = None
    if task is not None:
        record = TaskRecord(
            id=uuid.UUID(task["id"]),
            owner_id=uuid.UUID(task["owner_id"]),
            title=task["title"],
            description=task["description"],
            status=TaskStatus(task["status"]),
            priority=TaskPriority(task["priority"]),
            due_at=_optional_time(task["due_at"]),
            tags=list(task["tags"]),
            created_at=datetime.fromisoformat(task["created_at"]),
            updated_at=datetime.fromisoformat(task["updated_at"]),
            completed_at=_optional_time(task["completed_at"]),
        )
    return TaskEvent(
        cursor=encode_cursor(event_id),
        kind=TaskEventKind(data["kind"]),
        task_id=uuid.UUID(data["taskId"]),
        task=record,
        at=datetime.fromisoformat(data["at"]),
    )


class _Gap:
    """Live delivery was interrupted: read the stream again from the last event delivered."""


GAP = _Gap()


@dataclass(eq=False, slots=True)
class Subscriber:
    """One subscriber's live events, at most ``max_queue`` of them: a list, and a future only while the
    subscriber waits. (An asyncio.Queue holds four deques and an Event, about 3 kB, and a deque alone 0.7
    kB, on every idle subscriber; thousands of them idle per instance, with nothing queued.)"""

    max_queue: int
    on_overflow: Callable[[], None]
    overflowed: bool = False
    items: list[tuple[str, TaskEvent] | _Gap] = field(default_factory=list)
    waiter: asyncio.Future[None] | None = None

    def offer(self, item: tuple[str, TaskEvent] | _Gap) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.max_queue:
            self.overflowed = True
            self.on_overflow()
            return
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> tuple[str, TaskEvent] | _Gap:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)  # at most max_queue long, and mostly one: cheaper than a deque's block


@dataclass(eq=False)
class Connection:
    """One WebSocket: whose it is, and how to close it."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    close: Callable[[int, str], Awaitable[None]]


@dataclass
class EventHub:
    redis: Redis
    retention_seconds: int
    max_per_stream: int
    max_queue: int
    _subscribers: defaultdict[str, set[Subscriber]] = field(default_factory=lambda: defaultdict(set))
    _connections: set[Connection] = field(default_factory=set)
    _listener: asyncio.Task[None] | None = None
    _pubsub: PubSub | None = None
    _stopping: bool = False
    _closing: set[asyncio.Future[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._publish = self.redis.register_script(PUBLISH)

    # Publishing -------------------------------------------------------------------------------------

    async def publish(self, writes: Iterable[list[EventDraft]], now: datetime) -> None:
        """Each write's events under one id, write after write (one round trip for all)."""
        writes = [write for write in writes if write]
        if not writes:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for write in writes:
                await self._publish_write(write, now, pipe)
            await pipe.execute()

    async def _publish_write(self, drafts: list[EventDraft], now: datetime, pipe: Any) -> None:
        drafts = sorted(drafts, key=lambda draft: draft.audience != "*")  # the admins' stream first
        payloads = [_payload(draft, now) for draft in drafts]
        bundle = json.dumps(
            {draft.audience: payload for draft, payload in zip(drafts, payloads, strict=True)}
        )
        min_id = f"{int((time.time() - self.retention_seconds) * 1000)}-0"
        await self._publish(
            keys=[stream_key(draft.audience) for draft in drafts],
            args=[self.max_per_stream, min_id, self.retention_seconds * 1000, bundle, *payloads],
            client=pipe,
        )

    async def tell_connections(self, tags: Iterable[str]) -> None:
        """Sessions ended, roles or activations changed (cache tags ``user:`` / ``session:``)."""
        changed = [tag for tag in tags if tag.startswith(("user:", "session:"))]
        if changed:
            await self.redis.publish(CONTROL_CHANNEL, json.dumps(changed))

    # Connections ------------------------------------------------------------------------------------

    def add_connection(self, connection: Connection) -> None:
        self._connections.add(connection)

    def remove_connection(self, connection: Connection) -> None:
        self._connections.discard(connection)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def _control(self, tags: list[str]) -> None:
        users = {tag.removeprefix("user:") for tag in tags if tag.startswith("user:")}
        sessions = {tag.removeprefix("session:") for tag in tags if tag.startswith("session:")}
        for connection in list(self._connections):
            if str(connection.user_id) in users or str(connection.session_id) in sessions:
                # Closed in the background: the listener never waits on a client's socket.
                task = asyncio.ensure_future(
                    connection.close(4403, "Forbidden: the session, role or account changed")
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(
            *(connection.close(code, reason) for connection in list(self._connections)),
            return_exceptions=True,
        )

    # Subscribing ------------------------------------------------------------------------------------

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
                await asyncio.sleep(0.5)

    def _dispatch(self, message: dict[str, Any]) -> None:
        data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        if channel == CONTROL_CHANNEL:
            self._control(json.loads(data))
            return
        event_id, _, bundle = data.partition(" ")
        for audience, payload in json.loads(bundle).items():
            subscribers = self._subscribers.get(audience)
            if subscribers:
                item = (event_id, _event(event_id, payload))
                for subscriber in list(subscribers):
                    subscriber.offer(item)

    def _everyone(self, item: _Gap) -> None:
        for subscribers in self._subscribers.values():
            for subscriber in list(subscribers):
                subscriber.offer(item)

    def stream(
        self, audience: str, after: str | None, on_overflow: Callable[[], None] | None = None
    ) -> AsyncIterator[TaskEvent]:
        return self._stream(audience, after, on_overflow or (lambda: None))

    async def _stream(
        self, audience: str, after: str | None, on_overflow: Callable[[], None]
    ) -> AsyncIterator[TaskEvent]:
        # Where to start: the client's cursor, or the latest event now (read before registering: whatever
        # comes between is caught by the first replay, and whatever comes twice is skipped by its id).
        if after is not None:
            last = decode_cursor(after)
            await self._check_retained(audience, last)
        else:
            last = await self._latest(audience) or "0-0"
        subscriber = Subscriber(self.max_queue, on_overflow)
        self._subscribers[audience].add(subscriber)
        try:
            replay = True
            while True:
                if replay:
                    async for event_id, event in self._replay(audience, last):
                        last = event_id
                        yield event
                item = await subscriber.get()
                replay = isinstance(item, _Gap)
                if isinstance(item, _Gap):
                    continue
                event_id, event = item
                if _id(event_id) > _id(last):  # else: delivered already, from the stream
                    last = event_id
                    yield event
        finally:
            self._subscribers[audience].discard(subscriber)
            if not self._subscribers[audience]:
                del self._subscribers[audience]

    async def _entries(self, audience: str, low: str, high: str, count: int) -> list[tuple[str, bytes]]:
        """Stream entries as (id, payload); reversed when ``low`` is ``+`` (the newest first)."""
        key = stream_key(audience)
        raw: Any = (
            await self.redis.xrevrange(key, max=low, min=high, count=count)
            if low == "+"
            else await self.redis.xrange(key, min=low, max=high, count=count)
        )
        return [(entry_id.decode(), fields[b"e"]) for entry_id, fields in raw or ()]

    async def _latest(self, audience: str) -> str | None:
        entries = await self._entries(audience, "+", "-", 1)
        return entries[0][0] if entries else None

    async def _check_retained(self, audience: str, event_id: str) -> None:
        if not await self._entries(audience, event_id, event_id, 1):
            raise CursorExpired(
                "This cursor is older than the events kept: refetch, then subscribe without `after`.",
                retentionSeconds=self.retention_seconds,
            )

    async def _replay(self, audience: str, after: str) -> AsyncIterator[tuple[str, TaskEvent]]:
        start = "(" + after
        while True:
            entries = await self._entries(audience, start, "+", REPLAY_PAGE)
            for event_id, payload in entries:
                yield event_id, _event(event_id, payload)
            if len(entries) < REPLAY_PAGE:
                return
            start = "(" + entries[-1][0]
