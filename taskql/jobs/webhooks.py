"""The ``webhook`` job: deliver one endpoint's pending events, oldest first, one at a time.

- **In order**: one pump per endpoint at a time (a PostgreSQL advisory lock held on its own connection, let
  go if the worker dies). The head of the endpoint's queue is attempted until it is delivered; the events
  behind it wait. A job that finds the endpoint busy ends: the pump holding it looks again once it lets go,
  so an event added meanwhile is not left behind.
- **Retries**: a failed attempt is recorded with its next moment (exponential backoff from
  ``WEBHOOK_RETRY_BASE_SECONDS``, at most ``WEBHOOK_RETRY_MAX_SECONDS``, with jitter), and a job for that
  moment is enqueued in the same transaction. After ``WEBHOOK_MAX_FAILURES`` failures in a row the endpoint
  is disabled, its undelivered events failed, and its owner told (in-app and by mail), all at once.
- **Once**: the same ``webhook-id`` at every attempt. A worker that dies during an attempt leaves the row
  as it was: its job runs again elsewhere and attempts it again (a receiver deduplicates by webhook-id).
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.webhook_secrets import signing_secrets
from core.settings import Settings
from models import DeliveryStatus, NotificationKind, User
from resolvers import jobs
from resolvers.jobs import MailJob, WebhookJob
from resolvers.notifications import notify
from resolvers.webhooks import message_header, outcome_sql, run
from taskql.ops import metrics
from taskql.webhooks.delivery import Attempt
from taskql.webhooks.sender import Sender

logger = logging.getLogger("taskql.jobs.webhooks")

LOCKS = 0x7E6B  # the advisory locks' first key: webhooks (the second is the webhook id's hash)
_LOCK = "SELECT pg_try_advisory_lock($1, hashtext($2))"
_UNLOCK = "SELECT pg_advisory_unlock($1, hashtext($2))"
# The endpoint's head: its oldest undelivered event, and whether it is due (a deactivated account's webhooks
# wait, as disabled ones do).
_HEAD = """
SELECT w.url, w.enabled AND owner.is_active AS enabled, w.secret_salt, w.previous_secret_salt, w.rotated_at,
       d.id, d.message_id, d.event_type, d.payload::text AS payload, d.attempt,
       coalesce(d.next_attempt_at <= now(), true) AS due
FROM webhooks AS w
JOIN users AS owner ON owner.id = w.owner_id
JOIN LATERAL (SELECT * FROM webhook_deliveries WHERE webhook_id = w.id AND status IN ('pending', 'retrying')
              ORDER BY seq LIMIT 1) AS d ON true
WHERE w.id = $1
"""
_SUCCEEDED = text("UPDATE webhooks SET consecutive_failures = 0 WHERE id = :webhook_id")
_FAILED = text(
    """UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = :webhook_id
RETURNING consecutive_failures, owner_id, url"""
)
_DISABLE = text(
    """UPDATE webhooks SET enabled = false, disabled_reason = :reason, updated_at = now()
WHERE id = :webhook_id"""
)
_FAIL_THE_REST = text(
    """UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL
