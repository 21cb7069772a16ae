"""The job worker: takes jobs from the PostgreSQL queue (pgqueuer) and runs them.

- **Once at a time**: a job is picked with ``FOR UPDATE SKIP LOCKED``, so two workers never run one job.
- **A dead worker's jobs run again**: a picked job whose worker stops beating its heart for
  ``JOBS_HEARTBEAT_SECONDS`` is picked up by another worker.
- **Retries**: a failing job runs again after an exponential backoff with jitter (``JOBS_BACKOFF_*``),
  ``JOBS_MAX_ATTEMPTS`` times in all, then it is held as ``failed`` (admins: ``failedJobs``, ``retryJob``).
- **Drain**: on SIGTERM the worker takes no new job and lets its running ones finish for up to
  ``JOBS_DRAIN_SECONDS``; what is still running then is stopped and runs again elsewhere.
- **Webhooks**: one ``webhook`` job delivers an endpoint's events in order (``taskql.jobs.webhooks``).
- **Periodic**: ``cleanup`` every ten minutes and the daily ``digest`` every quarter of an hour, each on one
  worker of all (pgqueuer's schedules are shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.errors import RetryRequested
from pgqueuer.executors import (
    DatabaseRetryEntrypointExecutor,
    EntrypointExecutor,
    EntrypointExecutorParameters,
)
from pgqueuer.models import Context, Job, Schedule
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from resolvers.jobs import CLEANUP, DIGEST, MAIL, REMINDER, WEBHOOK, MailJob, ReminderJob, WebhookJob, kind_of
from taskql.data.engine import Outage, create_engine, create_sessionmaker
from taskql.jobs.cleanup import clean_up
from taskql.jobs.digest import DIGEST_EVERY, Digests
from taskql.jobs.mails import Postman
from taskql.jobs.reminders import Reminders
from taskql.jobs.webhooks import Pump
from taskql.mail.delivery import mailer_for
from taskql.ops import metrics
from taskql.webhooks.sender import Sender

logger = logging.getLogger("taskql.jobs.worker")
CLEANUP_EVERY = "*/10 * * * *"
SAMPLE_SECONDS = 5.0
QUEUE_CONNECTIONS = 3
RESTART_SECONDS = (0.5, 10.0)  # the first and the longest wait before the queue runs again after a failure
_DEPTH = "SELECT status::text AS status, count(*) AS jobs FROM pgqueuer GROUP BY status"
_OLDEST = """SELECT coalesce(extract(epoch FROM now() - min(greatest(created, execute_after))), 0)
FROM pgqueuer WHERE status = 'queued' AND execute_after <= now()"""


@dataclass
class JitteredRetry(DatabaseRetryEntrypointExecutor):
    """pgqueuer's database retries, with full jitter (so that jobs failing together do not retry together)
    and a count of every attempt's outcome and duration."""

    label: str = "job"

    async def execute(self, job: Job, context: Context) -> None:
        started = time.perf_counter()
        kind = kind_of(job.entrypoint, job.payload)
        try:
            await EntrypointExecutor.execute(self, job, context)
        except Exception as error:
            elapsed = time.perf_counter() - started
            if job.attempts + 1 >= self.max_attempts:
                metrics.job_ended(kind, "failed", elapsed)
                logger.error("job %s (%s) failed its last attempt (%d): %r", job.id, kind, job.attempts + 1,
                             error)  # fmt: skip
                raise
            backoff = self.initial_delay * (self.backoff_multiplier**job.attempts)
            delay = min(backoff, self.max_delay) * random.uniform(0.5, 1.0)
            metrics.job_ended(kind, "retry", elapsed)
            logger.warning("job %s (%s) failed (%r): attempt %d of %d in %.1f s", job.id, kind, error,
                           job.attempts + 2, self.max_attempts, delay.total_seconds())  # fmt: skip
            raise RetryRequested(delay=delay, reason=f"{type(error).__name__}: {error}") from error
        elapsed = time.perf_counter() - started
        metrics.job_ended(kind, "ok", elapsed)
        logger.info("job %s (%s) done in %.3f s", job.id, kind, elapsed)


