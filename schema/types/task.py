from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import strawberry

from core.errors import BadUserInput
from core.ids import encode_id
from models import TaskPriority, TaskRecord, TaskStatus
from resolvers import tasks
from resolvers.loaders import prefetch
from resolvers.pagination import PageRequest
from schema.directives.cache_control import PRIVATE
from schema.info import Info
from schema.planning.plans import planned
from schema.types.connections import Connection, connection, selects
from schema.types.inputs import UNSET, TaskFilter, TaskOrder, given, is_given, typed_key, user_key
from schema.types.node import Node

Loaded = TypeVar("Loaded")

if TYPE_CHECKING:
    from asyncio import Future

    from models import ProjectRecord, UserRecord
    from resolvers.context import Context
    from schema.types.comment import Comment, TaskActivity
    from schema.types.project import Project
    from schema.types.user import User


@strawberry.type(
    description="A task: personal (its owner's alone) or in a project (every member's).", directives=[PRIVATE]
)
class Task(Node):
    title: str = strawberry.field(description="Short title, 1 to 200 characters.")
    description: str | None = strawberry.field(description="Longer text, up to 10,000 characters.")
    status: TaskStatus = strawberry.field(description="Where the task stands.")
    priority: TaskPriority = strawberry.field(description="How urgent it is.")
    due_at: datetime | None = strawberry.field(description="When it is due.")
    tags: list[str] = strawberry.field(description="Free-form labels.")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    completed_at: datetime | None = strawberry.field(description="When it moved to DONE (null unless DONE).")
    owner_id: strawberry.Private[uuid.UUID]
    key: strawberry.Private[uuid.UUID]
    project_id: strawberry.Private[uuid.UUID | None] = None
    assignee_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(description="The user who owns the task (who created it, for a project's task).")
    @planned(lambda task, context: _owner(task, context))
    def owner(self, info: Info) -> Annotated[User, strawberry.lazy("schema.types.user")]:
        return _owner(self, info.context)

    @strawberry.field(description="The project the task is in; null for a personal task.")
    @planned(lambda task, context: _project(task, context))
    def project(self, info: Info) -> Annotated[Project, strawberry.lazy("schema.types.project")] | None:
        return _project(self, info.context)

    @strawberry.field(description="Who the task is assigned to (a member of its project), if anyone.")
    @planned(lambda task, context: _assignee(task, context))
    def assignee(self, info: Info) -> Annotated[User, strawberry.lazy("schema.types.user")] | None:
        return _assignee(self, info.context)

    @strawberry.field(description="The comments on the task, oldest first (1 to 100 a page, default 20).")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Comment, strawberry.lazy("schema.types.comment")]]:
        from schema.types.comment import comment_connection

        return await comment_connection(info, task_id=self.key, first=first, after=after)

    @strawberry.field(
        description="What happened to the task, newest first (1 to 100 a page, default 20): every change, "
        "with each field's old and new value, written with the change and never edited."
    )
    async def activity(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[TaskActivity, strawberry.lazy("schema.types.comment")]]:
        from schema.types.comment import activity_connection

        return await activity_connection(info, task_id=self.key, first=first, after=after)

    @classmethod
    def from_model(cls, task: TaskRecord) -> Task:
        return cls(
            id=strawberry.ID(encode_id("Task", task.id)),
            title=task.title,
            description=task.description,
            status=task.status,
            priority=task.priority,
            due_at=task.due_at,
            tags=task.tags,
            created_at=task.created_at,
            updated_at=task.updated_at,
            completed_at=task.completed_at,
            owner_id=task.owner_id,
            key=task.id,
            project_id=task.project_id,
            assignee_id=task.assignee_id,
        )


def _owner(task: Task, context: Context) -> User:
    # Not async on purpose: a list of tasks loads its owners before its rows complete (see task_connection),
    # and a resolver that returns a plain value spares graphql-core an awaitable, and with it a task, per
    # row; plans call it without a resolve info (schema.planning.plans.planned). Elsewhere the owner is
    # loaded by the dataloader as usual.
    loaded = context.loaders.users.load(task.owner_id)
    if loaded.done():
        return _user(loaded.result())
    return cast("User", _owner_when_loaded(loaded))


