"""Task events: what a write tells subscribers, and the ``taskEvents`` subscription.

Every write to a task (or to its comments) produces one event, told to each audience that may see it: each
user who may see the task (its owner for a personal task, every member for a project's), and the admins
(audience ``*``). A task that leaves someone's view (given to another owner, moved to a project they are not
in) is, for them, DELETED (they learn nothing more about it); one that enters it is CREATED. The events of
one write share one cursor.
Delivery (Redis streams for resume, pub/sub to every instance) is the app's: ``EventSource``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import orjson

from core.errors import AppError
from models import CommentRecord, Role, TaskPriority, TaskRecord, TaskStatus
from resolvers.visibility import can_see_task, visible_owner

if TYPE_CHECKING:
    from resolvers.context import Context

EVERYONE = "*"  # the admins' audience: every task


class TaskEventKind(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    COMMENT_ADDED = "COMMENT_ADDED"
    COMMENT_UPDATED = "COMMENT_UPDATED"
    COMMENT_DELETED = "COMMENT_DELETED"


class CursorExpired(AppError):
    """The cursor is older than what the server keeps: refetch, then subscribe without it."""

    code = "CURSOR_EXPIRED"


@dataclass(frozen=True, slots=True)
class TaskEvent:
    cursor: str
    kind: TaskEventKind
    task_id: uuid.UUID
    task: TaskRecord | None  # None for DELETED
    at: datetime
    comment: CommentRecord | None = None  # the comment of a COMMENT_* event


@dataclass(frozen=True, slots=True)
class EventDraft:
    """One audience's view of a write, before it has a cursor."""

    audience: str  # an owner's user id, or EVERYONE
    kind: TaskEventKind
    task_id: uuid.UUID
    task: TaskRecord | None
    comment: CommentRecord | None = None


class EventSource(Protocol):
    def stream(self, audience: str, after: str | None) -> AsyncIterator[TaskEvent]:
        """The audience's events after ``after`` (all it missed, then live ones, each once and in order)."""
        ...


def drafts_for_write(
    kind: TaskEventKind,
    task_id: uuid.UUID,
    task: TaskRecord | None,
    before: Collection[uuid.UUID],
    after: Collection[uuid.UUID],
    comment: CommentRecord | None = None,
) -> list[EventDraft]:
    """The write's event for each audience: ``before`` and ``after`` are who could see the task before and
    after it. Who sees it on both sides gets ``kind``; who lost sight of it, DELETED; who gained it, CREATED
    (a comment's event only goes to who sees the task: ``before`` and ``after`` are the same)."""
    drafts = [EventDraft(EVERYONE, kind, task_id, task, comment)]
    for user in sorted({*before, *after}):
        if user not in after:
            drafts.append(EventDraft(str(user), TaskEventKind.DELETED, task_id, None))
        elif user not in before and kind is not TaskEventKind.CREATED:
            drafts.append(EventDraft(str(user), TaskEventKind.CREATED, task_id, task))
        else:
            drafts.append(EventDraft(str(user), kind, task_id, task, comment))
    return drafts


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode_event(draft: EventDraft, at: datetime) -> str:
    """One audience's event as it is kept (in the outbox, then in Redis): JSON, without its cursor."""
    record = draft.task
    task = None
    if record is not None:
        task = {
            "id": str(record.id),
            "owner_id": str(record.owner_id),
            "title": record.title,
            "description": record.description,
            "status": record.status.value,
            "priority": record.priority.value,
            "due_at": _time(record.due_at),
            "tags": record.tags,
            "created_at": _time(record.created_at),
            "updated_at": _time(record.updated_at),
            "completed_at": _time(record.completed_at),
            "project_id": _text(record.project_id),
            "assignee_id": _text(record.assignee_id),
        }
    event = {"kind": draft.kind.value, "taskId": str(draft.task_id), "task": task, "at": at.isoformat()}
    if draft.comment is not None:
        comment = draft.comment
        event["comment"] = {
            "id": str(comment.id),
            "author_id": _text(comment.author_id),
            "body": comment.body,
            "created_at": _time(comment.created_at),
            "updated_at": _time(comment.updated_at),
        }
    return orjson.dumps(event).decode()


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def decode_event(cursor: str, payload: str | bytes) -> TaskEvent:
    """``encode_event``'s inverse, with the cursor the event was given."""
    data = json.loads(payload)
    task = data["task"]
    record = None
    if task is not None:
        record = TaskRecord(
            id=uuid.UUID(task["id"]),
            owner_id=uuid.UUID(task["owner_id"]),
            title=task["title"],
            description=task["description"],
            status=TaskStatus(task["status"]),
            priority=TaskPriority(task["priority"]),
            due_at=_optional_time(task["due_at"]),
            tags=list(task["tags"]),
            created_at=datetime.fromisoformat(task["created_at"]),
            updated_at=datetime.fromisoformat(task["updated_at"]),
            completed_at=_optional_time(task["completed_at"]),
            project_id=_uuid(task.get("project_id")),  # .get: events kept from before projects existed
            assignee_id=_uuid(task.get("assignee_id")),
        )
    comment = None
    if (kept := data.get("comment")) is not None:
        comment = CommentRecord(
            id=uuid.UUID(kept["id"]),
            task_id=uuid.UUID(data["taskId"]),
            author_id=_uuid(kept["author_id"]),
            body=kept["body"],
            created_at=datetime.fromisoformat(kept["created_at"]),
            updated_at=datetime.fromisoformat(kept["updated_at"]),
        )
    return TaskEvent(
        cursor=cursor,
        kind=TaskEventKind(data["kind"]),
        task_id=uuid.UUID(data["taskId"]),
        task=record,
        at=datetime.fromisoformat(data["at"]),
        comment=comment,
    )


async def task_events(
    ctx: Context, *, after: str | None, owner_id: uuid.UUID | None
) -> AsyncIterator[TaskEvent]:
    """The viewer's task events: of every task they may see (their own, their projects'); an admin's, of
    every task or one owner's."""
    viewer = ctx.require_viewer()
    if owner_id is not None:
        audience = str(await visible_owner(ctx, viewer, owner_id))
    else:
        audience = EVERYONE if viewer.role is Role.ADMIN else str(viewer.user_id)
    source = ctx.hooks.event_source
    if source is None:
        raise AppError("Subscriptions are not available on this server.")
    async for event in source.stream(audience, after):
        # Each event's fields are read afresh: the context lives as long as the socket, and loaders kept
        # that long would serve what they cached then (an owner's old name) and grow with every task seen.
        ctx.reads.fresh_loaders()
        # The event follows its write by milliseconds, sooner than a replica could have it: the event's
        # fields are read on the primary.
        ctx.reads.read_primary()
        if not await _still_visible(ctx, event):
            continue
        yield event


async def _still_visible(ctx: Context, event: TaskEvent) -> bool:
    """A project's event was drafted for who was a member when it was written; one who was removed since
    (their events still on their stream) gets nothing more of it. Read fresh for each such event."""
    viewer = ctx.require_viewer()
    if event.task is None or event.task.project_id is None or viewer.is_admin:
        return True
    return await can_see_task(ctx, viewer, event.task)
