"""Prometheus metrics, and ``/metrics``.

Every family is defined here, once, as the client library wants (at import). Under ``serve`` they are in
prometheus-client's multiprocess mode: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder
before any worker starts (``taskql.ops.metrics_dir``), each worker writes its samples to its own files there,
and a scrape (of any worker, or of ``METRICS_PORT``) adds them all up. Requests are tallied in plain numbers
and added to their families every second (``flush``): a scrape sees another worker's requests within a
second, and its own worker's at once. Live gauges (connections, pool use,
Redis) count only live processes: a worker's files go when it stops, and a worker that starts clears what a
crashed one left.

Labels stay bounded: an operation is labelled with its name only when it is one of the trusted documents
(``graphql/manifest.json``), ``anonymous`` when unnamed, else ``other``; error codes and limit names come
from taskql's code, and at most ``MAX_CODES`` distinct ones are kept apart.

Who may read ``/metrics`` on the API port: with ``METRICS_TOKEN`` set, whoever sends it as a bearer token;
without it, anyone in development and nobody in production (404). In production, prefer ``METRICS_PORT``:
``serve`` then also serves the metrics on that port, which a scraper reaches and the ingress does not.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from auth.tokens import bearer_token
from core.errors import Unauthenticated
from taskql.ops import metrics_dir

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.settings import Settings
    from taskql.redis.client import RedisGuard

logger = logging.getLogger("taskql.ops.metrics")
T = TypeVar("T")

MANIFEST = Path(__file__).resolve().parents[2] / "graphql" / "manifest.json"
MAX_CODES = 40
CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# From a cache hit (a fraction of a millisecond) to a slow page (seconds).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "taskql_graphql_requests",
    "GraphQL requests over HTTP, by operation and outcome (ok, client_error, server_error).",
    ["operation", "outcome"],
)
LATENCY = Histogram(
    "taskql_graphql_request_duration_seconds",
    "Time from the request's arrival to the last byte of its answer, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("taskql_graphql_errors", "Errors in GraphQL answers, by extensions.code.", ["code"])
CACHE = Counter(
    "taskql_response_cache_requests",
    "Queries looked up in the response cache: hit (answered from Redis, most by the express lane) or miss.",
    ["result"],
)
APQ = Counter(
    "taskql_apq_requests",
    "Persisted-query requests by hash: hit (document found), miss (PersistedQueryNotFound), registered.",
    ["result"],
)
RATE_LIMITED = Counter(
    "taskql_rate_limited", "Requests refused (or not served in full) by a rate limit, by limit.", ["limit"]
)
WEBSOCKETS = Gauge(
    "taskql_websocket_connections", "WebSocket connections past connection_init.", multiprocess_mode="livesum"
)
SUBSCRIPTIONS = Gauge("taskql_subscriptions_active", "Subscriptions running.", multiprocess_mode="livesum")
EVENTS = Counter("taskql_events_delivered", "Task events delivered to subscriptions.")
NOTIFICATIONS = Counter(
    "taskql_notifications_delivered", "Notifications delivered to notificationEvents subscriptions."
)
OUTBOX_RELAYED = Counter(
    "taskql_outbox_relayed",
    "Outbox rows the relay took: published by it (their request could not: a crash after COMMIT, Redis "
    "away) or only recorded as published by it. A steady rise means side effects wait on the relay.",
)
SOCKETS_REVOKED = Counter(
    "taskql_websocket_revocations",
    "Sockets closed because their session ended or their rights changed, by how the instance learned it: "
    "control (a write's control message) or recheck (the periodic check in PostgreSQL).",
    ["source"],
)
JOBS = Counter(
    "taskql_jobs",
    "Background job attempts that ended, by kind (mail:<kind>, cleanup) and outcome: ok, retry (failed, "
    "will run again after a backoff) or failed (its last attempt: held for retryJob).",
    ["kind", "outcome"],
)
JOB_DURATION = Histogram(
    "taskql_job_duration_seconds",
    "How long a job attempt ran, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WEBHOOK_ATTEMPTS = Counter(
    "taskql_webhook_attempts",
    "Webhook delivery attempts by the worker, by event type and outcome (delivered, failed).",
    ["event_type", "outcome"],
)
WEBHOOK_DURATION = Histogram(
    "taskql_webhook_attempt_duration_seconds",
    "How long a webhook delivery attempt took, to the answer's end or the failure.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOKS_DISABLED = Counter(
    "taskql_webhooks_disabled", "Webhooks disabled after WEBHOOK_MAX_FAILURES failed attempts in a row."
)
# The queue is one table in PostgreSQL: the workers sample it (the largest reading of the live ones).
QUEUE_DEPTH = Gauge(
    "taskql_job_queue_depth",
    "Jobs by status: queued (waiting, due or not), picked (running) and failed (held).",
    ["status"],
    multiprocess_mode="livemax",
)
QUEUE_OLDEST = Gauge(
    "taskql_job_queue_oldest_seconds",
    "How long the oldest due job has been waiting to be picked (0: none is waiting).",
    multiprocess_mode="livemax",
)
POOL = Gauge(
    "taskql_db_pool_connections",
    "PostgreSQL connections of the pool, by state: used (checked out) or idle.",
    ["state"],
    multiprocess_mode="livesum",
)
READ_POOL = Gauge(
    "taskql_db_read_pool_connections",
    "Connections of the asyncpg read pools, by pool (primary, replica) and state (used, idle), sampled "
    "every second.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "taskql_db_pool_connections_max",
    "Connections the pool may open (pool size plus overflow).",
    multiprocess_mode="livesum",
)
REDIS_AVAILABLE = Gauge(
    "taskql_redis_available",
    "1 while the Redis circuit breaker is closed (in every worker), 0 while it is open.",
    multiprocess_mode="livemin",
)
REDIS_AVAILABLE.set(1)  # until a circuit opens: a worker still starting must not read as Redis down

_cache_hit, _cache_miss = CACHE.labels("hit"), CACHE.labels("miss")
_codes: dict[str, Counter] = {}  # at most MAX_CODES; any other code is counted as OTHER
_other_code = ERRORS.labels("OTHER")


@functools.cache
def _children(label: str, outcome: str) -> tuple[Counter, Histogram]:
    """The request counter and latency histogram children of one (label, outcome), bound once per process
    (``.labels()`` costs more than the ``.inc()`` itself). Keyed by label, never by the client's name."""
    return REQUESTS.labels(label, outcome), LATENCY.labels(label)


