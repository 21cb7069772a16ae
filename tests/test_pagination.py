"""Keyset pagination: every order, both directions, bounds, cursors, concurrent inserts, and the indexes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from taskql.app import TaskqlApp
from taskql.data.seed import SEED_PASSWORD, seed
from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient
from tests.services import Services
from tests.sql import captured

PRIORITY_RANK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "URGENT": 3}
TITLES = [
    "pear",
    "apple",
    "fig",
    "apple",
    "kiwi",
    "banana",
    "cherry",
    "date",
    "fig",
    "grape",
    "lime",
    "mango",
]


def sort_key(field: str, task: dict[str, Any]) -> Any:
    if field == "DUE_AT":
        return (datetime.max.isoformat() if task["dueAt"] is None else task["dueAt"],)
    if field == "PRIORITY":
        return (PRIORITY_RANK[task["priority"]],)
    return (task[{"CREATED_AT": "createdAt", "UPDATED_AT": "updatedAt", "TITLE": "title"}[field]],)


async def all_pages(
    gql: GraphQLClient, token: str, size: int, order: dict[str, str], backwards: bool
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        variables: dict[str, Any] = {"orderBy": order}
        if backwards:
            variables.update(last=size, before=cursor)
        else:
            variables.update(first=size, after=cursor)
        page = (await gql.run("Tasks", variables, token=token)).ok()["tasks"]
        ids = [edge["node"]["id"] for edge in page["edges"]]
        seen = ids + seen if backwards else seen + ids
        info = page["pageInfo"]
        if not (info["hasPreviousPage"] if backwards else info["hasNextPage"]):
            return seen
        cursor = info["startCursor"] if backwards else info["endCursor"]


@pytest.fixture
async def twelve_tasks(gql: GraphQLClient, alice: Account) -> list[dict[str, Any]]:
    tasks = []
    for index, title in enumerate(TITLES):
        tasks.append(
            await create_task(
                gql,
                alice,
                title=title,
                priority=list(PRIORITY_RANK)[index % 4],
                dueAt=None if index % 3 == 0 else f"2030-01-{(index * 7) % 28 + 1:02d}T00:00:00Z",
            )
        )
    # Touch a few so that UPDATED_AT differs from CREATED_AT.
    for task in tasks[::4]:
        await gql.run(
            "UpdateTask", {"id": task["id"], "input": {"description": "touched"}}, token=alice.token
        )
    listed = (await gql.run("Tasks", {"first": 100}, token=alice.token)).ok()["tasks"]["edges"]
    return [edge["node"] for edge in listed]


FIELDS = ("CREATED_AT", "UPDATED_AT", "DUE_AT", "PRIORITY", "TITLE")
ORDERS = [(field, direction) for field in FIELDS for direction in ("ASC", "DESC")]


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_paging_through_a_list_yields_every_row_once_in_order(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]], field: str, direction: str
) -> None:
    # Ties are broken by id, in the same direction: compare against the server's own id order for ties.
    expected_keys = sorted((sort_key(field, task) for task in twelve_tasks), reverse=direction == "DESC")
    order = {"field": field, "direction": direction}
    forward = await all_pages(gql, alice.token, 5, order, backwards=False)
    backward = await all_pages(gql, alice.token, 5, order, backwards=True)
    by_id = {task["id"]: task for task in twelve_tasks}
    assert sorted(forward) == sorted(by_id)
    assert [sort_key(field, by_id[task_id]) for task_id in forward] == expected_keys
    assert backward == forward


async def test_the_default_order_is_newest_first(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    created = [task["createdAt"] for task in twelve_tasks]
    assert created == sorted(created, reverse=True)


async def test_rows_inserted_while_paging_cause_no_duplicate_and_no_skip(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    order = {"field": "TITLE", "direction": "ASC"}
    page = (await gql.run("Tasks", {"first": 4, "orderBy": order}, token=alice.token)).ok()["tasks"]
    seen = [edge["node"]["id"] for edge in page["edges"]]
    cursor = page["pageInfo"]["endCursor"]
    for title in (
        "aardvark",
        "zebra",
        "cherry",
        "apple",
    ):  # before, after and equal to keys around the cursor
        await create_task(gql, alice, title=title)
    while cursor:
        page = (
            await gql.run("Tasks", {"first": 4, "after": cursor, "orderBy": order}, token=alice.token)
        ).ok()
        seen += [edge["node"]["id"] for edge in page["tasks"]["edges"]]
        cursor = page["tasks"]["pageInfo"]["endCursor"] if page["tasks"]["pageInfo"]["hasNextPage"] else None
    assert len(seen) == len(set(seen))
    assert {task["id"] for task in twelve_tasks} <= set(seen)


@pytest.mark.parametrize(
    "variables",
    [{"first": 0}, {"first": 101}, {"last": 0}, {"last": 101}, {"first": -1}, {"first": 5, "last": 5}],
)
async def test_page_sizes_outside_1_to_100_are_bad_user_input(
    gql: GraphQLClient, alice: Account, variables: dict[str, int]
) -> None:
    response = await gql.run("Tasks", variables, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["field"] in {"first", "last"}


async def test_100_is_a_valid_page_size_and_20_the_default(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    for _ in range(10):
        await create_task(gql, alice)
    assert len((await gql.run("Tasks", {"first": 100}, token=alice.token)).ok()["tasks"]["edges"]) == 22
    assert len((await gql.run("Tasks", {}, token=alice.token)).ok()["tasks"]["edges"]) == 20


async def test_a_cursor_from_another_order_or_made_up_is_bad_user_input(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    page = (await gql.run("Tasks", {"first": 2}, token=alice.token)).ok()["tasks"]
    cursor = page["pageInfo"]["endCursor"]
    other_order = {"field": "TITLE", "direction": "ASC"}
    for variables in (
        {"first": 2, "after": cursor, "orderBy": other_order},
        {"first": 2, "after": "garbage"},
        {"last": 2, "before": "e30"},
        {"first": 2, "before": cursor},
        {"last": 2, "after": cursor},
    ):
        response = await gql.run("Tasks", variables, token=alice.token)
        assert response.codes == ["BAD_USER_INPUT"], variables


async def test_page_info_and_total_count(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    first = (await gql.run("Tasks", {"first": 5}, token=alice.token)).ok()["tasks"]
    assert first["totalCount"] == 12
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["startCursor"] == first["edges"][0]["cursor"]
    last = (await gql.run("Tasks", {"last": 5}, token=alice.token)).ok()["tasks"]
    assert [edge["node"]["id"] for edge in last["edges"]] == [task["id"] for task in twelve_tasks[-5:]]
    assert last["pageInfo"]["hasPreviousPage"] is True


# --- indexes: EXPLAIN the very statements the server sends, on a seeded table --------------------------


@pytest.fixture
async def seeded(database: Services, gql: GraphQLClient) -> Account:
    """20,000 tasks over 50 users; returns one of those users, logged in (about 400 tasks)."""
    result = await seed(database.dsn, users=50, tasks=20_000)
    email = result.email_pattern.replace("<N>", "7")
    login = (await gql.run("Login", {"input": {"email": email, "password": SEED_PASSWORD}})).ok()["login"]
    return Account(login["user"]["id"], email, login["accessToken"], login["refreshToken"])


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


async def explain(database: Services, sql: str, params: Any) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(database.dsn)
    try:
        # The planner picks by cost, and on a small table sorting a few rows is cheapest. Penalizing seq
        # scans and sorts shows whether an index *can* serve the query: if none gives the order, a Sort stays.
        await connection.execute("SET enable_seqscan = off; SET enable_sort = off")
        raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *params)
    finally:
        await connection.close()
    return plan_nodes(json.loads(raw)[0]["Plan"])


async def test_every_order_is_served_by_an_owner_index_without_sorting(
    app: TaskqlApp, gql: GraphQLClient, database: Services, seeded: Account
) -> None:
    for field, direction in ORDERS:
        order = {"field": field, "direction": direction}
        page = (await gql.run("Tasks", {"first": 2, "orderBy": order}, token=seeded.token)).ok()
        cursor = page["tasks"]["pageInfo"]["endCursor"]
        with captured(app) as statements:
            (
                await gql.run("Tasks", {"first": 50, "after": cursor, "orderBy": order}, token=seeded.token)
            ).ok()
        sql, params = statements.matching("FROM tasks")[0]
        assert "OFFSET" not in sql.upper()
        nodes = await explain(database, sql, params)
        assert not any(node["Node Type"] in {"Sort", "Incremental Sort"} for node in nodes), (order, nodes)
        assert any(node.get("Index Name", "").startswith("tasks_owner_") for node in nodes), (order, nodes)


async def test_an_admins_list_of_everyone_is_served_by_an_index(
    app: TaskqlApp, gql: GraphQLClient, admin: Account, database: Services, seeded: Account
) -> None:
    with captured(app) as statements:
        (await gql.run("Tasks", {"first": 50}, token=admin.token)).ok()
    sql, params = statements.matching("FROM tasks")[0]
    nodes = await explain(database, sql, params)
    assert any(node.get("Index Name") == "tasks_created_at_idx" for node in nodes), nodes
    assert not any(node["Node Type"] == "Sort" for node in nodes)


async def test_search_is_served_by_the_full_text_gin_index(
    app: TaskqlApp, gql: GraphQLClient, admin: Account, database: Services, seeded: Account
) -> None:
    with captured(app) as statements:
        (await gql.run("Tasks", {"first": 10, "filter": {"search": "deplo"}}, token=admin.token)).ok()
    sql, params = statements.matching("FROM tasks")[0]
    nodes = await explain(database, sql, params)
    assert any(node.get("Index Name") == "tasks_search_idx" for node in nodes), nodes


def forged(*parts: object) -> str:
    import base64

    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_tampered_cursors_are_bad_user_input_never_a_server_error(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    row = "0b0f3ad2-3e30-4a43-8e5b-0b4b3c2f6a11"
    cases = [
        ({"field": "CREATED_AT"}, forged("CREATED_AT:desc:", "2030-01-01T00:00:00+00:00", 5)),
        ({"field": "CREATED_AT"}, forged("CREATED_AT:desc:", 12, row)),
        ({"field": "CREATED_AT"}, forged("CREATED_AT:desc:", "2030-01-01T00:00:00", row)),
        ({"field": "CREATED_AT"}, forged("CREATED_AT:desc:", "0001-01-01T00:00:00+01:00", row)),
        ({"field": "PRIORITY"}, forged("PRIORITY:desc:", "BOGUS", row)),
        ({"field": "TITLE"}, forged("TITLE:asc:", 5, row)),
        ({"field": "TITLE"}, forged("TITLE:asc:", "a\u0000b", row)),
        ({"field": "DUE_AT"}, forged("DUE_AT:asc:", ["x"], row)),
        ({"field": "TITLE", "direction": "DESC"}, forged("TITLE:asc:", "fig", row)),  # other direction
        ({"field": "TITLE"}, forged("TITLE:asc:", "\ud800", row)),  # a lone surrogate PostgreSQL refuses
        (
            {"field": "TITLE"},
            forged("USER_CREATED_AT:asc:", "2030-01-01T00:00:00+00:00", row),
        ),  # another list
        ({"field": "TITLE"}, "W" * 60_000),  # far past MAX_CURSOR_LENGTH, within MAX_VARIABLES_BYTES
        ({"field": "TITLE"}, __import__("base64").urlsafe_b64encode(b"[" * 1000).decode()),
    ]
    for order, cursor in cases:
        response = await gql.run("Tasks", {"first": 2, "after": cursor, "orderBy": order}, token=alice.token)
        assert response.codes == ["BAD_USER_INPUT"], (order, cursor, response.body)
        assert response.errors[0]["extensions"]["field"] == "after"


async def test_a_search_cursor_is_valid_only_for_the_same_search(gql: GraphQLClient, alice: Account) -> None:
    for title in ("deploy alpha", "deploy beta", "deploy gamma"):
        await create_task(gql, alice, title=title)
    page = (await gql.run("Tasks", {"first": 1, "filter": {"search": "deploy"}}, token=alice.token)).ok()
    cursor = page["tasks"]["pageInfo"]["endCursor"]
    same = await gql.run(
        "Tasks", {"first": 1, "after": cursor, "filter": {"search": "deploy"}}, token=alice.token
    )
    assert same.ok()["tasks"]["edges"]
    other = await gql.run(
        "Tasks", {"first": 1, "after": cursor, "filter": {"search": "alpha"}}, token=alice.token
    )
    assert other.codes == ["BAD_USER_INPUT"]


async def test_each_order_defaults_to_its_natural_direction(
    gql: GraphQLClient, alice: Account, twelve_tasks: list[dict[str, Any]]
) -> None:
    async def first_title(field: str) -> dict[str, Any]:
        page = await gql.run("Tasks", {"first": 1, "orderBy": {"field": field}}, token=alice.token)
        return dict(page.ok()["tasks"]["edges"][0]["node"])

    assert (await first_title("TITLE"))["title"] == "apple"
    assert (await first_title("PRIORITY"))["priority"] == "URGENT"
    assert (await first_title("CREATED_AT"))["createdAt"] == max(task["createdAt"] for task in twelve_tasks)
    due = [task["dueAt"] for task in twelve_tasks if task["dueAt"]]
    assert (await first_title("DUE_AT"))["dueAt"] == min(due)
