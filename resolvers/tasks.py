"""Tasks: read one, list (filter, search, order, paginate), create, update, delete.

A user sees and changes only their own tasks; an admin, every task. Another user's task is reported
``NOT_FOUND``, exactly as a missing one.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Float,
    Text,
    Uuid,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from core import cache_tags
from core.errors import BadUserInput, Forbidden, NotFound
from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import TASK_COLUMNS, Task, TaskPriority, TaskRecord, TaskStatus, User
from models.task import SEARCH_COLUMN
from resolvers.events import TaskEventKind, drafts_for_write
from resolvers.inputs import TaskCreate, TaskPatch, TaskSearch, validate
from resolvers.notifications import schedule_reminder
from resolvers.pagination import (
    LIMIT,
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
    page_clauses,
    text_value,
)
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
        bind=lambda parameter: func.coalesce(parameter, INFINITY),
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

# The search's tsquery text is one parameter, used by the filter and by the rank.
TS_QUERY: Any = func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("search", type_=Text()))
RANK: Any = cast(func.ts_rank_cd(SEARCH_COLUMN, TS_QUERY), Float(precision=53))


def _ts_query(text: str) -> str:
    """Every word of ``text`` must match a word of the task, or the start of one (``word:*``)."""
    # Words are runs of letters and decimal digits; anything else separates them, as PostgreSQL's parser
    # does ("H₂O" is the words "h" and "o", "foo_bar" is "foo" and "bar"): no empty or phrase query.
    words = "".join(c if c.isalpha() or c.isdecimal() else " " for c in text.lower()).split()[
        :MAX_SEARCH_WORDS
    ]
    if not words:
        raise BadUserInput("filter.search: must contain at least one word.", field="filter.search")
    return " & ".join(f"{word}:*" for word in words)


def _relevance_key(ranks: dict[uuid.UUID, float]) -> SortKey:
    return SortKey("RELEVANCE", RANK, lambda task: ranks[task.id], from_json=finite_float)


async def get_task(ctx: Context, *, task_id: uuid.UUID) -> TaskRecord:
    viewer = ctx.require_viewer()
    task = await ctx.loaders.tasks.load(task_id)
    if task is None or not viewer.can_see_owner(task.owner_id):
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    return task


# Each filter: its SQL, with a parameter of the same name (a list is one array parameter, whatever its
# length, so the SQL text depends only on which filters are present).
_STATUS_TYPE: Any = Task.__table__.c.status.type  # type: ignore[attr-defined]
_PRIORITY_TYPE: Any = Task.__table__.c.priority.type  # type: ignore[attr-defined]
FILTERS: dict[str, Any] = {
    "owner_id": col(Task.owner_id) == bindparam("owner_id", type_=Uuid()),
    "status": col(Task.status) == any_(bindparam("status", type_=ARRAY(_STATUS_TYPE))),
    "priority": col(Task.priority) == any_(bindparam("priority", type_=ARRAY(_PRIORITY_TYPE))),
    "tags": col(Task.tags).contains(bindparam("tags", type_=ARRAY(Text()))),
    "due_before": col(Task.due_at) < bindparam("due_before", type_=DateTime(timezone=True)),
    "due_after": col(Task.due_at) >= bindparam("due_after", type_=DateTime(timezone=True)),
    "search": SEARCH_COLUMN.op("@@")(TS_QUERY),
}


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a listing's SQL text depends on (its values are parameters): one compiled statement each, and
    asyncpg prepares each text once per connection."""

    filters: tuple[str, ...]  # names in FILTERS, in that order
    order: TaskOrderField
    walk_descending: bool
    cursor: bool


@functools.cache  # bounded: 2^7 filter sets x 6 orders x 2 directions x 2
def _page_sql(shape: _Shape) -> Sql:
    relevance = shape.order is TaskOrderField.RELEVANCE
    key = _relevance_key({}) if relevance else SORT_KEYS[shape.order]
    where, order_by = page_clauses(
        key, col(Task.id), walk_descending=shape.walk_descending, cursor=shape.cursor
    )
    columns = [*TASK_COLUMNS, RANK] if relevance else TASK_COLUMNS
    statement = (
        select(*columns)
        .where(*(FILTERS[name] for name in shape.filters), *where)
        .order_by(*order_by)
        .limit(LIMIT)
    )
    return compile_sql(statement, constants=False)


