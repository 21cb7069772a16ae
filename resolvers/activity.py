"""A task's activity history: one entry per change, written in the change's transaction, never edited (the
table refuses updates), shown newest first to whoever may see the task."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Uuid, bindparam, func, insert
from sqlalchemy import select as select_columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import TaskActivity, TaskRecord
from resolvers.pagination import Listing, PageRequest, SortKey, keyset, page_sql, read_page
from resolvers.visibility import visible_task

if TYPE_CHECKING:
    from resolvers.context import Context


class ActivityKind:
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    ASSIGNED = "ASSIGNED"  # only the assignee changed
    MOVED = "MOVED"  # to another project, into one, or out of one (other fields may change with it)
    COMMENT_ADDED = "COMMENT_ADDED"
    COMMENT_UPDATED = "COMMENT_UPDATED"
    COMMENT_DELETED = "COMMENT_DELETED"


# The fields whose changes are kept, by their API names; IDs as global IDs.
_TRACKED: dict[str, tuple[str, str | None]] = {
    "title": ("title", None),
    "description": ("description", None),
    "status": ("status", None),
    "priority": ("priority", None),
    "due_at": ("dueAt", None),
    "tags": ("tags", None),
    "owner_id": ("owner", "User"),
    "project_id": ("project", "Project"),
    "assignee_id": ("assignee", "User"),
}


def _text(value: Any, type_name: str | None) -> str | None:
    if value is None:
        return None
    if type_name is not None:
        return encode_id(type_name, value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def changes_of(before: TaskRecord | None, after: TaskRecord) -> list[dict[str, str | None]]:
    """Each tracked field that differs, with its old and new value as text (all set fields on creation)."""
    changes = []
    for name, (field, type_name) in _TRACKED.items():
        old = getattr(before, name) if before is not None else None
        new = getattr(after, name)
        if old != new and not (before is None and new in (None, [])):
            changes.append({"field": field, "from": _text(old, type_name), "to": _text(new, type_name)})
    return changes


def kind_of(before: TaskRecord | None, changes: Sequence[dict[str, str | None]]) -> str:
    fields = {change["field"] for change in changes}
    if before is None:
        return ActivityKind.CREATED
    if "project" in fields:
        return ActivityKind.MOVED
    if fields == {"assignee"}:
        return ActivityKind.ASSIGNED
    return ActivityKind.UPDATED


async def log(
    db: AsyncSession,
    task_id: uuid.UUID,
    actor_id: uuid.UUID,
    kind: str,
    changes: Sequence[dict[str, str | None]],
    at: datetime,
) -> None:
    """Add one entry, in ``db``'s transaction (the change's own)."""
    values = {"id": uuid.uuid4(), "task_id": task_id, "actor_id": actor_id, "kind": kind, "at": at}
    await db.exec(insert(TaskActivity).values(**values, changes=list(changes)))


async def log_task_write(
    db: AsyncSession, before: TaskRecord | None, after: TaskRecord, actor_id: uuid.UUID, at: datetime
) -> None:
    """A task created or changed: its entry (none if nothing tracked changed)."""
    changes = changes_of(before, after)
    if changes or before is None:
        await log(db, after.id, actor_id, kind_of(before, changes), changes, at)


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    id: uuid.UUID
    seq: int
    at: datetime
    actor_id: uuid.UUID | None
    kind: str
    changes: list[dict[str, str | None]]


ACTIVITY_ORDER = SortKey("ACTIVITY_SEQ", col(TaskActivity.seq), lambda entry: entry.seq, from_json=int)
_COLUMNS = (
    col(TaskActivity.id), col(TaskActivity.seq), col(TaskActivity.at), col(TaskActivity.actor_id),
    col(TaskActivity.kind), col(TaskActivity.changes),
)  # fmt: skip
_TASK = bindparam("task_id", type_=Uuid())


@functools.cache  # bounded: 2 x 2
def _page_sql(walk_descending: bool, cursor: bool) -> Sql:
    where = [col(TaskActivity.task_id) == _TASK]
    return page_sql(
        ACTIVITY_ORDER, col(TaskActivity.id), _COLUMNS, where, walk_descending=walk_descending, cursor=cursor
    )


_COUNT_SQL = compile_sql(
    select_columns(func.count()).select_from(TaskActivity).where(col(TaskActivity.task_id) == _TASK),
    constants=False,
)


def _record(row: Sequence[Any]) -> ActivityRecord:
    entry_id, seq, at, actor_id, kind, changes = row
    return ActivityRecord(entry_id, seq, at, actor_id, kind, _json(changes))


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def list_activity(ctx: Context, *, task_id: uuid.UUID, page: PageRequest) -> Listing[ActivityRecord]:
    """The task's history, newest first (the task visible to the viewer, else NOT_FOUND)."""
    await visible_task(ctx, ctx.require_viewer(), task_id)
    window = keyset(ACTIVITY_ORDER, page, descending=True)
    sql = _page_sql(window.walk_descending, window.cursor is not None)
    return await read_page(
        ctx.reader, ACTIVITY_ORDER, page, window, sql, _COUNT_SQL, {"task_id": task_id}, _record
    )
