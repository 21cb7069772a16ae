"""Webhooks follow who sees a task: every member's endpoints get a project's task writes and comments; a
non-member's nothing; a removed member's pending deliveries of the project are dropped with the removal."""

from __future__ import annotations

import asyncpg

from tests.factories import promote_to_admin, register
from tests.teams import make_team
from tests.test_jobs import until_no_jobs
from tests.test_webhooks import World, world  # noqa: F401  (the fixture: the app with its own worker)
from tests.webhook_receiver import receiving

EVENTS = ["TASK_CREATED", "TASK_UPDATED", "TASK_DELETED", "COMMENT_CREATED", "COMMENT_DELETED"]


async def test_every_members_webhook_gets_the_projects_writes_and_a_non_members_nothing(world: World) -> None:  # noqa: F811
    admin = await register(world.gql, email="root@example.com", name="Root")
    await promote_to_admin(world.dsn, admin)
    team = await make_team(world.gql, world.dsn, admin)
    async with receiving() as owner_end, receiving() as viewer_end, receiving() as outsider_end:
        await world.webhook(team.owner, owner_end, EVENTS)
        await world.webhook(team.viewer, viewer_end, EVENTS)
        await world.webhook(team.outsider, outsider_end, EVENTS)
        await world.update(team.editor, team.task_id, status="DONE")
        said = await world.gql.run(
            "AddComment", {"taskId": team.task_id, "body": "Done!"}, token=team.editor.token
        )
        comment_id = said.ok()["addComment"]["id"]
        for end in (owner_end, viewer_end):
            updated, commented = await end.until(2)
            assert updated.event["type"] == "task.updated"
            assert updated.event["data"]["projectId"] == team.project_id
            assert updated.event["data"]["assigneeId"] == team.viewer.id
            assert commented.event["type"] == "comment.created"
            assert commented.event["data"]["id"] == comment_id
            assert commented.event["data"]["body"] == "Done!"
            assert commented.event["data"]["task"]["id"] == team.task_id
        await until_no_jobs(world.dsn)
        assert outsider_end.received == []


async def test_a_removed_members_pending_deliveries_of_the_project_are_dropped(world: World) -> None:  # noqa: F811
    admin = await register(world.gql, email="root@example.com", name="Root")
    await promote_to_admin(world.dsn, admin)
    team = await make_team(world.gql, world.dsn, admin)
    async with receiving() as viewer_end:
        viewer_end.status = 503  # fails: the deliveries wait for their retry
        webhook_id = await world.webhook(team.viewer, viewer_end, EVENTS)
        await world.update(team.editor, team.task_id, title="Secret next step")
        await viewer_end.until(1)
        removal = {"projectId": team.project_id, "userId": team.viewer.id}
        (await world.gql.run("RemoveProjectMember", removal, token=team.owner.token)).ok()
        connection = await asyncpg.connect(world.dsn)
        try:
            pending = await connection.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'retrying')"
            )
        finally:
            await connection.close()
        assert pending == 0
        viewer_end.status = 200
        await world.update(team.editor, team.task_id, title="After the removal")
        await until_no_jobs(world.dsn)
        # Only attempts of the event written before the removal (answered 503, retried meanwhile) ever came.
        assert {d.event["data"]["title"] for d in viewer_end.received} == {"Secret next step"}
        assert await world.deliveries(team.viewer, webhook_id) == []