@functools.cache
def _count_sql(filters: tuple[str, ...]) -> Sql:
    statement = select(func.count()).select_from(Task).where(*(FILTERS[name] for name in filters))
    return compile_sql(statement, constants=False)


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
    values: dict[str, Any] = {}
    if owner_id is not None:
        values["owner_id"] = await visible_owner(ctx, viewer, owner_id)
    elif not viewer.is_admin:
        values["owner_id"] = viewer.user_id
    if criteria.status:
        values["status"] = criteria.status
    if criteria.priority:
        values["priority"] = criteria.priority
    if criteria.tags:
        values["tags"] = sorted(set(criteria.tags))
    if criteria.due_before is not None:
        values["due_before"] = criteria.due_before
    if criteria.due_after is not None:
        values["due_after"] = criteria.due_after
    if criteria.search is not None:
        values["search"] = _ts_query(criteria.search)
    # Searching without an explicit order ranks by relevance (best first).
    searching = criteria.search is not None
    order = order or TaskOrder(TaskOrderField.RELEVANCE if searching else TaskOrderField.CREATED_AT)
    ranks: dict[uuid.UUID, float] = {}
    if order.field is TaskOrderField.RELEVANCE:
        if not searching:
            raise BadUserInput("orderBy.field: RELEVANCE needs filter.search.", field="orderBy.field")
        key = _relevance_key(ranks)
    else:
        key = SORT_KEYS[order.field]
    descending = DEFAULT_DESCENDING[order.field] if order.descending is None else order.descending
    window = keyset(key, page, descending=descending, query=criteria.search or "")
    present = tuple(name for name in FILTERS if name in values)
    shape = _Shape(present, order.field, window.walk_descending, window.cursor is not None)
    found = await ctx.reader.fetch(_page_sql(shape), {**values, **window.params()})
    if order.field is TaskOrderField.RELEVANCE:
        rows = [TaskRecord.from_row(row[:-1]) for row in found]
        ranks.update((task.id, row[-1]) for task, row in zip(rows, found, strict=True))
    else:
        rows = [TaskRecord.from_row(row) for row in found]
    ctx.loaders.prime_tasks(rows)
    count = _count_sql(present)
    return Listing(make_page(rows, key, page, window), lambda: ctx.reader.fetchval(count, values))


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
    record = TaskRecord.of(task)
    async with ctx.transaction() as db:
        db.add(task)
        await ctx.record(
            db,
            cache_tags.task_changed(task.owner_id),
            drafts_for_write(TaskEventKind.CREATED, task.id, record, task.owner_id, task.owner_id),
        )
        await schedule_reminder(db, task, now)
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
    async with ctx.transaction() as db:
        task = await db.get(Task, task_id, with_for_update=True)
        if task is None or not viewer.can_see_owner(task.owner_id):
            raise NotFound.for_id("Task", encode_id("Task", task_id))
        previous_owner, was_done = task.owner_id, task.status is TaskStatus.DONE
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
        # A new due date or owner, or a reopened task: a new reminder (the one before will find it changed).
        # TODO <-> IN_PROGRESS leaves the pending one valid.
        if (
            task.owner_id != previous_owner
            or "due_at" in patch.model_fields_set
            or (was_done and task.status is not TaskStatus.DONE)
        ):
            await schedule_reminder(db, task, now)
        record = TaskRecord.of(task)
        await ctx.record(
            db,
            (*cache_tags.task_changed(previous_owner), *cache_tags.task_changed(task.owner_id)),
            drafts_for_write(TaskEventKind.UPDATED, task_id, record, task.owner_id, previous_owner),
        )
    ctx.loaders.tasks.clear(task_id).prime(task_id, record)
    ctx.loaders.forget_owner(previous_owner)
    ctx.loaders.forget_owner(task.owner_id)
    return record


async def delete_task(ctx: Context, *, task_id: uuid.UUID) -> uuid.UUID:
    viewer = ctx.require_viewer()
    statement = delete(Task).where(col(Task.id) == task_id).returning(col(Task.owner_id))
    if not viewer.is_admin:
        statement = statement.where(col(Task.owner_id) == viewer.user_id)
    async with ctx.transaction() as db:
        owner_id = (await db.exec(statement)).scalar_one_or_none()
        if owner_id is None:
            raise NotFound.for_id("Task", encode_id("Task", task_id))
        await ctx.record(
            db,
            cache_tags.task_changed(owner_id),
            drafts_for_write(TaskEventKind.DELETED, task_id, None, owner_id, owner_id),
        )
    ctx.loaders.tasks.clear(task_id)
    ctx.loaders.forget_owner(owner_id)
    return task_id
