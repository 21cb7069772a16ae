"""Publishing the outbox: the side effects of committed writes, at once and, whatever happens, eventually.

- **At once.** After its transaction commits and before it answers, a request publishes its own outbox rows
  (``publish``): one Lua call per row bumps the row's cache tags, appends its task events to the audiences'
  Redis streams under one id and publishes them live, and tells every instance which sessions and accounts
  changed (sockets to close).
- **Eventually.** A relay on every instance, every ``OUTBOX_RELAY_SECONDS``, takes whatever is still
  unpublished (the process died after COMMIT, Redis was away, the request was cancelled) in id order and
  publishes it; one instance at a time (a transaction-level advisory lock), the others find the lock taken.
  The relay also records each row as published, with its event's position (the stream id it was given):
  the durable cursor that ``taskEvents`` resumes from when Redis no longer holds it.
- **Idempotent.** A row may be published twice (by its request and by the relay, racing): the script keeps
  the row's position under a key for ``DEDUPE_SECONDS`` and does nothing the second time. A row the relay
  takes is never skipped, whenever its transaction committed: it is unpublished until the relay's own
  update, which happens only after Redis took it.
- **In order.** A write's events never overtake those of a write committed before it whose publication is
  pending: the request publishes the older pending rows first (read with its own row's insert), or, past
  ``BACKLOG_LIMIT`` of them, leaves its events to the relay (which publishes in id order) and only bumps its
  cache tags and tells its control changes at once.
- **Pruned.** Published rows are deleted after ``EVENTS_RETENTION_SECONDS`` (subscribers resume from them) by
  the periodic cleanup job (``taskql.jobs.cleanup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from core.reader import DEAD_CONNECTION
from resolvers.writes import Written, in_order
from taskql.cache.store import bump_tags
from taskql.ops import metrics
from taskql.redis.client import TAG_PREFIX, TAG_TTL_SECONDS, RedisGuard, RedisUnavailable
from taskql.redis.pipeline import PipelinedRedis, encode

logger = logging.getLogger("taskql.outbox.relay")

STREAM_PREFIX = "taskql:ev:"
LIVE_CHANNEL = "taskql:ev-live"
CONTROL_CHANNEL = "taskql:ev-control"
DEDUPE_PREFIX = "taskql:ob:"
DEDUPE_SECONDS = 3600  # longer than any relay lag short of a long PostgreSQL outage
REDIS_EVENTS_SECONDS = 86_400  # Redis keeps a day of events at most; PostgreSQL the whole retention
RELAY_BATCH = 500
RELAY_LOCK = 0x7461736B716C6F62  # "taskqlob": one relaying instance at a time

# KEYS: the row's dedupe key, its tags' keys, then its audiences' streams (the admins' first)
# ARGV: row id, a fresh tag version, tag TTL, dedupe TTL, stream max length, min id, stream TTL ms, the
#       number of tags, the live bundle ('' without events), control ('' for none), then one payload per
#       stream
PUBLISH = (
    """
local done = redis.call('GET', KEYS[1])
if done then return done end
local tags = tonumber(ARGV[8])
for i = 2, 1 + tags do redis.call('SET', KEYS[i], ARGV[2], 'EX', ARGV[3]) end
local id = '-'
local first = 2 + tags
if #KEYS >= first then
  id = redis.call('XADD', KEYS[first], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[11], 'o', ARGV[1])
  for i = first, #KEYS do
    if i > first then
      local payload = ARGV[10 + i - first + 1]
      local added = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', ARGV[5], id, 'e', payload, 'o', ARGV[1])
      if type(added) == 'table' and added.err then
        -- The stream holds a later id than the admins' (which lost its tail): drop it, so that resuming
        -- from it reads PostgreSQL instead of skipping this event.
        redis.call('DEL', KEYS[i])
        redis.call('XADD', KEYS[i], id, 'e', payload, 'o', ARGV[1])
      end
    end
    redis.call('PEXPIRE', KEYS[i], ARGV[7])
    redis.call('XTRIM', KEYS[i], 'MINID', '~', ARGV[6])
  end
  redis.call('PUBLISH', '"""
    + LIVE_CHANNEL
    + """', id .. ' ' .. ARGV[1] .. ' ' .. ARGV[9])
end
if ARGV[10] ~= '' then redis.call('PUBLISH', '"""
    + CONTROL_CHANNEL
    + """', ARGV[10]) end
redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
return id
"""
)

