"""Projects: create, change, delete; their members and roles; invitations by email address.

Every membership change locks the project row (``resolvers.audiences.lock_project``, exclusive) before it
reads or writes members, so that task writes in flight reach the members as they were when they committed,
and the change reaches everyone it concerns: ``cache_tags.seen_by`` the members before and after it (their
cached answers show the project), and nobody removed gets another event, cached answer or webhook of it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import StringConstraints
from sqlalchemy import Uuid, bindparam, delete, func, text, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from core import cache_tags
from core.errors import BadUserInput, EmailNotVerified, Forbidden, NotFound
from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import (
    INVITATION_DAYS,
    PROJECT_COLUMNS,
    PROJECT_ROLE,
    NotificationKind,
    Project,
    ProjectInvitation,
    ProjectMember,
    ProjectRecord,
    ProjectRole,
    Task,
    TaskRecord,
    User,
)
from resolvers import jobs
from resolvers.activity import ActivityKind, log
from resolvers.audiences import Members, lock_project, members_of
from resolvers.events import EventDraft, TaskEventKind, drafts_for_write
from resolvers.inputs import NO_NUL, Description, Email, Strict, validate, validate_argument
from resolvers.jobs import MailJob
from resolvers.notifications import notify
from resolvers.pagination import Listing, PageRequest, SortKey, from_iso, iso, keyset, page_sql, read_page
from resolvers.visibility import managed_project, project_role, visible_project
from resolvers.webhooks import run

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from auth.viewer import Viewer
    from resolvers.context import Context

ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_NUL]


class ProjectCreate(Strict):
    name: ProjectName
    description: Description | None = None


class ProjectPatch(Strict):
    name: ProjectName | None = None
    description: Description | None = None


class ProjectSearch(Strict):
    role: ProjectRole | None = None
    search: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_NUL] | None
    ) = None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    project_id: uuid.UUID
    user_id: uuid.UUID
    role: ProjectRole
    added_at: datetime

    @property
    def id(self) -> uuid.UUID:  # a page's cursor names its row by this
        return self.user_id


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    id: uuid.UUID
    project_id: uuid.UUID
    email: str
    role: ProjectRole
    invited_by_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> InvitationRecord:
        invitation_id, project_id, email, role, invited_by, created_at, expires_at = row
        return cls(invitation_id, project_id, email, PROJECT_ROLE[role], invited_by, created_at, expires_at)


# -- Projects


async def create_project(ctx: Context, *, values: Mapping[str, Any]) -> ProjectRecord:
    viewer = ctx.require_viewer()
    data = validate(ProjectCreate, values, argument="input")
    now = ctx.now()
    project = Project(name=data.name, description=data.description, created_at=now, updated_at=now)
    async with ctx.transaction() as db:
        db.add(project)
        await db.flush()
        db.add(
            ProjectMember(project_id=project.id, user_id=viewer.user_id, role=ProjectRole.OWNER, added_at=now)
        )
        await ctx.record(db, cache_tags.seen_by([viewer.user_id]))
    ctx.loaders.forget_memberships()
    return ProjectRecord.of(project)


async def update_project(ctx: Context, *, project_id: uuid.UUID, values: Mapping[str, Any]) -> ProjectRecord:
    viewer = ctx.require_viewer()
    patch = validate(ProjectPatch, values, argument="input")
    await managed_project(ctx, viewer, project_id)
    async with ctx.transaction() as db:
        members = await _members_locked(db, project_id)
        project = await db.get(Project, project_id)
        if project is None:
            raise NotFound.for_id("Project", encode_id("Project", project_id))
        _check_manager(viewer, members)
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if name == "name" and value is None:
                raise BadUserInput("input.name: cannot be null.", field="input.name")
            setattr(project, name, value)
        project.updated_at = ctx.now()
        db.add(project)
        await ctx.record(db, cache_tags.seen_by(members))
    ctx.loaders.forget_project(project_id)
    return ProjectRecord.of(project)


async def delete_project(ctx: Context, *, project_id: uuid.UUID) -> uuid.UUID:
    """The project and its tasks: each task's deletion is told to every member (events, webhooks)."""
    viewer = ctx.require_viewer()
    await managed_project(ctx, viewer, project_id)
    async with ctx.transaction() as db:
        members = await _members_locked(db, project_id)
        _check_manager(viewer, members)
        task_ids = (await db.exec(select(col(Task.id)).where(col(Task.project_id) == project_id))).all()
        await db.exec(delete(Project).where(col(Project.id) == project_id))
        audience = frozenset(members)
        await ctx.record(db, cache_tags.seen_by(members))
        for task_id in task_ids:  # one event each (a write's row tells one event per audience)
            await ctx.record(db, (), drafts_for_write(TaskEventKind.DELETED, task_id, None, audience, ()))
    ctx.loaders.forget_project(project_id)
    ctx.loaders.forget_memberships()
    return project_id


