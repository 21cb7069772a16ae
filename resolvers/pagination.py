"""Relay cursor pagination on keysets: ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n + 1``.

Never OFFSET: a page costs the same wherever it is, and rows inserted or deleted elsewhere neither repeat
nor skip rows across pages. The cursor carries the sort key and id of its row, and the order it belongs to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from json.encoder import encode_basestring_ascii
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, Uuid, bindparam, select, tuple_

from core.errors import BadUserInput
from core.reader import Reader
from core.sql import Sql, compile_sql

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
    # Reads a cursor's value back: must refuse anything to_json cannot produce (clients can send anything).
    from_json: Callable[[Any], Any]
    to_json: Callable[[Any], Any] = lambda value: value
    # The SQL a cursor's value is compared as, given its parameter; by default the parameter itself.
    bind: Callable[[Any], Any] | None = None

    def bound(self, parameter: Any) -> Any:
        return self.bind(parameter) if self.bind is not None else parameter


# Cursor values come back from clients: each reader accepts exactly what its writer produces, so a
# tampered cursor is BAD_USER_INPUT, never a database error.
def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def from_iso(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed.astimezone(UTC)  # raises OverflowError outside the representable range


def from_optional_iso(value: object) -> datetime | None:
    return None if value is None else from_iso(value)


def enum_value(value: Enum) -> Any:
    return value.value


def text_value(value: object) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > 1000:
        raise ValueError(value)
    value.encode("utf-8")  # a lone surrogate ("\ud800") raises UnicodeEncodeError: PostgreSQL refuses it
    return value


def finite_float(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(value)
    return float(value)


CURSOR_ERRORS = (
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
    RecursionError,
    binascii.Error,
    UnicodeError,
)
MAX_CURSOR_LENGTH = 2048  # ours are far shorter; bounds the JSON a client can make us parse


# A page has up to 100 cursors: each is written directly as the JSON ``[scope, value, id]`` that
# json.dumps(..., separators=(",", ":")) would write (same bytes), without building an encoder per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _json_value(value: Any) -> str:
    if type(value) is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _COMPACT_JSON.encode(value)


def encode_cursor(scope: str, value: Any, row_id: uuid.UUID) -> str:
    payload = f'[{encode_basestring_ascii(scope)},{_json_value(value)},"{row_id}"]'
    return binascii.b2a_base64(payload.encode(), newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def decode_cursor(key: SortKey, scope: str, cursor: str, *, field: str) -> tuple[Any, uuid.UUID]:
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError(len(cursor))
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_scope, value, row_id = json.loads(raw)
        if cursor_scope != scope or not isinstance(row_id, str):
            raise ValueError(cursor_scope)
        return key.from_json(value), uuid.UUID(row_id)
    except CURSOR_ERRORS:
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


@dataclass(frozen=True, slots=True)
class Keyset:
    """One page's window: its size, the way rows are read (and whether they come back reversed), the row to
    start after, and the cursors' scope. The SQL depends only on its shape (``walk_descending`` and whether
    there is a cursor: ``page_clauses``), so a statement compiled once serves every page of that shape;
    the values travel as parameters (``params``)."""

    limit: int
    backwards: bool
    walk_descending: bool
    scope: str
    cursor: tuple[Any, uuid.UUID] | None  # the sort key and id of the row to start after

    def params(self) -> dict[str, Any]:
        """Values of the parameters of ``page_clauses`` and of the ``LIMIT`` (one more row than the page,
        to know whether another page follows)."""
        values: dict[str, Any] = {"limit": self.limit + 1}
        if self.cursor is not None:
            values["cursor_key"], values["cursor_id"] = self.cursor
        return values


def page_clauses(
    key: SortKey, id_column: Any, *, walk_descending: bool, cursor: bool
) -> tuple[list[ColumnElement[bool]], list[Any]]:
    """The WHERE clause (rows after the cursor's, when there is one) and the ORDER BY of a page read in this
    direction, with the parameters of ``Keyset.params``."""
    where: list[ColumnElement[bool]] = []
    if cursor:
        value = key.bound(bindparam("cursor_key", type_=key.expression.type))
        left, right = tuple_(key.expression, id_column), tuple_(value, bindparam("cursor_id", type_=Uuid()))
        where.append(left < right if walk_descending else left > right)
    order = [key.expression, id_column]
    return where, [column.desc() if walk_descending else column.asc() for column in order]


LIMIT = bindparam("limit", type_=Integer())  # every page's LIMIT (Keyset.params)


def page_sql(
    key: SortKey,
    id_column: Any,
    columns: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
    *,
    walk_descending: bool,
    cursor: bool,
) -> Sql:
    """A page's statement: ``columns`` of the rows ``where`` holds, after the cursor's row when there is one,
    in the key's order (compile it once per shape: ``functools.cache``)."""
    after, order_by = page_clauses(key, id_column, walk_descending=walk_descending, cursor=cursor)
    statement = select(*columns).where(*where, *after).order_by(*order_by).limit(LIMIT)
    return compile_sql(statement, constants=False)


def keyset(key: SortKey, request: PageRequest, *, descending: bool, query: str = "") -> Keyset:
    """``query`` names what else the order depends on (a search's text): a cursor is valid only with the
    same order, direction and query it came from."""
    limit, backwards = request.checked()
    digest = hashlib.sha256(query.encode()).hexdigest()[:12] if query else ""
    scope = f"{key.name}:{'desc' if descending else 'asc'}:{digest}"
    cursor, field = (request.before, "before") if backwards else (request.after, "after")
    # Paging backwards walks the order in reverse, then flips the rows.
    walk_descending = descending != backwards
    position = decode_cursor(key, scope, cursor, field=field) if cursor is not None else None
    return Keyset(limit, backwards, walk_descending, scope, position)


def make_page(rows: Sequence[Item], key: SortKey, request: PageRequest, page: Keyset) -> Page[Item]:
    limit, backwards = page.limit, page.backwards
    has_more = len(rows) > limit
    items = list(rows[:limit])
    if backwards:
        items.reverse()
    cursors = [
        encode_cursor(page.scope, key.to_json(key.value_of(item)), item.id)  # type: ignore[attr-defined]
        for item in items
    ]
    return Page(
        items=items,
        cursors=cursors,
        # Relay: going forward, hasPreviousPage may be true when an `after` cursor was given (rows came
        # before it); going backwards, symmetrically for hasNextPage and `before`.
        has_next_page=has_more if not backwards else request.before is not None,
        has_previous_page=has_more if backwards else request.after is not None,
    )


async def read_page(
    reader: Reader,
    key: SortKey,
    request: PageRequest,
    window: Keyset,
    sql: Sql,
    count: Sql,
    values: Mapping[str, Any],
    record: Callable[[Any], Item],
) -> Listing[Item]:
    """A page read with ``sql`` (``page_sql``'s, with ``values``) on ``reader``, each row made a record, and
    its whole list counted with ``count`` only if the client asks."""
    rows = [record(row) for row in await reader.fetch(sql, {**values, **window.params()})]
    return Listing(make_page(rows, key, request, window), lambda: reader.fetchval(count, values))
