"""Who may see and change what.

A personal task (no project) is its owner's alone; a project's task is every member's: VIEWERs read and
comment, EDITORs and the OWNER also change it. Users see one another as co-members only (id and name; the
email to the OWNER of a project they share). An admin sees and changes everything. Anything a viewer may not
see is NOT_FOUND, exactly as something that does not exist, so that no answer tells another user's data
apart from a missing one; something seen but not changeable is FORBIDDEN.

Reads take the viewer's roles from a per-request loader (one statement, read again by every request, so a
removal counts at once). Writes to a project's tasks take the roles from the members they read, locked, in
their own transaction (``resolvers.audiences``): a role changed concurrently cannot slip between the check
and the write.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from core.errors import Forbidden, NotFound
from core.ids import encode_id
from models import ProjectRole, TaskRecord

if TYPE_CHECKING:
    from auth.viewer import Viewer
    from models import ProjectRecord, UserRecord
    from resolvers.context import Context
    from resolvers.loaders import Roles


class Access(Enum):
    READ = 1  # see, comment
    WRITE = 2  # also change, assign, delete


def task_access(viewer: Viewer, task: TaskRecord, roles: Roles) -> Access | None:
    """What the viewer may do with ``task``, given the viewer's project roles."""
    if viewer.is_admin:
        return Access.WRITE
    if task.project_id is None:
        return Access.WRITE if task.owner_id == viewer.user_id else None
    role = roles.get(task.project_id)
    if role is None:
        return None
    return Access.WRITE if role.at_least(ProjectRole.EDITOR) else Access.READ


async def roles_of(ctx: Context, viewer: Viewer) -> Roles:
    return await ctx.loaders.roles.load(viewer.user_id)


async def can_see_task(ctx: Context, viewer: Viewer, task: TaskRecord) -> bool:
    if viewer.is_admin or (task.project_id is None and task.owner_id == viewer.user_id):
        return True  # no need to read the roles
    return task.project_id is not None and task.project_id in await roles_of(ctx, viewer)


async def visible_task(ctx: Context, viewer: Viewer, task_id: uuid.UUID) -> TaskRecord:
    task = await ctx.loaders.tasks.load(task_id)
    if task is None or not await can_see_task(ctx, viewer, task):
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    return task


async def project_role(ctx: Context, viewer: Viewer, project_id: uuid.UUID) -> ProjectRole | None:
    return (await roles_of(ctx, viewer)).get(project_id)


async def visible_project(ctx: Context, viewer: Viewer, project_id: uuid.UUID) -> ProjectRecord:
    """The project, if the viewer is a member (or an admin). NOT_FOUND otherwise, worded exactly as for an
    ID of another type (``schema.types.inputs.typed_key``), whichever argument carried it."""
    project = await ctx.loaders.projects.load(project_id)
    if project is None or not (viewer.is_admin or await project_role(ctx, viewer, project_id) is not None):
        raise NotFound.for_id("Project", encode_id("Project", project_id))
    return project


async def managed_project(ctx: Context, viewer: Viewer, project_id: uuid.UUID) -> ProjectRecord:
    """The project, if the viewer may manage it (its OWNER, or an admin); FORBIDDEN for another member."""
    project = await visible_project(ctx, viewer, project_id)
    if not viewer.is_admin and await project_role(ctx, viewer, project_id) is not ProjectRole.OWNER:
        raise Forbidden("Only the project's OWNER may do this.", requiredRole=ProjectRole.OWNER.value)
    return project


async def can_see_user(ctx: Context, viewer: Viewer, user_id: uuid.UUID) -> bool:
    if viewer.can_see_owner(user_id):
        return True
    return user_id in await ctx.loaders.co_members.load(viewer.user_id)


async def visible_user(ctx: Context, viewer: Viewer, user_id: uuid.UUID) -> UserRecord:
    """The user, if the viewer is them, an admin, or shares a project with them."""
    user = await ctx.loaders.users.load(user_id) if await can_see_user(ctx, viewer, user_id) else None
    if user is None:
        raise NotFound.for_id("User", encode_id("User", user_id))
    return user


async def visible_owner(ctx: Context, viewer: Viewer, owner_id: uuid.UUID) -> uuid.UUID:
    """``owner_id``, if the viewer may see all of that owner's tasks (theirs, or an admin) and the owner
    exists."""
    user = await ctx.loaders.users.load(owner_id) if viewer.can_see_owner(owner_id) else None
    if user is None:
        raise NotFound.for_id("User", encode_id("User", owner_id))
    return user.id
