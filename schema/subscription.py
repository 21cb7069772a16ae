"""Live updates: ``taskEvents``, over WebSocket (graphql-transport-ws, or the legacy graphql-ws)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from auth.directive import Auth
from core.ids import encode_id
from resolvers import events
from resolvers.events import TaskEventKind
from schema.info import Info
from schema.inputs import user_key
from schema.task import Task

strawberry.enum(TaskEventKind, description="What happened to a task, as the subscriber sees it.")


@strawberry.type(description="A change to a task. The events of one write share a cursor.")
class TaskEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` when subscribing again to receive every event after this one."
    )
    kind: TaskEventKind = strawberry.field(
        description="CREATED, UPDATED or DELETED. A task given to another owner is DELETED for the old "
        "owner and CREATED for the new one."
    )
    task_id: strawberry.ID = strawberry.field(description="The task's global ID.")
    task: Task | None = strawberry.field(description="The task as the write left it; null when DELETED.")
    at: datetime = strawberry.field(description="When the write happened.")

    @classmethod
    def from_event(cls, event: events.TaskEvent) -> TaskEvent:
        return cls(
            cursor=event.cursor,
            kind=event.kind,
            task_id=strawberry.ID(encode_id("Task", event.task_id)),
            task=Task.from_model(event.task) if event.task is not None else None,
            at=event.at,
        )


@strawberry.type(description="Live updates, over WebSocket at /graphql.")
class Subscription:
    @strawberry.subscription(
        description="Changes to the viewer's tasks; for an admin, to every task, or to one owner's "
        "(ownerId). With `after` (a cursor), every event since that one comes first, then live ones, each "
        "exactly once and in order; a cursor older than the events kept is CURSOR_EXPIRED.",
        directives=[Auth()],
    )
    async def task_events(
        self, info: Info, after: str | None = None, owner_id: strawberry.ID | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        owner = user_key(owner_id, field="ownerId") if owner_id is not None else None
        async for event in events.task_events(info.context, after=after, owner_id=owner):
            yield TaskEvent.from_event(event)
