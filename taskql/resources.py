"""What lives as long as the process: born in the lifespan, passed to requests through its state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Tracer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import Schema

from auth.tokens import TokenConfig
from core.settings import Settings
from schema.extensions.query_limits import Limits, limit_rules
from schema.planning.strawberry_compat import graphql_schema_of
from taskql.cache.express import LANE, Lane
from taskql.cache.store import ResponseCache
from taskql.data.engine import Bounds, Outage, create_engine, create_sessionmaker
from taskql.data.readers import PRIMARY, REPLICA, asyncpg_dsn, create_reader
from taskql.data.routing import ReadRouting
from taskql.http.compression import Compression
from taskql.jobs import worker as jobs_worker
from taskql.ops import metrics, telemetry
from taskql.ops.health import READINESS, Readiness
from taskql.outbox.relay import Outbox
from taskql.outbox.settle import AfterWrites
from taskql.policy.idempotency import IdempotencyKeys
from taskql.policy.persisted import PersistedQueries, load_manifest
from taskql.policy.rate_limits import RateLimits
from taskql.realtime.hub import EventHub
from taskql.realtime.inbox import Inbox
from taskql.realtime.sockets import Sockets, recheck_sessions
from taskql.redis.client import RedisGuard, create_redis, greeted, greeting
from taskql.redis.pipeline import PipelinedRedis
from taskql.state import StateKey
from taskql.webhooks.sender import Sender


@dataclass(frozen=True, eq=False)
class Resources:
    """Shared by every request of this process."""

    settings: Settings
    engine: AsyncEngine  # writes: SQLAlchemy over asyncpg
    sessions: async_sessionmaker[AsyncSession]
    reads: ReadRouting  # the read pools (raw asyncpg): the primary's, and the replica's if configured
    redis: Redis
    guard: RedisGuard
    pipe: PipelinedRedis  # the hot path's pipelined connection (cache, rate limits, routing)
    tokens: TokenConfig
    persisted: PersistedQueries
    idempotency: IdempotencyKeys  # mutations sent with an Idempotency-Key
    cache: ResponseCache | None  # None when RESPONSE_CACHE is off
    limits: RateLimits | None  # None when RATE_LIMITS is off
    events: EventHub
    inbox: Inbox  # notificationEvents' wake-ups
    outbox: Outbox
    sockets: Sockets
    after_writes: AfterWrites
    readiness: Readiness
    lane: Lane | None  # the express lane's; None when RESPONSE_CACHE is off
    compression: Compression | None  # None when COMPRESSION is off
    webhooks: Sender  # checks webhook URLs; testWebhook's and retryWebhookDelivery's attempts

    def state(self) -> dict[str, Any]:
        """What the lifespan yields: the entries each room reads from a request's state."""
        state = RESOURCES.entry(self) | READINESS.entry(self.readiness)
        return state | LANE.entry(self.lane) if self.lane is not None else state


RESOURCES = StateKey[Resources]("taskql.resources")


