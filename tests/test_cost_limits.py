"""Every operation's cost is estimated before it runs (schema/analysis/cost.py) and reported in
``extensions.cost``; tokens, directives and cost are limited, and refused before any resolver runs."""

from __future__ import annotations

from typing import Any

import pytest

from core.settings import Settings
from schema.extensions.query_limits import MAX_COST, MAX_DIRECTIVES, MAX_TOKENS, Limits, limit_rules
from taskql.app import TaskqlApp
from tests.conftest import client_for
from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient, Response
from tests.sql import captured

OWNERS_AND_STATS = "{ tasks(first: 50) { totalCount edges { node { owner { name taskStats { total } } } } } }"
# users → tasks → owner: 1 + 100 * (1 + 100 * 1) = 10,101, just over the default maximum of 10,000.
TOO_COSTLY = (
    "{ users(first: 100) { edges { node { tasks(first: 100) { edges { node { owner { name } } } } } } } }"
)


def requested(response: Response) -> Any:
    return response.body["extensions"]["cost"]["requested"]


async def test_each_lookup_costs_one_and_a_page_size_multiplies_what_its_edges_select(
    gql: GraphQLClient, alice: Account
) -> None:
    response = await gql.query(OWNERS_AND_STATS, token=alice.token)
    response.ok()
    # tasks 1 + totalCount 1 + 50 * (owner 1 + taskStats 1)
    assert requested(response) == 102


async def test_nested_connections_multiply_their_page_sizes(gql: GraphQLClient, admin: Account) -> None:
    document = (
        "{ users(first: 10) { edges { node { tasks(first: 20) { edges { node { owner { id } } } } } } } }"
    )
    response = await gql.query(document, token=admin.token)
    response.ok()
    assert requested(response) == 1 + 10 * (1 + 20 * 1)


@pytest.mark.parametrize(
    ("variables", "cost"),
    [
        ({"n": 5}, 1 + 5),  # the variable
        ({}, 1 + 30),  # the variable's default in the operation
        ({"n": None}, 1 + 20),  # null: the argument's default, the default page size (20)
    ],
)
async def test_page_sizes_are_read_from_variables_and_defaults(
    gql: GraphQLClient, alice: Account, variables: dict[str, Any], cost: int
) -> None:
    document = "query($n: Int = 30) { tasks(first: $n) { edges { node { owner { id } } } } }"
    response = await gql.query(document, variables, token=alice.token)
    response.ok()
    assert requested(response) == cost


