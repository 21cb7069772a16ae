"""Read-side records: what a query returns, built straight from Core rows.

Reading through the ORM costs about a millisecond of CPU per 50 rows in identity-map bookkeeping; hot reads
(lists and dataloader batches) select these columns on a plain connection instead. ``UserRecord`` carries
no password hash, so no read path can leak it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Column
from sqlmodel import SQLModel

from models.enums import Role, TaskPriority, TaskStatus
from models.task import Task
from models.user import User


class Record:
    """Built from a Core row (columns in field order), or from a model instance just written (or another
    record with the same fields)."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Self:
        return cls(*row)

    @classmethod
    def of(cls, model: SQLModel | Record) -> Self:
        return cls(*(getattr(model, name) for name in FIELDS[cls]))


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRecord(Record):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class UserRecord(Record):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    created_at: datetime


FIELDS: dict[type, tuple[str, ...]] = {
    record: tuple(field.name for field in dataclasses.fields(record)) for record in (TaskRecord, UserRecord)
}


def columns(record: type, model: Any) -> list[Column[Any]]:
    """The table columns of ``model`` that fill ``record``, in its field order."""
    table = model.__table__
    return [table.c[name] for name in FIELDS[record]]


TASK_COLUMNS = columns(TaskRecord, Task)
USER_COLUMNS = columns(UserRecord, User)
