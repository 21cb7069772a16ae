"""Relay connections: ``edges { cursor node }``, ``pageInfo`` and ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql.utilities import value_from_ast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLNonNull,
    InlineFragmentNode,
    SelectionNode,
)
from resolvers.pagination import Page
from schema.directives.cache_control import INHERIT
from schema.planning.strawberry_compat import raw_info

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
    complete without awaiting. It walks the document's nodes as graphql-core collects fields (Strawberry's
    ``selected_fields`` would first convert the whole selection, arguments and directives included)."""
    raw = raw_info(info)
    selections = [
        selection
        for node in raw.field_nodes
        if node.selection_set is not None
        for selection in node.selection_set.selections
    ]
    # Strawberry's resolve info carries the coerced dict; graphql-core's own, a VariableValues holding it.
    given: Any = raw.variable_values
    variables: dict[str, Any] = getattr(given, "coerced", given)
    return _selects(selections, path, raw.fragments, variables)


def _selects(
    selections: Iterable[SelectionNode],
    path: tuple[str, ...],
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> bool:
    name, rest = path[0], path[1:]
    for selection in selections:
        if selection.directives and not _included(selection, variables):
            continue
        if isinstance(selection, FieldNode):
            if selection.name.value == name and (
                not rest
                or (
                    selection.selection_set is not None
                    and _selects(selection.selection_set.selections, rest, fragments, variables)
                )
            ):
                return True
        elif isinstance(selection, InlineFragmentNode):  # its selections are on this level
            if _selects(selection.selection_set.selections, path, fragments, variables):
                return True
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None and _selects(
                fragment.selection_set.selections, path, fragments, variables
            ):
                return True
    return False


CONDITION = GraphQLNonNull(GraphQLBoolean)  # @skip's and @include's `if`


def _included(node: SelectionNode, variables: dict[str, Any]) -> bool:
    """graphql-core's rule (``should_include_node``): no ``@skip(if: true)``, no ``@include(if: false)``.
    The variables are the coerced ones Strawberry gives resolvers (defaults applied)."""
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        value = value_from_ast(condition, CONDITION, variables)
        if value is (name == "skip"):
            return False
    return True
