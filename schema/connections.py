"""Relay connections: ``edges { cursor node }``, ``pageInfo`` and ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from resolvers.pagination import Page
from schema.cache_control import INHERIT

NodeType = TypeVar("NodeType")
Row = TypeVar("Row")


@strawberry.type(description="Where a page sits in its list (Relay).", directives=[INHERIT])
class PageInfo:
    has_next_page: bool = strawberry.field(description="More rows follow this page.")
    has_previous_page: bool = strawberry.field(
        description="Rows precede this page (paging backwards: exact; forwards: true when `after` was given)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


@strawberry.type(description="A row of a list and its cursor.", directives=[INHERIT])
class Edge(Generic[NodeType]):
    cursor: str = strawberry.field(description="Pass as `after`/`before` to page from this row.")
    node: NodeType = strawberry.field(description="The row.")


@strawberry.type(description="One page of a list.", directives=[INHERIT])
class Connection(Generic[NodeType]):
    edges: list[Edge[NodeType]] = strawberry.field(description="The rows of this page, in order.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many rows match the filter, on all pages (one extra SQL count).")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    page: Page[Row], to_node: Callable[[Row], NodeType], count: Callable[[], Awaitable[int]]
) -> Connection[NodeType]:
    cursors: Sequence[str] = page.cursors
    return Connection(
        edges=[
            Edge(cursor=cursor, node=to_node(item)) for cursor, item in zip(cursors, page.items, strict=True)
        ],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count=count,
    )


def selects(info: strawberry.Info[Any, Any], *path: str) -> bool:
    """Whether the current field's query selects ``path`` below it (GraphQL names, e.g. ``"edges",
    "node", "owner"``), through fragments and not turned off by ``@skip``/``@include``. A list uses it to
    load in one statement, before its rows complete, what every row will ask for, so that the rows
    complete without awaiting."""
    return _selects([child for field in info.selected_fields for child in field.selections], path)


def _selects(selections: Iterable[Selection], path: tuple[str, ...]) -> bool:
    name, rest = path[0], path[1:]
    for selection in selections:
        if _excluded(selection.directives):
            continue
        if not isinstance(selection, SelectedField):  # a fragment: its selections are on this level
            if _selects(selection.selections, path):
                return True
        elif selection.name == name and (not rest or _selects(selection.selections, rest)):
            return True
    return False


def _excluded(directives: dict[str, dict[str, Any]]) -> bool:
    return directives.get("skip", {}).get("if") is True or directives.get("include", {}).get("if") is False
