"""Tasks: read one, list (filter, search, order, paginate), create, update, delete, place in a project,
assign.

Who sees and changes which task is ``resolvers.visibility``'s: a personal task its owner, a project's task
its members (EDITORs and the OWNER change it), an admin every task. A task the viewer may not see is reported
``NOT_FOUND``, exactly as a missing one. Every write records its history (``resolvers.activity``), cache
tags and events for everyone who sees the task (``resolvers.audiences``), in its own transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Float,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col
from sqlmodel import select as orm_select

from core import cache_tags
from core.errors import AppError, BadUserInput, Forbidden, NotFound
from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import (
    TASK_COLUMNS,
    NotificationKind,
    ProjectRole,
    Task,
    TaskPriority,
    TaskRecord,
    TaskStatus,
    User,
)
from models.task import SEARCH_COLUMN
from resolvers.activity import log_task_write
from resolvers.audiences import Members, audience, lock_project, members_of
from resolvers.events import TaskEventKind, drafts_for_write
from resolvers.inputs import TaskCreate, TaskPatch, TaskSearch, validate
from resolvers.notifications import notify, schedule_reminder
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
from resolvers.visibility import Access, roles_of, task_access, visible_project, visible_task, visible_user

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from auth.viewer import Viewer
    from resolvers.context import Context
    from resolvers.loaders import Roles

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
    return await visible_task(ctx, ctx.require_viewer(), task_id)


# Each filter: its SQL, with a parameter of the same name (a list is one array parameter, whatever its
# length, so the SQL text depends only on which filters are present).
_STATUS_TYPE: Any = Task.__table__.c.status.type  # type: ignore[attr-defined]
_PRIORITY_TYPE: Any = Task.__table__.c.priority.type  # type: ignore[attr-defined]
_VIEWER = bindparam("viewer", type_=Uuid())
_PERSONAL = and_(col(Task.owner_id) == _VIEWER, col(Task.project_id).is_(None))
FILTERS: dict[str, Any] = {
    # What a USER may see: their personal tasks ("personal"), and their projects' ("visible").
    "personal": _PERSONAL,
    "visible": or_(_PERSONAL, col(Task.project_id) == any_(bindparam("projects", type_=ARRAY(Uuid())))),
    "owner_id": col(Task.owner_id) == bindparam("owner_id", type_=Uuid()),
    "project_id": col(Task.project_id) == bindparam("project_id", type_=Uuid()),
    "assignee_id": col(Task.assignee_id) == bindparam("assignee_id", type_=Uuid()),
    "status": col(Task.status) == any_(bindparam("status", type_=ARRAY(_STATUS_TYPE))),
    "priority": col(Task.priority) == any_(bindparam("priority", type_=ARRAY(_PRIORITY_TYPE))),
    "tags": col(Task.tags).contains(bindparam("tags", type_=ARRAY(Text()))),
    "due_before": col(Task.due_at) < bindparam("due_before", type_=DateTime(timezone=True)),
    "due_after": col(Task.due_at) >= bindparam("due_after", type_=DateTime(timezone=True)),
    "search": SEARCH_COLUMN.op("@@")(TS_QUERY),
}


# The value each filter needs (the visibility filters: the viewer, and for "visible" their projects).
_FILTER_VALUE = {name: name for name in FILTERS} | {"personal": "viewer", "visible": "projects"}


def _applies(name: str, values: Mapping[str, Any]) -> bool:
    return name != "personal" or "projects" not in values  # "visible" covers the personal tasks then


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a listing's SQL text depends on (its values are parameters): one compiled statement each, and
    asyncpg prepares each text once per connection."""

    filters: tuple[str, ...]  # names in FILTERS, in that order
    order: TaskOrderField
    walk_descending: bool
    cursor: bool


@functools.cache  # bounded: 3 x 2^9 filter sets x 6 orders x 2 directions x 2
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
        values["owner_id"] = (await visible_user(ctx, viewer, owner_id)).id
    if criteria.project_id is not None:
        values["project_id"] = (await visible_project(ctx, viewer, criteria.project_id)).id
    elif not viewer.is_admin:  # a member sees all of a project's tasks; else only what the viewer may see
        projects = await roles_of(ctx, viewer)
        values["viewer"] = viewer.user_id
        if projects:
            values["projects"] = list(projects)
    if criteria.assigned_to_me:
        values["assignee_id"] = viewer.user_id
    elif criteria.assignee_id is not None:
        values["assignee_id"] = criteria.assignee_id
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
    present = tuple(name for name in FILTERS if _FILTER_VALUE[name] in values and _applies(name, values))
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


