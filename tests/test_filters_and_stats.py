"""Task filters and statistics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient


@pytest.fixture
async def alices_tasks(gql: GraphQLClient, alice: Account) -> None:
    await create_task(
        gql,
        alice,
        title="overdue",
        status="TODO",
        priority="HIGH",
        dueAt="2001-01-01T00:00:00Z",
        tags=["work"],
    )
    await create_task(
        gql, alice, title="done late", status="DONE", priority="LOW", dueAt="2001-01-01T00:00:00Z"
    )
    await create_task(
        gql,
        alice,
        title="future",
        status="IN_PROGRESS",
        priority="HIGH",
        dueAt="2099-01-01T00:00:00Z",
        tags=["work", "home"],
    )
    await create_task(gql, alice, title="no date", priority="URGENT", tags=["home"])


async def titles(gql: GraphQLClient, account: Account, task_filter: dict[str, Any]) -> set[str]:
    edges = (await gql.run("Tasks", {"filter": task_filter}, token=account.token)).ok()["tasks"]["edges"]
    return {edge["node"]["title"] for edge in edges}


@pytest.mark.parametrize(
    ("task_filter", "expected"),
    [
        ({"status": ["TODO"]}, {"overdue", "no date"}),
        ({"status": ["DONE", "IN_PROGRESS"]}, {"done late", "future"}),
        ({"priority": ["HIGH"]}, {"overdue", "future"}),
        ({"tags": ["work"]}, {"overdue", "future"}),
        ({"tags": ["work", "home"]}, {"future"}),
        ({"dueBefore": "2050-01-01T00:00:00Z"}, {"overdue", "done late"}),
        ({"dueAfter": "2050-01-01T00:00:00Z"}, {"future"}),
        ({"status": ["TODO"], "priority": ["URGENT"]}, {"no date"}),
    ],
)
async def test_filters_narrow_the_list(
    gql: GraphQLClient, alice: Account, alices_tasks: None, task_filter: dict[str, Any], expected: set[str]
) -> None:
    assert await titles(gql, alice, task_filter) == expected


async def test_a_naive_date_in_a_filter_is_bad_user_input(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.run("Tasks", {"filter": {"dueBefore": "2050-01-01T00:00:00"}}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]


def as_dict(pairs: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {pair[key]: pair["count"] for pair in pairs}


async def test_stats_count_by_status_and_priority_with_overdue_and_completion_rate(
    gql: GraphQLClient, alice: Account, alices_tasks: None
) -> None:
    stats = (await gql.run("TaskStats", token=alice.token)).ok()["taskStats"]
    assert stats["total"] == 4
    assert as_dict(stats["byStatus"], "status") == {"TODO": 2, "IN_PROGRESS": 1, "DONE": 1}
    assert as_dict(stats["byPriority"], "priority") == {"LOW": 1, "MEDIUM": 0, "HIGH": 2, "URGENT": 1}
    assert stats["overdue"] == 1  # the DONE one is late but not overdue
    assert stats["completionRate"] == 0.25


async def test_stats_of_a_user_without_tasks_are_zero(gql: GraphQLClient, bob: Account) -> None:
    stats = (await gql.run("TaskStats", token=bob.token)).ok()["taskStats"]
    assert (stats["total"], stats["overdue"], stats["completionRate"]) == (0, 0, 0.0)
    assert set(as_dict(stats["byStatus"], "status").values()) == {0}


async def test_stats_follow_writes(gql: GraphQLClient, alice: Account, alices_tasks: None) -> None:
    task = await create_task(gql, alice, title="one more")
    await gql.run("UpdateTask", {"id": task["id"], "input": {"status": "DONE"}}, token=alice.token)
    stats = (await gql.run("TaskStats", token=alice.token)).ok()["taskStats"]
    assert (stats["total"], stats["completionRate"]) == (5, 0.4)


async def test_an_admin_sees_global_stats_and_any_owners(
    gql: GraphQLClient, admin: Account, alice: Account, bob: Account, alices_tasks: None
) -> None:
    await create_task(gql, bob, title="bob's")
    assert (await gql.run("TaskStats", token=admin.token)).ok()["taskStats"]["total"] == 5
    assert (await gql.run("TaskStats", {"ownerId": bob.id}, token=admin.token)).ok()["taskStats"][
        "total"
    ] == 1
    assert (await gql.run("TaskStats", {"ownerId": alice.id}, token=alice.token)).ok()["taskStats"][
        "total"
    ] == 4


async def test_user_filters_for_admins(
    gql: GraphQLClient, admin: Account, alice: Account, bob: Account
) -> None:
    def emails(response: Any) -> set[str]:
        return {edge["node"]["email"] for edge in response.ok()["users"]["edges"]}

    assert emails(await gql.run("Users", {"filter": {"role": "ADMIN"}}, token=admin.token)) == {admin.email}
    assert emails(await gql.run("Users", {"filter": {"search": "Bo"}}, token=admin.token)) == {bob.email}
    assert emails(await gql.run("Users", {"filter": {"search": "%"}}, token=admin.token)) == set()
    await gql.run("SetUserActive", {"userId": bob.id, "active": False}, token=admin.token)
    assert emails(await gql.run("Users", {"filter": {"isActive": False}}, token=admin.token)) == {bob.email}


async def test_users_page_by_cursor(gql: GraphQLClient, admin: Account, alice: Account, bob: Account) -> None:
    first = (await gql.run("Users", {"first": 2}, token=admin.token)).ok()["users"]
    rest = (
        await gql.run("Users", {"first": 2, "after": first["pageInfo"]["endCursor"]}, token=admin.token)
    ).ok()
    emails = [edge["node"]["email"] for edge in first["edges"] + rest["users"]["edges"]]
    assert emails == [admin.email, alice.email, bob.email]  # oldest first: fixtures register in this order
    assert first["totalCount"] == 3


async def test_stats_read_in_the_same_document_follow_each_write(gql: GraphQLClient, alice: Account) -> None:
    document = """mutation {
      a: createTask(input: {title: "one"}) { owner { taskStats { total } } }
      b: createTask(input: {title: "two"}) { owner { taskStats { total } } }
    }"""
    data = (await gql.query(document, token=alice.token)).ok()
    assert (data["a"]["owner"]["taskStats"]["total"], data["b"]["owner"]["taskStats"]["total"]) == (1, 2)


async def test_giving_a_task_away_updates_both_owners_stats_in_the_same_document(
    gql: GraphQLClient, admin: Account, alice: Account, bob: Account
) -> None:
    task = await create_task(gql, alice)
    document = """mutation($id: ID!, $bob: ID!) {
      before: updateTask(id: $id, input: {priority: LOW}) { owner { taskStats { total } } }
      moved: updateTask(id: $id, input: {ownerId: $bob}) { owner { taskStats { total } } }
    }"""
    data = (await gql.query(document, {"id": task["id"], "bob": bob.id}, token=admin.token)).ok()
    assert data["before"]["owner"]["taskStats"]["total"] == 1
    assert data["moved"]["owner"]["taskStats"]["total"] == 1
    alice_stats = await gql.run("TaskStats", {"ownerId": alice.id}, token=admin.token)
    assert alice_stats.ok()["taskStats"]["total"] == 0


@pytest.mark.parametrize("task_filter", [{"status": []}, {"priority": []}, {"tags": []}, {"search": "_ ²"}])
async def test_filters_that_could_only_match_nothing_are_bad_user_input(
    gql: GraphQLClient, alice: Account, task_filter: dict[str, Any]
) -> None:
    response = await gql.run("Tasks", {"filter": task_filter}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"], response.body
