"""Self-service accounts: verify the address, reset or change the password, change the name or the address,
see and end sessions, export the data, delete the account; and an admin's password reset for a user.

Every mail is a job enqueued in the write's transaction (``resolvers.jobs``). Nothing here answers
differently for an address with or without an account: ``requestPasswordReset`` always enqueues one job
(the worker finds the account, or sends nothing); with REQUIRE_VERIFIED_EMAIL, ``register`` of a taken
address mails its owner instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth import account_tokens
from auth import sessions as auth_sessions
from auth.passwords import hash_password, verify_password
from auth.sessions import TokenPair
from core import cache_tags
from core.errors import BadUserInput, NotFound
from core.ids import encode_id
from models import (
    AuthSession,
    Notification,
    Project,
    ProjectMember,
    ProjectRole,
    RefreshToken,
    Role,
    Task,
    TaskRecord,
    TokenPurpose,
    User,
    UserRecord,
    Webhook,
)
from resolvers import jobs
from resolvers.audiences import co_members
from resolvers.inputs import Email, Password, ProfilePatch, validate, validate_argument
from resolvers.jobs import MailJob
from resolvers.notifications import settings_of
from resolvers.projects import delete_sole_projects, hand_over_tasks, owned_shared_projects
from resolvers.webhooks import task_document

if TYPE_CHECKING:
    from resolvers.context import Context

WRONG_PASSWORD = "the password is wrong."  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    current: bool


async def _count_mail(ctx: Context, account: str) -> None:
    """Mails asked for are counted per client address and per account (or address): they fail closed."""
    budget = ctx.hooks.budget
    if budget is not None:
        await budget.attempt("account_mail", client=ctx.origin.client, account=account)


async def _check_password(ctx: Context, user: User, password: str, *, field: str) -> None:
    """The viewer's own password, counted like a login (it guards what a stolen access token could do)."""
    budget = ctx.hooks.budget
    if budget is not None:
        await budget.attempt("login", client=ctx.origin.client, account=user.email)
    if not await verify_password(user.password_hash, password):
        raise BadUserInput(f"{field}: {WRONG_PASSWORD}", field=field, reason="WRONG_PASSWORD")


async def _viewer_user(ctx: Context, db: AsyncSession | None = None) -> User:
    viewer = ctx.require_viewer()
    if db is not None:
        user = await db.get(User, viewer.user_id, with_for_update=True)
    else:
        async with ctx.writes.sessions() as reading:
            user = await reading.get(User, viewer.user_id)
    if user is None:  # deleted while its access token lived
        raise NotFound.for_id("User", encode_id("User", viewer.user_id))
    return user


def verification_mail(user: User, to: str | None = None) -> MailJob:
    return MailJob("verify_email", to=to or user.email, user_id=str(user.id))


async def verify_email(ctx: Context, *, token: str) -> UserRecord:
    now = ctx.now()
    try:
        async with ctx.transaction() as db:
            issued, user = await account_tokens.use(db, token, TokenPurpose.VERIFY_EMAIL, now)
            user.email = issued.email  # a change of address takes effect here
            user.email_verified_at = now
            user.updated_at = now
            db.add(user)
            await db.flush()
            await ctx.record(
                db, (*cache_tags.shown_changed(user.id), *cache_tags.seen_by(await co_members(db, user.id)))
            )
    except IntegrityError:  # another account took the new address since it was asked for
        raise BadUserInput(
            "token: this address now belongs to another account.", field="token", reason="EMAIL_TAKEN"
        ) from None
    record = UserRecord.of(user)
    ctx.loaders.users.clear(user.id).prime(user.id, record)
    return record


async def resend_verification_email(ctx: Context) -> bool:
    """False when the address is verified already (no mail)."""
    user = await _viewer_user(ctx)
    if user.email_verified_at is not None:
        return False
    await _count_mail(ctx, str(user.id))
    async with ctx.transaction() as db:
        await jobs.enqueue(db, verification_mail(user))
    return True


async def request_password_reset(ctx: Context, *, email: str) -> bool:
    address: str = validate_argument(Email, email, argument="email")
    await _count_mail(ctx, address)
    async with ctx.transaction() as db:  # the same one insert whether or not the address has an account
        await jobs.enqueue(db, MailJob("password_reset", to=address))
    return True


async def send_password_reset(ctx: Context, *, user_id: uuid.UUID) -> bool:
    ctx.require_viewer(Role.ADMIN)
    async with ctx.transaction() as db:
        user = await db.get(User, user_id)
        if user is None:
            raise NotFound.for_id("User", encode_id("User", user_id))
        await jobs.enqueue(db, MailJob("password_reset", to=user.email, user_id=str(user.id)))
    return True


async def _end_every_session(ctx: Context, db: AsyncSession, user: User, now: datetime) -> None:
    """Revoke every session of ``user``; bumping the user's tag closes their sockets at once."""
    await auth_sessions.revoke_all_sessions(db, user.id, now)
    await ctx.record(db, cache_tags.user_changed(user.id))