async def _members_locked(db: AsyncSession, project_id: uuid.UUID) -> Members:
    """The project's members, the project locked against every other change of them and task writes."""
    members = await members_of(db, project_id) if await lock_project(db, project_id, exclusive=True) else {}
    if not members:
        raise NotFound.for_id("Project", encode_id("Project", project_id))
    return members


def _check_manager(viewer: Viewer, members: Members) -> None:
    """Checked again under the lock: the viewer's role may have changed since it was read."""
    if not viewer.is_admin and members.get(viewer.user_id) is not ProjectRole.OWNER:
        raise Forbidden("Only the project's OWNER may do this.", requiredRole=ProjectRole.OWNER.value)


# -- Listings

PROJECT_ORDER = SortKey(
    "PROJECT_CREATED_AT",
    col(Project.created_at),
    lambda project: project.created_at,
    from_json=from_iso,
    to_json=iso,
)
_MEMBER = ProjectMember.__table__.c  # type: ignore[attr-defined]
_VIEWER = bindparam("viewer", type_=Uuid())
_PROJECT = bindparam("project_id", type_=Uuid())


def _project_filters(member: bool, role: bool, search: bool) -> list[Any]:
    where: list[Any] = []
    if member:
        mine = select_columns(_MEMBER.project_id).where(_MEMBER.user_id == _VIEWER)
        if role:
            mine = mine.where(_MEMBER.role == bindparam("role", type_=_MEMBER.role.type))
        where.append(col(Project.id).in_(mine))
    if search:
        where.append(col(Project.name).ilike(bindparam("search")))
    return where


@functools.cache  # bounded: 2 x 2 x 2 x 2 x 2
def _projects_sql(member: bool, role: bool, search: bool, walk_descending: bool, cursor: bool) -> Sql:
    where = _project_filters(member, role, search)
    return page_sql(
        PROJECT_ORDER, col(Project.id), PROJECT_COLUMNS, where, walk_descending=walk_descending, cursor=cursor
    )


@functools.cache
def _projects_count_sql(member: bool, role: bool, search: bool) -> Sql:
    statement = (
        select_columns(func.count()).select_from(Project).where(*_project_filters(member, role, search))
    )
    return compile_sql(statement, constants=False)


def _like(text_value: str) -> str:
    escaped = text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_projects(
    ctx: Context, *, page: PageRequest, filters: Mapping[str, Any]
) -> Listing[ProjectRecord]:
    """The viewer's projects (an admin's: every project; with ``role``, those where the admin has it)."""
    viewer = ctx.require_viewer()
    criteria = validate(ProjectSearch, filters, argument="filter")
    member = not viewer.is_admin or criteria.role is not None
    values: dict[str, Any] = {}
    if member:
        values["viewer"] = viewer.user_id
    if criteria.role is not None:
        values["role"] = criteria.role
    if criteria.search is not None:
        values["search"] = _like(criteria.search)
    shape = (member, criteria.role is not None, criteria.search is not None)
    window = keyset(PROJECT_ORDER, page, descending=True, query=f"{shape}{sorted(values.items())}")
    sql = _projects_sql(*shape, window.walk_descending, window.cursor is not None)
    listing = await read_page(
        ctx.reader,
        PROJECT_ORDER,
        page,
        window,
        sql,
        _projects_count_sql(*shape),
        values,
        ProjectRecord.from_row,
    )
    for project in listing.page.items:
        ctx.loaders.projects.prime(project.id, project)
    return listing


MEMBER_ORDER = SortKey(
    "MEMBER_ADDED_AT", _MEMBER.added_at, lambda member: member.added_at, from_json=from_iso, to_json=iso
)


@functools.cache  # bounded: 2 x 2
def _members_sql(walk_descending: bool, cursor: bool) -> Sql:
    columns = [_MEMBER.project_id, _MEMBER.user_id, _MEMBER.role, _MEMBER.added_at]
    where = [_MEMBER.project_id == _PROJECT]
    return page_sql(
        MEMBER_ORDER, _MEMBER.user_id, columns, where, walk_descending=walk_descending, cursor=cursor
    )


