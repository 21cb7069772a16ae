from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, cast

import strawberry

from core.ids import encode_id
from models import Role, UserRecord
from resolvers import stats
from schema.directives.cache_control import PRIVATE
from schema.info import Info
from schema.planning.plans import planned
from schema.types.connections import Connection
from schema.types.inputs import TaskFilter, TaskOrder
from schema.types.node import Node
from schema.types.stats import TaskStats
from schema.types.task import Task, task_connection

if TYPE_CHECKING:
    from resolvers.context import Context


@strawberry.type(
    description="An account. Users see only themselves; admins see everyone.", directives=[PRIVATE]
)
class User(Node):
    email: str = strawberry.field(description="Email address, normalized to lower case.")
    name: str = strawberry.field(description="Display name.")
    role: Role = strawberry.field(description="What the user may do.")
    is_active: bool = strawberry.field(description="False once an admin deactivated the account.")
    created_at: datetime = strawberry.field(description="When the account was created.")
    email_verified: bool = strawberry.field(
        description="Whether the owner of `email` proved it (followed a verification or reset link)."
    )
    key: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The user's tasks, newest first unless ordered otherwise.")
    async def tasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: TaskFilter | None = None,
        order_by: TaskOrder | None = None,
    ) -> Connection[Task]:
        return await task_connection(
            info, owner_id=self.key, first=first, after=after, last=last, before=before,
            filter=filter, order_by=order_by,
        )  # fmt: skip

    @strawberry.field(description="Statistics over the user's tasks.")
    @planned(lambda user, context: _task_stats(user, context))
    def task_stats(self, info: Info) -> TaskStats:
        return _task_stats(self, info.context)

    @classmethod
    def from_model(cls, user: UserRecord | None) -> User:
        assert user is not None, "a task's owner exists (foreign key)"
        return cls(
            id=strawberry.ID(encode_id("User", user.id)),
            email=user.email,
            name=user.name,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
            email_verified=user.email_verified_at is not None,
            key=user.id,
        )


def _task_stats(user: User, context: Context) -> TaskStats:
    # Through the same visibility check as taskStats(ownerId:), whatever path led to this user. Not async on
    # purpose, as Task.owner: a list of tasks loads its owners' statistics before its rows complete (see
    # task_connection), and then they are answered without an awaitable, inside the rows' plans.
    loaded = stats.loaded_task_stats(context, owner_id=user.key)
    if loaded is not None:
        return TaskStats.from_data(loaded)
    return cast("TaskStats", _task_stats_when_loaded(user, context))


async def _task_stats_when_loaded(user: User, context: Context) -> TaskStats:
    return TaskStats.from_data(await stats.task_stats(context, owner_id=user.key))