async def reset_password(ctx: Context, *, token: str, new_password: str) -> bool:
    # Checked before the token is spent: a weak password leaves the link working.
    password: str = validate_argument(Password, new_password, argument="newPassword")
    password_hash = await hash_password(password)
    now = ctx.now()
    async with ctx.transaction() as db:
        _, user = await account_tokens.use(db, token, TokenPurpose.RESET_PASSWORD, now)
        user.password_hash = password_hash
        user.email_verified_at = user.email_verified_at or now  # the link proved the address
        user.updated_at = now
        db.add(user)
        await _end_every_session(ctx, db, user, now)
        await jobs.enqueue(db, MailJob("password_changed", to=user.email, user_id=str(user.id)))
    ctx.loaders.users.clear(user.id)
    return True


async def change_password(ctx: Context, *, current_password: str, new_password: str) -> TokenPair:
    """A new session replaces every session of the account, this one included."""
    password: str = validate_argument(Password, new_password, argument="newPassword")
    user = await _viewer_user(ctx)
    await _check_password(ctx, user, current_password, field="currentPassword")
    password_hash = await hash_password(password)
    now = ctx.now()
    async with ctx.transaction() as db:
        current = await _viewer_user(ctx, db)
        if current.password_hash != user.password_hash:  # changed meanwhile: verified against an old one
            raise BadUserInput(f"currentPassword: {WRONG_PASSWORD}", field="currentPassword")
        current.password_hash = password_hash
        current.updated_at = now
        db.add(current)
        await _end_every_session(ctx, db, current, now)
        pair = await auth_sessions.start_session(db, ctx.tokens, current, now, ctx.origin.user_agent)
        await jobs.enqueue(db, MailJob("password_changed", to=current.email, user_id=str(current.id)))
    ctx.loaders.users.clear(current.id)
    return pair


async def update_profile(ctx: Context, *, values: Mapping[str, Any]) -> UserRecord:
    patch = validate(ProfilePatch, values, argument="input")
    now = ctx.now()
    async with ctx.transaction() as db:
        user = await _viewer_user(ctx, db)
        user.name = patch.name
        user.updated_at = now
        db.add(user)
        await ctx.record(
            db, (*cache_tags.shown_changed(user.id), *cache_tags.seen_by(await co_members(db, user.id)))
        )
    record = UserRecord.of(user)
    ctx.loaders.users.clear(user.id).prime(user.id, record)
    return record


async def change_email(ctx: Context, *, new_email: str, password: str) -> bool:
    """Mails the new address a verification link (or, if it has an account, a note to its owner: the answer
    is the same) and the old address a notice. The address changes when the link is followed."""
    address: str = validate_argument(Email, new_email, argument="newEmail")
    user = await _viewer_user(ctx)
    if address == user.email:
        raise BadUserInput("newEmail: this is the account's address already.", field="newEmail")
    await _check_password(ctx, user, password, field="password")
    await _count_mail(ctx, str(user.id))
    async with ctx.transaction() as db:
        taken = (await db.exec(select(User.id).where(func.lower(col(User.email)) == address))).first()
        first = MailJob("address_in_use", to=address) if taken else verification_mail(user, to=address)
        notice = MailJob("email_change_requested", to=user.email, user_id=str(user.id), new_email=address)
        await jobs.enqueue(db, first, notice)
    return True


async def list_sessions(ctx: Context) -> list[SessionRecord]:
    """The viewer's sessions that can still be used: not revoked, with a refresh token not yet expired."""
    viewer = ctx.require_viewer()
    now = ctx.now()
    alive = (
        select(RefreshToken.session_id)
        .where(col(RefreshToken.used_at).is_(None), col(RefreshToken.expires_at) > now)
        .scalar_subquery()
    )
    async with ctx.writes.sessions() as db:
        rows = (
            await db.exec(
                select(AuthSession)
                .where(
                    AuthSession.user_id == viewer.user_id,
                    col(AuthSession.revoked_at).is_(None),
                    col(AuthSession.id).in_(alive),
                )
                .order_by(col(AuthSession.last_used_at).desc(), col(AuthSession.id))
            )
        ).all()
    return [
        SessionRecord(row.id, row.created_at, row.last_used_at, row.user_agent, row.id == viewer.session_id)
        for row in rows
    ]


async def revoke_session(ctx: Context, *, session_id: uuid.UUID) -> bool:
    """End one of the viewer's sessions (another's, or a revoked one, is NOT_FOUND)."""
    viewer = ctx.require_viewer()
    async with ctx.transaction() as db:
        session = await db.get(AuthSession, session_id, with_for_update=True)
        if session is None or session.user_id != viewer.user_id or session.revoked_at is not None:
            raise NotFound.for_id("Session", encode_id("Session", session_id))
        await auth_sessions.revoke_session(db, session_id, ctx.now())
        await ctx.record(db, [cache_tags.session(session_id)])
    return True