PUBLISH_SHA = hashlib.sha1(PUBLISH.encode(), usedforsecurity=False).hexdigest()  # as Redis names it

_UNPUBLISHED = "SELECT id, effects FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1"


# Oldest first, by the primary key (ids grow with time): no index on published_at to keep up on every write.
def _marked(marks: Sequence[tuple[int, tuple[int, int] | None]]) -> str:
    """The statement recording rows as published, in one round trip and without waiting for the WAL flush
    (the record only spares the relay work: lost, the relay publishes the rows again, a no-op). Plain
    integers only: formatted into the text, as the simple query protocol (needed for two statements in one
    implicit transaction) takes no parameters."""
    values = ",".join(
        f"({int(row_id)},{int(position[0])},{int(position[1])})"
        if position
        else f"({int(row_id)},NULL::bigint,NULL::bigint)"
        for row_id, position in marks
    )
    return (
        "SET LOCAL synchronous_commit TO off;"  # noqa: S608 (integers formatted, nothing else)
        " UPDATE outbox SET published_at = now(), position_ms = u.ms, position_seq = u.seq"
        f" FROM (VALUES {values}) AS u(id, ms, seq) WHERE outbox.id = u.id"
    )


def stream_key(audience: str) -> str:
    return STREAM_PREFIX + audience


