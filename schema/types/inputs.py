"""Input types. Resolvers validate the values; ``given`` passes on only the fields a client set."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any, TypeGuard

import strawberry

from core.errors import NotFound
from core.ids import decode_typed_id
from models import Role, TaskPriority, TaskStatus
from resolvers.tasks import KEEP, Keep, Placement, TaskOrderField
from resolvers.tasks import TaskOrder as TaskOrderValue
from schema.types.enums import OrderDirection

UNSET: Any = strawberry.UNSET


def given(data: object, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of an input object the client set (explicit nulls included), by Python name."""
    return {
        field.name: getattr(data, field.name)
        for field in dataclasses.fields(data)  # type: ignore[arg-type]
        if field.name not in skip and getattr(data, field.name) is not strawberry.UNSET
    }


def typed_key(global_id: strawberry.ID, type_name: str, *, field: str = "id") -> uuid.UUID:
    """The key of a global ID of ``type_name``. A malformed ID is ``BAD_USER_INPUT``; a well-formed ID of
    another type names no such object, so it is ``NOT_FOUND``."""
    key = decode_typed_id(global_id, type_name, field=field)
    if key is None:
        raise NotFound(f"No {type_name} with id {global_id!r}.", id=global_id)
    return key


def user_key(global_id: strawberry.ID, *, field: str) -> uuid.UUID:
    return typed_key(global_id, "User", field=field)


def placement(data: object) -> Placement:
    """The project and assignee an input gives (left out: kept; null: none)."""
    project: uuid.UUID | Keep | None = KEEP
    assignee: uuid.UUID | Keep | None = KEEP
    value = getattr(data, "project_id", UNSET)
    if value is not UNSET:
        project = typed_key(value, "Project", field="input.projectId") if value is not None else None
    value = getattr(data, "assignee_id", UNSET)
    if value is not UNSET:
        assignee = typed_key(value, "User", field="input.assigneeId") if value is not None else None
    return Placement(project, assignee)


def is_given(value: strawberry.ID | None) -> TypeGuard[strawberry.ID]:
    """Set by the client to something other than null (UNSET and an empty string are both falsy: test
    explicitly, so that ``""`` reaches the ID check instead of meaning "not given")."""
    return value is not strawberry.UNSET and value is not None


@strawberry.input(description="A new account.")
class RegisterInput:
    email: str = strawberry.field(description="Email address; unique, compared case-insensitively.")
    password: str = strawberry.field(description="10 to 128 characters, not a common password.")
    name: str = strawberry.field(description="Display name, 1 to 100 characters.")


@strawberry.input(description="Changes to the viewer's profile.")
class UpdateProfileInput:
    name: str = strawberry.field(description="Display name, 1 to 100 characters.")


@strawberry.input(description="Credentials.")
class LoginInput:
    email: str = strawberry.field(description="Email address (any case).")
    password: str = strawberry.field(description="Password.")


@strawberry.input(
    description="A new task, owned by the viewer: personal, or in a project (as its EDITOR or OWNER)."
)
class CreateTaskInput:
    title: str = strawberry.field(description="1 to 200 characters.")
    description: str | None = strawberry.field(default=UNSET, description="At most 10,000 characters.")
    status: TaskStatus | None = strawberry.field(default=UNSET, description="Default TODO.")
    priority: TaskPriority | None = strawberry.field(default=UNSET, description="Default MEDIUM.")
    due_at: datetime | None = strawberry.field(default=UNSET, description="When it is due, with a timezone.")
    tags: list[str] | None = strawberry.field(
        default=UNSET, description="At most 20 tags of 1 to 32 characters; duplicates are dropped."
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="The project to create it in; none: a personal task."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Who it is assigned to: a member of the project (of a personal task: you)."
    )


@strawberry.input(description="Changes to a task: only the fields given change; null clears an optional one.")
class UpdateTaskInput:
    title: str | None = strawberry.field(default=UNSET, description="1 to 200 characters.")
    description: str | None = strawberry.field(default=UNSET, description="At most 10,000 characters.")
    status: TaskStatus | None = strawberry.field(
        default=UNSET, description="Moving to DONE sets completedAt; leaving DONE clears it."
    )
    priority: TaskPriority | None = strawberry.field(default=UNSET, description="Priority.")
    due_at: datetime | None = strawberry.field(
        default=UNSET, description="Due date with a timezone, or null."
    )
    tags: list[str] | None = strawberry.field(default=UNSET, description="Replaces the tags.")
    owner_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Give the task to another user (admins only)."
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=UNSET,
        description="Move it to another project (as its EDITOR or OWNER); null: out of its project, into "
        "your personal tasks. An assignee who is not a member there is unassigned.",
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Assign it to a member of its project; null: unassign."
    )


@strawberry.input(description="Narrows a task list; all given conditions must hold.")
class TaskFilter:
    status: list[TaskStatus] | None = strawberry.field(default=UNSET, description="Any of these statuses.")
    priority: list[TaskPriority] | None = strawberry.field(
        default=UNSET, description="Any of these priorities."
    )
    tags: list[str] | None = strawberry.field(default=UNSET, description="Has all of these tags.")
    due_before: datetime | None = strawberry.field(
        default=UNSET, description="Due strictly before this time."
    )
    due_after: datetime | None = strawberry.field(default=UNSET, description="Due at or after this time.")
    search: str | None = strawberry.field(
        default=UNSET,
        description="Full-text search of title and description: every word must match a word or its start.",
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=UNSET,
        description="Only this owner's tasks (admins: anyone's; users: their own, or those of a co-member "
        "they see).",
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Only this project's tasks (a project the viewer is a member of)."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Only the tasks assigned to this user."
    )
    assigned_to_me: bool | None = strawberry.field(
        default=UNSET, description="true: only the tasks assigned to the viewer."
    )


@strawberry.input(
    description="Sort order of a task list. Default: CREATED_AT DESC (RELEVANCE DESC when searching)."
)
class TaskOrder:
    field: TaskOrderField = strawberry.field(description="Sort key; ties are broken by id.")
    direction: OrderDirection | None = strawberry.field(
        default=None,
        description="Default: the field's natural direction: DESC for CREATED_AT, UPDATED_AT, PRIORITY and "
        "RELEVANCE (newest, most urgent, best first); ASC for DUE_AT and TITLE (soonest, A to Z).",
    )

    def value(self) -> TaskOrderValue:
        descending = None if self.direction is None else self.direction is OrderDirection.DESC
        return TaskOrderValue(self.field, descending=descending)


@strawberry.input(description="Narrows the user list.")
class UserFilter:
    role: Role | None = strawberry.field(default=UNSET, description="Only users with this role.")
    is_active: bool | None = strawberry.field(
        default=UNSET, description="Only active (or deactivated) users."
    )
    search: str | None = strawberry.field(default=UNSET, description="Email or name starts with this text.")
