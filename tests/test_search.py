"""Full-text search over title and description: words and word prefixes, every word required, ranked."""

from __future__ import annotations

import pytest

from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient


async def titles_found(gql: GraphQLClient, account: Account, search: str, **extra: object) -> list[str]:
    variables = {"first": 20, "filter": {"search": search}, **extra}
    edges = (await gql.run("Tasks", variables, token=account.token)).ok()["tasks"]["edges"]
    return [edge["node"]["title"] for edge in edges]


@pytest.fixture
async def library(gql: GraphQLClient, alice: Account) -> None:
    await create_task(gql, alice, title="Deploy the backend", description="Roll out version two")
    await create_task(gql, alice, title="Write release notes", description="Mention the deployment window")
    await create_task(gql, alice, title="Buy groceries", description="Milk, eggs, bread")
    await create_task(gql, alice, title="Deployment checklist", description="deploy deploy deploy")


async def test_a_word_matches_in_title_or_description(
    gql: GraphQLClient, alice: Account, library: None
) -> None:
    assert set(await titles_found(gql, alice, "eggs")) == {"Buy groceries"}
    assert set(await titles_found(gql, alice, "BACKEND")) == {"Deploy the backend"}


async def test_a_word_prefix_matches(gql: GraphQLClient, alice: Account, library: None) -> None:
    assert set(await titles_found(gql, alice, "depl")) == {
        "Deploy the backend",
        "Write release notes",
        "Deployment checklist",
    }


async def test_every_word_must_match(gql: GraphQLClient, alice: Account, library: None) -> None:
    assert await titles_found(gql, alice, "deploy backend") == ["Deploy the backend"]
    assert await titles_found(gql, alice, "deploy groceries") == []


async def test_results_are_ranked_title_matches_first(
    gql: GraphQLClient, alice: Account, library: None
) -> None:
    found = await titles_found(gql, alice, "deploy")
    assert found[-1] == "Write release notes"  # matches only in its description
    assert set(found[:2]) == {"Deployment checklist", "Deploy the backend"}


async def test_ranked_results_page_without_gaps(gql: GraphQLClient, alice: Account, library: None) -> None:
    first = (await gql.run("Tasks", {"first": 2, "filter": {"search": "dep"}}, token=alice.token)).ok()[
        "tasks"
    ]
    after = first["pageInfo"]["endCursor"]
    rest = (
        await gql.run("Tasks", {"first": 2, "after": after, "filter": {"search": "dep"}}, token=alice.token)
    ).ok()["tasks"]
    titles = [edge["node"]["title"] for edge in first["edges"] + rest["edges"]]
    assert titles == await titles_found(gql, alice, "dep")
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_query_syntax_characters_are_plain_text(
    gql: GraphQLClient, alice: Account, library: None
) -> None:
    assert set(await titles_found(gql, alice, "deploy & !backend | :*")) == {"Deploy the backend"}


async def test_a_search_without_any_word_is_bad_user_input(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.run("Tasks", {"filter": {"search": "&&& !!"}}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["field"] == "filter.search"


async def test_search_combines_with_an_explicit_order_and_filters(
    gql: GraphQLClient, alice: Account, library: None
) -> None:
    order = {"field": "TITLE", "direction": "ASC"}
    assert await titles_found(gql, alice, "deploy", orderBy=order) == [
        "Deploy the backend",
        "Deployment checklist",
        "Write release notes",
    ]


async def test_relevance_order_needs_a_search(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.run("Tasks", {"orderBy": {"field": "RELEVANCE"}}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]


async def test_search_never_returns_another_users_tasks(
    gql: GraphQLClient, alice: Account, bob: Account, library: None
) -> None:
    await create_task(gql, bob, title="Deploy bob's thing")
    assert "Deploy bob's thing" not in await titles_found(gql, alice, "deploy")
    assert await titles_found(gql, bob, "deploy") == ["Deploy bob's thing"]


async def test_symbols_inside_words_split_them_as_postgres_does(gql: GraphQLClient, alice: Account) -> None:
    await create_task(gql, alice, title="Measure H₂O purity", description="and x² growth")
    assert await titles_found(gql, alice, "H₂O") == ["Measure H₂O purity"]
    assert await titles_found(gql, alice, "x²") == ["Measure H₂O purity"]
    assert await titles_found(gql, alice, "e=mc²") == []  # "e" and "mc" are both required