def parse_position(raw: str | bytes) -> tuple[int, int] | None:
    """A stream id as (milliseconds, sequence); None for a row without events."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text == "-":
        return None
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


@dataclass
class Outbox:
    guard: RedisGuard
    pipe: PipelinedRedis  # the auto-pipelined connection (the cache's too)
    pool: Any  # asyncpg.Pool of the primary
    retention_seconds: int
    max_per_stream: int
    relay_seconds: float
    _relay: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._marks: list[tuple[int, tuple[int, int] | None]] = []
        self._marking: asyncio.Task[None] | None = None

    async def publish_now(self, written: Sequence[Written]) -> None:
        """A request's own rows, after COMMIT, each after the older rows still pending when it was written
        (so that events keep the order of their writes): published, then recorded as published in the
        background (soon, in one statement with the other requests'; if that fails, the relay records
        them). With too long a backlog, only the rows' cache tags and control changes go out now: the relay
        publishes their events after the older ones."""
        if any(write.overflow for write in written):
            await self.guard.call(lambda redis: self._invalidate(redis, written))
            return
        rows = in_order(written)
        positions = await self.publish(rows)
        self._marks.extend((row.id, position) for row, position in zip(rows, positions, strict=True))
        if self._marking is None:
            self._marking = asyncio.create_task(self._mark(), name="taskql-outbox-mark")

    @staticmethod
    async def _invalidate(redis: Redis, written: Sequence[Written]) -> None:
        """The rows' cache tags bumped and their control changes told, not their events (not recorded as
        published: the relay publishes them whole, bumping the tags once more)."""
        await bump_tags(redis, [tag for write in written for tag in write.tags])
        control = [tag for write in written for tag in write.control]
        if control:
            await redis.publish(CONTROL_CHANNEL, json.dumps(control))

    async def _mark(self) -> None:
        try:
            await asyncio.sleep(0)  # the rows other requests publish in this turn of the loop go along
            while self._marks:
                marks, self._marks = self._marks, []
                try:
                    await self.pool.execute(_marked(marks))
                except (asyncpg.PostgresError, *DEAD_CONNECTION, OSError) as error:
                    logger.warning("outbox rows not recorded as published (%s): the relay will",
                                   type(error).__name__)  # fmt: skip
        finally:
            self._marking = None

    # Publishing -------------------------------------------------------------------------------------

    async def publish(self, rows: Sequence[Written]) -> list[tuple[int, int] | None]:
        """Publish ``rows`` (each at most once, whoever else does too); each one's event position. Raises
        ``RedisUnavailable``."""
        if not rows:
            return []
        return await self.guard.call(lambda _: self._publish(rows))

    async def _publish(self, rows: Sequence[Written]) -> list[tuple[int, int] | None]:
        """One ``EVALSHA`` per row, sent together on the auto-pipelined connection; by the script's text
        (``EVAL``) when Redis has not seen it (a restart, ``SCRIPT FLUSH``): a ``NOSCRIPT`` did nothing."""
        redis_seconds = min(self.retention_seconds, REDIS_EVENTS_SECONDS)
        min_id = f"{int((time.time() - redis_seconds) * 1000)}-0"
        version = uuid.uuid4().hex
        calls = [self._call(row, version, min_id, redis_seconds) for row in rows]
        try:
            replies = await self.pipe.send(
                b"".join(encode("EVALSHA", PUBLISH_SHA, *call) for call in calls), len(calls)
            )
        except ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
            replies = await self.pipe.send(
                b"".join(encode("EVAL", PUBLISH, *call) for call in calls), len(calls)
            )
        return [parse_position(reply) for reply in replies]

    def _call(self, row: Written, version: str, min_id: str, redis_seconds: int) -> list[str | bytes | int]:
        """The script's key count, keys and arguments for ``row`` (see ``PUBLISH``)."""
        audiences = sorted(row.events, key=lambda audience: audience != "*")  # the admins' first
        keys = [
            DEDUPE_PREFIX + str(row.id),
            *(TAG_PREFIX + tag for tag in row.tags),
            *map(stream_key, audiences),
        ]
        return [
            len(keys),
            *keys,
            row.id,
            version,
            TAG_TTL_SECONDS,
            DEDUPE_SECONDS,
            self.max_per_stream,
            min_id,
            redis_seconds * 1000,
            len(row.tags),
            orjson.dumps(row.events) if row.events else b"",
            orjson.dumps(row.control) if row.control else b"",
            *(row.events[audience] for audience in audiences),
        ]

    # Relaying ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._wake = asyncio.Event()
        # Redis answering again is when deferred rows can go: the relay goes at once, not at its next round.
        self.guard.on_change(lambda available: self._wake.set() if available else None)
        self._relay = asyncio.create_task(self._run(), name="taskql-outbox-relay")

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        if self._marking is not None:
            await asyncio.gather(self._marking, return_exceptions=True)

    async def _run(self) -> None:
        failing = False
        while True:
            # After a failure with Redis, the relay itself probes it again as soon as the circuit allows.
            wait = min(self.relay_seconds, self.guard.retry_in() + 0.05) if failing else self.relay_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                while await self.relay_once() == RELAY_BATCH:
                    pass  # a backlog: go on at once
                if failing:
                    logger.warning("outbox relay: publishing again")
                failing = False
            except asyncio.CancelledError:
                raise
            except (
                RedisUnavailable,
                RedisError,
                OSError,
                asyncpg.PostgresError,
                *DEAD_CONNECTION,
            ) as e:
                if not failing:
                    logger.warning("outbox relay paused (%s): retrying every %.1f s", type(e).__name__,
                                   self.relay_seconds)  # fmt: skip
                failing = True
            except Exception:
                logger.exception("outbox relay failed")

    async def relay_once(self) -> int:
        """Publish what is unpublished (one batch, in id order) and record it; the number of rows taken."""
        async with self.pool.acquire() as connection, connection.transaction():
            if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                return 0  # another instance is relaying
            found = await connection.fetch(_UNPUBLISHED, RELAY_BATCH)
            if not found:
                return 0
            rows = [Written.of(row["id"], json.loads(row["effects"])) for row in found]
            positions = await self.publish(rows)
            await connection.execute(
                _marked([(row.id, position) for row, position in zip(rows, positions, strict=True)])
            )
        metrics.outbox_relayed(len(rows))
        return len(rows)
