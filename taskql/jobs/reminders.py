"""The ``reminder`` job: tell a task's owner it is due soon, on their channels, once. It runs at ``due_at -
remind_before_minutes`` (or at once, for a task created inside that window) and does nothing if the task
moved on since it was enqueued: done, deleted, given another due date or owner, the owner changed the
setting, or left the project the task is in. To webhooks (the WEBHOOK channel), a TASK_DUE_SOON event
whose webhook-id is derived from the reminder, so a second run adds nothing. In-app, the entry is unique per
task and due date, so a job that runs twice (its worker died after COMMIT) notifies once; the mail job is
enqueued in the same transaction as that entry, so it is enqueued once too (and sent at least once, as
every mail: ``taskql.jobs.mails``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models import NotificationChannel, NotificationKind, Task, TaskRecord, TaskStatus, User, WebhookEventType
from resolvers import jobs
from resolvers.audiences import still_sees
from resolvers.jobs import MailJob, ReminderJob
from resolvers.notifications import due_text, notify, reminder_key, settings_of
from resolvers.webhooks import WebhookEvent, fan_out, payload_of

# A mail's Message-ID from the reminder it belongs to: every attempt, and a second run, send the same one.
MAIL_IDS = uuid.UUID("5f0c7a52-2d6b-4c57-9a43-1f2b7d1e8a10")
# Its webhook-id likewise: a second run adds no second delivery.
WEBHOOK_IDS = uuid.UUID("0b9d3f1e-8a43-4f6e-9c2d-6e5a7b1c4d20")


@dataclass(frozen=True, slots=True)
class Reminders:
    sessions: async_sessionmaker[AsyncSession]

    async def remind(self, job: ReminderJob) -> bool:
        """Notify, unless the task moved on; whether anything was done."""
        async with self.sessions() as db, db.begin():
            task = await db.get(Task, uuid.UUID(job.task_id))
            if task is None or task.status is TaskStatus.DONE or task.due_at is None:
                return False
            if task.due_at.isoformat() != job.due_at:
                return False
            settings = await settings_of(db, task.owner_id)
            owner = await db.get(User, task.owner_id)
            if settings.remind_before_minutes != job.remind_before or owner is None or not owner.is_active:
                return False
            if not await still_sees(db, task, owner.id):  # they left the task's project since
                return False
            key = reminder_key(task.id, job.due_at)
            in_app = NotificationChannel.IN_APP in settings.channels
            made = None
            if in_app:
                made = await notify(
                    db,
                    owner.id,
                    NotificationKind.TASK_DUE_SOON,
                    title=f"Due soon: {task.title}"[:300],
                    body=f"“{task.title}” is due {due_text(task.due_at, settings.timezone)}.",
                    dedupe_key=key,
                    task_id=task.id,
                )
            if NotificationChannel.EMAIL in settings.channels and (made is not None or not in_app):
                mail = MailJob(
                    "task_due_soon",
                    to=owner.email,
                    user_id=str(owner.id),
                    task_id=str(task.id),
                    message_id=uuid.uuid5(MAIL_IDS, key).hex,
                )
                await jobs.enqueue(db, mail)
            if NotificationChannel.WEBHOOK in settings.channels:
                kind = WebhookEventType.TASK_DUE_SOON
                payload = payload_of(kind, datetime.now(UTC), task.id, TaskRecord.of(task))
                await fan_out(db, [WebhookEvent(owner.id, kind, payload, uuid.uuid5(WEBHOOK_IDS, key))])
            return made is not None or not in_app
