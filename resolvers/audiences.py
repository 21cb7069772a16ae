"""Who sees a task: the audience of its events, cache tags, webhooks and notifications.

A personal task is its owner's; a project's task, its members'. A write reads the members in its own
transaction after locking the project row FOR SHARE; a membership change locks it FOR NO KEY UPDATE. So a
write that began before a member was added or removed reaches the members as they were when it committed,
and a membership change waits for the writes in flight: no event or cache entry slips past a removal.
"""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Project, ProjectMember, ProjectRole, Task, TaskRecord

Members = dict[uuid.UUID, ProjectRole]  # user id -> role


async def lock_project(db: AsyncSession, project_id: uuid.UUID, *, exclusive: bool = False) -> bool:
    """Lock the project row for this transaction: shared by task writes, exclusive by membership changes
    (which also change the project's row: its members). False: the project does not exist."""
    statement = select(col(Project.id)).where(col(Project.id) == project_id)
    # FOR NO KEY UPDATE (exclusive) conflicts with FOR SHARE, but not with the FOR KEY SHARE that inserting a
    # task into the project takes for its foreign key.
    statement = (
        statement.with_for_update(key_share=True) if exclusive else statement.with_for_update(read=True)
    )
    return (await db.exec(statement)).first() is not None


async def members_of(db: AsyncSession, project_id: uuid.UUID) -> Members:
    """The project's members, read in ``db``'s transaction (lock the project first)."""
    found = await db.exec(
        select(col(ProjectMember.user_id), col(ProjectMember.role)).where(
            col(ProjectMember.project_id) == project_id
        )
    )
    return dict(found.all())


def audience(task: TaskRecord | None, members: Members) -> frozenset[uuid.UUID]:
    """Who sees ``task`` (None: nobody, it is gone), given its project's members."""
    if task is None:
        return frozenset()
    if task.project_id is None:
        return frozenset((task.owner_id,))
    return frozenset(members)


async def co_members(db: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone who shares a project with ``user_id`` (they see the user's name, the OWNERs the email)."""
    theirs = select(col(ProjectMember.project_id)).where(col(ProjectMember.user_id) == user_id)
    found = await db.exec(
        select(col(ProjectMember.user_id))
        .where(col(ProjectMember.project_id).in_(theirs), col(ProjectMember.user_id) != user_id)
        .distinct()
    )
    return list(found.all())


async def still_sees(db: AsyncSession, task: Task, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` may see ``task`` now (a job about a task checks it before telling anyone of it): a
    personal task's owner, or a member of its project."""
    if task.project_id is None:
        return task.owner_id == user_id
    found = await db.exec(
        select(col(ProjectMember.user_id)).where(
            col(ProjectMember.project_id) == task.project_id, col(ProjectMember.user_id) == user_id
        )
    )
    return found.first() is not None
