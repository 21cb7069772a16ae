"""Validation of every input, with pydantic. A failure is ``BAD_USER_INPUT`` naming the field."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from core.errors import BadUserInput
from models import Role, TaskPriority, TaskStatus

MAX_TAGS = 20
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128  # argon2 hashes anything, but unbounded input is a denial-of-service lever
# The most common passwords of breach corpora that meet the length rule; NIST SP 800-63B asks for a blocklist
# rather than composition rules.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890", "0123456789", "12345678910", "qwertyuiop", "1q2w3e4r5t", "password1", "password12",
        "password123", "password1234", "passw0rd123", "qwerty1234", "qwerty12345", "iloveyou123",
        "abc1234567", "abcdefghij", "1qaz2wsx3edc", "letmein123", "welcome123", "administrator",
        "football123", "baseball123", "monkey1234", "dragon1234", "sunshine123", "princess123",
        "1111111111", "0000000000", "aaaaaaaaaa", "zxcvbnm123", "asdfghjkl1", "changeme123",
    }
)  # fmt: skip


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _password_strength(value: str) -> str:
    if value.lower() in COMMON_PASSWORDS or len(set(value)) < 4:
        raise ValueError("is too common or too simple: choose a longer, less predictable password")
    return value


def normalize_email(value: str) -> str:
    """The one form an email is stored and looked up in: email-validator's normalization (NFC, an IDNA
    domain in Unicode) in lower case. Raises ValueError for an invalid address."""
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized).lower()
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address ({error})") from None


def _login_email(value: str) -> str:
    """Logins look up the same normal form; an invalid address simply matches no account."""
    try:
        return normalize_email(value)
    except ValueError:
        return value.strip().lower()


NO_NUL = AfterValidator(_no_nul)
# Constraints come before the validator: pydantic applies string constraints to the plain str schema only.
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_NUL]
Description = Annotated[str, StringConstraints(max_length=10_000), NO_NUL]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32), NO_NUL]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NO_NUL]
Email = Annotated[str, StringConstraints(max_length=254), NO_NUL, AfterValidator(normalize_email)]
Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    NO_NUL,
    AfterValidator(_password_strength),
]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_NUL]


# Dates outside this range are refused: beyond it a timezone shift overflows Python's datetime.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def checked_timestamp(value: datetime) -> datetime:
    """``value`` in UTC, if it has a timezone and lies in the supported range."""
    if value.tzinfo is None:
        raise ValueError("must include a timezone offset, e.g. 2030-01-31T17:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return utc


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else checked_timestamp(value)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskCreate(Strict):
    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    due_at: AwareDatetime | None = None
    tags: Tags = Field(default_factory=list)


class TaskPatch(Strict):
    """Only the fields set were given; ``None`` clears an optional field."""

    title: Title | None = None
    description: Description | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    due_at: AwareDatetime | None = None
    tags: Tags | None = None


class Registration(Strict):
    email: Email
    password: Password
    name: Name


class Credentials(Strict):
    email: Annotated[str, StringConstraints(max_length=254), NO_NUL, AfterValidator(_login_email)]
    password: Annotated[str, StringConstraints(max_length=MAX_PASSWORD_LENGTH), NO_NUL]


# An empty "any of" list would match nothing, and reading it as "no filter" would surprise: it is refused.
class TaskSearch(Strict):
    status: Annotated[list[TaskStatus], Field(min_length=1)] | None = None
    priority: Annotated[list[TaskPriority], Field(min_length=1)] | None = None
    tags: Annotated[list[Tag], Field(min_length=1, max_length=MAX_TAGS)] | None = None
    due_before: AwareDatetime | None = None
    due_after: AwareDatetime | None = None
    search: SearchText | None = None
    project_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    assigned_to_me: bool | None = None


class UserSearch(Strict):
    role: Role | None = None
    is_active: bool | None = None
    search: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NO_NUL] | None
    ) = None


Model = TypeVar("Model", bound=BaseModel)


# GraphQL names of the Python field names, for error paths that match what the client sent.
def graphql_name(name: str) -> str:
    """A field's GraphQL name (camelCase, as Strawberry names it) from its Python name."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validate(model: type[Model], values: Mapping[str, Any], *, argument: str) -> Model:
    """Validate ``values`` (the fields a client set) or raise ``BAD_USER_INPUT`` naming the first bad one."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        path = [
            argument,
            *(graphql_name(part) if isinstance(part, str) else str(part) for part in first["loc"]),
        ]
        field = ".".join(path)
        message = first["msg"].removeprefix("Value error, ")
        raise BadUserInput(f"{field}: {message}.", field=field) from None


class ProfilePatch(Strict):
    name: Name


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validate_argument(kind: Any, value: Any, *, argument: str) -> Any:
    """Validate one argument against an annotated type (``Password``, ``Email``) or raise ``BAD_USER_INPUT``
    naming it."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as error:
        message = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise BadUserInput(f"{argument}: {message}.", field=argument) from None
