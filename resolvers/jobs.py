"""Background jobs, enqueued in the write's own transaction: a rolled-back write enqueues nothing, a
committed one always has its jobs (pgqueuer's queue table, in the same PostgreSQL). The worker
(``taskql.jobs``) runs them.

A job's payload is JSON naming what to do, never a secret: a mail's token is made by the worker when it
sends the mail.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import JobId
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import BadUserInput, NotFound
from models import Role

if TYPE_CHECKING:
    from resolvers.context import Context

MAIL = "mail"  # send one account mail (taskql.jobs.mails)
REMINDER = "reminder"  # remind a task's owner that it is due soon (taskql.jobs.reminders)
DIGEST = "digest"  # periodic: the daily digest of users whose local time is 08:00 (taskql.jobs.digest)
WEBHOOK = "webhook"  # deliver a webhook's pending events, in order (taskql.jobs.webhooks)
CLEANUP = "cleanup"  # periodic: remove expired tokens, ended sessions, published outbox rows
MAX_FAILED_JOBS = 100

MailKind = Literal[
    "verify_email",
    "address_in_use",
    "password_reset",
    "password_changed",
    "email_change_requested",
    "data_export",
    "account_deleted",
    "task_due_soon",
    "daily_digest",
    "webhook_disabled",
    "project_invitation",
]


@dataclass(frozen=True, slots=True)
class MailJob:
    """One mail to send. ``user_id`` None: look the account up by ``to`` when sending (a reset asked for by
    address: the request does the same whether or not it has an account). ``message_id`` is chosen here,
    once, so every attempt sends the same Message-ID."""

    kind: MailKind
    to: str
    user_id: str | None = None
    name: str | None = None  # for mails about an account that will be gone when it is sent
    new_email: str | None = None
    task_id: str | None = None  # for mails about a task
    summary: str | None = None  # a digest's text, as the inbox shows it
    webhook_id: str | None = None  # for mails about a webhook
    invitation_id: str | None = None  # for an invitation to a project
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    entrypoint: ClassVar[str] = MAIL

    def payload(self) -> bytes:
        return orjson.dumps({key: value for key, value in asdict(self).items() if value is not None})

    @classmethod
    def of(cls, payload: bytes) -> MailJob:
        values: dict[str, Any] = orjson.loads(payload)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ReminderJob:
    """Remind the owner of ``task_id`` that it is due at ``due_at``, ``remind_before`` minutes ahead. Runs at
    that moment and does nothing if the task moved on since (done, deleted, another due date, another
    setting): the job enqueued for the new state reminds instead."""

    task_id: str
    due_at: str  # ISO 8601, as stored
    remind_before: int
    entrypoint: ClassVar[str] = REMINDER

    def payload(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def of(cls, payload: bytes) -> ReminderJob:
        values: dict[str, Any] = orjson.loads(payload)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """Deliver the pending events of ``webhook_id``, oldest first. Enqueued with each write that adds one, and
    for each retry; any number of them at once is fine: one delivers, the others find it busy."""

    webhook_id: str
    entrypoint: ClassVar[str] = WEBHOOK

    def payload(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def of(cls, payload: bytes) -> WebhookJob:
        values: dict[str, Any] = orjson.loads(payload)
        return cls(**values)


Job = MailJob | ReminderJob | WebhookJob


async def enqueue(db: AsyncSession, *jobs: Job, after: timedelta | None = None) -> None:
    """Add ``jobs`` to the queue in ``db``'s transaction (on its own connection), to run now or ``after``."""
    if jobs:
        count = len(jobs)
        await (await _queries(db)).enqueue(
            [job.entrypoint for job in jobs], [job.payload() for job in jobs], [0] * count, [after] * count
        )


@dataclass(frozen=True, slots=True)
class FailedJobRecord:
    id: int
    kind: str
    attempts: int
    created_at: datetime
    failed_at: datetime
    error: str | None


# The last error each job raised (pgqueuer logs one traceback record per failed attempt).
_LAST_ERRORS = """
SELECT DISTINCT ON (job_id)
    job_id, traceback->>'exception_type' AS type, traceback->>'exception_message' AS message
FROM pgqueuer_log WHERE job_id = ANY($1::bigint[]) AND traceback IS NOT NULL ORDER BY job_id, id DESC
"""


async def _queries(db: AsyncSession) -> Queries:
    """pgqueuer's queries on the connection of ``db``'s transaction. SQLAlchemy begins the transaction on the
    driver's connection lazily, with its first statement: until then a statement sent to the driver directly
    would commit on its own, so one is sent first when none was."""
    connection = (await (await db.connection()).get_raw_connection()).driver_connection
    assert connection is not None
    if not connection.is_in_transaction():
        await (await db.connection()).execute(text("SELECT 1"))
    return Queries(AsyncpgDriver(connection))


async def failed_jobs(ctx: Context, *, first: int) -> list[FailedJobRecord]:
    """Jobs held after their last attempt failed, newest first (admins)."""
    ctx.require_viewer(Role.ADMIN)
    if not 1 <= first <= MAX_FAILED_JOBS:
        raise BadUserInput(f"first: must lie between 1 and {MAX_FAILED_JOBS}.", field="first")
    async with ctx.writes.sessions() as db:
        queries = await _queries(db)
        held = await queries.list_failed_jobs(limit=first)
        errors = {
            row["job_id"]: f"{row['type']}: {row['message']}"
            for row in await queries.driver.fetch(_LAST_ERRORS, [job.id for job in held])
        }
    return [
        FailedJobRecord(
            int(job.id), kind_of(job.entrypoint, job.payload), job.attempts, job.created, job.updated,
            errors.get(job.id),
        )
        for job in held
    ]  # fmt: skip


def kind_of(entrypoint: str, payload: bytes | None) -> str:
    """What the job does, without its payload's addresses: ``mail:password_reset``, ``cleanup``."""
    if entrypoint == MAIL and payload:
        return f"{MAIL}:{MailJob.of(payload).kind}"
    return entrypoint


async def retry_job(ctx: Context, *, job_id: int) -> bool:
    """Queue a failed job again, its attempts counted from zero (admins). Not a failed job: NOT_FOUND."""
    ctx.require_viewer(Role.ADMIN)
    async with ctx.transaction() as db:
        queries = await _queries(db)
        held = await queries.driver.fetch(
            "SELECT id FROM pgqueuer WHERE id = $1 AND status = 'failed' FOR UPDATE", job_id
        )
        if not held:
            raise NotFound(f"No failed job with id {job_id}.", id=str(job_id))
        await queries.requeue_jobs([JobId(job_id)])
    return True