@functools.cache
def known_operations() -> frozenset[str]:
    """The trusted documents' operation names: the only ones that become label values."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return frozenset()
    return frozenset(
        operation["name"] for operation in manifest.get("operations", ()) if operation.get("name")
    )


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    return name if name in known_operations() else "other"


def _errors(code: str) -> Counter:
    child = _codes.get(code)
    if child is None:
        if CODE.match(code) is None or len(_codes) >= MAX_CODES:
            return _other_code
        child = _codes[code] = ERRORS.labels(code)
    return child


def outcome(status: int, codes: Iterable[str]) -> str:
    codes = tuple(codes)
    if status >= 500 or "INTERNAL_SERVER_ERROR" in codes:
        return "server_error"
    if status >= 400 or codes:
        return "client_error"
    return "ok"


def observe_request(
    operation: str | None, status: int, codes: tuple[str, ...], cache: str | None, seconds: float
) -> None:
    """One GraphQL request over HTTP (a cache hit included) has been answered: tallied in plain numbers, which
    reach the families (and so the multiprocess files) at the next ``flush``."""
    label = operation_label(operation)
    if status < 400 and not codes:
        key = (label, "ok")
    else:
        key = (label, outcome(status, codes))
        for code in codes:
            _errors(code).inc()
    tally = _tallies.get(key)
    if tally is None:
        tally = _tallies[key] = _Tally()
    tally.count += 1
    tally.seconds += seconds
    tally.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # as Histogram.observe: amount <= bound
    if cache == "HIT":
        tally.hits += 1
    elif cache == "MISS":
        tally.misses += 1


class _Tally:
    """Requests of one (operation label, outcome) not yet added to the families."""

    __slots__ = ("buckets", "count", "hits", "misses", "seconds")

    def __init__(self) -> None:
        self.count = self.hits = self.misses = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf


_tallies: dict[tuple[str, str], _Tally] = {}


def flush() -> None:
    """Add the tallied requests to their families. Every request updating the families itself costs a lock
    and, in multiprocess mode, a write to a memory-mapped file per sample: a fifth of a cache hit's time.
    Called every second (``sample``), before this process renders a scrape, and when the worker stops; so a
    scrape of another worker sees a request within a second. On the event loop's thread only."""
    global _tallies
    tallies, _tallies = _tallies, {}
    for (label, outcome_), tally in tallies.items():
        requests, latency = _children(label, outcome_)
        requests.inc(tally.count)
        # What Histogram.observe does per observation (prometheus-client 0.26: one value per bucket, not
        # cumulative, and the sum), done once per bucket; tests/test_metrics.py compares the two.
        latency._sum.inc(tally.seconds)
        for bucket, count in zip(latency._buckets, tally.buckets, strict=True):
            if count:
                bucket.inc(count)
        if tally.hits:
            _cache_hit.inc(tally.hits)
        if tally.misses:
            _cache_miss.inc(tally.misses)


def apq(result: str) -> None:
    """A persisted-query lookup: ``hit``, ``miss`` or ``registered``."""
    APQ.labels(result).inc()


def rate_limited(limit: str) -> None:
    """A request was refused, or served without something, because of the limit named ``limit`` (a name
    from taskql's code, e.g. ``requests``, ``cost``, ``apq_registrations``: never a client's value)."""
    RATE_LIMITED.labels(limit).inc()


def outbox_relayed(rows: int) -> None:
    OUTBOX_RELAYED.inc(rows)


def webhook_attempted(event_type: str, ok: bool, seconds: float) -> None:
    WEBHOOK_ATTEMPTS.labels(event_type, "delivered" if ok else "failed").inc()
    WEBHOOK_DURATION.observe(seconds)


