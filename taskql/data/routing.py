"""Where reads go: the primary, or the read replica (``DATABASE_READ_URL``) when it cannot show an answer
older than a write that answer must reflect.

The rules, and why they hold on any number of instances:

- **A mutation reads the primary**, from its first read to its payload, and so does the session check of
  every request (a token must stop working the moment its session ends).
- **Recent writes are marked in Redis.** After a write commits and before it is acknowledged (and before
  the response cache's versions are bumped), each cache tag it changed (``core.cache_tags``: the owner's
  tasks, the account, ...) gets a marker that Redis expires after ``DATABASE_READ_AFTER_WRITE_SECONDS``
  (the *window*). Redis is shared and measures the expiry with its own clock, so every instance sees the
  marker from the moment the write is acknowledged until the window has passed.
- **A query reads the replica only if none of the tags its answer can depend on is marked** (the viewer's
  tags, the very ones the response cache keys its entries by: a user's account and tasks, for an admin every
  account and task). So a viewer's query right after their own write, on any instance, reads the primary
  (read your writes); and so does anyone's query whose answer the write changed, which also keeps the
  response cache exact: an answer read from the replica is stored against versions whose last bump is older
  than the window, so the replica already had those writes.
- **The window is checked, not assumed.** Twice a second or so, each instance notes the primary's WAL
  position and asks the replica how far it has replayed; the replica has every write committed before the
  last noted position it has replayed. A query may read the replica only if that moment is less than a
  window ago: a write old enough to have lost its marker is then on the replica. A replica that falls
  behind (or does not answer) gets no reads until it catches up.
- **When in doubt, the primary**: Redis not answering, a marker this instance failed to write (until Redis
  is back and it has marked everything as written: the ``epoch`` tag, which every viewer depends on), the
  replica's position not known yet.
- A subscription reads the replica to start; each event's fields are read on the primary (an event follows
  its write by milliseconds, ``resolvers.events``).

Without ``DATABASE_READ_URL`` there is one pool, and none of this runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Iterable

from redis.asyncio import Redis

from core import cache_tags
from core.reader import Reader
from resolvers.context import Context
from taskql.redis.client import RedisGuard, RedisUnavailable
from taskql.redis.pipeline import PipelinedRedis, encode

logger = logging.getLogger("taskql.data.routing")

MARK_PREFIX = "taskql:w:"
PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
# NULL when the server is not a standby (then it is taken as current: it is the primary itself).
REPLAYED_POSITION = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END"
)


def mark_key(tag: str) -> str:
    return MARK_PREFIX + tag


class ReplicaLag:
    """How far behind the primary the replica is, measured: ``caught_up_at`` is the latest moment (this
    process's monotonic clock) such that the replica has replayed everything committed before it."""

    def __init__(self, primary: Reader, replica: Reader, *, interval: float) -> None:
        self.primary = primary
        self.replica = replica
        self.interval = interval
        self.caught_up_at = -math.inf
        self._noted: collections.deque[tuple[float, int]] = collections.deque(maxlen=1000)
        self._warned = False
        self._failing = False

    def behind(self) -> float:
        """Seconds the replica may be behind (infinite until measured, or while it does not answer)."""
        return time.monotonic() - self.caught_up_at

    async def measure(self) -> None:
        # The moment is noted before the primary is asked: its position then is at least the end of every
        # commit acknowledged before that moment.
        # Straight on the pools: these are not the app's reads (not observed, and not retried: a failure
        # only means the position is unknown for now).
        noted_at = time.monotonic()
        self.note(noted_at, await self.primary.pool.fetchval(PRIMARY_POSITION))
        replayed = await self.replica.pool.fetchval(REPLAYED_POSITION)
        if replayed is None:
            if not self._warned:
                logger.warning("DATABASE_READ_URL is not a standby: its reads are taken as current")
                self._warned = True
            self._noted.clear()
            self.caught_up_at = noted_at
            return
        self.replayed(replayed)

    def note(self, at: float, position: int) -> None:
        """The primary's WAL position at moment ``at``."""
        self._noted.append((at, position))

    def replayed(self, position: int) -> None:
        """The replica has replayed up to ``position``: it has every commit before each moment noted at a
        position it has reached."""
        while self._noted and self._noted[0][1] <= position:
            self.caught_up_at = self._noted.popleft()[0]

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.measure(), timeout=max(self.interval, 1.0))
            except Exception as error:
                if not self._failing:
                    logger.warning(
                        "replica position unknown (%s): reads go to the primary", type(error).__name__
                    )
                self._failing = True
                self.caught_up_at = -math.inf
                self._noted.clear()
            else:
                if self._failing:
                    logger.warning("the replica answers again")
                self._failing = False
            await asyncio.sleep(self.interval)


