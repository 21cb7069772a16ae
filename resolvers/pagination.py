"""Relay cursor pagination on keysets: ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n + 1``.

Never OFFSET: a page costs the same wherever it is, and rows inserted or deleted elsewhere neither repeat
nor skip rows across pages. The cursor carries the sort key and id of its row, and the order it belongs to.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, literal, tuple_

from core.errors import BadUserInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def checked(self) -> tuple[int, bool]:
        """The page size and whether we page backwards (``last``/``before``)."""
        if self.first is not None and self.last is not None:
            raise BadUserInput("Pass either first or last, not both.", field="first")
        for name, size in (("first", self.first), ("last", self.last)):
            if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
                raise BadUserInput(f"{name} must be between 1 and {MAX_PAGE_SIZE}, not {size}.", field=name)
        # Forward paging is first/after, backward paging last/before; a mix would silently drop a cursor.
        if self.before is not None and (self.after is not None or self.first is not None):
            raise BadUserInput(
                "before pages backwards: pass it with last, not with first or after.", field="before"
            )
        if self.after is not None and self.last is not None:
            raise BadUserInput("after pages forwards: pass it with first, not with last.", field="after")
        backwards = self.last is not None or self.before is not None
        return (self.last if backwards else self.first) or DEFAULT_PAGE_SIZE, backwards


@dataclass(frozen=True, slots=True)
class SortKey:
    """One order: its name (checked against cursors), the SQL expression, and how to read/write its value."""

    name: str
    expression: Any
    value_of: Callable[[Any], Any]
    to_json: Callable[[Any], Any] = lambda value: value
    from_json: Callable[[Any], Any] = lambda value: value
    # SQL for a cursor's value; by default a literal of the expression's type.
    bind: Callable[[Any], Any] | None = None

    def bound(self, value: Any) -> Any:
        if self.bind is not None:
            return self.bind(value)
        return literal(value, type_=self.expression.type)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def enum_value(value: Enum) -> Any:
    return value.value


def encode_cursor(key: SortKey, value: Any, row_id: uuid.UUID) -> str:
    payload = json.dumps([key.name, key.to_json(value), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(key: SortKey, cursor: str, *, field: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, row_id = json.loads(raw)
        if name != key.name:
            raise ValueError(name)
        return key.from_json(value), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise BadUserInput(
            f"{field} is not a cursor of this list in this order: pass a cursor from the same query.",
            field=field,
        ) from None


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    items: Sequence[Item]
    cursors: Sequence[str]
    has_next_page: bool
    has_previous_page: bool


@dataclass(frozen=True, slots=True)
class Listing(Generic[Item]):
    """One page of a list, and how to count the whole list (only run if the client asks)."""

    page: Page[Item]
    count: Callable[[], Awaitable[int]]


def keyset(
    key: SortKey, id_column: Any, request: PageRequest, *, descending: bool
) -> tuple[list[ColumnElement[bool]], list[Any], int, bool]:
    """The WHERE clause, ORDER BY and LIMIT of one page, and whether rows come back reversed."""
    limit, backwards = request.checked()
    cursor, field = (request.before, "before") if backwards else (request.after, "after")
    # Paging backwards walks the order in reverse, then flips the rows.
    walk_descending = descending != backwards
    where: list[ColumnElement[bool]] = []
    if cursor is not None:
        value, row_id = decode_cursor(key, cursor, field=field)
        left, right = tuple_(key.expression, id_column), tuple_(key.bound(value), row_id)
        where.append(left < right if walk_descending else left > right)
    order = [key.expression, id_column]
    order_by = [column.desc() if walk_descending else column.asc() for column in order]
    return where, order_by, limit, backwards


def make_page(
    rows: Sequence[Item], key: SortKey, request: PageRequest, limit: int, backwards: bool
) -> Page[Item]:
    has_more = len(rows) > limit
    items = list(rows[:limit])
    if backwards:
        items.reverse()
    cursors = [encode_cursor(key, key.value_of(item), item.id) for item in items]  # type: ignore[attr-defined]
    return Page(
        items=items,
        cursors=cursors,
        # Relay: going forward, hasPreviousPage may be true when an `after` cursor was given (rows came
        # before it); going backwards, symmetrically for hasNextPage and `before`.
        has_next_page=has_more if not backwards else request.before is not None,
        has_previous_page=has_more if backwards else request.after is not None,
    )
