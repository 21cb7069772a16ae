"""Tasks: read one, list (filter, search, order, paginate), create, update, delete.

A user sees and changes only their own tasks; an admin, every task. Another user's task is reported
``NOT_FOUND``, exactly as a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Float, cast, delete, func, literal, literal_column, select
from sqlmodel import col

from core import cache_tags
from core.errors import BadUserInput, Forbidden, NotFound
from core.ids import encode_id
from models import TASK_COLUMNS, Task, TaskPriority, TaskRecord, TaskStatus, User
from models.task import SEARCH_COLUMN
from resolvers.events import TaskEventKind, drafts_for_write
from resolvers.inputs import TaskCreate, TaskPatch, TaskSearch, validate
from resolvers.pagination import (
    Listing,
    PageRequest,
    SortKey,
    enum_value,
    finite_float,
    from_iso,
    from_optional_iso,
    iso,
    keyset,
    make_page,
    text_value,
)
from resolvers.reads import fetch, scalar
from resolvers.visibility import visible_owner

if TYPE_CHECKING:
    from resolvers.context import Context

INFINITY: Any = literal_column("'infinity'::timestamptz")

MAX_SEARCH_WORDS = 10


class TaskOrderField(StrEnum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    DUE_AT = "DUE_AT"
    PRIORITY = "PRIORITY"
    TITLE = "TITLE"
    RELEVANCE = "RELEVANCE"


@dataclass(frozen=True, slots=True)
class TaskOrder:
    field: TaskOrderField = TaskOrderField.CREATED_AT
    descending: bool | None = None  # None: the field's natural direction (DEFAULT_DESCENDING)


def _timestamp_key(name: str, column: Any) -> SortKey:
    attribute = name.lower()
    return SortKey(name, column, lambda task: getattr(task, attribute), from_json=from_iso, to_json=iso)


SORT_KEYS: dict[TaskOrderField, SortKey] = {
    TaskOrderField.CREATED_AT: _timestamp_key("CREATED_AT", col(Task.created_at)),
    TaskOrderField.UPDATED_AT: _timestamp_key("UPDATED_AT", col(Task.updated_at)),
    TaskOrderField.DUE_AT: SortKey(
        "DUE_AT",
        func.coalesce(col(Task.due_at), INFINITY),  # the expression of the tasks_*_due_at_idx indexes
        lambda task: task.due_at,
        from_json=from_optional_iso,
        to_json=iso,
        bind=lambda value: func.coalesce(literal(value, type_=DateTime(timezone=True)), INFINITY),
    ),
    TaskOrderField.PRIORITY: SortKey(
        "PRIORITY", col(Task.priority), lambda task: task.priority, from_json=TaskPriority, to_json=enum_value
    ),
    TaskOrderField.TITLE: SortKey("TITLE", col(Task.title), lambda task: task.title, from_json=text_value),
}
# Descending unless the field reads better ascending (due soonest first, titles A to Z).
DEFAULT_DESCENDING = {
    TaskOrderField.CREATED_AT: True,
    TaskOrderField.UPDATED_AT: True,
    TaskOrderField.DUE_AT: False,
    TaskOrderField.PRIORITY: True,
    TaskOrderField.TITLE: False,
    TaskOrderField.RELEVANCE: True,
}


def _ts_query(text: str) -> Any:
    """Every word of ``text`` must match a word of the task, or the start of one (``word:*``)."""
    # Words are runs of letters and decimal digits; anything else separates them, as PostgreSQL's parser
    # does ("H₂O" is the words "h" and "o", "foo_bar" is "foo" and "bar"): no empty or phrase query.
    words = "".join(c if c.isalpha() or c.isdecimal() else " " for c in text.lower()).split()[
        :MAX_SEARCH_WORDS
    ]
    if not words:
        raise BadUserInput("filter.search: must contain at least one word.", field="filter.search")
    return func.to_tsquery(literal_column("'simple'::regconfig"), " & ".join(f"{word}:*" for word in words))


def _relevance_key(query: Any, ranks: dict[uuid.UUID, float]) -> SortKey:
    rank = cast(func.ts_rank_cd(SEARCH_COLUMN, query), Float(precision=53))
    return SortKey("RELEVANCE", rank, lambda task: ranks[task.id], from_json=finite_float)


async def get_task(ctx: Context, *, task_id: uuid.UUID) -> TaskRecord:
    viewer = ctx.require_viewer()
    task = await ctx.loaders.tasks.load(task_id)
    if task is None or not viewer.can_see_owner(task.owner_id):
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    return task


async def list_tasks(
    ctx: Context,
    *,
    page: PageRequest,
    filters: Mapping[str, Any],
    owner_id: uuid.UUID | None = None,
    order: TaskOrder | None = None,
) -> Listing[TaskRecord]:
    viewer = ctx.require_viewer()
    criteria = validate(TaskSearch, filters, argument="filter")
    where: list[Any] = []
    if owner_id is not None:
        where.append(col(Task.owner_id) == await visible_owner(ctx, viewer, owner_id))
    elif not viewer.is_admin:
        where.append(col(Task.owner_id) == viewer.user_id)
    if criteria.status:
        where.append(col(Task.status).in_(criteria.status))
    if criteria.priority:
        where.append(col(Task.priority).in_(criteria.priority))
    if criteria.tags:
        where.append(col(Task.tags).contains(sorted(set(criteria.tags))))
    if criteria.due_before is not None:
        where.append(col(Task.due_at) < criteria.due_before)
    if criteria.due_after is not None:
        where.append(col(Task.due_at) >= criteria.due_after)
    ranks: dict[uuid.UUID, float] = {}
    query = _ts_query(criteria.search) if criteria.search is not None else None
    if query is not None:
        where.append(SEARCH_COLUMN.op("@@")(query))
    # Searching without an explicit order ranks by relevance (best first).
    order = order or TaskOrder(TaskOrderField.RELEVANCE if query is not None else TaskOrderField.CREATED_AT)
    if order.field is TaskOrderField.RELEVANCE:
        if query is None:
            raise BadUserInput("orderBy.field: RELEVANCE needs filter.search.", field="orderBy.field")
        key = _relevance_key(query, ranks)
    else:
        key = SORT_KEYS[order.field]
    descending = DEFAULT_DESCENDING[order.field] if order.descending is None else order.descending
    window = keyset(key, col(Task.id), page, descending=descending, query=criteria.search or "")

    def page_of(statement: Any) -> Any:
        return statement.where(*where, *window.where).order_by(*window.order_by).limit(window.limit + 1)

    if key.name == TaskOrderField.RELEVANCE:
        ranked = await fetch(ctx.engine, page_of(select(*TASK_COLUMNS, key.expression)))
        rows = [TaskRecord.from_row(row[:-1]) for row in ranked]
        ranks.update((task.id, row[-1]) for task, row in zip(rows, ranked, strict=True))
    else:
        rows = [TaskRecord.from_row(row) for row in await fetch(ctx.engine, page_of(select(*TASK_COLUMNS)))]
    for task in rows:
        ctx.loaders.tasks.prime(task.id, task)
    count_query = select(func.count()).select_from(Task).where(*where)
    return Listing(make_page(rows, key, page, window), lambda: scalar(ctx.engine, count_query))


async def create_task(ctx: Context, *, values: Mapping[str, Any]) -> TaskRecord:
    viewer = ctx.require_viewer()
    data = validate(TaskCreate, values, argument="input")
    now = ctx.now()
    task = Task(
        owner_id=viewer.user_id,
        title=data.title,
        description=data.description,
        status=data.status,
        priority=data.priority,
        due_at=data.due_at,
        tags=list(dict.fromkeys(data.tags)),
        created_at=now,
        updated_at=now,
        completed_at=now if data.status is TaskStatus.DONE else None,
    )
    async with ctx.sessions() as db, db.begin():
        db.add(task)
    ctx.invalidate(*cache_tags.task_changed(task.owner_id))
    record = TaskRecord.of(task)
    ctx.tell(drafts_for_write(TaskEventKind.CREATED, task.id, record, task.owner_id, task.owner_id))
    ctx.loaders.tasks.prime(task.id, record)
    ctx.loaders.forget_owner(task.owner_id)
    return record


async def update_task(
    ctx: Context, *, task_id: uuid.UUID, values: Mapping[str, Any], new_owner_id: uuid.UUID | None = None
) -> TaskRecord:
    viewer = ctx.require_viewer()
    patch = validate(TaskPatch, values, argument="input")
    if new_owner_id is not None and new_owner_id != viewer.user_id and not viewer.is_admin:
        raise Forbidden("Only an admin may give a task to another user.", field="input.ownerId")
    now = ctx.now()
    async with ctx.sessions() as db, db.begin():
        task = await db.get(Task, task_id, with_for_update=True)
        if task is None or not viewer.can_see_owner(task.owner_id):
            raise NotFound.for_id("Task", encode_id("Task", task_id))
        previous_owner = task.owner_id
        if new_owner_id is not None and new_owner_id != task.owner_id:
            # Checked in this transaction (FOR KEY SHARE, as the foreign key would), so the new owner cannot
            # vanish before commit.
            if await db.get(User, new_owner_id, with_for_update={"key_share": True}) is None:
                raise NotFound.for_id("User", encode_id("User", new_owner_id))
            task.owner_id = new_owner_id
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if name in {"title", "status", "priority", "tags"} and value is None:
                raise BadUserInput(f"input.{name}: cannot be null.", field=f"input.{name}")
            setattr(task, name, list(dict.fromkeys(value)) if name == "tags" else value)
        if "status" in patch.model_fields_set:
            if task.status is TaskStatus.DONE and task.completed_at is None:
                task.completed_at = now
            elif task.status is not TaskStatus.DONE:
                task.completed_at = None
        task.updated_at = now
        db.add(task)
    ctx.invalidate(*cache_tags.task_changed(previous_owner), *cache_tags.task_changed(task.owner_id))
    record = TaskRecord.of(task)
    ctx.tell(drafts_for_write(TaskEventKind.UPDATED, task_id, record, task.owner_id, previous_owner))
    ctx.loaders.tasks.clear(task_id).prime(task_id, record)
    ctx.loaders.forget_owner(previous_owner)
    ctx.loaders.forget_owner(task.owner_id)
    return record


async def delete_task(ctx: Context, *, task_id: uuid.UUID) -> uuid.UUID:
    viewer = ctx.require_viewer()
    statement = delete(Task).where(col(Task.id) == task_id).returning(col(Task.owner_id))
    if not viewer.is_admin:
        statement = statement.where(col(Task.owner_id) == viewer.user_id)
    async with ctx.sessions() as db, db.begin():
        owner_id = (await db.exec(statement)).scalar_one_or_none()
    if owner_id is None:
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    ctx.invalidate(*cache_tags.task_changed(owner_id))
    ctx.tell(drafts_for_write(TaskEventKind.DELETED, task_id, None, owner_id, owner_id))
    ctx.loaders.tasks.clear(task_id)
    ctx.loaders.forget_owner(owner_id)
    return task_id