@dataclass
class Worker:
    settings: Settings
    pool: asyncpg.Pool
    engine: AsyncEngine
    postman: Postman
    reminders: Reminders
    digests: Digests
    pump: Pump
    queue: PgQueuer = field(init=False)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.queue = self._queue()

    def _queue(self) -> PgQueuer:
        """A queue with every entrypoint and schedule: made anew after a failure (its driver's listening
        connection died with it)."""
        queue = PgQueuer.from_asyncpg_pool(self.pool)
        settings = self.settings

        def retrying(parameters: EntrypointExecutorParameters) -> JitteredRetry:
            return JitteredRetry(
                parameters,
                max_attempts=settings.jobs_max_attempts,
                initial_delay=timedelta(seconds=settings.jobs_backoff_initial_seconds),
                max_delay=timedelta(seconds=settings.jobs_backoff_max_seconds),
            )

        @queue.entrypoint(MAIL, on_failure="hold", executor_factory=retrying, accepts_context=False)
        async def send_mail(job: Job) -> None:
            assert job.payload is not None
            mail = MailJob.of(job.payload)
            if not await self.postman.deliver(mail):
                logger.info("mail %s (%s) not sent: no such account any more", job.id, mail.kind)

        @queue.entrypoint(REMINDER, on_failure="hold", executor_factory=retrying, accepts_context=False)
        async def remind(job: Job) -> None:
            assert job.payload is not None
            await self.reminders.remind(ReminderJob.of(job.payload))

        @queue.entrypoint(WEBHOOK, on_failure="hold", executor_factory=retrying, accepts_context=False)
        async def deliver_webhook(job: Job) -> None:
            assert job.payload is not None
            await self.pump.run(WebhookJob.of(job.payload))

        @queue.schedule(DIGEST, DIGEST_EVERY)
        async def digest(schedule: Schedule) -> None:
            told = await self.digests.run(datetime.now(UTC))
            logger.info("daily digest: %d users told", told)

        @queue.schedule(CLEANUP, CLEANUP_EVERY)
        async def cleanup(schedule: Schedule) -> None:
            removed = await clean_up(self.pool, outbox_retention_seconds=settings.events_retention_seconds)
            logger.info("cleanup removed %s", ", ".join(f"{n} {table}" for table, n in removed.items()))

        return queue

    async def run(self) -> None:
        """Run the queue until ``stop``; when it fails (PostgreSQL restarted, failed over, unreachable), run
        it again after a backoff: the jobs wait in PostgreSQL, and a job that was running is picked up again
        after the heartbeat timeout."""
        concurrency, backoff = self.settings.jobs_concurrency, RESTART_SECONDS[0]
        while not self.stopping:
            try:
                await self.queue.run(
                    batch_size=max(1, concurrency // 2),
                    max_concurrent_tasks=concurrency,
                    heartbeat_timeout=timedelta(seconds=self.settings.jobs_heartbeat_seconds),
                    # Woken by NOTIFY when a job is enqueued; this bounds the wait for a retry's delay.
                    dequeue_timeout=timedelta(seconds=1),
                )
                backoff = RESTART_SECONDS[0]
            except Exception as error:
                if self.stopping:
                    return
                logger.warning("job worker: the queue stopped (%s: %s); running it again in %.1f s",
                               type(error).__name__, error, backoff)  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_SECONDS[1])
            if not self.stopping:
                self.queue = self._queue()

    def stop(self) -> None:
        self.stopping = True
        self.queue.shutdown.set()

    async def sample(self) -> None:
        """Every few seconds, the queue's depth by status and its oldest due job's wait (metrics)."""
        while True:
            with contextlib.suppress(asyncpg.PostgresError, OSError, asyncio.TimeoutError):
                await self.sample_once()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def sample_once(self) -> None:
        depth = {row["status"]: row["jobs"] for row in await self.pool.fetch(_DEPTH)}
        metrics.queue_sampled(depth, float(await self.pool.fetchval(_OLDEST)))


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Worker]:
    """A worker running until the block ends, then drained (``JOBS_DRAIN_SECONDS``) and closed."""
    assert settings.database_url
    # The queue's own connections (pgqueuer's LISTEN, dequeues, heartbeats and log; cleanup, the metrics'
    # sample): jobs do their SQL through the engine's pool.
    pool = await asyncpg.create_pool(_dsn(settings.database_url), min_size=1, max_size=QUEUE_CONNECTIONS)
    engine = create_engine(settings, Outage())
    mailbox = Path(settings.data_dir) / "mail"
    mailer = mailer_for(settings.smtp_url, mailbox)
    sessions = create_sessionmaker(engine)
    postman = Postman(sessions, mailer, settings.mail_from, settings.public_url)
    # A running webhook pump holds one connection for its endpoint's lock: WEBHOOK_CONCURRENCY at most.
    locks = await asyncpg.create_pool(
        _dsn(settings.database_url), min_size=0, max_size=settings.webhook_concurrency
    )
    pump = Pump(settings, locks, sessions, Sender.of(settings))
    worker = Worker(settings, pool, engine, postman, Reminders(sessions), Digests(sessions), pump)
    logger.info("job worker: %d at once, mail to %s", settings.jobs_concurrency, mailer.describe())
    runner = asyncio.create_task(worker.run(), name="taskql-jobs")
    sampler = asyncio.create_task(worker.sample(), name="taskql-jobs-metrics")
    try:
        yield worker
    finally:
        sampler.cancel()
        worker.stop()
        try:  # running jobs finish, for so long; the rest is cancelled and runs again elsewhere
            await asyncio.wait_for(asyncio.shield(runner), settings.jobs_drain_seconds)
        except TimeoutError:
            logger.warning(
                "job worker: jobs still running after %.0f s are stopped", settings.jobs_drain_seconds
            )
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        except Exception:
            logger.exception("job worker stopped")
        await pool.close()
        await locks.close()
        await engine.dispose()


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