_MEMBERS_COUNT_SQL = compile_sql(
    select_columns(func.count()).select_from(ProjectMember).where(_MEMBER.project_id == _PROJECT),
    constants=False,
)


def _member(row: Sequence[Any]) -> MemberRecord:
    project_id, user_id, role, added_at = row
    return MemberRecord(project_id, user_id, PROJECT_ROLE[role], added_at)


async def list_members(ctx: Context, *, project_id: uuid.UUID, page: PageRequest) -> Listing[MemberRecord]:
    """The project's members, earliest first (its members and admins)."""
    await visible_project(ctx, ctx.require_viewer(), project_id)
    window = keyset(MEMBER_ORDER, page, descending=False)
    sql = _members_sql(window.walk_descending, window.cursor is not None)
    values = {"project_id": project_id}
    return await read_page(ctx.reader, MEMBER_ORDER, page, window, sql, _MEMBERS_COUNT_SQL, values, _member)


_INVITATION = ProjectInvitation.__table__.c  # type: ignore[attr-defined]
INVITATION_COLUMNS = [
    _INVITATION.id, _INVITATION.project_id, _INVITATION.email, _INVITATION.role, _INVITATION.invited_by_id,
    _INVITATION.created_at, _INVITATION.expires_at,
]  # fmt: skip
INVITATION_ORDER = SortKey(
    "INVITATION_CREATED_AT",
    _INVITATION.created_at,
    lambda item: item.created_at,
    from_json=from_iso,
    to_json=iso,
)
_NOW = bindparam("now", type_=_INVITATION.expires_at.type)


@functools.cache  # bounded: 2 x 2
def _invitations_sql(walk_descending: bool, cursor: bool) -> Sql:
    where = [_INVITATION.project_id == _PROJECT, _INVITATION.expires_at > _NOW]
    return page_sql(
        INVITATION_ORDER,
        _INVITATION.id,
        INVITATION_COLUMNS,
        where,
        walk_descending=walk_descending,
        cursor=cursor,
    )


_INVITATIONS_COUNT_SQL = compile_sql(
    select_columns(func.count())
    .select_from(ProjectInvitation)
    .where(_INVITATION.project_id == _PROJECT, _INVITATION.expires_at > _NOW),
    constants=False,
)


async def list_invitations(
    ctx: Context, *, project_id: uuid.UUID, page: PageRequest
) -> Listing[InvitationRecord]:
    """The project's pending invitations, newest first: its OWNER's (and admins') alone."""
    await managed_project(ctx, ctx.require_viewer(), project_id)
    window = keyset(INVITATION_ORDER, page, descending=True)
    sql = _invitations_sql(window.walk_descending, window.cursor is not None)
    values = {"project_id": project_id, "now": ctx.now()}
    return await read_page(
        ctx.reader, INVITATION_ORDER, page, window, sql, _INVITATIONS_COUNT_SQL, values, InvitationRecord.of
    )


_MY_INVITATIONS_SQL = compile_sql(
    select_columns(*INVITATION_COLUMNS)
    .where(func.lower(_INVITATION.email) == func.lower(bindparam("email")), _INVITATION.expires_at > _NOW)
    .order_by(_INVITATION.created_at.desc(), _INVITATION.id),
    constants=False,
)
_MAX_INVITATIONS_LISTED = 100


async def my_invitations(ctx: Context) -> list[InvitationRecord]:
    """The pending invitations to the viewer's address, newest first."""
    viewer = ctx.require_viewer()
    user = await ctx.loaders.users.load(viewer.user_id)
    if user is None:
        return []
    rows = await ctx.reads.primary.fetch(_MY_INVITATIONS_SQL, {"email": user.email, "now": ctx.now()})
    return [InvitationRecord.of(row) for row in rows[:_MAX_INVITATIONS_LISTED]]


async def get_invitation(ctx: Context, invitation_id: uuid.UUID) -> InvitationRecord | None:
    """An invitation, to the project's OWNER, its invitee, or an admin."""
    viewer = ctx.require_viewer()
    rows = await ctx.reads.primary.fetch(_INVITATION_SQL, {"id": invitation_id})
    if not rows:
        return None
    invitation = InvitationRecord.of(rows[0])
    if viewer.is_admin or await project_role(ctx, viewer, invitation.project_id) is ProjectRole.OWNER:
        return invitation
    user = await ctx.loaders.users.load(viewer.user_id)
    if (
        user is not None
        and user.email.lower() == invitation.email.lower()
        and invitation.expires_at > ctx.now()
    ):
        return invitation
    return None


