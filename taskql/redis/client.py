"""The Redis client, with short timeouts, behind a circuit breaker: a dead or frozen Redis must not hold
requests hostage.

Redis holds only what taskql can do without (cached responses, APQ documents): when it fails, callers get
``RedisUnavailable`` and carry on without it. One failure opens the circuit for ``open_seconds``, during which
every call fails at once instead of waiting out a timeout; then one call probes Redis again. Before that probe
succeeds, the recovery hooks run (the response cache uses one to drop entries a missed invalidation could have
left stale), so nothing is read from a Redis that came back until it is safe to.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import RedisError

from core import cache_tags
from core.settings import Settings

if TYPE_CHECKING:
    from taskql.redis.pipeline import PipelinedRedis

logger = logging.getLogger("taskql.redis.client")
T = TypeVar("T")


TAG_PREFIX = "taskql:t:"  # a cache tag's version (taskql.cache.store)
TAG_TTL_SECONDS = 86_400  # a tag outlives every entry that depends on it
EPOCH_KEY = TAG_PREFIX + cache_tags.EPOCH
RUN_PREFIX = "taskql:run:"
# Task events at or before this position (milliseconds) may be missing from Redis: read them in PostgreSQL.
HORIZON_KEY = "taskql:events-horizon"

# Run first on every new connection, before anything else is sent on it. A Redis whose run this deployment
# has not seen (a restart, from any snapshot or none; a failover to a replica) may hold what writes it never
# saw have made stale: cached answers, session states, events. So, atomically with the first connection to
# it: the epoch (every entry's and every session state's first tag) is replaced, and the events horizon is
# moved to now. Every restart breaks every connection, so no instance reads from a new run before this ran.
# KEYS: epoch, horizon   ARGV: a fresh epoch version, the tag TTL   Returns 1 for a run new to us.
NEW_RUN = (
    """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not redis.call('SET', '"""
    + RUN_PREFIX
    + """' .. run, '1', 'NX') then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local now = redis.call('TIME')
local at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if at > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], at) end
return 1
"""
)


def greeting() -> tuple[str | int, ...]:
    """The command a new connection sends first (``NEW_RUN``)."""
    return ("EVAL", NEW_RUN, 2, EPOCH_KEY, HORIZON_KEY, "run-" + uuid.uuid4().hex, TAG_TTL_SECONDS)


_greeted_before = False  # whether this process has connected to a Redis before


def greeted(reply: Any) -> None:
    """A warning when Redis changed under a running process (at a process's start, a new run is no news:
    the embedded Redis starts with the process)."""
    global _greeted_before
    if reply == 1:
        logger.log(
            logging.WARNING if _greeted_before else logging.INFO,
            "Redis is a run this deployment has not seen (restarted, failed over, or new): everything "
            "cached before is invalidated, and events are read from PostgreSQL where Redis lacks them",
        )
    _greeted_before = True


class _Greeting:
    async def on_connect_check_health(self, check_health: bool = True) -> None:
        await super().on_connect_check_health(check_health)  # type: ignore[misc]
        await self.send_command(*greeting(), check_health=check_health)  # type: ignore[attr-defined]
        greeted(await self.read_response())  # type: ignore[attr-defined]


class GreetingConnection(_Greeting, Connection):
    pass


class GreetingSSLConnection(_Greeting, SSLConnection):
    pass


class GreetingUnixConnection(_Greeting, UnixDomainSocketConnection):
    pass


def _connection_class(url: str) -> type[Connection | UnixDomainSocketConnection]:
    scheme = urlparse(url).scheme
    if scheme == "unix":
        return GreetingUnixConnection
    return GreetingSSLConnection if scheme == "rediss" else GreetingConnection


def create_redis(settings: Settings) -> Redis:
    """A bounded pool: however many requests and subscribers an instance serves, it holds at most
    ``redis_max_connections`` connections (plus the cache's one pipelined connection); a caller waits
    for a free one (up to 2 s, then it is treated as Redis being unavailable)."""
    assert settings.redis_url, "the Redis URL is resolved before the client is made"
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=2,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
        decode_responses=False,
        connection_class=_connection_class(settings.redis_url),
    )
    return Redis.from_pool(pool)  # closing the client closes its pool


class RedisUnavailable(Exception):
    """Redis did not answer (or the circuit is open): go on without it."""


class RedisGuard:
    def __init__(self, redis: Redis, *, open_seconds: float = 1.0) -> None:
        self.redis = redis
        self.open_seconds = open_seconds
        self._open_until = 0.0
        self._probing = False
        self._recovery: list[Callable[[Redis], Awaitable[None]]] = []
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def available(self) -> bool:
        """False while the circuit is open (Redis failed less than ``open_seconds`` ago)."""
        return self._open_until == 0.0

    def retry_in(self) -> float:
        """Seconds until a call may probe Redis again (0 while the circuit is closed)."""
        return max(0.0, self._open_until - time.monotonic()) if self._open_until else 0.0

    def on_recovery(self, hook: Callable[[Redis], Awaitable[None]]) -> None:
        self._recovery.append(hook)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """``listener(available)`` runs when the circuit opens (False) and when it closes again (True)."""
        self._listeners.append(listener)

    def _changed(self, available: bool) -> None:
        for listener in self._listeners:
            listener(available)

    async def call(self, operation: Callable[[Redis], Awaitable[T]]) -> T:
        if self._open_until:
            if time.monotonic() < self._open_until or self._probing:
                raise RedisUnavailable("the Redis circuit is open")
            self._probing = True  # half-open: this call probes, the others still go without
            try:
                result = await self._attempt(operation, recovering=True)
            finally:
                self._probing = False
            self._open_until = 0.0
            logger.warning("Redis is back: circuit closed")
            self._changed(True)
            return result
        return await self._attempt(operation, recovering=False)

    async def _attempt(self, operation: Callable[[Redis], Awaitable[T]], *, recovering: bool) -> T:
        try:
            # Bounded by the client's socket timeouts: a frozen Redis costs one timeout, then the circuit.
            if recovering:
                for hook in self._recovery:
                    await hook(self.redis)
            return await operation(self.redis)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)

    async def send(self, pipe: PipelinedRedis, data: bytes, replies: int) -> list[Any]:
        """``pipe.send(data, replies)`` under the guard: what ``call`` does, without its layers of coroutines
        while the circuit is closed (the cache's lookup, on every request)."""
        if self._open_until:
            return await self.call(lambda _: pipe.send(data, replies))
        try:
            return await pipe.send(data, replies)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)

    def _failed(self, error: Exception) -> NoReturn:
        opening = not self._open_until
        if opening:
            logger.warning("Redis unavailable (%s): circuit open", type(error).__name__)
        self._open_until = time.monotonic() + self.open_seconds
        if opening:
            self._changed(False)
        raise RedisUnavailable(type(error).__name__) from error
