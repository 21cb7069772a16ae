"""Dataloaders: a list with nested owners and their stats costs the same few statements at any size."""

from __future__ import annotations

import pytest

from taskql.app import TaskqlApp
from tests.executed import executed_fields
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient
from tests.services import Services
from tests.sql import captured
from tests.teams import add_member, create_project, project_task

# viewer (user + session) · the page of tasks · all owners in one batch · all owners' stats in one batch
EXPECTED_STATEMENTS = 4


@pytest.fixture
async def many_owners(gql: GraphQLClient) -> None:
    owners = [await register(gql, email=f"owner{i}@example.com", name=f"Owner {i}") for i in range(10)]
    for index in range(50):
        await create_task(gql, owners[index % len(owners)], title=f"task {index}")


@pytest.mark.parametrize("size", [5, 50])
async def test_tasks_with_owners_and_their_stats_cost_a_constant_number_of_statements(
    app: TaskqlApp, gql: GraphQLClient, admin: Account, many_owners: None, size: int
) -> None:
    with captured(app) as statements:
        data = (await gql.run("TasksWithOwners", {"first": size}, token=admin.token)).ok()
    edges = data["tasks"]["edges"]
    assert len(edges) == size
    assert len({edge["node"]["owner"]["name"] for edge in edges}) == min(size, 10)
    assert all(edge["node"]["owner"]["taskStats"]["total"] == 5 for edge in edges)
    assert len(statements) == EXPECTED_STATEMENTS, [sql for sql, _ in statements.executed]


OWNERS_IF = """
query($owners: Boolean!, $skipOwners: Boolean!) {
  tasks(first: 20) {
    edges { node { id ...Owner @include(if: $owners) ... on Task { owner @skip(if: $skipOwners) { name } } } }
  }
}
fragment Owner on Task { owner { name } }
"""


@pytest.mark.parametrize(
    ("owners", "skip_owners", "loads_owners"),
    [(True, True, True), (False, False, True), (False, True, False)],
)
async def test_owners_are_loaded_before_the_rows_only_when_the_query_selects_them(
    app: TaskqlApp,
    gql: GraphQLClient,
    admin: Account,
    many_owners: None,
    owners: bool,
    skip_owners: bool,
    loads_owners: bool,
) -> None:
    """Through a fragment spread and an inline fragment, with ``@include``/``@skip`` from variables."""
    with captured(app) as statements:
        variables = {"owners": owners, "skipOwners": skip_owners}
        data = (await gql.query(OWNERS_IF, variables, token=admin.token)).ok()
    edges = data["tasks"]["edges"]
    assert len(edges) == 20
    assert all(("owner" in edge["node"]) == loads_owners for edge in edges)
    # viewer (user + session) · the page · the owners, when selected
    assert len(statements) == (3 if loads_owners else 2), [sql for sql, _ in statements.executed]


@pytest.mark.parametrize("as_admin", [True, False])
async def test_owners_and_their_stats_are_ready_before_the_rows_so_no_row_awaits(
    gql: GraphQLClient,
    admin: Account,
    many_owners: None,
    monkeypatch: pytest.MonkeyPatch,
    as_admin: bool,
) -> None:
    """The rows' plans answer owner { name taskStats { total } } without graphql-core executing a field
    per row (as it does for an awaitable, or when a plan falls back)."""
    viewer = admin if as_admin else await register(gql, email="lister@example.com", name="Lister")
    if not as_admin:
        for index in range(3):
            await create_task(gql, viewer, title=f"mine {index}")
    executed = executed_fields(monkeypatch)
    data = (await gql.run("TasksWithOwners", {"first": 50}, token=viewer.token)).ok()
    edges = data["tasks"]["edges"]
    assert len(edges) == (50 if as_admin else 3)
    assert {edge["node"]["owner"]["taskStats"]["total"] for edge in edges} == {5 if as_admin else 3}
    assert executed == ["tasks"]


@pytest.mark.parametrize("document", ["Task", "Node"])
async def test_a_single_tasks_owner_is_ready_before_the_task_completes(
    gql: GraphQLClient, admin: Account, monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    """task(id:) and node(id:) load the owner with the task when the query selects it: the task's plan
    answers owner { ... } without graphql-core executing it after the plan (one statement either way)."""
    owner = await register(gql, email="single@example.com", name="Single")
    task_id = (await create_task(gql, owner, title="one"))["id"]
    executed = executed_fields(monkeypatch)
    for viewer in (owner, admin):
        executed.clear()
        data = (await gql.run(document, {"id": task_id}, token=viewer.token)).ok()
        found = data["task" if document == "Task" else "node"]
        assert found["owner"]["id"] == owner.id
        assert executed == [document.lower()]


@pytest.fixture
async def member_of_five_projects(gql: GraphQLClient, database: Services) -> Account:
    """A member of five projects, each with three other members who create and are assigned its tasks."""
    member = await register(gql, email="member@example.com", name="Member")
    others = [await register(gql, email=f"colleague{i}@example.com", name=f"Colleague {i}") for i in range(6)]
    for number in range(5):
        owner, second, third = others[number], others[(number + 1) % 6], others[(number + 2) % 6]
        project_id = await create_project(gql, owner, f"Project {number}")
        for account, role in ((member, "VIEWER"), (second, "EDITOR"), (third, "EDITOR")):
            await add_member(gql, database.dsn, project_id, owner, account, role)
        for index in range(12):
            author = (owner, second, third)[index % 3]
            assignee = (member, second, third, None)[index % 4]
            fields = {"assigneeId": assignee.id} if assignee else {}
            await project_task(gql, author, project_id, title=f"p{number} t{index}", **fields)
    return member


@pytest.mark.parametrize("size", [5, 50])
async def test_a_members_tasks_with_owners_assignees_and_projects_cost_a_constant_number_of_statements(
    app: TaskqlApp, gql: GraphQLClient, member_of_five_projects: Account, size: int
) -> None:
    with captured(app) as statements:
        data = (await gql.run("TeamTaskPage", {"first": size}, token=member_of_five_projects.token)).ok()
    edges = data["tasks"]["edges"]
    assert len(edges) == size
    assert len({edge["node"]["project"]["name"] for edge in edges}) == (5 if size == 50 else 1)
    assert any(edge["node"]["assignee"] for edge in edges)
    assert len({edge["node"]["owner"]["name"] for edge in edges}) > 1
    # the viewer with their projects · the page · its projects · its owners and assignees, one batch
    assert len(statements) == 4, [sql for sql, _ in statements.executed]


async def test_a_members_rows_answer_owner_assignee_and_project_without_awaiting(
    gql: GraphQLClient, member_of_five_projects: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for owners: the page's projects and users are loaded before its rows complete, so each row's plan
    answers them inline (no field executed per row by graphql-core)."""
    executed = executed_fields(monkeypatch)
    data = (await gql.run("TeamTaskPage", {"first": 50}, token=member_of_five_projects.token)).ok()
    assert len(data["tasks"]["edges"]) == 50
    assert executed == ["tasks"]