_INVITATION_SQL = compile_sql(
    select_columns(*INVITATION_COLUMNS).where(_INVITATION.id == bindparam("id", type_=Uuid()))
)


async def get_project(ctx: Context, project_id: uuid.UUID) -> ProjectRecord:
    return await visible_project(ctx, ctx.require_viewer(), project_id)


async def invitation_project(ctx: Context, project_id: uuid.UUID) -> ProjectRecord:
    """The project an invitation (already shown to the viewer) is to: its name and description."""
    project = await ctx.loaders.projects.load(project_id)
    if project is None:
        raise NotFound.for_id("Project", encode_id("Project", project_id))
    return project


# -- Invitations


def _invited_role(role: ProjectRole) -> ProjectRole:
    if role is ProjectRole.OWNER:
        raise BadUserInput(
            "role: invite as EDITOR or VIEWER; a project has one OWNER (hand it over with "
            "setProjectMemberRole once they are a member).",
            field="role",
        )
    return role


async def invite(ctx: Context, *, project_id: uuid.UUID, email: str, role: ProjectRole) -> InvitationRecord:
    """Invite an address (renewing a pending invitation to it). The answer, and everything the caller can
    observe, is the same whether or not the address has an account."""
    viewer = ctx.require_viewer()
    address = _address(email)
    granted = _invited_role(role)
    project = await managed_project(ctx, viewer, project_id)
    now = ctx.now()
    async with ctx.transaction() as db:
        members = await _members_locked(db, project_id)
        _check_manager(viewer, members)
        invitee = (
            await db.exec(select(col(User.id), col(User.name)).where(func.lower(col(User.email)) == address))
        ).first()
        if invitee is not None and invitee[0] in members:
            # Only the OWNER asks, who sees every member's address anyway: this tells nothing new.
            raise BadUserInput(
                "email: this address belongs to a member of the project already.", field="email"
            )
        values = {
            "id": uuid.uuid4(), "project_id": project_id, "email": address, "role": granted,
            "invited_by_id": viewer.user_id, "created_at": now,
            "expires_at": now + timedelta(days=INVITATION_DAYS),
        }  # fmt: skip
        inserting = insert(ProjectInvitation).values(**values)
        renewed = {
            key: inserting.excluded[key] for key in ("role", "invited_by_id", "created_at", "expires_at")
        }
        statement = inserting.on_conflict_do_update(
            constraint="project_invitations_project_id_email_key", set_=renewed
        ).returning(*INVITATION_COLUMNS)
        invitation = InvitationRecord.of((await run(db, statement, {})).one())
        await jobs.enqueue(db, MailJob("project_invitation", to=address, invitation_id=str(invitation.id)))
        tags = list(cache_tags.seen_by(members))
        if invitee is not None:
            tags.append(cache_tags.tasks_of(invitee[0]))  # their myInvitations
            await notify(
                db,
                invitee[0],
                NotificationKind.PROJECT_INVITATION,
                title=f"Invitation to {project.name}"[:300],
                body=f"You are invited to the project \u201c{project.name}\u201d as {granted.value}.",
                dedupe_key=f"invitation:{invitation.id}:{now.isoformat()}",
            )
        await ctx.record(db, tags)
    return invitation


def _address(email: str) -> str:
    address: str = validate_argument(Email, email, argument="email")
    return address


async def _invitation_for_viewer(
    db: AsyncSession, ctx: Context, viewer: Viewer, invitation_id: uuid.UUID, *, verified: bool
) -> tuple[ProjectInvitation, User]:
    invitation = await db.get(ProjectInvitation, invitation_id, with_for_update=True)
    user = await db.get(User, viewer.user_id)
    if invitation is None or user is None or user.email.lower() != invitation.email.lower():
        raise NotFound.for_id("ProjectInvitation", encode_id("ProjectInvitation", invitation_id))
    if invitation.expires_at <= ctx.now():
        raise BadUserInput(
            "id: the invitation has expired: ask the project's OWNER for a new one.", field="id"
        )
    if verified and user.email_verified_at is None:
        raise EmailNotVerified("Verify your email address first: only its verified owner may accept.")
    return invitation, user


