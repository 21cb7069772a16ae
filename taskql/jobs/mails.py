"""The ``mail`` job: find who it is for, make its token if it carries a link, render and deliver it.

The token is made here, in a transaction that commits only once the mail is accepted by the server (or
written to the mailbox): a failed delivery leaves no token behind, a retried one makes a fresh token. The
Message-ID is the job's (chosen when it was enqueued), so the rare duplicate after a worker dies between
delivery and COMMIT reads as the same message.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth import account_tokens
from models import Project, ProjectInvitation, Task, TaskStatus, TokenPurpose, User, Webhook
from models.columns import utcnow
from resolvers.audiences import still_sees
from resolvers.jobs import MailJob
from resolvers.notifications import due_text, settings_of
from taskql.mail.delivery import Mailer
from taskql.mail.message import Mail, render

# Where each link leads (served by taskql: taskql/http/account_pages.py), and the token it carries.
LINKS = {
    "verify_email": ("/verify-email", TokenPurpose.VERIFY_EMAIL),
    "password_reset": ("/reset-password", TokenPurpose.RESET_PASSWORD),
    "data_export": ("/export", TokenPurpose.DATA_EXPORT),
}


@dataclass(frozen=True, slots=True)
class Postman:
    sessions: async_sessionmaker[AsyncSession]
    mailer: Mailer
    mail_from: str
    public_url: str

    async def deliver(self, job: MailJob) -> bool:
        """Send ``job``'s mail; False when there is no one to send it to any more (nothing sent)."""
        async with self.sessions() as db, db.begin():
            user = await _recipient(db, job)
            if user is None and job.kind not in ("account_deleted", "project_invitation"):
                return False
            context: dict[str, Any] = {"name": user.name if user else job.name or ""}
            if job.new_email:
                context["new_email"] = job.new_email
            if job.summary is not None:
                context["summary"] = job.summary
            if job.task_id is not None:  # a reminder: not if the task is gone or done since
                assert user is not None
                task = await db.get(Task, uuid.UUID(job.task_id))
                if (
                    task is None
                    or task.owner_id != user.id
                    or task.status is TaskStatus.DONE
                    or task.due_at is None
                    or not await still_sees(db, task, user.id)
                ):
                    return False
                timezone = (await settings_of(db, user.id)).timezone
                context |= {"task_title": task.title, "due": due_text(task.due_at, timezone)}
            if job.webhook_id is not None:  # a webhook disabled: not if it is gone or enabled again since
                webhook = await db.get(Webhook, uuid.UUID(job.webhook_id))
                if webhook is None or user is None or webhook.owner_id != user.id or webhook.enabled:
                    return False
                context |= {
                    "webhook_url": webhook.url,
                    "failures": webhook.consecutive_failures,
                    "reason": webhook.disabled_reason,
                }
            if job.invitation_id is not None:  # not if it was accepted, declined, revoked or expired since
                invited = await _invitation(db, uuid.UUID(job.invitation_id))
                if invited is None:
                    return False
                context |= invited | {
                    "has_account": user is not None,
                    "link": self.public_url.rstrip("/") + "/",
                }
            if job.kind in LINKS:
                assert user is not None
                path, purpose = LINKS[job.kind]
                bound = job.to if job.kind == "verify_email" else user.email
                value, _ = await account_tokens.issue(db, user.id, purpose, bound, utcnow())
                context |= _lifetime(purpose)
                context["link"] = f"{self.public_url.rstrip('/')}{path}?token={quote(value)}"
            message = render(Mail(job.kind, job.to, job.message_id, context), mail_from=self.mail_from)
            await self.mailer.send(message)  # COMMIT (the token) only once the mail is out
        return True


async def _recipient(db: AsyncSession, job: MailJob) -> User | None:
    """The account the mail is about, if it still applies: active, and still at the address (a verification
    of a verified address, or a reset of an address the account left, is not sent)."""
    if job.user_id is not None:
        user = await db.get(User, uuid.UUID(job.user_id))
    else:
        user = (await db.exec(select(User).where(func.lower(col(User.email)) == job.to.lower()))).first()
    if user is None or not user.is_active:
        return None
    if job.kind == "verify_email" and job.to == user.email and user.email_verified_at is not None:
        return None
    if job.kind in ("password_reset", "data_export", "password_changed") and user.email != job.to:
        return None
    return user


async def _invitation(db: AsyncSession, invitation_id: uuid.UUID) -> dict[str, Any] | None:
    invitation = await db.get(ProjectInvitation, invitation_id)
    if invitation is None or invitation.expires_at <= utcnow():
        return None
    project = await db.get(Project, invitation.project_id)
    inviter = await db.get(User, invitation.invited_by_id) if invitation.invited_by_id is not None else None
    if project is None:
        return None
    return {
        "project_name": project.name,
        "role": invitation.role.value,
        "inviter": inviter.name if inviter is not None else "Someone",
        "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    }


def _lifetime(purpose: TokenPurpose) -> Mapping[str, int]:
    seconds = int(account_tokens.LIFETIMES[purpose].total_seconds())
    if purpose is TokenPurpose.RESET_PASSWORD:
        return {"expires_minutes": seconds // 60}
    return {"expires_hours": seconds // 3600}
