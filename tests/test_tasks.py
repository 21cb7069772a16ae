"""Creating, reading, changing and deleting tasks, and the validation of every input."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from core.ids import encode_id
from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient
from tests.services import Services


async def count_rows(database: Services, table: str) -> int:
    connection = await asyncpg.connect(database.dsn)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()


async def test_create_task_stores_every_field(gql: GraphQLClient, alice: Account) -> None:
    task = await create_task(
        gql,
        alice,
        title="  Ship the release  ",
        description="Tag, build, publish.",
        status="IN_PROGRESS",
        priority="URGENT",
        dueAt="2030-01-31T18:00:00+02:00",
        tags=["work", "release", "work"],
    )
    assert task["title"] == "Ship the release"
    assert task["status"] == "IN_PROGRESS"
    assert task["priority"] == "URGENT"
    assert task["dueAt"] == "2030-01-31T16:00:00Z"
    assert task["tags"] == ["work", "release"]
    assert task["owner"]["id"] == alice.id
    assert task["completedAt"] is None
    stored = (await gql.run("Task", {"id": task["id"]}, token=alice.token)).ok()["task"]
    assert stored == {**task, "owner": {"id": alice.id, "name": "Alice"}}


async def test_defaults_are_todo_and_medium(gql: GraphQLClient, alice: Account) -> None:
    task = await create_task(gql, alice, title="Plain")
    assert (task["status"], task["priority"], task["tags"], task["description"]) == (
        "TODO",
        "MEDIUM",
        [],
        None,
    )


async def test_moving_to_done_sets_completed_at_and_leaving_done_clears_it(
    gql: GraphQLClient, alice: Account
) -> None:
    task = await create_task(gql, alice)
    done = (
        await gql.run("UpdateTask", {"id": task["id"], "input": {"status": "DONE"}}, token=alice.token)
    ).ok()
    assert done["updateTask"]["completedAt"] is not None
    reopened = await gql.run("UpdateTask", {"id": task["id"], "input": {"status": "TODO"}}, token=alice.token)
    assert reopened.ok()["updateTask"]["completedAt"] is None


async def test_update_changes_only_the_given_fields_and_null_clears(
    gql: GraphQLClient, alice: Account
) -> None:
    task = await create_task(gql, alice, title="Keep", description="Drop me", dueAt="2030-01-01T00:00:00Z")
    updated = (
        await gql.run(
            "UpdateTask",
            {"id": task["id"], "input": {"description": None, "priority": "HIGH"}},
            token=alice.token,
        )
    ).ok()["updateTask"]
    assert updated["title"] == "Keep"
    assert updated["description"] is None
    assert updated["priority"] == "HIGH"
    assert updated["dueAt"] == "2030-01-01T00:00:00Z"
    assert updated["updatedAt"] > task["updatedAt"]


async def test_delete_removes_the_task_and_returns_its_id(gql: GraphQLClient, alice: Account) -> None:
    task = await create_task(gql, alice)
    assert (await gql.run("DeleteTask", {"id": task["id"]}, token=alice.token)).ok() == {
        "deleteTask": task["id"]
    }
    assert (await gql.run("Task", {"id": task["id"]}, token=alice.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("DeleteTask", {"id": task["id"]}, token=alice.token)).codes == ["NOT_FOUND"]


BAD_CREATE_INPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "empty title": ({"title": ""}, "input.title"),
    "blank title": ({"title": "   "}, "input.title"),
    "title over 200": ({"title": "x" * 201}, "input.title"),
    "NUL in title": ({"title": "a\u0000b"}, "input.title"),
    "description over 10,000": ({"title": "t", "description": "d" * 10_001}, "input.description"),
    "NUL in description": ({"title": "t", "description": "\u0000"}, "input.description"),
    "21 tags": ({"title": "t", "tags": [f"t{i}" for i in range(21)]}, "input.tags"),
    "tag over 32": ({"title": "t", "tags": ["x" * 33]}, "input.tags.0"),
    "empty tag": ({"title": "t", "tags": ["ok", " "]}, "input.tags.1"),
    "NUL in tag": ({"title": "t", "tags": ["a\u0000"]}, "input.tags.0"),
}


@pytest.mark.parametrize("case", BAD_CREATE_INPUTS)
async def test_bad_task_input_is_refused_naming_the_field_and_writes_nothing(
    gql: GraphQLClient, alice: Account, database: Services, case: str
) -> None:
    values, field = BAD_CREATE_INPUTS[case]
    response = await gql.run("CreateTask", {"input": values}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["field"] == field
    assert field in response.errors[0]["message"]
    assert await count_rows(database, "tasks") == 0


BAD_VARIABLES: dict[str, dict[str, Any]] = {
    "date without timezone": {"title": "t", "dueAt": "2030-01-01T12:00:00"},
    "not a date": {"title": "t", "dueAt": "next tuesday"},
    "unknown status": {"title": "t", "status": "BLOCKED"},
    "unknown priority": {"title": "t", "priority": "CRITICAL"},
    "title of the wrong type": {"title": 42},
    "unknown field": {"title": "t", "colour": "red"},
    "missing title": {"description": "no title"},
}


@pytest.mark.parametrize("case", BAD_VARIABLES)
async def test_variables_that_do_not_fit_the_schema_are_bad_user_input(
    gql: GraphQLClient, alice: Account, database: Services, case: str
) -> None:
    response = await gql.run("CreateTask", {"input": BAD_VARIABLES[case]}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert "input" in response.errors[0]["message"]
    assert await count_rows(database, "tasks") == 0


async def test_an_unknown_enum_literal_is_bad_user_input(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.query(
        'mutation { createTask(input: {title: "t", status: PAUSED}) { id } }', token=alice.token
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert "TaskStatus" in response.errors[0]["message"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": None}, "input.title"),
        ({"title": "x" * 201}, "input.title"),
        ({"status": None}, "input.status"),
        ({"tags": ["y" * 40]}, "input.tags.0"),
        ({"dueAt": "2030-01-01"}, None),
    ],
)
async def test_a_bad_update_leaves_the_task_as_it_was(
    gql: GraphQLClient, alice: Account, values: dict[str, Any], field: str | None
) -> None:
    task = await create_task(gql, alice, title="Original", tags=["a"])
    response = await gql.run(
        "UpdateTask", {"id": task["id"], "input": {**values, "priority": "LOW"}}, token=alice.token
    )
    assert response.codes == ["BAD_USER_INPUT"]
    if field is not None:
        assert response.errors[0]["extensions"]["field"] == field
    after = (await gql.run("Task", {"id": task["id"]}, token=alice.token)).ok()["task"]
    assert (after["title"], after["priority"], after["tags"], after["updatedAt"]) == (
        "Original", "MEDIUM", ["a"], task["updatedAt"],
    )  # fmt: skip


@pytest.mark.parametrize("bad_id", ["", "not-an-id", "VGFzazpub3QtYS11dWlk", "💥", "Task:1"])
async def test_a_malformed_id_is_bad_user_input(gql: GraphQLClient, alice: Account, bad_id: str) -> None:
    for name in ("Task", "Node", "DeleteTask"):
        response = await gql.run(name, {"id": bad_id}, token=alice.token)
        assert response.codes == ["BAD_USER_INPUT"], (name, response.body)
        assert response.errors[0]["extensions"]["field"] == "id"


BAD_REGISTRATIONS: dict[str, tuple[dict[str, str], str]] = {
    "invalid email": ({"email": "not-an-email"}, "input.email"),
    "email with NUL": ({"email": "a\u0000@example.com"}, "input.email"),
    "short password": ({"password": "short"}, "input.password"),
    "common password": ({"password": "password123"}, "input.password"),
    "repetitive password": ({"password": "aaaaaaaaaaaa"}, "input.password"),
    "password over 128": ({"password": "p" * 100 + "q" * 29}, "input.password"),
    "empty name": ({"name": " "}, "input.name"),
    "name over 100": ({"name": "n" * 101}, "input.name"),
}


@pytest.mark.parametrize("case", BAD_REGISTRATIONS)
async def test_bad_registrations_are_refused_and_create_no_account(
    gql: GraphQLClient, database: Services, case: str
) -> None:
    changes, field = BAD_REGISTRATIONS[case]
    values = {"email": "new@example.com", "password": "a long enough passphrase", "name": "New", **changes}
    response = await gql.run("Register", {"input": values})
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["field"] == field
    assert await count_rows(database, "users") == 0


async def test_a_missing_task_id_is_not_found(gql: GraphQLClient, alice: Account) -> None:
    import uuid

    response = await gql.run("Task", {"id": encode_id("Task", uuid.uuid4())}, token=alice.token)
    assert response.codes == ["NOT_FOUND"]
    assert response.data == {"task": None}


@pytest.mark.parametrize(
    "due_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1899-12-31T23:59:59Z"]
)
async def test_dates_outside_the_supported_range_are_bad_user_input(
    gql: GraphQLClient, alice: Account, database: Services, due_at: str
) -> None:
    created = await gql.run("CreateTask", {"input": {"title": "t", "dueAt": due_at}}, token=alice.token)
    assert created.codes == ["BAD_USER_INPUT"]
    listed = await gql.run("Tasks", {"filter": {"dueBefore": due_at}}, token=alice.token)
    assert listed.codes == ["BAD_USER_INPUT"]
    assert await count_rows(database, "tasks") == 0


async def test_a_user_can_be_given_tasks_only_by_id_not_by_an_empty_or_null_owner(
    gql: GraphQLClient, alice: Account, admin: Account
) -> None:
    task = await create_task(gql, alice)
    for owner in ("", None):
        response = await gql.run(
            "UpdateTask", {"id": task["id"], "input": {"ownerId": owner}}, token=admin.token
        )
        assert response.codes == ["BAD_USER_INPUT"], owner
    assert (await gql.run("Tasks", {"filter": {"ownerId": ""}}, token=admin.token)).codes == [
        "BAD_USER_INPUT"
    ]