class Keep(Enum):
    """An optional input field left out: the value stays as it is (null would clear it)."""

    KEEP = "KEEP"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a task is (its project, None: personal) and who it is assigned to, as a write gives them."""

    project_id: uuid.UUID | Keep | None = KEEP
    assignee_id: uuid.UUID | Keep | None = KEEP


async def _project_for_write(
    db: AsyncSession, viewer: Viewer, project_id: uuid.UUID, *, field: str
) -> Members:
    """The project's members, locked for this write; the viewer must be an EDITOR or OWNER (or an admin)."""
    members = await members_of(db, project_id) if await lock_project(db, project_id) else {}
    role = members.get(viewer.user_id)
    if not members or (role is None and not viewer.is_admin):
        raise NotFound.for_id("Project", encode_id("Project", project_id))
    if role is not None and not role.at_least(ProjectRole.EDITOR) and not viewer.is_admin:
        raise Forbidden(
            f"{field}: a VIEWER cannot add or change the project's tasks.",
            field=field,
            requiredRole=ProjectRole.EDITOR.value,
        )
    return members


def _check_assignee(task: Task, members: Members, field: str) -> None:
    """The assignee must be a member of the task's project (of a personal task: its owner). The same error
    whether or not such a user exists."""
    assignee = task.assignee_id
    if assignee is None:
        return
    allowed = assignee in members if task.project_id is not None else assignee == task.owner_id
    if not allowed:
        where = "the task's project" if task.project_id is not None else "the task's owner (a personal task)"
        raise BadUserInput(f"{field}: the assignee must be a member of {where}.", field=field)


async def locked_task(db: AsyncSession, task_id: uuid.UUID) -> tuple[Task | None, Members]:
    """The task, locked, and its project's members, locked in the order membership changes take them (the
    project, then its tasks), so that the two never deadlock."""
    for _ in range(5):
        found = (
            await db.exec(orm_select(col(Task.id), col(Task.project_id)).where(col(Task.id) == task_id))
        ).one_or_none()
        if found is None:
            return None, {}
        project_id = found[1]
        members = (
            await members_of(db, project_id)
            if project_id is not None and await lock_project(db, project_id)
            else {}
        )
        task = await db.get(Task, task_id, with_for_update=True, populate_existing=True)
        if task is None or task.project_id == project_id:
            return task, members
    raise AppError("The task kept moving between projects: try again.")


async def _assigned(
    db: AsyncSession, ctx: Context, viewer: Viewer, task: Task, previous: uuid.UUID | None
) -> None:
    """Tell a new assignee (someone other than who assigned them) in their inbox."""
    if task.assignee_id is None or task.assignee_id in (previous, viewer.user_id):
        return
    await notify(
        db,
        task.assignee_id,
        NotificationKind.TASK_ASSIGNED,
        title=f"Assigned to you: {task.title}"[:300],
        body=f"You were assigned the task \u201c{task.title}\u201d.",
        dedupe_key=f"assigned:{task.id}:{uuid.uuid4()}",
        task_id=task.id,
    )


async def _record_task_write(
    ctx: Context,
    db: AsyncSession,
    kind: TaskEventKind,
    before: tuple[TaskRecord | None, Members],
    after: tuple[TaskRecord | None, Members],
) -> None:
    """The write's cache tags and events, for everyone who saw the task before it or sees it after."""
    seen_before, seen_after = audience(*before), audience(*after)
    task = after[0] if after[0] is not None else before[0]
    assert task is not None
    await ctx.record(
        db,
        cache_tags.seen_by(seen_before | seen_after),
        drafts_for_write(kind, task.id, after[0], seen_before, seen_after),
    )


async def create_task(
    ctx: Context, *, values: Mapping[str, Any], placement: Placement = Placement()
) -> TaskRecord:
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
    async with ctx.transaction() as db:
        members: Members = {}
        if isinstance(placement.project_id, uuid.UUID):
            members = await _project_for_write(db, viewer, placement.project_id, field="input.projectId")
            task.project_id = placement.project_id
        if not isinstance(placement.assignee_id, Keep):
            task.assignee_id = placement.assignee_id
            _check_assignee(task, members, "input.assigneeId")
        record = TaskRecord.of(task)
        db.add(task)
        await db.flush()
        await log_task_write(db, None, record, viewer.user_id, now)
        await _record_task_write(ctx, db, TaskEventKind.CREATED, (None, members), (record, members))
        await schedule_reminder(db, task, now)
        await _assigned(db, ctx, viewer, task, None)
    ctx.loaders.tasks.prime(task.id, record)
    ctx.loaders.forget_owner(task.owner_id)
    ctx.loaders.forget_project(task.project_id)
    return record