async def test_last_counts_as_first_does(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.query("{ tasks(last: 7) { edges { node { owner { id } } } } }", token=alice.token)
    assert requested(response) == 1 + 7


async def test_a_skipped_selection_costs_nothing(gql: GraphQLClient, alice: Account) -> None:
    document = "query($s: Boolean!) { tasks(first: 10) { edges { node { owner @skip(if: $s) { id } } } } }"
    assert requested(await gql.query(document, {"s": True}, token=alice.token)) == 1
    assert requested(await gql.query(document, {"s": False}, token=alice.token)) == 1 + 10


async def test_a_field_selected_by_two_fragments_counts_once(gql: GraphQLClient, alice: Account) -> None:
    document = (
        "{ tasks(first: 5) { edges { node { ...A ...B } } } }"
        " fragment A on Task { owner { id } } fragment B on Task { owner { name } }"
    )
    assert requested(await gql.query(document, token=alice.token)) == 1 + 5


async def test_an_interface_costs_as_much_as_its_costliest_type(gql: GraphQLClient, alice: Account) -> None:
    document = (
        "query($id: ID!) { node(id: $id) { ... on Task { owner { id } }"
        " ... on User { tasks(first: 10) { edges { node { owner { id } } } } } } }"
    )
    response = await gql.query(document, {"id": alice.id}, token=alice.token)
    response.ok()
    assert requested(response) == 1 + (1 + 10 * 1)  # node + the User branch


async def test_each_mutation_field_costs_ten_aliases_included(gql: GraphQLClient, alice: Account) -> None:
    document = (
        'mutation { a: createTask(input: {title: "one"}) { id } b: createTask(input: {title: "two"}) { id } }'
    )
    response = await gql.query(document, token=alice.token)
    response.ok()
    assert requested(response) == 20


async def test_introspection_costs_the_minimum_of_one(gql: GraphQLClient) -> None:
    assert requested(await gql.query("{ __schema { types { name } } }")) == 1


async def test_an_operation_over_the_maximum_cost_is_refused_before_any_resolver_runs(
    app: TaskqlApp, gql: GraphQLClient, admin: Account
) -> None:
    with captured(app) as allowed:  # the control: the same selection, on smaller pages, reads tasks
        (await gql.query(TOO_COSTLY.replace("100", "10"), token=admin.token)).ok()
    assert allowed.matching("FROM tasks")
    with captured(app) as statements:
        response = await gql.query(TOO_COSTLY, token=admin.token)
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    error = response.errors[0]
    assert error["extensions"]["cost"] == 10_101
    assert error["extensions"]["maxCost"] == MAX_COST
    assert "smaller pages" in error["message"]
    assert response.data is None
    assert not statements.matching("FROM tasks")


async def test_the_maximum_cost_comes_from_the_settings(settings: Settings, alice: Account) -> None:
    async with client_for(settings.model_copy(update={"max_query_cost": 30})) as http:
        gql = GraphQLClient(http)
        document = "query($n: Int!) { tasks(first: $n) { edges { node { owner { id } } } } }"
        assert (await gql.query(document, {"n": 29}, token=alice.token)).errors == []
        assert (await gql.query(document, {"n": 30}, token=alice.token)).codes == ["QUERY_TOO_COMPLEX"]


async def test_a_document_over_the_token_limit_is_refused_by_the_parser(
    gql: GraphQLClient, alice: Account
) -> None:
    # Comments count too: padding a document with them does not get it past the limit.
    document = "{ me { id } }\n" + "# padding\n" * MAX_TOKENS
    response = await gql.query(document, token=alice.token)
    assert response.codes == ["GRAPHQL_PARSE_FAILED"]
    assert f"more than {MAX_TOKENS} tokens" in response.errors[0]["message"]
    assert response.data is None


async def test_an_operation_with_too_many_directives_is_refused(gql: GraphQLClient, alice: Account) -> None:
    fields = " ".join("id @include(if: true)" for _ in range(MAX_DIRECTIVES + 1))
    response = await gql.query("{ me { " + fields + " } }", token=alice.token)
    assert response.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert response.errors[0]["extensions"]["limit"] == "directives"
    assert response.errors[0]["extensions"]["max"] == MAX_DIRECTIVES
    assert response.data is None


async def test_directives_in_the_fragments_an_operation_uses_count_toward_its_limit(
    gql: GraphQLClient, alice: Account
) -> None:
    fields = " ".join("id @include(if: true)" for _ in range(MAX_DIRECTIVES))
    document = "{ me { ...F id @skip(if: false) } } fragment F on User { " + fields + " }"
    response = await gql.query(document, token=alice.token)
    assert response.errors[0]["extensions"]["limit"] == "directives"


async def test_depth_and_alias_refusals_name_their_limit(gql: GraphQLClient, alice: Account) -> None:
    deep = "{ me { " + "tasks { edges { node { owner { " * 3 + "id" + " } } } }" * 3 + " } }"
    assert (await gql.query(deep, token=alice.token)).errors[0]["extensions"]["limit"] == "depth"
    aliases = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(31)) + " }"
    assert (await gql.query(aliases, token=alice.token)).errors[0]["extensions"]["limit"] == "aliases"


def test_the_limit_rules_are_built_once_for_each_set_of_limits() -> None:
    # The validation cache keys on the rule classes: new classes per request would turn it off.
    assert limit_rules(Limits()) is limit_rules(Limits())
    assert limit_rules(Limits(max_depth=5)) is not limit_rules(Limits())


async def test_a_cached_answer_is_stored_without_the_cost_report_of_its_request(
    gql: GraphQLClient, alice: Account
) -> None:
    await create_task(gql, alice, title="cached")
    first = await gql.run("Tasks", {"first": 5}, token=alice.token)
    assert first.headers["x-cache"] == "MISS"
    assert requested(first) == 2
    hit = await gql.run("Tasks", {"first": 5}, token=alice.token)
    assert hit.headers["x-cache"] == "HIT"
    assert hit.data == first.data
    assert "extensions" not in hit.body
