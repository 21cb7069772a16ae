"""``@cacheControl``: the policy of a document, by Apollo's rules, worked out before execution."""

from __future__ import annotations

import strawberry

from core.cache_tags import Policy
from graphql import parse
from schema.analysis.cache_policies import CachePolicies
from schema.build import build_schema
from schema.directives.cache_control import CacheControl, CacheControlScope
from schema.planning.strawberry_compat import graphql_schema_of
from tests.processes import ROOT


def policy_of(document: str, schema: strawberry.Schema | None = None) -> Policy | None:
    graphql_schema = graphql_schema_of(schema or build_schema())
    return CachePolicies(graphql_schema).of(document, parse(document), None)


@strawberry.type(directives=[CacheControl(max_age=60)])
class Book:
    title: str
    author: Author

    @strawberry.field(directives=[CacheControl(max_age=10)])
    def price(self) -> int:
        return 1


@strawberry.type
class Author:
    name: str


@strawberry.type(directives=[CacheControl(inherit_max_age=True)])
class Shelf:
    books: list[Book]
    label: str


@strawberry.type
class Library:
    @strawberry.field(directives=[CacheControl(max_age=120)])
    def book(self) -> Book:
        raise NotImplementedError

    @strawberry.field(directives=[CacheControl(max_age=30, scope=CacheControlScope.PRIVATE)])
    def mine(self) -> Book:
        raise NotImplementedError

    @strawberry.field
    def unhinted(self) -> Book:
        raise NotImplementedError

    @strawberry.field(directives=[CacheControl(max_age=90)])
    def shelf(self) -> Shelf:
        raise NotImplementedError

    @strawberry.field
    def count(self) -> int:
        return 0


LIBRARY = strawberry.Schema(query=Library)


def test_a_field_hint_wins_over_its_types_hint() -> None:
    assert policy_of("{ book { title } }", LIBRARY) == Policy(max_age=120, public=True)


def test_the_response_takes_the_smallest_max_age_of_its_fields() -> None:
    assert policy_of("{ book { title price } }", LIBRARY) == Policy(max_age=10, public=True)


def test_a_composite_field_without_a_hint_makes_the_response_uncacheable() -> None:
    assert policy_of("{ book { author { name } } }", LIBRARY) == Policy(max_age=0, public=True)


def test_a_root_field_without_a_hint_falls_back_to_its_types_hint() -> None:
    assert policy_of("{ unhinted { title } }", LIBRARY) == Policy(max_age=60, public=True)


def test_a_root_leaf_without_a_hint_is_uncacheable() -> None:
    assert policy_of("{ count }", LIBRARY) == Policy(max_age=0, public=True)


def test_a_type_with_inherit_max_age_follows_its_parent_field() -> None:
    assert policy_of("{ shelf { label books { title } } }", LIBRARY) == Policy(max_age=60, public=True)
    assert policy_of("{ shelf { label } }", LIBRARY) == Policy(max_age=90, public=True)


def test_one_private_hint_makes_the_whole_response_private() -> None:
    assert policy_of("{ book { title } mine { title } }", LIBRARY) == Policy(max_age=30, public=False)


def test_fragments_count_like_the_fields_they_hold() -> None:
    document = "{ book { ...Priced } } fragment Priced on Book { price }"
    assert policy_of(document, LIBRARY) == Policy(max_age=10, public=True)


def test_taskqls_lists_are_private_for_five_minutes() -> None:
    document = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()
    assert policy_of(document) == Policy(max_age=300, public=False)


def test_introspection_is_not_cached() -> None:
    assert policy_of("{ __schema { queryType { name } } }") == Policy(max_age=0, public=True)


def test_mutations_have_no_policy() -> None:
    assert policy_of('mutation { deleteTask(id: "x") }') is None


def test_the_sdl_shows_the_directive_as_apollo_declares_it() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    assert (
        "directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) "
        "on FIELD_DEFINITION | OBJECT | INTERFACE | UNION"
    ) in sdl
    assert "type Task implements Node @cacheControl(maxAge: 300, scope: PRIVATE) {" in sdl
