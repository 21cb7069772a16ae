"""Test data for shared projects, made through the API as clients would: a project, its members by
invitation, its tasks and comments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.factories import Account, register
from tests.graphql_client import GraphQLClient


async def verify_address(dsn: str, account: Account) -> None:
    """What following the verification mail does (``tests.test_accounts`` goes through the mail itself)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("UPDATE users SET email_verified_at = now() WHERE email = $1", account.email)
    finally:
        await connection.close()


async def create_project(gql: GraphQLClient, owner: Account, name: str = "Launch") -> str:
    data = (await gql.run("CreateProject", {"input": {"name": name}}, token=owner.token)).ok()
    return str(data["createProject"]["id"])


async def add_member(
    gql: GraphQLClient, dsn: str, project_id: str, owner: Account, member: Account, role: str
) -> None:
    """Invite ``member`` and have them accept, their address verified first."""
    invited = await gql.run(
        "InviteToProject", {"projectId": project_id, "email": member.email, "role": role}, token=owner.token
    )
    await verify_address(dsn, member)
    accepted = await gql.run(
        "AcceptInvitation", {"id": invited.ok()["inviteToProject"]["id"]}, token=member.token
    )
    assert accepted.ok()["acceptInvitation"]["viewerRole"] == role


async def project_task(gql: GraphQLClient, author: Account, project_id: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", "Shared task")
    data = (
        await gql.run("CreateTask", {"input": {**fields, "projectId": project_id}}, token=author.token)
    ).ok()
    return dict(data["createTask"])


@dataclass
class Team:
    """One project: ``owner`` (OWNER), ``editor`` (EDITOR), ``viewer`` (VIEWER); ``outsider`` is in none of
    it; ``admin`` is an admin and not a member. ``task`` is the editor's, in the project, assigned to the
    viewer (the assignee)."""

    gql: GraphQLClient
    project_id: str
    owner: Account
    editor: Account
    viewer: Account
    outsider: Account
    admin: Account
    task_id: str


async def make_team(gql: GraphQLClient, dsn: str, admin: Account) -> Team:
    owner = await register(gql, email="olivia@example.com", name="Olivia")
    editor = await register(gql, email="eddie@example.com", name="Eddie")
    viewer = await register(gql, email="vicky@example.com", name="Vicky")
    outsider = await register(gql, email="oscar@example.com", name="Oscar")
    project_id = await create_project(gql, owner)
    await add_member(gql, dsn, project_id, owner, editor, "EDITOR")
    await add_member(gql, dsn, project_id, owner, viewer, "VIEWER")
    task = await project_task(gql, editor, project_id, title="Draft the plan", assigneeId=viewer.id)
    return Team(gql, project_id, owner, editor, viewer, outsider, admin, task["id"])
