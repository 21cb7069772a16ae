from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

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
from schema.types.inputs import TaskFilter, TaskOrder, given, is_given, user_key
from schema.types.node import Node

if TYPE_CHECKING:
    from asyncio import Future

    from models import UserRecord
    from resolvers.context import Context
    from schema.types.user import User


@strawberry.type(description="A task, owned by one user.", directives=[PRIVATE])
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

    @strawberry.field(description="The user who owns the task.")
    @planned(lambda task, context: _owner(task, context))
    def owner(self, info: Info) -> Annotated[User, strawberry.lazy("schema.types.user")]:
        return _owner(self, info.context)

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
) -> Connection[Task]:
    filters: dict[str, Any] = given(filter, skip=("owner_id",)) if filter else {}
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