WHERE webhook_id = :webhook_id AND status IN ('pending', 'retrying')"""
)


def _deliverable(head: asyncpg.Record | None) -> bool:
    """Whether the endpoint's head can be attempted now. The one test of it: the pump looks again after it
    lets go of the lock by it too (another would have it go round without end, the head waiting for its
    retry while a later event is "due")."""
    return head is not None and bool(head["enabled"]) and bool(head["due"])


@dataclass(frozen=True, slots=True)
class Pump:
    settings: Settings
    locks: asyncpg.Pool  # one connection per running pump, for its lock
    sessions: async_sessionmaker[AsyncSession]
    sender: Sender

    async def run(self, job: WebhookJob) -> int:
        """Deliver what is due of the webhook's events; how many were delivered."""
        webhook_id, delivered = uuid.UUID(job.webhook_id), 0
        async with self.locks.acquire() as connection:
            while await connection.fetchval(_LOCK, LOCKS, str(webhook_id)):
                try:
                    delivered += await self._drain(connection, webhook_id)
                finally:
                    await connection.fetchval(_UNLOCK, LOCKS, str(webhook_id))
                # An event may have been added while the lock was held, its job finding it busy: look again.
                if not _deliverable(await connection.fetchrow(_HEAD, webhook_id)):
                    break
        return delivered

    async def _drain(self, connection: asyncpg.Connection, webhook_id: uuid.UUID) -> int:
        delivered = 0
        while True:
            head = await connection.fetchrow(_HEAD, webhook_id)
            if not _deliverable(head):
                return delivered  # nothing left, disabled, or waiting for a retry's job
            assert head is not None
            now = datetime.now(UTC)
            secrets = signing_secrets(
                self.settings.secret,
                head["secret_salt"],
                head["previous_secret_salt"],
                head["rotated_at"],
                now,
            )
            sent = await self.sender.send(
                head["url"], head["payload"].encode(), secrets=secrets,
                message_id=message_header(head["message_id"]),
            )  # fmt: skip
            metrics.webhook_attempted(head["event_type"], sent.ok, sent.duration_ms / 1000)
            if not await self._record(webhook_id, head["id"], head["attempt"], sent):
                return delivered
            delivered += 1

    async def _record(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, attempt: int, sent: Attempt
    ) -> bool:
        """Record an attempt's outcome, and what follows from it, in one transaction; whether it went."""
        ids = {"webhook_id": webhook_id}
        async with self.sessions() as db, db.begin():
            if sent.ok:
                await run(db, outcome_sql(sent, status=DeliveryStatus.DELIVERED), {"id": delivery_id})
                await run(db, _SUCCEEDED, ids)
                return True
            counted = (await run(db, _FAILED, ids)).one_or_none()
            if counted is None:  # deleted meanwhile
                return False
            failures, owner_id, url = tuple(counted)
            if failures < self.settings.webhook_max_failures:
                wait = self.backoff(attempt)
                await run(
                    db,
                    outcome_sql(sent, status=DeliveryStatus.RETRYING, next_attempt_in=wait),
                    {"id": delivery_id},
                )
                await jobs.enqueue(db, WebhookJob(str(webhook_id)), after=timedelta(seconds=wait))
                logger.info("webhook %s: attempt %d failed (%s), next in %.1f s", webhook_id, attempt + 1,
                            sent.error, wait)  # fmt: skip
                return False
            await run(db, outcome_sql(sent, status=DeliveryStatus.FAILED), {"id": delivery_id})
            await self._disable(db, webhook_id, owner_id, url, failures, sent.error or "failed")
            return False

    async def _disable(
        self,
        db: AsyncSession,
        webhook_id: uuid.UUID,
        owner_id: uuid.UUID,
        url: str,
        failures: int,
        error: str,
    ) -> None:
        await run(db, _DISABLE, {"webhook_id": webhook_id, "reason": error[:300]})
        await run(db, _FAIL_THE_REST, {"webhook_id": webhook_id})
        owner = await db.get(User, owner_id)
        key = f"webhook-disabled:{webhook_id}:{datetime.now(UTC).isoformat()}"
        await notify(
            db,
            owner_id,
            NotificationKind.WEBHOOK_DISABLED,
            title=f"Webhook disabled: {url}"[:300],
            body=f"Your webhook to {url} was disabled after {failures} failed deliveries in a row (the last: "
            f"{error}). Enable it again once the endpoint works.",
            dedupe_key=key[:200],
        )
        if owner is not None and owner.is_active:
            await jobs.enqueue(
                db,
                MailJob(
                    "webhook_disabled", to=owner.email, user_id=str(owner_id), webhook_id=str(webhook_id)
                ),
            )
        metrics.webhook_disabled()
        logger.warning("webhook %s disabled after %d failures in a row (%s)", webhook_id, failures, error)

    def backoff(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt`` (0: the first) failed: doubling, capped, jittered."""
        base, cap = self.settings.webhook_retry_base_seconds, self.settings.webhook_retry_max_seconds
        return min(base * 2.0 ** min(attempt, 60), cap) * random.uniform(0.75, 1.25)
