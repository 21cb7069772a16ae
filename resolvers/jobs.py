"""Background jobs, enqueued in the write's own transaction: a rolled-back write enqueues nothing, a
committed one always has its jobs (pgqueuer's queue table, in the same PostgreSQL). The worker
(``taskql.jobs``) runs them.

A job's payload is JSON naming what to do, never a secret: a mail's token is made by the worker when it
sends the mail.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from sqlmodel.ext.asyncio.session import AsyncSession

MAIL = "mail"  # send one account mail (taskql.jobs.mails)
CLEANUP = "cleanup"  # periodic: remove expired tokens, ended sessions, published outbox rows

MailKind = Literal[
    "verify_email",
    "address_in_use",
    "password_reset",
    "password_changed",
    "email_change_requested",
    "data_export",
    "account_deleted",
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
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def payload(self) -> bytes:
        return orjson.dumps({key: value for key, value in asdict(self).items() if value is not None})

    @classmethod
    def of(cls, payload: bytes) -> MailJob:
        values: dict[str, Any] = orjson.loads(payload)
        return cls(**values)


async def enqueue(db: AsyncSession, *jobs: MailJob) -> None:
    """Add ``jobs`` to the queue in ``db``'s transaction (on its own connection)."""
    connection = await (await db.connection()).get_raw_connection()
    queries = Queries(AsyncpgDriver(connection.driver_connection))
    for job in jobs:
        await queries.enqueue(MAIL, job.payload())
