"""The daily digest: at 08:00 in each user's time zone, their overdue and due-today tasks, in-app and by mail,
once a day (skipped when there is nothing to tell).

A schedule runs every quarter of an hour (time zones are offset by whole quarters at most: +05:45) on one
worker of all, and digests the users whose local time is then in [08:00, 08:15). A digest is unique per user
and local date, so a run repeated after a crash, or a zone that shows 08:xx twice on a daylight-saving
morning, tells once.
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import (
    NotificationChannel,
    NotificationKind,
    NotificationSettings,
    ProjectMember,
    Task,
    TaskStatus,
    User,
)
from resolvers import jobs
from resolvers.jobs import MailJob
from resolvers.notifications import SettingsRecord, notify

DIGEST_EVERY = "*/15 * * * *"
DIGEST_HOUR = 8
DIGEST_WINDOW = timedelta(minutes=15)
MAX_LISTED = 20  # tasks named in a digest; the rest are counted
MAIL_IDS = uuid.UUID("0b6f2f0e-9a51-4f3b-8a1e-6c3d2a7e9b44")


@dataclass(frozen=True, slots=True)
class Digest:
    title: str
    body: str


def _projects_of(user_id: uuid.UUID) -> Any:
    return select(col(ProjectMember.project_id)).where(col(ProjectMember.user_id) == user_id)


def digest_of(tasks: list[Task], now: datetime, end_of_day: datetime) -> Digest | None:
    """What to tell about ``tasks`` (open, due before the end of the user's day): None when nothing."""
    overdue = [task for task in tasks if task.due_at is not None and task.due_at < now]
    today = [task for task in tasks if task.due_at is not None and now <= task.due_at < end_of_day]
    if not overdue and not today:
        return None
    parts = [f"{len(overdue)} overdue"] if overdue else []
    parts += [f"{len(today)} due today"] if today else []
    lines = [f"Overdue: {task.title}" for task in overdue] + [f"Due today: {task.title}" for task in today]
    if len(lines) > MAX_LISTED:
        lines = [*lines[:MAX_LISTED], f"… and {len(lines) - MAX_LISTED} more"]
    return Digest(f"Your tasks: {' and '.join(parts)}", "\n".join(lines))


@dataclass(frozen=True, slots=True)
class Digests:
    sessions: async_sessionmaker[AsyncSession]

    async def run(self, now: datetime) -> int:
        """Digest every user whose local time is in the digest's quarter of an hour; how many were told."""
        async with self.sessions() as db:
            rows = (
                await db.exec(
                    select(NotificationSettings, User)
                    .join(User, col(User.id) == col(NotificationSettings.user_id))
                    .where(col(NotificationSettings.daily_digest).is_(True), col(User.is_active).is_(True))
                )
            ).all()
        told = 0
        for settings, user in rows:
            local = now.astimezone(zoneinfo.ZoneInfo(settings.timezone))
            start = datetime.combine(local.date(), time(DIGEST_HOUR), local.tzinfo)
            if start <= local < start + DIGEST_WINDOW:
                told += await self.digest(user, SettingsRecord.of(settings), now, local.date())
        return told

    async def digest(self, user: User, settings: SettingsRecord, now: datetime, day: date) -> bool:
        zone = zoneinfo.ZoneInfo(settings.timezone)
        end_of_day = datetime.combine(day + timedelta(days=1), time(0), zone)
        async with self.sessions() as db, db.begin():
            tasks = list(
                (
                    await db.exec(
                        select(Task)
                        .where(
                            Task.owner_id == user.id,
                            # Not a task of a project they left: they no longer see it.
                            or_(
                                col(Task.project_id).is_(None),
                                col(Task.project_id).in_(_projects_of(user.id)),
                            ),
                            col(Task.status) != TaskStatus.DONE,
                            col(Task.due_at) < end_of_day,
                        )
                        .order_by(col(Task.due_at), col(Task.id))
                    )
                ).all()
            )
            found = digest_of(tasks, now, end_of_day)
            if found is None:
                return False
            key = f"digest:{day.isoformat()}"
            in_app = NotificationChannel.IN_APP in settings.channels
            made = None
            if in_app:
                made = await notify(
                    db, user.id, NotificationKind.TASK_OVERDUE_DIGEST, title=found.title, body=found.body,
                    dedupe_key=key,
                )  # fmt: skip
            if NotificationChannel.EMAIL in settings.channels and (made is not None or not in_app):
                mail = MailJob(
                    "daily_digest",
                    to=user.email,
                    user_id=str(user.id),
                    summary=f"{found.title}\n\n{found.body}",
                    message_id=uuid.uuid5(MAIL_IDS, f"{user.id}:{key}").hex,
                )
                await jobs.enqueue(db, mail)
            return made is not None or not in_app
