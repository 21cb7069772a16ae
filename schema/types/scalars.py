"""Scalars. ``DateTime`` insists on a timezone: a date without one is ambiguous, so it is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition

from resolvers.inputs import checked_timestamp


def _serialize(value: datetime) -> str:
    # Rows come back from PostgreSQL in UTC already: converting only the others saves a call per value.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def _parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string such as 2030-01-31T17:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2030-01-31T17:00:00Z.") from None
    try:
        return checked_timestamp(parsed)
    except ValueError as error:
        raise ValueError(f"{value!r} {error}.") from None


DATETIME: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 date-time with a timezone offset, e.g. 2030-01-31T17:00:00Z. Returned in UTC.",
    specified_by_url="https://scalars.graphql.org/chillicream/date-time.html",
    serialize=_serialize,
    parse_value=_parse,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {datetime: DATETIME}