def webhook_disabled() -> None:
    WEBHOOKS_DISABLED.inc()


def job_ended(kind: str, outcome: str, seconds: float) -> None:
    JOBS.labels(kind, outcome).inc()
    JOB_DURATION.labels(kind).observe(seconds)


def queue_sampled(depth: dict[str, int], oldest_seconds: float) -> None:
    for status in ("queued", "picked", "failed"):
        QUEUE_DEPTH.labels(status).set(depth.get(status, 0))
    QUEUE_OLDEST.set(oldest_seconds)


def socket_revoked(source: str) -> None:
    SOCKETS_REVOKED.labels(source).inc()


def websocket_opened() -> None:
    WEBSOCKETS.inc()


def websocket_closed() -> None:
    WEBSOCKETS.dec()


async def delivered(stream: AsyncIterator[T], counter: Counter = EVENTS) -> AsyncGenerator[T, None]:
    """``stream``, counted: one running subscription while it lasts, one delivered item (on ``counter``:
    task events by default) per item."""
    SUBSCRIPTIONS.inc()
    try:
        async for item in stream:
            counter.inc()
            yield item
    finally:
        SUBSCRIPTIONS.dec()
        close = getattr(stream, "aclose", None)
        if close is not None:  # ended early (the client unsubscribed): the source lets go of its queue
            await close()


def watch_pool(engine: AsyncEngine, capacity: int) -> None:
    """Keep the pool gauges current from SQLAlchemy's pool events (a gauge's step each): a connection is
    idle from its ``connect`` (or ``checkin``) to its ``checkout`` (or ``close``), used in between. An
    invalidated connection is closed while checked out, then checked in: its steps still add up."""
    used, idle = POOL.labels("used"), POOL.labels("idle")
    sync_engine = engine.sync_engine
    POOL_MAX.inc(capacity)

    def checkout(*_: object) -> None:
        idle.dec()
        used.inc()

    def checkin(*_: object) -> None:
        used.dec()
        idle.inc()

    event.listen(sync_engine, "connect", lambda *_: idle.inc())
    event.listen(sync_engine, "close", lambda *_: idle.dec())
    event.listen(sync_engine, "checkout", checkout)
    event.listen(sync_engine, "checkin", checkin)


async def sample(pools: dict[str, Any], interval: float = 1.0) -> None:
    """Until cancelled, every ``interval`` seconds: the tallied requests (``flush``), and the read pools'
    connections, used and idle (asyncpg's pools report no events)."""
    while True:
        flush()
        for name, pool in pools.items():
            size, idle = pool.get_size(), pool.get_idle_size()
            READ_POOL.labels(name, "used").set(size - idle)
            READ_POOL.labels(name, "idle").set(idle)
        await asyncio.sleep(interval)


def unwatch_pool(capacity: int) -> None:
    POOL_MAX.dec(capacity)


def watch_redis(guard: RedisGuard) -> None:
    REDIS_AVAILABLE.set(1 if guard.available else 0)
    guard.on_change(lambda available: REDIS_AVAILABLE.set(1 if available else 0))


# Multiprocess mode ---------------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    folder = os.environ.get(metrics_dir.MULTIPROC_DIR)
    return Path(folder) if folder else None


def worker_started() -> None:
    """A worker's live gauges count until it stops; one that crashed never said so: its files go now."""
    folder = multiprocess_dir()
    if folder is None:
        return
    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(folder))  # type: ignore[no-untyped-call]


def worker_stopping() -> None:
    flush()
    folder = multiprocess_dir()
    if folder is not None:
        multiprocess.mark_process_dead(os.getpid(), str(folder))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process's families."""
    if multiprocess_dir() is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def render() -> bytes:
    return generate_latest(registry())


# /metrics on the API port -------------------------------------------------------------------------


def may_read(settings: Settings, authorization: str | None) -> int:
    """The HTTP status for a scrape of ``/metrics`` on the API port: 200, 401 (token missing or wrong), or
    404 (not exposed there: production without ``METRICS_TOKEN``)."""
    if settings.metrics_token is None:
        return 200 if settings.environment == "development" else 404
    try:
        supplied = bearer_token(authorization)
    except Unauthenticated:
        return 401
    expected = settings.metrics_token.get_secret_value()
    if supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode()):
        return 200
    return 401


def endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """``/metrics``, for ``settings`` (who may read it)."""

    async def metrics(request: Request) -> Response:
        return await _answer(settings, request)

    return metrics


async def _answer(settings: Settings, request: Request) -> Response:
    status = may_read(settings, request.headers.get("authorization"))
    if status == 404:
        return PlainTextResponse("Not Found", 404)
    if status == 401:
        return PlainTextResponse(
            "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>",
            401,
            headers={"www-authenticate": 'Bearer realm="metrics"'},
        )
    flush()  # this worker's own requests, up to this one
    body = await asyncio.to_thread(render)  # reads every worker's files: off the event loop
    return Response(body, media_type=CONTENT_TYPE_LATEST)
