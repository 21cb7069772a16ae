"""Read-side records: what a query returns, built straight from Core rows.

Reading through the ORM costs about a millisecond of CPU per 50 rows in identity-map bookkeeping; reads
select these columns with raw asyncpg instead (``core.reader``), whose rows carry enums as their text, so
``from_row`` maps them to the enum members (timestamps come back timezone-aware, ``text[]`` as a list, as
through SQLAlchemy). ``UserRecord`` carries no password hash, so no read path can leak it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Column
from sqlmodel import SQLModel

from models.enums import ProjectRole, Role, TaskPriority, TaskStatus
from models.project import Comment, Project
from models.task import Task
from models.user import User

# Text to member, a dict lookup per value (calling the enum costs ten times more, twice per row). A member
# maps to itself too (a StrEnum member is equal to its text).
STATUS: dict[str, TaskStatus] = {status.value: status for status in TaskStatus}
PRIORITY: dict[str, TaskPriority] = {priority.value: priority for priority in TaskPriority}
ROLE: dict[str, Role] = {role.value: role for role in Role}


class Record:
    """Built from a row (``from_row``: the columns in field order), or from a model instance just written (or
    another record with the same fields)."""

    __slots__ = ()

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
    project_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Self:
        (
            task_id, owner, title, description, status, priority, due_at, tags, created, updated, completed,
            project, assignee,
        ) = row  # fmt: skip
        return cls(
            task_id,
            owner,
            title,
            description,
            STATUS[status],
            PRIORITY[priority],
            due_at,
            tags,
            created,
            updated,
            completed,
            project,
            assignee,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class UserRecord(Record):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    created_at: datetime
    email_verified_at: datetime | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Self:
        user_id, email, name, role, is_active, created_at, email_verified_at = row
        return cls(user_id, email, name, ROLE[role], is_active, created_at, email_verified_at)


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectRecord(Record):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Self:
        return cls(*row)


@dataclasses.dataclass(frozen=True, slots=True)
class CommentRecord(Record):
    id: uuid.UUID
    task_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Self:
        return cls(*row)


PROJECT_ROLE: dict[str, ProjectRole] = {role.value: role for role in ProjectRole}

FIELDS: dict[type, tuple[str, ...]] = {
    record: tuple(field.name for field in dataclasses.fields(record))
    for record in (TaskRecord, UserRecord, ProjectRecord, CommentRecord)
}


def columns(record: type, model: Any) -> list[Column[Any]]:
    """The table columns of ``model`` that fill ``record``, in its field order."""
    table = model.__table__
    return [table.c[name] for name in FIELDS[record]]


TASK_COLUMNS = columns(TaskRecord, Task)
USER_COLUMNS = columns(UserRecord, User)
PROJECT_COLUMNS = columns(ProjectRecord, Project)
COMMENT_COLUMNS = columns(CommentRecord, Comment)
