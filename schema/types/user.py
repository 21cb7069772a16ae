from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, cast

import strawberry

from core.ids import encode_id
from models import ProjectRole, Role, UserRecord
from resolvers import stats
from schema.analysis.cost import FREE_FIELD
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


SHOWN = {
    FREE_FIELD: True
}  # these resolvers only hide what the viewer may not see: free (schema.analysis.cost)


@strawberry.type(
    description="An account. Users see themselves, and co-members of their projects by id and name (the "
    "project's OWNER also by email); admins see everyone. What the viewer may not see is null.",
    directives=[PRIVATE],
)
class User(Node):
    name: str = strawberry.field(description="Display name.")
    key: strawberry.Private[uuid.UUID]
    record: strawberry.Private[UserRecord]
    # Shown whole whoever asks: the account of a login, registration or verification answer.
    trusted: strawberry.Private[bool] = False

    @strawberry.field(
        metadata=SHOWN,
        description="Email address, normalized to lower case: for the user, admins, and the OWNER of a "
        "project the user is a member of.",
    )
    @planned(lambda user, context: _email(user, context))
    def email(self, info: Info) -> str | None:
        return cast("str | None", _email(self, info.context))

    @strawberry.field(metadata=SHOWN, description="What the user may do (the user and admins).")
    @planned(lambda user, context: user.record.role if _whole(user, context) else None)
    def role(self, info: Info) -> Role | None:
        return self.record.role if _whole(self, info.context) else None

    @strawberry.field(
        metadata=SHOWN, description="False once an admin deactivated the account (the user and admins)."
    )
    @planned(lambda user, context: user.record.is_active if _whole(user, context) else None)
    def is_active(self, info: Info) -> bool | None:
        return self.record.is_active if _whole(self, info.context) else None

    @strawberry.field(metadata=SHOWN, description="When the account was created (the user and admins).")
    @planned(lambda user, context: user.record.created_at if _whole(user, context) else None)
    def created_at(self, info: Info) -> datetime | None:
        return self.record.created_at if _whole(self, info.context) else None

    @strawberry.field(
        metadata=SHOWN,
        description="Whether the owner of `email` proved it (followed a verification or reset link; the user "
        "and admins).",
    )
    @planned(lambda user, context: _verified(user, context))
    def email_verified(self, info: Info) -> bool | None:
        return _verified(self, info.context)

    @strawberry.field(
        description="The user's tasks the viewer may see, newest first unless ordered otherwise."
    )
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

    @strawberry.field(description="Statistics over the user's tasks (the user and admins; else null).")
    @planned(lambda user, context: _task_stats(user, context))
    def task_stats(self, info: Info) -> TaskStats | None:
        return _task_stats(self, info.context)

    @classmethod
    def from_model(cls, user: UserRecord | None, *, trusted: bool = False) -> User:
        assert user is not None, "a task's owner exists (foreign key)"
        return cls(
            id=strawberry.ID(encode_id("User", user.id)),
            name=user.name,
            key=user.id,
            record=user,
            trusted=trusted,
        )


def _whole(user: User, context: Context) -> bool:
    """Whether the viewer sees the whole account: their own, or as an admin."""
    viewer = context.who.viewer
    return user.trusted or (viewer is not None and viewer.can_see_owner(user.key))


def _verified(user: User, context: Context) -> bool | None:
    return user.record.email_verified_at is not None if _whole(user, context) else None


def _email(user: User, context: Context) -> str | Awaitable[str | None] | None:
    if _whole(user, context):
        return user.record.email
    return _email_for_owner(user, context)


async def _email_for_owner(user: User, context: Context) -> str | None:
    """A project's OWNER sees its members' addresses."""
    viewer = context.who.viewer
    if viewer is None:
        return None
    shared = await context.loaders.co_members.load(viewer.user_id)
    return user.record.email if shared.get(user.key) is ProjectRole.OWNER else None


def _task_stats(user: User, context: Context) -> TaskStats | None:
    if not _whole(user, context):
        return None
    # A login's or registration's account (``trusted``) has no viewer yet: loaded_task_stats asks for the
    # token (UNAUTHENTICATED), as it always did. Through the same visibility check as taskStats(ownerId:),
    # whatever path led to this user. Not async on purpose, as Task.owner: a list of tasks loads its owners'
    # statistics before its rows complete (see task_connection), and then they are answered without an
    # awaitable, inside the rows' plans.
    loaded = stats.loaded_task_stats(context, owner_id=user.key)
    if loaded is not None:
        return TaskStats.from_data(loaded)
    return cast("TaskStats", _task_stats_when_loaded(user, context))


async def _task_stats_when_loaded(user: User, context: Context) -> TaskStats:
    return TaskStats.from_data(await stats.task_stats(context, owner_id=user.key))


async def user_by_id(context: Context, user_id: uuid.UUID | None) -> User | None:
    """The user (as a co-member sees them, or whole when the viewer may) behind a nullable reference: a
    comment's author, an entry's actor, an invitation's inviter (null once their account is gone)."""
    if user_id is None:
        return None
    record = await context.loaders.users.load(user_id)
    return User.from_model(record) if record is not None else None
