"""Scalars. ``DateTime`` insists on a timezone: a date without one is ambiguous, so it is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition


def _serialize(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string such as 2030-01-31T17:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2030-01-31T17:00:00Z.") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone: add an offset such as Z or +02:00.")
    return parsed


DATETIME: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 date-time with a timezone offset, e.g. 2030-01-31T17:00:00Z. Returned in UTC.",
    specified_by_url="https://scalars.graphql.org/chillicream/date-time.html",
    serialize=_serialize,
    parse_value=_parse,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {datetime: DATETIME}