async def update_task(
    ctx: Context,
    *,
    task_id: uuid.UUID,
    values: Mapping[str, Any],
    new_owner_id: uuid.UUID | None = None,
    placement: Placement = Placement(),
) -> TaskRecord:
    viewer = ctx.require_viewer()
    patch = validate(TaskPatch, values, argument="input")
    if new_owner_id is not None and new_owner_id != viewer.user_id and not viewer.is_admin:
        raise Forbidden("Only an admin may give a task to another user.", field="input.ownerId")
    now = ctx.now()
    async with ctx.transaction() as db:
        task, before, members_before = await _writable_task(db, viewer, task_id, "change")
        was_done = task.status is TaskStatus.DONE
        members_after = members_before
        if not isinstance(placement.project_id, Keep) and placement.project_id != task.project_id:
            if placement.project_id is not None:
                members_after = await _project_for_write(
                    db, viewer, placement.project_id, field="input.projectId"
                )
            else:
                members_after = {}
                if not viewer.is_admin:  # out of the project, into the mover's own list
                    task.owner_id = viewer.user_id
            task.project_id = placement.project_id
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
        if not isinstance(placement.assignee_id, Keep):
            task.assignee_id = placement.assignee_id
            _check_assignee(task, members_after, "input.assigneeId")
        elif task.assignee_id is not None and task.assignee_id not in (
            members_after if task.project_id is not None else {task.owner_id}
        ):
            task.assignee_id = None  # moved where its assignee is not a member
        task.updated_at = now
        db.add(task)
        # A new due date or owner, or a reopened task: a new reminder (the one before will find it changed).
        # TODO <-> IN_PROGRESS leaves the pending one valid.
        if (
            task.owner_id != before.owner_id
            or "due_at" in patch.model_fields_set
            or (was_done and task.status is not TaskStatus.DONE)
        ):
            await schedule_reminder(db, task, now)
        record = TaskRecord.of(task)
        await db.flush()
        await log_task_write(db, before, record, viewer.user_id, now)
        await _record_task_write(
            ctx, db, TaskEventKind.UPDATED, (before, members_before), (record, members_after)
        )
        await _assigned(db, ctx, viewer, task, before.assignee_id)
    ctx.loaders.tasks.clear(task_id).prime(task_id, record)
    for owner in {before.owner_id, task.owner_id}:
        ctx.loaders.forget_owner(owner)
    for project in {before.project_id, task.project_id}:
        ctx.loaders.forget_project(project)
    return record


async def _writable_task(
    db: AsyncSession, viewer: Viewer, task_id: uuid.UUID, verb: str
) -> tuple[Task, TaskRecord, Members]:
    """The task, locked, as it is before the write, and its project's members, if the viewer may change it:
    NOT_FOUND if they may not see it, FORBIDDEN for a project's VIEWER."""
    task, members = await locked_task(db, task_id)
    before = TaskRecord.of(task) if task is not None else None
    access = task_access(viewer, before, viewer_roles(members, viewer, before)) if before else None
    if task is None or before is None or access is None:
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    if access is Access.READ:
        raise Forbidden(f"A VIEWER cannot {verb} the project's tasks.", requiredRole=ProjectRole.EDITOR.value)
    return task, before, members


def viewer_roles(members: Members, viewer: Viewer, task: TaskRecord) -> Roles:
    """The viewer's role in the task's project, as read (locked) by this write."""
    role = members.get(viewer.user_id)
    return {task.project_id: role} if task.project_id is not None and role is not None else {}


async def delete_task(ctx: Context, *, task_id: uuid.UUID) -> uuid.UUID:
    viewer = ctx.require_viewer()
    async with ctx.transaction() as db:
        task, before, members = await _writable_task(db, viewer, task_id, "delete")
        await db.delete(task)
        await db.flush()
        await _record_task_write(ctx, db, TaskEventKind.DELETED, (before, members), (None, members))
    ctx.loaders.tasks.clear(task_id)
    ctx.loaders.forget_owner(before.owner_id)
    ctx.loaders.forget_project(before.project_id)
    return task_id
