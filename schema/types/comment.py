"""Comments on tasks, and a task's activity history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from core.ids import encode_id
from models import CommentRecord
from resolvers import activity, comments
from resolvers.activity import ActivityRecord
from resolvers.pagination import PageRequest
from resolvers.visibility import visible_task
from schema.directives.cache_control import INHERIT, PRIVATE
from schema.info import Info
from schema.types.connections import Connection, connection
from schema.types.node import Node
from schema.types.task import Task
from schema.types.user import User, user_by_id

if TYPE_CHECKING:
    pass


@strawberry.type(description="A comment on a task: plain text.", directives=[PRIVATE])
class Comment(Node):
    body: str = strawberry.field(
        description="1 to 10,000 characters. `<@id>` (a user's global ID) mentions a member: they are "
        "notified."
    )
    created_at: datetime = strawberry.field(description="When it was written.")
    updated_at: datetime = strawberry.field(description="When it was last edited.")
    author_id: strawberry.Private[uuid.UUID | None]
    task_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Who wrote it; null if their account is gone.")
    async def author(self, info: Info) -> User | None:
        return await user_by_id(info.context, self.author_id)

    @strawberry.field(description="The task it is on.")
    async def task(self, info: Info) -> Task:
        return Task.from_model(await visible_task(info.context, info.context.require_viewer(), self.task_id))

    @classmethod
    def from_record(cls, record: CommentRecord) -> Comment:
        return cls(
            id=strawberry.ID(encode_id("Comment", record.id)),
            body=record.body,
            created_at=record.created_at,
            updated_at=record.updated_at,
            author_id=record.author_id,
            task_id=record.task_id,
        )


@strawberry.type(
    description="One field's change: its old and new value as text (IDs as global IDs).", directives=[INHERIT]
)
class FieldChange:
    field: str = strawberry.field(
        description="The field: title, description, status, priority, dueAt, tags, owner, project, assignee, "
        "or comment (the comment's ID)."
    )
    from_: str | None = strawberry.field(name="from", description="The value before; null: none.")
    to: str | None = strawberry.field(description="The value after; null: none.")


@strawberry.type(description="One change to a task, as it happened.", directives=[PRIVATE])
class TaskActivity:
    id: strawberry.ID = strawberry.field(description="Opaque ID of the entry.")
    at: datetime = strawberry.field(description="When.")
    kind: str = strawberry.field(
        description="CREATED, UPDATED, ASSIGNED (only the assignee changed), MOVED (between projects, or in "
        "or out of one), COMMENT_ADDED, COMMENT_UPDATED or COMMENT_DELETED."
    )
    changes: list[FieldChange] = strawberry.field(description="Each field that changed.")
    actor_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="Who made the change; null if their account is gone.")
    async def actor(self, info: Info) -> User | None:
        return await user_by_id(info.context, self.actor_id)

    @classmethod
    def from_record(cls, record: ActivityRecord) -> TaskActivity:
        return cls(
            id=strawberry.ID(encode_id("TaskActivity", record.id)),
            at=record.at,
            kind=record.kind,
            changes=[
                FieldChange(field=c["field"] or "", from_=c.get("from"), to=c.get("to"))
                for c in record.changes
            ],
            actor_id=record.actor_id,
        )


async def comment_connection(
    info: Info, *, task_id: uuid.UUID, first: int | None, after: str | None
) -> Connection[Comment]:
    result = await comments.list_comments(info.context, task_id=task_id, page=PageRequest(first, after))
    return connection(result.page, Comment.from_record, result.count)


async def activity_connection(
    info: Info, *, task_id: uuid.UUID, first: int | None, after: str | None
) -> Connection[TaskActivity]:
    result = await activity.list_activity(info.context, task_id=task_id, page=PageRequest(first, after))
    return connection(result.page, TaskActivity.from_record, result.count)
