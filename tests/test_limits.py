"""Depth and alias limits are checked before anything executes, without defeating the validation cache."""

from __future__ import annotations

from typing import Any

from strawberry.extensions.validation_cache import _get_validate_cache

from schema.extensions.query_limits import MAX_ALIASES, MAX_DEPTH
from taskql.app import TaskqlApp
from tests.factories import Account
from tests.graphql_client import GraphQLClient
from tests.sql import captured

# me → tasks → edges → node → owner → tasks → ... : 15 levels
DEEP = "{ me { " + "tasks { edges { node { owner { " * 3 + "id" + " } } } }" * 3 + " } }"


async def test_a_too_deep_operation_is_refused_before_any_resolver_runs(
    app: TaskqlApp, gql: GraphQLClient, alice: Account
) -> None:
    with captured(app) as statements:
        response = await gql.query(DEEP, token=alice.token)
    assert response.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert f"maximum operation depth of {MAX_DEPTH}" in response.errors[0]["message"]
    assert response.data is None
    assert not statements.matching("FROM tasks")  # only the viewer was read (by the context)


async def test_an_alias_bomb_is_refused_before_any_resolver_runs(
    app: TaskqlApp, gql: GraphQLClient, alice: Account
) -> None:
    bomb = "{ " + " ".join(f"a{i}: tasks(first: 1) {{ totalCount }}" for i in range(MAX_ALIASES + 1)) + " }"
    with captured(app) as statements:
        response = await gql.query(bomb, token=alice.token)
    assert response.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert f"Allowed: {MAX_ALIASES}" in response.errors[0]["message"]
    assert not statements.matching("FROM tasks")


async def test_every_stored_operation_and_introspection_pass_the_limits(
    gql: GraphQLClient, alice: Account
) -> None:
    from graphql import get_introspection_query

    assert (await gql.query(get_introspection_query())).errors == []
    assert (await gql.run("TasksWithOwners", {"first": 1}, token=alice.token)).errors == []


async def test_a_repeated_document_is_validated_once(gql: GraphQLClient, alice: Account) -> None:
    cache: Any = _get_validate_cache(1024)  # the cache schema.build configures
    await gql.run("Tasks", {"first": 1}, token=alice.token)
    before = cache.cache_info()
    await gql.run("Tasks", {"first": 2}, token=alice.token)
    after = cache.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
