"""Task events: what a write tells subscribers, and the ``taskEvents`` subscription.

Every write to a task produces one event, told to each audience that may see it: the owner, and the admins
(audience ``*``). A task given to another owner is, for the old owner, DELETED (it left their view, and they
learn nothing more about it) and, for the new owner, CREATED. The events of one write share one cursor.
Delivery (Redis streams for resume, pub/sub to every instance) is the app's: ``EventSource``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import orjson

from core.errors import AppError
from models import Role, TaskPriority, TaskRecord, TaskStatus
from resolvers.visibility import visible_owner

if TYPE_CHECKING:
    from resolvers.context import Context

EVERYONE = "*"  # the admins' audience: every task


class TaskEventKind(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


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


@dataclass(frozen=True, slots=True)
class EventDraft:
    """One audience's view of a write, before it has a cursor."""

    audience: str  # an owner's user id, or EVERYONE
    kind: TaskEventKind
    task_id: uuid.UUID
    task: TaskRecord | None


class EventSource(Protocol):
    def stream(self, audience: str, after: str | None) -> AsyncIterator[TaskEvent]:
        """The audience's events after ``after`` (all it missed, then live ones, each once and in order)."""
        ...


def drafts_for_write(
    kind: TaskEventKind, task_id: uuid.UUID, task: TaskRecord | None, owner: uuid.UUID, previous: uuid.UUID
) -> list[EventDraft]:
    drafts = [EventDraft(EVERYONE, kind, task_id, task)]
    if previous != owner:  # a move: it left the previous owner's view and entered the new owner's
        drafts.append(EventDraft(str(previous), TaskEventKind.DELETED, task_id, None))
        drafts.append(EventDraft(str(owner), TaskEventKind.CREATED, task_id, task))
    else:
        drafts.append(EventDraft(str(owner), kind, task_id, task))
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
        }
    event = {"kind": draft.kind.value, "taskId": str(draft.task_id), "task": task, "at": at.isoformat()}
    return orjson.dumps(event).decode()


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
        )
    return TaskEvent(
        cursor=cursor,
        kind=TaskEventKind(data["kind"]),
        task_id=uuid.UUID(data["taskId"]),
        task=record,
        at=datetime.fromisoformat(data["at"]),
    )


async def task_events(
    ctx: Context, *, after: str | None, owner_id: uuid.UUID | None
) -> AsyncIterator[TaskEvent]:
    """The viewer's task events: its own tasks; an admin's, every task or one owner's."""
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
        yield event