async def accept_invitation(ctx: Context, *, invitation_id: uuid.UUID) -> ProjectRecord:
    viewer = ctx.require_viewer()
    async with ctx.transaction() as db:
        found = await db.get(ProjectInvitation, invitation_id)
        if found is None:
            raise NotFound.for_id("ProjectInvitation", encode_id("ProjectInvitation", invitation_id))
        members = await _members_locked(db, found.project_id)
        invitation, _ = await _invitation_for_viewer(db, ctx, viewer, invitation_id, verified=True)
        if viewer.user_id not in members:
            db.add(
                ProjectMember(
                    project_id=invitation.project_id,
                    user_id=viewer.user_id,
                    role=invitation.role,
                    added_at=ctx.now(),
                )
            )
        project_id = invitation.project_id
        await db.delete(invitation)  # single use
        await ctx.record(db, cache_tags.seen_by([*members, viewer.user_id]))
    ctx.loaders.forget_memberships()
    project = await ctx.loaders.projects.load(project_id)
    if project is None:
        raise NotFound.for_id("Project", encode_id("Project", project_id))
    return project


async def decline_invitation(ctx: Context, *, invitation_id: uuid.UUID) -> bool:
    viewer = ctx.require_viewer()
    async with ctx.transaction() as db:
        invitation, _ = await _invitation_for_viewer(db, ctx, viewer, invitation_id, verified=False)
        members = await members_of(db, invitation.project_id)
        await db.delete(invitation)
        await ctx.record(db, cache_tags.seen_by([*members, viewer.user_id]))
    return True


async def revoke_invitation(ctx: Context, *, invitation_id: uuid.UUID) -> bool:
    viewer = ctx.require_viewer()
    invitation = await get_invitation(ctx, invitation_id)
    if invitation is None:
        raise NotFound.for_id("ProjectInvitation", encode_id("ProjectInvitation", invitation_id))
    if not (viewer.is_admin or await project_role(ctx, viewer, invitation.project_id) is ProjectRole.OWNER):
        # The invitee sees it (and may decline it), but only the project's OWNER withdraws it.
        raise Forbidden("Only the project's OWNER may revoke an invitation: decline it instead.")
    async with ctx.transaction() as db:
        members = await _members_locked(db, invitation.project_id)
        _check_manager(viewer, members)
        invitee = (
            await db.exec(select(col(User.id)).where(func.lower(col(User.email)) == invitation.email.lower()))
        ).first()
        await db.exec(delete(ProjectInvitation).where(col(ProjectInvitation.id) == invitation_id))
        await ctx.record(db, cache_tags.seen_by([*members, *([invitee] if invitee else [])]))
    return True


# -- Members


async def set_member_role(
    ctx: Context, *, project_id: uuid.UUID, user_id: uuid.UUID, role: ProjectRole
) -> MemberRecord:
    """Change a member's role; making one the OWNER hands ownership over (the OWNER before becomes an
    EDITOR)."""
    viewer = ctx.require_viewer()
    await managed_project(ctx, viewer, project_id)
    async with ctx.transaction() as db:
        members = await _members_locked(db, project_id)
        _check_manager(viewer, members)
        current = members.get(user_id)
        if current is None:
            raise NotFound.for_id("User", encode_id("User", user_id))
        if current is ProjectRole.OWNER and role is not ProjectRole.OWNER:
            raise BadUserInput(
                "role: a project always has one OWNER: make another member the OWNER instead.", field="role"
            )
        if role is ProjectRole.OWNER and current is not ProjectRole.OWNER:
            owner = next(member for member, held in members.items() if held is ProjectRole.OWNER)
            await _set_role(db, project_id, owner, ProjectRole.EDITOR)  # first: one OWNER at a time
        await _set_role(db, project_id, user_id, role)
        added = (
            await db.exec(
                select(col(ProjectMember.added_at)).where(
                    col(ProjectMember.project_id) == project_id, col(ProjectMember.user_id) == user_id
                )
            )
        ).one()
        await ctx.record(db, cache_tags.seen_by(members))
    ctx.loaders.forget_memberships()
    return MemberRecord(project_id, user_id, role, added)


async def _set_role(db: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID, role: ProjectRole) -> None:
    await db.exec(
        update(ProjectMember)
        .where(col(ProjectMember.project_id) == project_id, col(ProjectMember.user_id) == user_id)
        .values(role=role)
    )