@contextlib.asynccontextmanager
async def opened(
    settings: Settings, schema: Schema, *, schema_id: str, limits: Limits, tracer: Tracer | None
) -> AsyncIterator[Resources]:
    """Every resource, opened in order and closed in reverse; the background tasks run meanwhile."""
    assert settings.redis_url
    assert settings.database_url
    outage = Outage()  # the primary's: one for the engine (writes) and the read pool
    engine = create_engine(settings, outage)
    redis = create_redis(settings)
    guard = RedisGuard(redis, open_seconds=settings.redis_circuit_open_seconds)
    pool_capacity = settings.db_pool_size + settings.db_max_overflow
    metrics.worker_started()
    metrics.watch_pool(engine, pool_capacity)
    metrics.watch_redis(guard)
    if tracer is not None:
        telemetry.instrument_redis(redis)
    pipe = PipelinedRedis(
        settings.redis_url, timeout=settings.redis_socket_timeout_seconds, greeting=greeting, greeted=greeted
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
    hub = EventHub(
        redis,
        retention_seconds=settings.events_retention_seconds,
        max_queue=settings.events_max_queue,
        pool=reads.primary.pool,
    )
    outbox = Outbox(
        guard,
        pipe,
        reads.primary.pool,
        retention_seconds=settings.events_retention_seconds,
        max_per_stream=settings.events_max_per_stream,
        relay_seconds=settings.outbox_relay_seconds,
    )
    compression = Compression.of(settings)
    cache = (
        ResponseCache(
            guard,
            pipe,
            schema_id=schema_id,
            viewer_ttl_seconds=settings.access_token_ttl_seconds,
            compression=compression,
        )
        if settings.response_cache
        else None
    )
    tokens = TokenConfig.of(settings)
    rate_limits = RateLimits(settings, guard, pipe) if settings.rate_limits else None
    resources = Resources(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        reads=reads,
        redis=redis,
        guard=guard,
        pipe=pipe,
        tokens=tokens,
        persisted=PersistedQueries(
            mode=settings.persisted_queries,
            guard=guard,
            schema=graphql_schema_of(schema),
            rules=limit_rules(limits),
            trusted=load_manifest(),
            ttl_seconds=settings.apq_ttl_seconds,
            max_document_bytes=settings.apq_max_document_bytes,
            registrations_per_minute=settings.apq_registrations_per_minute,
        ),
        idempotency=IdempotencyKeys.of(settings, engine, max_tokens=limits.max_tokens),
        cache=cache,
        limits=rate_limits,
        events=hub,
        inbox=Inbox(
            asyncpg_dsn(settings.database_url),
            reads.primary,
            recheck_seconds=settings.inbox_recheck_seconds,
            connect_timeout=Bounds.of(settings).connect,
            server_settings=Bounds.of(settings).server_settings,
        ),
        outbox=outbox,
        sockets=Sockets(tokens, reads.primary, hub),
        after_writes=AfterWrites(reads, outbox, cache),
        readiness=Readiness(engine, redis, guard),
        lane=Lane(cache, tokens, rate_limits) if cache is not None else None,
        compression=compression,
        webhooks=Sender.of(settings),
    )
    try:
        async with _running(resources):
            yield resources
    finally:
        await _close(resources, pool_capacity)


@contextlib.asynccontextmanager
async def _running(resources: Resources) -> AsyncIterator[None]:
    """The background work: replica lag, event fan-out, the outbox relay, socket rechecks, metrics, and the
    job worker unless JOBS_EMBEDDED_WORKER is off."""
    settings, reads = resources.settings, resources.reads
    reads.start()
    await resources.events.start()
    await resources.inbox.start()  # the live inbox's LISTEN
    resources.outbox.start()
    pools = {PRIMARY: reads.primary.pool} | ({REPLICA: reads.replica.pool} if reads.replica else {})
    tasks = [
        asyncio.create_task(
            recheck_sessions(resources.events, reads.primary.pool, settings.session_recheck_seconds),
            name="taskql-socket-recheck",
        ),
        asyncio.create_task(metrics.sample(pools), name="taskql-metrics"),
    ]
    # What startup made lives as long as the process: out of the collector's sight, full collections stay
    # short; and young collections run less often (a request allocates a few hundred objects).
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if settings.jobs_embedded_worker:  # the zero-config default needs no process of its own
                await stack.enter_async_context(jobs_worker.running(settings))
            yield
    finally:
        for task in tasks:
            task.cancel()
        await resources.events.close_all(1001, "Server shutting down")
        await resources.events.stop()
        await resources.inbox.stop()
        await resources.outbox.stop()


async def _close(resources: Resources, pool_capacity: int) -> None:
    if resources.limits is not None:
        await resources.limits.close()
    resources.pipe.close()
    await resources.redis.aclose()
    await resources.reads.close()
    await resources.engine.dispose()
    metrics.unwatch_pool(pool_capacity)
    metrics.worker_stopping()
    telemetry.flush()