def _project(task: Task, context: Context) -> Project | None:
    # As Task.owner: a list loads its rows' projects at once when they are selected.
    if task.project_id is None:
        return None
    loaded = context.loaders.projects.load(task.project_id)
    if loaded.done():
        return _project_of(loaded.result())
    return cast("Project", _when_loaded(loaded, _project_of))


def _assignee(task: Task, context: Context) -> User | None:
    if task.assignee_id is None:
        return None
    loaded = context.loaders.users.load(task.assignee_id)
    if loaded.done():
        return _user_or_none(loaded.result())
    return cast("User", _when_loaded(loaded, _user_or_none))


def _project_of(record: ProjectRecord | None) -> Project | None:
    from schema.types.project import Project

    return Project.from_record(record) if record is not None else None


def _user_or_none(record: UserRecord | None) -> User | None:
    return _user(record) if record is not None else None


async def _when_loaded(loaded: Future[Loaded], convert: Callable[[Loaded], Any]) -> Any:
    return convert(await loaded)


def _user(record: UserRecord | None) -> User:
    from schema.types.user import User

    return User.from_model(record)


async def _owner_when_loaded(loaded: Future[UserRecord | None]) -> User:
    return _user(await loaded)


async def task_connection(
    info: Info,
    *,
    owner_id: uuid.UUID | None,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    filter: TaskFilter | None,
    order_by: TaskOrder | None,
    project_id: uuid.UUID | None = None,
) -> Connection[Task]:
    filters: dict[str, Any] = given(filter, skip=("owner_id", "project_id", "assignee_id")) if filter else {}
    if project_id is not None:  # Project.tasks: the project is the parent object
        if filter is not None and filter.project_id is not UNSET:
            raise BadUserInput(
                "filter.projectId: not allowed on Project.tasks (the project is the parent).",
                field="filter.projectId",
            )
        filters["project_id"] = project_id
    if filter is not None:
        for name, type_name, field in (
            ("project_id", "Project", "filter.projectId"),
            ("assignee_id", "User", "filter.assigneeId"),
        ):
            value = getattr(filter, name)
            if value is None:
                raise BadUserInput(f"{field}: cannot be null.", field=field)
            if is_given(value):
                filters[name] = typed_key(value, type_name, field=field)
    if filter is not None and is_given(filter.owner_id):
        if owner_id is not None:  # User.tasks: the owner is the parent object
            raise BadUserInput(
                "filter.ownerId: not allowed on User.tasks (the user is the owner).", field="filter.ownerId"
            )
        owner_id = user_key(filter.owner_id, field="filter.ownerId")
    result = await tasks.list_tasks(
        info.context,
        page=PageRequest(first, after, last, before),
        filters=filters,
        owner_id=owner_id,
        order=order_by.value() if order_by else None,
    )
    rows = result.page.items
    if selects(info, "edges", "node", "project"):
        projects = [task.project_id for task in rows if task.project_id is not None]
        await prefetch(info.context.loaders.projects, projects)
    if selects(info, "edges", "node", "assignee"):
        # With the owners' statement below when both are selected: one for every user of the page.
        assignees = [task.assignee_id for task in rows if task.assignee_id is not None]
        if selects(info, "edges", "node", "owner"):
            assignees += [task.owner_id for task in rows]
        await prefetch(info.context.loaders.users, assignees)
    if selects(info, "edges", "node", "owner"):
        # The same single statement the dataloader would send once the rows ask, sent now: every row's
        # owner is then ready and resolves without awaiting. Their statistics too, when asked for (of the
        # owners the viewer may see: User.taskStats refuses the others, as it would have).
        owners = [task.owner_id for task in result.page.items]
        await prefetch(info.context.loaders.users, owners)
        viewer = info.context.who.viewer
        if viewer is not None and selects(info, "edges", "node", "owner", "taskStats"):
            visible = [owner for owner in owners if viewer.can_see_owner(owner)]
            await prefetch(info.context.loaders.stats, visible)
    return connection(result.page, Task.from_model, result.count)
