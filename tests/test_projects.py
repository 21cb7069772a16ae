"""Shared projects through the API: members and roles, invitations, assignment, comments, history,
statistics, and what each person sees of the others."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from core.ids import encode_id
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient
from tests.services import Services
from tests.teams import Team, add_member, create_project, make_team, project_task, verify_address

MISSING_USER = encode_id("User", uuid.UUID(int=7))


@pytest.fixture
async def team(gql: GraphQLClient, database: Services, admin: Account) -> Team:
    return await make_team(gql, database.dsn, admin)


async def _rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def _titles(gql: GraphQLClient, who: Account, **variables: Any) -> set[str]:
    data = (await gql.run("TeamTaskPage", {"first": 50, **variables}, token=who.token)).ok()
    return {edge["node"]["title"] for edge in data["tasks"]["edges"]}


async def test_a_new_project_has_its_creator_as_its_one_owner(gql: GraphQLClient, alice: Account) -> None:
    project_id = await create_project(gql, alice, "Garden")
    data = (await gql.run("Project", {"id": project_id}, token=alice.token)).ok()["node"]
    assert data["name"] == "Garden"
    assert data["viewerRole"] == "OWNER"
    members = data["members"]["edges"]
    assert [(m["node"]["role"], m["node"]["user"]["id"]) for m in members] == [("OWNER", alice.id)]
    listed = (await gql.run("Projects", token=alice.token)).ok()["projects"]
    assert [edge["node"]["id"] for edge in listed["edges"]] == [project_id]


async def test_members_see_the_projects_tasks_and_nobody_else_does(team: Team, gql: GraphQLClient) -> None:
    await create_task(gql, team.owner, title="Olivia's own errand")
    for member in (team.owner, team.editor, team.viewer):
        assert "Draft the plan" in await _titles(gql, member)
    assert await _titles(gql, team.outsider) == set()
    assert "Olivia's own errand" not in await _titles(gql, team.editor)  # personal stays personal
    assert (await gql.run("Task", {"id": team.task_id}, token=team.outsider.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("Project", {"id": team.project_id}, token=team.outsider.token)).codes == [
        "NOT_FOUND"
    ]
    admin_sees = (await gql.run("Project", {"id": team.project_id}, token=team.admin.token)).ok()["node"]
    assert admin_sees["viewerRole"] is None  # an admin who is not a member


async def test_a_viewer_reads_and_comments_but_cannot_change_tasks(team: Team, gql: GraphQLClient) -> None:
    token = team.viewer.token
    changed = await gql.run("UpdateTask", {"id": team.task_id, "input": {"title": "mine"}}, token=token)
    assert changed.codes == ["FORBIDDEN"]
    created = await gql.run(
        "CreateTask", {"input": {"title": "x", "projectId": team.project_id}}, token=token
    )
    assert created.codes == ["FORBIDDEN"]
    assert created.errors[0]["extensions"]["field"] == "input.projectId"
    assert (await gql.run("DeleteTask", {"id": team.task_id}, token=token)).codes == ["FORBIDDEN"]
    comment = await gql.run("AddComment", {"taskId": team.task_id, "body": "Looks good"}, token=token)
    assert comment.ok()["addComment"]["author"]["id"] == team.viewer.id
    task = (await gql.run("Task", {"id": team.task_id}, token=team.owner.token)).ok()["task"]
    assert task["title"] == "Draft the plan"


async def test_an_editor_creates_changes_assigns_and_deletes_the_projects_tasks(
    team: Team, gql: GraphQLClient
) -> None:
    made = await project_task(gql, team.editor, team.project_id, title="Book the venue")
    placed = await gql.run(
        "PlaceTask", {"id": made["id"], "input": {"assigneeId": team.owner.id}}, token=team.editor.token
    )
    assert placed.ok()["updateTask"]["assignee"] == {"id": team.owner.id, "name": "Olivia"}
    assert placed.ok()["updateTask"]["project"]["id"] == team.project_id
    assert (await gql.run("DeleteTask", {"id": made["id"]}, token=team.editor.token)).ok()
    assert "Book the venue" not in await _titles(gql, team.owner)


async def test_the_assignee_must_be_a_member_whoever_else_is_named(team: Team, gql: GraphQLClient) -> None:
    answers = []
    for assignee in (team.outsider.id, MISSING_USER):
        answer = await gql.run(
            "PlaceTask", {"id": team.task_id, "input": {"assigneeId": assignee}}, token=team.editor.token
        )
        answers.append((answer.codes, answer.errors[0]["message"], answer.errors[0]["extensions"]["field"]))
    assert answers[0] == answers[1]  # nothing tells an account from a missing one
    assert answers[0][0] == ["BAD_USER_INPUT"]
    assert answers[0][2] == "input.assigneeId"
    task = (await gql.run("TaskDetails", {"id": team.task_id}, token=team.owner.token)).ok()["task"]
    assert task["assignee"]["id"] == team.viewer.id  # nothing written


async def test_filters_by_project_assignee_and_assigned_to_me(team: Team, gql: GraphQLClient) -> None:
    await project_task(gql, team.owner, team.project_id, title="Unassigned")
    await create_task(gql, team.viewer, title="Vicky's own", assigneeId=team.viewer.id)
    assert await _titles(gql, team.viewer, filter={"assignedToMe": True}) == {"Draft the plan", "Vicky's own"}
    assert await _titles(gql, team.owner, filter={"projectId": team.project_id}) == {
        "Draft the plan",
        "Unassigned",
    }
    assert await _titles(gql, team.owner, filter={"assigneeId": team.viewer.id}) == {"Draft the plan"}
    outsider = await gql.run(
        "TeamTaskPage", {"first": 5, "filter": {"projectId": team.project_id}}, token=team.outsider.token
    )
    assert outsider.codes == ["NOT_FOUND"]


async def test_a_personal_tasks_assignee_can_only_be_its_owner(
    gql: GraphQLClient, alice: Account, bob: Account
) -> None:
    refused = await gql.run("CreateTask", {"input": {"title": "x", "assigneeId": bob.id}}, token=alice.token)
    assert refused.codes == ["BAD_USER_INPUT"]
    mine = await create_task(gql, alice, title="y", assigneeId=alice.id)
    assert mine["id"]


async def test_co_members_see_each_others_names_and_only_the_owner_sees_addresses(
    team: Team, gql: GraphQLClient
) -> None:
    def emails(who: Account) -> Any:
        return gql.run("Project", {"id": team.project_id}, token=who.token)

    by_owner = (await emails(team.owner)).ok()["node"]["members"]["edges"]
    assert {m["node"]["user"]["email"] for m in by_owner} == {
        "olivia@example.com", "eddie@example.com", "vicky@example.com"
    }  # fmt: skip
    by_editor = (await emails(team.editor)).ok()["node"]["members"]["edges"]
    shown = {m["node"]["user"]["name"]: m["node"]["user"]["email"] for m in by_editor}
    assert shown == {"Olivia": None, "Eddie": "eddie@example.com", "Vicky": None}
    node = await gql.query(
        "query($id: ID!) { node(id: $id) { ... on User { name email role isActive } } }",
        {"id": team.viewer.id},
        token=team.editor.token,
    )
    assert node.ok()["node"] == {"name": "Vicky", "email": None, "role": None, "isActive": None}
    outsider = await gql.run("Node", {"id": team.viewer.id}, token=team.outsider.token)
    assert outsider.codes == ["NOT_FOUND"]


async def test_invitations_answer_the_same_whether_or_not_the_address_has_an_account(
    team: Team, gql: GraphQLClient, database: Services
) -> None:
    outsider = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": team.outsider.email, "role": "EDITOR"},
        token=team.owner.token,
    )
    nobody = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": "Nobody@Example.com", "role": "EDITOR"},
        token=team.owner.token,
    )
    first, second = outsider.ok()["inviteToProject"], nobody.ok()["inviteToProject"]
    assert set(first) == set(second)
    assert (first["role"], second["role"], second["email"]) == ("EDITOR", "EDITOR", "nobody@example.com")
    assert (
        outsider.headers.get("content-length") is None
        or abs(int(outsider.headers["content-length"]) - int(nobody.headers["content-length"])) < 16
    )  # differs by the address alone
    mails = await _rows(database.dsn, "SELECT payload FROM pgqueuer WHERE entrypoint = 'mail'")
    invited = [json.loads(row[0]) for row in mails if json.loads(row[0])["kind"] == "project_invitation"]
    assert {mail["to"] for mail in invited} >= {team.outsider.email, "nobody@example.com"}  # a mail each
    inbox = (await gql.run("Notifications", token=team.outsider.token)).ok()["notifications"]["edges"]
    assert [edge["node"]["kind"] for edge in inbox] == ["PROJECT_INVITATION"]


async def test_an_invitation_waits_for_the_account_registered_with_its_address(
    team: Team, gql: GraphQLClient, database: Services
) -> None:
    invited = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": "newcomer@example.com", "role": "VIEWER"},
        token=team.owner.token,
    )
    invitation_id = invited.ok()["inviteToProject"]["id"]
    newcomer = await register(gql, email="newcomer@example.com", name="Newcomer")
    mine = (await gql.run("MyInvitations", token=newcomer.token)).ok()["myInvitations"]
    assert [(i["id"], i["project"]["name"], i["invitedBy"]["name"]) for i in mine] == [
        (invitation_id, "Launch", "Olivia")
    ]
    refused = await gql.run("AcceptInvitation", {"id": invitation_id}, token=newcomer.token)
    assert refused.codes == ["EMAIL_NOT_VERIFIED"]  # only the address's proven owner may accept
    await verify_address(database.dsn, newcomer)
    accepted = (await gql.run("AcceptInvitation", {"id": invitation_id}, token=newcomer.token)).ok()
    assert accepted["acceptInvitation"]["viewerRole"] == "VIEWER"
    again = await gql.run("AcceptInvitation", {"id": invitation_id}, token=newcomer.token)
    assert again.codes == ["NOT_FOUND"]  # single use
    assert (await gql.run("MyInvitations", token=newcomer.token)).ok()["myInvitations"] == []


async def test_only_the_invited_address_may_accept_or_decline(
    team: Team, gql: GraphQLClient, database: Services
) -> None:
    invited = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": "someone@example.com", "role": "EDITOR"},
        token=team.owner.token,
    )
    invitation_id = invited.ok()["inviteToProject"]["id"]
    await verify_address(database.dsn, team.outsider)
    for name in ("AcceptInvitation", "DeclineInvitation"):
        assert (await gql.run(name, {"id": invitation_id}, token=team.outsider.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("Node", {"id": invitation_id}, token=team.outsider.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("RevokeInvitation", {"id": invitation_id}, token=team.editor.token)).codes == [
        "NOT_FOUND"
    ]
    listed = await gql.run("ProjectInvitations", {"id": team.project_id}, token=team.editor.token)
    assert listed.codes == ["FORBIDDEN"]
    assert (await gql.run("RevokeInvitation", {"id": invitation_id}, token=team.owner.token)).ok()[
        "revokeInvitation"
    ]
    pending = (await gql.run("ProjectInvitations", {"id": team.project_id}, token=team.owner.token)).ok()
    assert pending["node"]["invitations"]["totalCount"] == 0


async def test_an_expired_invitation_cannot_be_accepted(
    team: Team, gql: GraphQLClient, database: Services
) -> None:
    invited = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": team.outsider.email, "role": "EDITOR"},
        token=team.owner.token,
    )
    invitation_id = invited.ok()["inviteToProject"]["id"]
    await verify_address(database.dsn, team.outsider)
    await _rows(database.dsn, "UPDATE project_invitations SET expires_at = now() - interval '1 second'")
    refused = await gql.run("AcceptInvitation", {"id": invitation_id}, token=team.outsider.token)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "expired" in refused.errors[0]["message"]
    assert await _titles(gql, team.outsider) == set()


async def test_inviting_as_owner_or_a_member_again_is_refused_by_field(
    team: Team, gql: GraphQLClient
) -> None:
    as_owner = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": "x@example.com", "role": "OWNER"},
        token=team.owner.token,
    )
    assert as_owner.errors[0]["extensions"]["field"] == "role"
    member = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": team.editor.email, "role": "VIEWER"},
        token=team.owner.token,
    )
    assert member.errors[0]["extensions"]["field"] == "email"
    bad = await gql.run(
        "InviteToProject",
        {"projectId": team.project_id, "email": "not an address", "role": "VIEWER"},
        token=team.owner.token,
    )
    assert bad.codes == ["BAD_USER_INPUT"]
    assert bad.errors[0]["extensions"]["field"] == "email"


async def test_ownership_is_handed_over_and_there_is_always_one_owner(team: Team, gql: GraphQLClient) -> None:
    demote = await gql.run(
        "SetProjectMemberRole",
        {"projectId": team.project_id, "userId": team.owner.id, "role": "EDITOR"},
        token=team.owner.token,
    )
    assert demote.codes == ["BAD_USER_INPUT"]
    leave = await gql.run(
        "RemoveProjectMember", {"projectId": team.project_id, "userId": team.owner.id}, token=team.owner.token
    )
    assert leave.codes == ["BAD_USER_INPUT"]
    handed = await gql.run(
        "SetProjectMemberRole",
        {"projectId": team.project_id, "userId": team.editor.id, "role": "OWNER"},
        token=team.owner.token,
    )
    assert handed.ok()["setProjectMemberRole"]["role"] == "OWNER"
    roles = (await gql.run("Project", {"id": team.project_id}, token=team.editor.token)).ok()["node"]
    assert {m["node"]["user"]["name"]: m["node"]["role"] for m in roles["members"]["edges"]} == {
        "Olivia": "EDITOR", "Eddie": "OWNER", "Vicky": "VIEWER"
    }  # fmt: skip
    refused = await gql.run(
        "UpdateProject", {"id": team.project_id, "input": {"name": "Mine"}}, token=team.owner.token
    )
    assert refused.codes == ["FORBIDDEN"]


async def test_removal_ends_access_at_once_and_unassigns(team: Team, gql: GraphQLClient) -> None:
    before = await gql.run("Task", {"id": team.task_id}, token=team.viewer.token)  # cached for the viewer
    assert before.ok()["task"]["title"] == "Draft the plan"
    assert "Draft the plan" in await _titles(gql, team.viewer)
    removed = await gql.run(
        "RemoveProjectMember",
        {"projectId": team.project_id, "userId": team.viewer.id},
        token=team.owner.token,
    )
    assert removed.ok()["removeProjectMember"] is True
    assert (await gql.run("Task", {"id": team.task_id}, token=team.viewer.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("Node", {"id": team.task_id}, token=team.viewer.token)).codes == ["NOT_FOUND"]
    assert await _titles(gql, team.viewer) == set()
    task = (await gql.run("TaskDetails", {"id": team.task_id, "activity": 1}, token=team.owner.token)).ok()[
        "task"
    ]
    assert task["assignee"] is None
    assert task["activity"]["edges"][0]["node"]["kind"] == "ASSIGNED"


async def test_a_member_may_leave(team: Team, gql: GraphQLClient) -> None:
    left = await gql.run(
        "RemoveProjectMember",
        {"projectId": team.project_id, "userId": team.editor.id},
        token=team.editor.token,
    )
    assert left.ok()["removeProjectMember"] is True
    assert (await gql.run("Projects", token=team.editor.token)).ok()["projects"]["edges"] == []
    other = await gql.run(
        "RemoveProjectMember",
        {"projectId": team.project_id, "userId": team.viewer.id},
        token=team.editor.token,
    )
    assert other.codes == ["NOT_FOUND"]  # no longer a member: the project is not theirs to see


async def test_history_keeps_every_change_newest_first_and_is_never_edited(
    team: Team, gql: GraphQLClient, database: Services
) -> None:
    editor = team.editor.token
    await gql.run(
        "UpdateTask",
        {"id": team.task_id, "input": {"title": "Plan v2", "status": "IN_PROGRESS"}},
        token=editor,
    )
    await gql.run("PlaceTask", {"id": team.task_id, "input": {"assigneeId": team.owner.id}}, token=editor)
    comment = (await gql.run("AddComment", {"taskId": team.task_id, "body": "Halfway"}, token=editor)).ok()[
        "addComment"
    ]
    await gql.run("DeleteComment", {"id": comment["id"]}, token=editor)
    other = await create_project(gql, team.editor, "Elsewhere")
    await gql.run("PlaceTask", {"id": team.task_id, "input": {"projectId": other}}, token=editor)
    history = (await gql.run("TaskDetails", {"id": team.task_id, "activity": 10}, token=editor)).ok()["task"]
    entries = [edge["node"] for edge in history["activity"]["edges"]]
    assert [entry["kind"] for entry in entries] == [
        "MOVED", "COMMENT_DELETED", "COMMENT_ADDED", "ASSIGNED", "UPDATED", "CREATED"
    ]  # fmt: skip
    moved = {change["field"]: change for change in entries[0]["changes"]}
    assert moved["project"] == {"field": "project", "from": team.project_id, "to": other}
    assert moved["assignee"]["to"] is None  # the owner of the old project is not a member of the new one
    updated = {(c["field"], c["from"], c["to"]) for c in entries[4]["changes"]}
    assert updated == {("title", "Draft the plan", "Plan v2"), ("status", "TODO", "IN_PROGRESS")}
    assert {entry["actor"]["id"] for entry in entries} == {team.editor.id}
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await _rows(database.dsn, "UPDATE task_activity SET kind = 'FORGED'")


async def test_comments_are_checked_edited_by_their_author_and_deleted_by_the_owner(
    team: Team, gql: GraphQLClient
) -> None:
    for body, reason in (("", "empty"), ("x" * 10_001, "too long"), ("a\x00b", "NUL")):
        refused = await gql.run("AddComment", {"taskId": team.task_id, "body": body}, token=team.viewer.token)
        assert refused.codes == ["BAD_USER_INPUT"], reason
        assert refused.errors[0]["extensions"]["field"] == "body"
    written = await gql.run(
        "AddComment", {"taskId": team.task_id, "body": "x" * 10_000}, token=team.viewer.token
    )
    comment_id = written.ok()["addComment"]["id"]
    edit = await gql.run("UpdateComment", {"id": comment_id, "body": "Not yours"}, token=team.editor.token)
    assert edit.codes == ["FORBIDDEN"]
    assert (await gql.run("DeleteComment", {"id": comment_id}, token=team.editor.token)).codes == [
        "FORBIDDEN"
    ]
    edited = await gql.run("UpdateComment", {"id": comment_id, "body": "Shorter"}, token=team.viewer.token)
    assert edited.ok()["updateComment"]["body"] == "Shorter"
    assert (await gql.run("DeleteComment", {"id": comment_id}, token=team.owner.token)).ok()[
        "deleteComment"
    ] == comment_id
    outsider = await gql.run("AddComment", {"taskId": team.task_id, "body": "hi"}, token=team.outsider.token)
    assert outsider.codes == ["NOT_FOUND"]
    details = (await gql.run("TaskDetails", {"id": team.task_id, "comments": 5}, token=team.owner.token)).ok()
    assert details["task"]["comments"]["totalCount"] == 0


async def test_assignment_and_mentions_notify_the_person(team: Team, gql: GraphQLClient) -> None:
    await project_task(gql, team.editor, team.project_id, title="Order food", assigneeId=team.owner.id)
    body = f"<@{team.viewer.id}> can you check? <@{team.outsider.id}> <@{team.editor.id}>"
    await gql.run("AddComment", {"taskId": team.task_id, "body": body}, token=team.editor.token)

    async def kinds(who: Account) -> list[str]:
        inbox = (await gql.run("Notifications", token=who.token)).ok()["notifications"]["edges"]
        return [edge["node"]["kind"] for edge in inbox]

    assert "TASK_ASSIGNED" in await kinds(team.owner)
    # Newest first: mentioned; assigned when the team was made; invited before that.
    assert await kinds(team.viewer) == ["MENTIONED", "TASK_ASSIGNED", "PROJECT_INVITATION"]
    assert await kinds(team.outsider) == []  # not a member: mentioning them tells them nothing
    assert "MENTIONED" not in await kinds(team.editor)  # nor the author


async def test_project_statistics(team: Team, gql: GraphQLClient) -> None:
    await project_task(gql, team.editor, team.project_id, title="Done one", status="DONE")
    await create_task(gql, team.owner, title="Personal", status="DONE")
    by_query = (
        await gql.run("ProjectTaskStats", {"projectId": team.project_id}, token=team.viewer.token)
    ).ok()
    assert by_query["taskStats"]["total"] == 2
    assert by_query["taskStats"]["completionRate"] == 0.5
    nested = (await gql.run("Project", {"id": team.project_id}, token=team.viewer.token)).ok()["node"]
    assert nested["taskStats"]["total"] == 2
    refused = await gql.run("ProjectTaskStats", {"projectId": team.project_id}, token=team.outsider.token)
    assert refused.codes == ["NOT_FOUND"]


async def test_deleting_a_project_deletes_its_tasks_and_only_its_owner_may(
    team: Team, gql: GraphQLClient
) -> None:
    assert (await gql.run("DeleteProject", {"id": team.project_id}, token=team.editor.token)).codes == [
        "FORBIDDEN"
    ]
    assert (await gql.run("DeleteProject", {"id": team.project_id}, token=team.owner.token)).ok()
    assert (await gql.run("Task", {"id": team.task_id}, token=team.editor.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("Task", {"id": team.task_id}, token=team.admin.token)).codes == ["NOT_FOUND"]
    assert (await gql.run("Projects", token=team.viewer.token)).ok()["projects"]["totalCount"] == 0


async def test_moving_a_task_out_of_a_project_makes_it_the_movers(team: Team, gql: GraphQLClient) -> None:
    moved = await gql.run(
        "PlaceTask", {"id": team.task_id, "input": {"projectId": None}}, token=team.owner.token
    )
    task = moved.ok()["updateTask"]
    assert task["project"] is None
    assert task["owner"]["id"] == team.owner.id
    assert task["assignee"] is None
    assert await _titles(gql, team.editor) == set()
    assert await _titles(gql, team.owner) == {"Draft the plan"}


async def test_a_user_who_owns_a_shared_project_cannot_delete_their_account(
    team: Team, gql: GraphQLClient
) -> None:
    refused = await gql.run("DeleteAccount", {"password": "a long enough passphrase"}, token=team.owner.token)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["reason"] == "OWNS_PROJECTS"
    gone = await gql.run("DeleteAccount", {"password": "a long enough passphrase"}, token=team.editor.token)
    assert gone.ok()["deleteAccount"] is True
    task = (await gql.run("TaskDetails", {"id": team.task_id}, token=team.owner.token)).ok()["task"]
    assert task["owner"]["id"] == team.owner.id  # the project keeps the task; its OWNER holds it now


async def test_the_response_cache_never_serves_a_removed_member_their_old_answers(
    team: Team, gql: GraphQLClient
) -> None:
    caches = []
    for _ in range(2):
        first = await gql.run("TeamTaskPage", {"first": 50}, token=team.viewer.token)
        assert [edge["node"]["title"] for edge in first.ok()["tasks"]["edges"]] == ["Draft the plan"]
        caches.append(first.headers["x-cache"])
    assert caches == ["MISS", "HIT"]  # the answer is in the cache
    projects = await gql.run("Projects", token=team.editor.token)
    assert projects.ok()["projects"]["edges"][0]["node"]["name"] == "Launch"
    assert (await gql.run("Projects", token=team.editor.token)).headers["x-cache"] == "HIT"
    await gql.run(
        "RemoveProjectMember",
        {"projectId": team.project_id, "userId": team.viewer.id},
        token=team.owner.token,
    )
    after = await gql.run("TeamTaskPage", {"first": 50}, token=team.viewer.token)
    assert after.ok()["tasks"]["edges"] == []
    assert after.headers["x-cache"] == "MISS"
    renamed = await gql.run(
        "UpdateProject", {"id": team.project_id, "input": {"name": "Renamed"}}, token=team.owner.token
    )
    assert renamed.ok()
    projects = (await gql.run("Projects", token=team.editor.token)).ok()["projects"]["edges"]
    assert [edge["node"]["name"] for edge in projects] == ["Renamed"]


async def test_a_co_members_new_name_shows_at_once(team: Team, gql: GraphQLClient) -> None:
    shown = (await gql.run("TeamTaskPage", {"first": 5}, token=team.owner.token)).ok()
    assert shown["tasks"]["edges"][0]["node"]["assignee"]["name"] == "Vicky"
    await gql.run("UpdateProfile", {"input": {"name": "Victoria"}}, token=team.viewer.token)
    shown = (await gql.run("TeamTaskPage", {"first": 5}, token=team.owner.token)).ok()
    assert shown["tasks"]["edges"][0]["node"]["assignee"]["name"] == "Victoria"


async def test_the_database_holds_one_owner_per_project_whatever_writes_it(
    gql: GraphQLClient, database: Services, alice: Account, bob: Account
) -> None:
    project_id = await create_project(gql, alice)
    await add_member(gql, database.dsn, project_id, alice, bob, "EDITOR")
    rows = await _rows(database.dsn, "SELECT role::text FROM project_members ORDER BY 1")
    assert [row[0] for row in rows] == ["EDITOR", "OWNER"]
    with pytest.raises(asyncpg.UniqueViolationError, match="project_members_one_owner_key"):
        await _rows(database.dsn, "UPDATE project_members SET role = 'OWNER'")


async def test_an_owner_who_left_a_project_no_longer_counts_its_tasks(team: Team, gql: GraphQLClient) -> None:
    async def total(who: Account) -> int:
        return int((await gql.run("TaskStats", token=who.token)).ok()["taskStats"]["total"])

    assert await total(team.editor) == 1  # the project's task they created
    leave = {"projectId": team.project_id, "userId": team.editor.id}
    (await gql.run("RemoveProjectMember", leave, token=team.editor.token)).ok()
    assert await total(team.editor) == 0
    (
        await gql.run("UpdateTask", {"id": team.task_id, "input": {"status": "DONE"}}, token=team.owner.token)
    ).ok()
    assert await total(team.editor) == 0  # still none, cached or not