class ReadRouting:
    """The read pools of this process, and the choice between them."""

    def __init__(
        self,
        primary: Reader,
        replica: Reader | None,
        *,
        guard: RedisGuard,
        pipe: PipelinedRedis,
        window_seconds: float,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.guard = guard
        self.pipe = pipe
        self.window = window_seconds
        self._window_ms = str(max(1, round(window_seconds * 1000)))
        self.lag = (
            ReplicaLag(primary, replica, interval=min(0.5, window_seconds / 4))
            if replica is not None
            else None
        )
        self._task: asyncio.Task[None] | None = None
        # A marker this process could not write: every read goes to the primary until, Redis back, it has
        # marked the epoch (before any other Redis call succeeds: RedisGuard's recovery hooks).
        self._undelivered = False
        guard.on_recovery(self._recover)

    @property
    def readers(self) -> list[Reader]:
        return [self.primary] if self.replica is None else [self.primary, self.replica]

    def start(self) -> None:
        if self.lag is not None:
            self._task = asyncio.create_task(self.lag.run(), name="taskql-replica-lag")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(reader.close() for reader in self.readers))

    async def route(self, context: Context, writes: bool) -> None:
        """Before an operation executes: a mutation reads the primary; anything else reads the replica when
        nothing its answer can depend on was written within the window (see the module's docstring)."""
        if writes:
            context.reads.read_primary()
            return
        if context.reads.pinned or self.replica is None:
            return
        context.reads.read_from(self.replica if await self._replica_is_current(context) else self.primary)

    async def _replica_is_current(self, context: Context) -> bool:
        if self.lag is None:
            return False
        viewer = context.who.viewer
        tags = (
            cache_tags.viewer_tags(viewer.user_id, is_admin=viewer.is_admin)
            if viewer is not None
            else (cache_tags.EPOCH,)
        )
        command = encode("MGET", *map(mark_key, tags))
        try:
            # With a marker undelivered, this call is the one that, Redis back, first marks the epoch.
            (marks,) = await self.guard.send(self.pipe, command, 1)
        except RedisUnavailable:
            return False
        # Checked after the markers were read: a write without a marker by then committed over a window ago.
        return not self._undelivered and not any(marks) and self.lag.behind() < self.window

    async def mark(self, tags: Iterable[str]) -> None:
        """After a write's commit, before its answer (and before the cache's versions are bumped)."""
        keys = [mark_key(tag) for tag in tags]
        if self.replica is None or not keys:
            return
        commands = b"".join(encode("SET", key, "1", "PX", self._window_ms) for key in keys)
        try:
            await self.guard.send(self.pipe, commands, len(keys))
        except RedisUnavailable:
            self._undelivered = True
            logger.warning("read-after-write markers not written, Redis unavailable: reads go to the primary")

    async def _recover(self, redis: Redis) -> None:
        if self._undelivered:
            await redis.set(mark_key(cache_tags.EPOCH), "1", px=int(self._window_ms))
            self._undelivered = False
            logger.warning("Redis is back: everything marked as just written, for one window")


async def mark_everything_written(redis_url: str, window_seconds: float) -> None:
    """After a write outside GraphQL (the CLI's ``migrate``, ``seed``, ``create-admin``, ``flush-cache``):
    every read goes to the primary for one window, on every instance (the epoch is every viewer's tag)."""
    redis = Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await redis.set(mark_key(cache_tags.EPOCH), "1", px=max(1, round(window_seconds * 1000)))
    finally:
        await redis.aclose()
