"""Statistics over tasks: per owner (batched by a dataloader) and global."""

from __future__ import annotations

import uuid
from asyncio import Future
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Uuid, any_, bindparam, exists, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from core.reader import Reader
from core.sql import compile_sql
from models import ProjectMember, Task, TaskPriority, TaskStatus
from resolvers.visibility import visible_owner, visible_project

if TYPE_CHECKING:
    from resolvers.context import Context


@dataclass
class TaskStatsData:
    by_status: dict[TaskStatus, int] = field(default_factory=lambda: dict.fromkeys(TaskStatus, 0))
    by_priority: dict[TaskPriority, int] = field(default_factory=lambda: dict.fromkeys(TaskPriority, 0))
    overdue: int = 0
    # When the next open task falls due: ``overdue`` changes then by itself, with no write.
    next_due_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def completion_rate(self) -> float:
        return self.by_status[TaskStatus.DONE] / self.total if self.total else 0.0

    @classmethod
    def of(cls, row: Sequence[Any]) -> TaskStatsData:
        """From a row of ``_stats_query``: the count per status, then per priority, overdue, next due."""
        statuses, priorities = len(STATUSES), len(PRIORITIES)
        return cls(
            dict(zip(STATUSES, row[:statuses], strict=True)),
            dict(zip(PRIORITIES, row[statuses : statuses + priorities], strict=True)),
            row[statuses + priorities],
            row[statuses + priorities + 1],
        )


STATUSES, PRIORITIES = tuple(TaskStatus), tuple(TaskPriority)


def _stats_query() -> Any:
    """One row of counts (per status, per priority, overdue) and the next due date: aggregated in
    PostgreSQL, so that a page of 50 owners is 50 rows, not one per owner, status and priority."""
    is_open = col(Task.status) != TaskStatus.DONE
    return select(
        *(func.count().filter(col(Task.status) == status) for status in STATUSES),
        *(func.count().filter(col(Task.priority) == priority) for priority in PRIORITIES),
        func.count().filter(col(Task.due_at) < func.now(), is_open),
        func.min(col(Task.due_at)).filter(col(Task.due_at) >= func.now(), is_open),
    )


GLOBAL_STATS = compile_sql(_stats_query())
# One statement for any number of owners (one array parameter: the same text, prepared once).
_MEMBER = ProjectMember.__table__.c  # type: ignore[attr-defined]
# The tasks an owner still sees: personal ones, and those of the projects they are a member of (not those
# of a project they left, whose writes no longer concern them: core.cache_tags).
_STILL_SEEN = or_(
    col(Task.project_id).is_(None),
    exists().where(_MEMBER.project_id == col(Task.project_id), _MEMBER.user_id == col(Task.owner_id)),
)
STATS_BY_OWNER = compile_sql(
    _stats_query()
    .add_columns(col(Task.owner_id))
    .where(col(Task.owner_id) == any_(bindparam("owners", type_=ARRAY(Uuid()))), _STILL_SEEN)
    .group_by(col(Task.owner_id))
)


STATS_BY_PROJECT = compile_sql(
    _stats_query()
    .add_columns(col(Task.project_id))
    .where(col(Task.project_id) == any_(bindparam("projects", type_=ARRAY(Uuid()))))
    .group_by(col(Task.project_id))
)


async def load_stats_by_project(reader: Reader, project_ids: Sequence[uuid.UUID]) -> list[TaskStatsData]:
    found = {
        row[-1]: TaskStatsData.of(row)
        for row in await reader.fetch(STATS_BY_PROJECT, {"projects": project_ids})
    }
    return [found.get(project_id) or TaskStatsData() for project_id in project_ids]


async def load_stats_by_owner(reader: Reader, owner_ids: Sequence[uuid.UUID]) -> list[TaskStatsData]:
    found = {
        row[-1]: TaskStatsData.of(row) for row in await reader.fetch(STATS_BY_OWNER, {"owners": owner_ids})
    }
    return [found.get(owner_id) or TaskStatsData() for owner_id in owner_ids]


def loaded_task_stats(ctx: Context, *, owner_id: uuid.UUID) -> TaskStatsData | None:
    """``task_stats(ctx, owner_id=owner_id)`` when it needs no waiting: the owner visible to the viewer, and
    both the owner and their statistics loaded already (a list of tasks loads its owners' at once); None
    otherwise, for ``task_stats`` to answer (and raise what it raises)."""
    if not ctx.require_viewer().can_see_owner(owner_id):
        return None
    user, loaded = ctx.loaders.users.load(owner_id), ctx.loaders.stats.load(owner_id)
    if not (_ready(user) and _ready(loaded)) or user.result() is None:  # None: task_stats says NOT_FOUND
        return None
    stats = loaded.result()
    if stats.next_due_at is not None:
        ctx.caching.holds_until(stats.next_due_at)
    return stats


def _ready(loaded: Future[Any]) -> bool:
    return loaded.done() and not loaded.cancelled() and loaded.exception() is None


async def task_stats(ctx: Context, *, owner_id: uuid.UUID | None) -> TaskStatsData:
    """The viewer's own stats; an admin's global stats, or one owner's with ``owner_id``. For anyone
    else, another owner's stats are ``NOT_FOUND``, exactly like a missing user's."""
    viewer = ctx.require_viewer()
    if owner_id is None and viewer.is_admin:
        stats = TaskStatsData.of((await ctx.reader.fetch(GLOBAL_STATS))[0])
    else:
        owner = viewer.user_id if owner_id is None else await visible_owner(ctx, viewer, owner_id)
        stats = await ctx.loaders.stats.load(owner)
    if stats.next_due_at is not None:
        ctx.caching.holds_until(stats.next_due_at)
    return stats


async def project_task_stats(ctx: Context, *, project_id: uuid.UUID) -> TaskStatsData:
    """A project's statistics, for its members and admins (NOT_FOUND for anyone else)."""
    await visible_project(ctx, ctx.require_viewer(), project_id)
    stats = await ctx.loaders.project_stats.load(project_id)
    if stats.next_due_at is not None:
        ctx.caching.holds_until(stats.next_due_at)
    return stats