# The removed member's pending webhook deliveries of the project's tasks: not sent.
_FORGET_DELIVERIES = text(
    """
DELETE FROM webhook_deliveries AS d USING webhooks AS w
WHERE d.webhook_id = w.id AND w.owner_id = :user_id AND d.status IN ('pending', 'retrying')
  AND d.payload -> 'data' ->> 'projectId' = :project
"""
)


async def remove_member(ctx: Context, *, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """The OWNER (or an admin) removes a member; any member may leave. Access ends with the COMMIT: their
    cached answers are invalidated, their sockets get no more of the project's events, their webhooks'
    pending deliveries of it are dropped, and the tasks assigned to them are unassigned."""
    viewer = ctx.require_viewer()
    leaving = user_id == viewer.user_id
    if leaving:
        await visible_project(ctx, viewer, project_id)
    else:
        await managed_project(ctx, viewer, project_id)
    now = ctx.now()
    async with ctx.transaction() as db:
        members = await _members_locked(db, project_id)
        if not leaving:
            _check_manager(viewer, members)
        role = members.get(user_id)
        if role is None:
            raise NotFound.for_id("User", encode_id("User", user_id))
        if role is ProjectRole.OWNER:
            raise BadUserInput(
                "userId: the OWNER cannot leave or be removed: hand ownership over first "
                "(setProjectMemberRole).",
                field="userId",
            )
        await db.exec(
            delete(ProjectMember).where(
                col(ProjectMember.project_id) == project_id, col(ProjectMember.user_id) == user_id
            )
        )
        remaining = {member: held for member, held in members.items() if member != user_id}
        await run(db, _FORGET_DELIVERIES, {"user_id": user_id, "project": encode_id("Project", project_id)})
        await ctx.record(db, cache_tags.seen_by(members))
        for drafts in await _unassign(db, project_id, user_id, viewer.user_id, remaining, now):
            await ctx.record(db, (), drafts)
    ctx.loaders.forget_memberships()
    return True


async def _unassign(
    db: AsyncSession,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    actor_id: uuid.UUID,
    remaining: Members,
    now: datetime,
) -> list[list[EventDraft]]:
    tasks = (
        await db.exec(
            select(Task)
            .where(col(Task.project_id) == project_id, col(Task.assignee_id) == user_id)
            .with_for_update()
        )
    ).all()
    drafts: list[list[EventDraft]] = []  # one write's each
    seen = frozenset(remaining)
    for task in tasks:
        task.assignee_id = None
        task.updated_at = now
        db.add(task)
        change = {"field": "assignee", "from": encode_id("User", user_id), "to": None}
        await db.flush()
        await log(db, task.id, actor_id, ActivityKind.ASSIGNED, [change], now)
        drafts.append(drafts_for_write(TaskEventKind.UPDATED, task.id, TaskRecord.of(task), seen, seen))
    return drafts


async def owned_shared_projects(db: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The projects ``user_id`` owns that have other members (their account cannot go before they hand
    them over)."""
    others = select_columns(_MEMBER.project_id).where(_MEMBER.user_id != user_id)
    found = await db.exec(
        select(col(ProjectMember.project_id)).where(
            col(ProjectMember.user_id) == user_id,
            col(ProjectMember.role) == ProjectRole.OWNER,
            col(ProjectMember.project_id).in_(others),
        )
    )
    return list(found.all())


async def delete_sole_projects(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete the projects ``user_id`` is the only member of (with their tasks)."""
    theirs = select_columns(_MEMBER.project_id).where(_MEMBER.user_id == user_id)
    shared = select_columns(_MEMBER.project_id).where(_MEMBER.user_id != user_id)
    await db.exec(delete(Project).where(col(Project.id).in_(theirs), col(Project.id).not_in(shared)))


# The project tasks a leaving account owns become their project's OWNER's (a project keeps its tasks).
_HAND_OVER = text(
    """
UPDATE tasks AS t SET owner_id = m.user_id
FROM project_members AS m
WHERE t.owner_id = :user_id AND t.project_id IS NOT NULL AND m.project_id = t.project_id AND m.role = 'OWNER'
  AND m.user_id <> :user_id
"""
)


async def hand_over_tasks(db: AsyncSession, user_id: uuid.UUID) -> None:
    await run(db, _HAND_OVER, {"user_id": user_id})