async def request_data_export(ctx: Context) -> bool:
    user = await _viewer_user(ctx)
    await _count_mail(ctx, str(user.id))
    async with ctx.transaction() as db:
        await jobs.enqueue(db, MailJob("data_export", to=user.email, user_id=str(user.id)))
    return True


async def delete_account(ctx: Context, *, password: str) -> bool:
    """Remove the account, its tasks, sessions and tokens. The last active admin cannot go."""
    user = await _viewer_user(ctx)
    await _check_password(ctx, user, password, field="password")
    async with ctx.transaction() as db:
        current = await _viewer_user(ctx, db)
        if current.role is Role.ADMIN and current.is_active:
            # Locked: two admins deleting themselves at once cannot both see the other one still there.
            others = await db.exec(
                select(User.id)
                .where(User.role == Role.ADMIN, col(User.is_active).is_(True), User.id != current.id)
                .with_for_update()
            )
            if not others.all():
                raise BadUserInput(
                    "password: the last active admin cannot delete their account: make another admin first.",
                    field="password",
                    reason="LAST_ADMIN",
                )
        if await owned_shared_projects(db, current.id):
            raise BadUserInput(
                "password: you own projects with other members: make one of them the OWNER of each (or "
                "delete the projects) first.",
                field="password",
                reason="OWNS_PROJECTS",
            )
        await delete_sole_projects(db, current.id)
        shared_with = await co_members(db, current.id)
        await db.exec(delete(Task).where(col(Task.owner_id) == current.id, col(Task.project_id).is_(None)))
        await hand_over_tasks(db, current.id)
        await db.delete(current)  # sessions, refresh and mailed tokens go with it (ON DELETE CASCADE)
        await ctx.record(
            db,
            (
                *cache_tags.user_changed(current.id),
                *cache_tags.task_changed(current.id),
                *cache_tags.seen_by(shared_with),
            ),
        )
        await jobs.enqueue(db, MailJob("account_deleted", to=current.email, name=current.name))
    ctx.loaders.users.clear(current.id)
    return True


async def export_account(ctx: Context, *, token: str) -> dict[str, Any]:
    """Everything of the owner of a data export link (spent by this call): the account, every task they own
    and still see (not those of a project they left), their projects and roles, the notification settings
    and inbox, and the webhooks (their secrets are never shown again)."""
    async with ctx.transaction() as db:
        _, user = await account_tokens.use(db, token, TokenPurpose.DATA_EXPORT, ctx.now())
        theirs = select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)
        tasks = (
            await db.exec(
                select(Task)
                .where(
                    Task.owner_id == user.id,
                    or_(col(Task.project_id).is_(None), col(Task.project_id).in_(theirs)),
                )
                .order_by(col(Task.created_at))
            )
        ).all()
        memberships = (
            await db.exec(
                select(Project, ProjectMember.role)
                .join(ProjectMember, col(ProjectMember.project_id) == Project.id)
                .where(ProjectMember.user_id == user.id)
                .order_by(col(Project.created_at))
            )
        ).all()
        settings = await settings_of(db, user.id)
        inbox = (
            await db.exec(
                select(Notification).where(Notification.user_id == user.id).order_by(col(Notification.seq))
            )
        ).all()
        hooks = (
            await db.exec(
                select(Webhook).where(Webhook.owner_id == user.id).order_by(col(Webhook.created_at))
            )
        ).all()
    return {
        "exportedAt": ctx.now().isoformat(),
        "account": {
            "id": encode_id("User", user.id),
            "email": user.email,
            "name": user.name,
            "role": user.role.value,
            "emailVerified": user.email_verified_at is not None,
            "createdAt": user.created_at.isoformat(),
        },
        "tasks": [task_document(TaskRecord.of(task)) for task in tasks],
        "projects": [
            {"id": encode_id("Project", project.id), "name": project.name, "role": ProjectRole(role).value}
            for project, role in memberships
        ],
        "notificationSettings": {
            "remindBeforeMinutes": settings.remind_before_minutes,
            "channels": [channel.value for channel in settings.channels],
            "dailyDigest": settings.daily_digest,
            "timezone": settings.timezone,
        },
        "notifications": [
            {
                "id": encode_id("Notification", entry.id),
                "kind": entry.kind.value,
                "title": entry.title,
                "body": entry.body,
                "createdAt": entry.created_at.isoformat(),
                "readAt": entry.read_at.isoformat() if entry.read_at else None,
            }
            for entry in inbox
        ],
        "webhooks": [
            {
                "id": encode_id("Webhook", hook.id),
                "url": hook.url,
                "events": list(hook.events),
                "description": hook.description,
                "enabled": hook.enabled,
                "createdAt": hook.created_at.isoformat(),
            }
            for hook in hooks
        ],
    }
