"""What a ``taskEvents`` subscriber receives: one change to a task."""

from __future__ import annotations

from datetime import datetime

import strawberry

from core.ids import encode_id
from resolvers import events
from resolvers.events import TaskEventKind
from schema.types.comment import Comment
from schema.types.task import Task

strawberry.enum(TaskEventKind, description="What happened to a task, as the subscriber sees it.")


@strawberry.type(
    description="A change to a task. The events one write tells of a task share a cursor (a write that "
    "changes several tasks, as deleting a project does, tells each task's at a cursor of its own)."
)
class TaskEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` when subscribing again to receive every event after this one."
    )
    kind: TaskEventKind = strawberry.field(
        description="CREATED, UPDATED or DELETED, as the subscriber sees the task: one that leaves their "
        "view (given to another owner, moved out of their projects) is DELETED for them, one that enters it "
        "CREATED. COMMENT_ADDED, COMMENT_UPDATED, COMMENT_DELETED: a comment on it (`comment`)."
    )
    task_id: strawberry.ID = strawberry.field(description="The task's global ID.")
    task: Task | None = strawberry.field(description="The task as the write left it; null when DELETED.")
    at: datetime = strawberry.field(description="When the write happened.")
    comment: Comment | None = strawberry.field(
        description="The comment of a COMMENT_* event, as the write left it; null otherwise."
    )

    @classmethod
    def from_event(cls, event: events.TaskEvent) -> TaskEvent:
        return cls(
            cursor=event.cursor,
            kind=event.kind,
            task_id=strawberry.ID(encode_id("Task", event.task_id)),
            task=Task.from_model(event.task) if event.task is not None else None,
            at=event.at,
            comment=Comment.from_record(event.comment) if event.comment is not None else None,
        )
