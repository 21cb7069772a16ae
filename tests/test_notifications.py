"""Reminders and the inbox: a task with a due date is reminded at `dueAt - remindBeforeMinutes`, in-app and
by mail, once; moved when the due date or the setting changes; not at all once the task is done or gone.
A live worker (inside the test, or as processes the test kills) and a real SMTP server."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.settings import Settings
from resolvers.jobs import ReminderJob
from taskql.app import create_app
from tests.conftest import make_settings, served
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient
from tests.mailbox import Sink, smtp_sink, text_of
from tests.queue_clock import QueueClock
from tests.services import Services
from tests.teams import add_member, create_project
from tests.test_jobs import WorkerProcess, enqueued, jobs_left, until_no_jobs
from tests.webhook_receiver import Receiver, receiving

SETTINGS = (
    "mutation($i: NotificationSettingsInput!)"
    " { updateNotificationSettings(input: $i) { remindBeforeMinutes } }"
)


@dataclass
class World:
    gql: GraphQLClient
    sink: Sink
    settings: Settings
    dsn: str

    async def task(self, account: Account, due_at: datetime | None, title: str = "Pay the rent") -> str:
        variables = {"input": {"title": title, "dueAt": due_at.isoformat() if due_at else None}}
        return str(
            (await self.gql.run("CreateTask", variables, token=account.token)).ok()["createTask"]["id"]
        )

    async def inbox(self, account: Account, **variables: Any) -> dict[str, Any]:
        return dict((await self.gql.run("Notifications", variables, token=account.token)).ok())

    async def until_notified(
        self, account: Account, count: int = 1, timeout: float = 30
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while True:
                edges = (await self.inbox(account))["notifications"]["edges"]
                if len(edges) >= count:
                    return [edge["node"] for edge in edges]
                await asyncio.sleep(0.05)


@pytest.fixture
async def world(database: Services) -> AsyncIterator[World]:
    with smtp_sink() as (sink, url):
        settings = make_settings(database, smtp_url=url, jobs_embedded_worker=True)
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                yield World(GraphQLClient(http), sink, settings, database.dsn)


async def remind_before(world: World, account: Account, minutes: int) -> None:
    (await world.gql.query(SETTINGS, {"i": {"remindBeforeMinutes": minutes}}, token=account.token)).ok()


async def test_a_task_is_reminded_at_its_moment_in_the_inbox_and_by_mail(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    await world.sink.next("alice@example.com")  # the verification mail
    await remind_before(world, alice, 1)
    due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1, seconds=3)
    task_id = await world.task(alice, due_at)
    assert (await world.inbox(alice))["unreadNotificationCount"] == 0  # not before its moment

    (notification,) = await world.until_notified(alice)
    created = datetime.fromisoformat(notification["createdAt"])
    moment = due_at - timedelta(minutes=1)
    assert moment <= created < moment + timedelta(seconds=2), (created, moment)  # at the right moment
    assert notification["kind"] == "TASK_DUE_SOON"
    assert notification["title"] == "Due soon: Pay the rent"
    assert notification["task"]["id"] == task_id
    mail = await world.sink.next("alice@example.com")
    assert mail["Subject"] == "Due soon: Pay the rent"
    assert "(UTC)" in text_of(mail)


async def test_a_task_due_inside_the_window_is_reminded_at_once_in_the_owners_time_zone(world: World) -> None:
    bob = await register(world.gql, email="bob@example.com", name="Bob")
    zone = {"i": {"timezone": "Asia/Kolkata", "channels": ["IN_APP"]}}
    (await world.gql.query(SETTINGS.replace("remindBeforeMinutes", "timezone"), zone, token=bob.token)).ok()
    due_at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    started = datetime.now(UTC)
    await world.task(bob, started + timedelta(minutes=10))
    (notification,) = await world.until_notified(bob)
    assert datetime.fromisoformat(notification["createdAt"]) - started < timedelta(seconds=3)
    assert "(Asia/Kolkata)" in notification["body"]
    assert due_at  # the text shows the due date in the owner's zone
    await until_no_jobs(world.dsn)
    assert [
        m for m in world.sink.received if m["To"] == "bob@example.com" and "Due soon" in m["Subject"]
    ] == []


async def test_a_moved_due_date_moves_the_reminder_and_a_done_task_is_not_reminded(world: World) -> None:
    carol = await register(world.gql, email="carol@example.com", name="Carol")
    await remind_before(world, carol, 1)
    soon = datetime.now(UTC) + timedelta(minutes=1, seconds=2)
    moved = await world.task(carol, soon, title="Moved")
    done = await world.task(carol, soon, title="Done")
    later = (soon + timedelta(days=1)).isoformat()
    (await world.gql.run("UpdateTask", {"id": moved, "input": {"dueAt": later}}, token=carol.token)).ok()
    (await world.gql.run("UpdateTask", {"id": done, "input": {"status": "DONE"}}, token=carol.token)).ok()
    gone = await world.task(carol, soon, title="Deleted")
    (await world.gql.run("DeleteTask", {"id": gone}, token=carol.token)).ok()
    # The three reminders due at `soon` run and do nothing; the moved task's new one waits a day.
    async with asyncio.timeout(30):
        while await jobs_left(world.dsn) != {"queued": 1}:  # noqa: ASYNC110 (a condition in PostgreSQL)
            await asyncio.sleep(0.05)
    assert (await world.inbox(carol))["notifications"]["edges"] == []


async def test_a_new_setting_moves_every_open_tasks_reminder(world: World) -> None:
    dan = await register(world.gql, email="dan@example.com", name="Dan")
    await world.task(
        dan, datetime.now(UTC) + timedelta(hours=2, seconds=2)
    )  # reminded an hour ahead: not yet
    await remind_before(world, dan, 120)  # now two hours ahead: at once
    (notification,) = await world.until_notified(dan)
    assert notification["kind"] == "TASK_DUE_SOON"


async def test_the_inbox_pages_newest_first_and_marks_read(world: World) -> None:
    erin = await register(world.gql, email="erin@example.com", name="Erin")
    mallory = await register(world.gql, email="mallory@example.com", name="Mallory")
    for minutes in (30, 20, 10):
        await world.task(erin, datetime.now(UTC) + timedelta(minutes=minutes), title=f"in {minutes}")
    notes = await world.until_notified(erin, 3)
    assert len(notes) == 3
    first = await world.inbox(erin, first=2)
    page = first["notifications"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    second = await world.inbox(erin, first=2, after=page["pageInfo"]["endCursor"])
    ids = [edge["node"]["id"] for edge in (*page["edges"], *second["notifications"]["edges"])]
    assert len(set(ids)) == 3
    created = [note["createdAt"] for note in notes]
    assert created == sorted(created, reverse=True)

    theirs = await world.gql.run("MarkNotificationsRead", {"ids": ids[:1]}, token=mallory.token)
    assert theirs.ok() == {"markNotificationsRead": 0}  # another's notification is none of theirs
    assert (await world.gql.run("Node", {"id": ids[0]}, token=mallory.token)).codes == ["NOT_FOUND"]
    marked = await world.gql.run("MarkNotificationsRead", {"ids": ids[:1]}, token=erin.token)
    assert marked.ok() == {"markNotificationsRead": 1}
    unread = await world.inbox(erin, unreadOnly=True)
    assert unread["unreadNotificationCount"] == 2
    assert ids[0] not in [edge["node"]["id"] for edge in unread["notifications"]["edges"]]
    everything = await world.gql.run("MarkNotificationsRead", {"all": True}, token=erin.token)
    assert everything.ok() == {"markNotificationsRead": 2}
    assert (await world.inbox(erin))["unreadNotificationCount"] == 0


async def test_bad_settings_are_refused_naming_the_field_and_change_nothing(world: World) -> None:
    fay = await register(world.gql, email="fay@example.com")
    for given, field in (
        ({"timezone": "Mars/Olympus"}, "input.timezone"),
        ({"remindBeforeMinutes": -1}, "input.remindBeforeMinutes"),
        ({"remindBeforeMinutes": 10081}, "input.remindBeforeMinutes"),
        ({"channels": None}, "input.channels"),
    ):
        refused = await world.gql.run("UpdateNotificationSettings", {"input": given}, token=fay.token)
        assert refused.codes == ["BAD_USER_INPUT"], given
        assert refused.errors[0]["extensions"]["field"] == field
    settings = (await world.gql.run("NotificationSettings", token=fay.token)).ok()["notificationSettings"]
    assert settings == {"remindBeforeMinutes": 60, "channels": ["EMAIL", "IN_APP"], "dailyDigest": False,
                        "timezone": "UTC"}  # fmt: skip
    saved = await world.gql.run(
        "UpdateNotificationSettings", {"input": {"channels": ["IN_APP", "IN_APP"]}}, token=fay.token
    )
    assert saved.ok()["updateNotificationSettings"]["channels"] == ["IN_APP"]


async def test_a_reminder_run_twice_or_on_a_killed_worker_notifies_once(
    database: Services, tmp_path: Path
) -> None:
    async with receiving() as receiver:
        await _reminded_once(database, tmp_path, receiver)
    # In-app once (above), and to the webhook once: one delivery, one POST.
    assert [delivery.event["type"] for delivery in receiver.received] == ["task.due_soon"]


async def _reminded_once(database: Services, tmp_path: Path, receiver: Receiver) -> None:
    with smtp_sink() as (sink, url):
        settings = make_settings(database, smtp_url=url)
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                gql = GraphQLClient(http)
                gus = await register(gql, email="gus@example.com")
                due_at = datetime.now(UTC) + timedelta(days=1)
                given = {"input": {"title": "Twice", "dueAt": due_at.isoformat()}}
                task = (await gql.run("CreateTask", given, token=gus.token)).ok()["createTask"]
        connection = await asyncpg.connect(database.dsn)
        try:
            stored = await connection.fetchval("SELECT due_at FROM tasks")
            await connection.execute("DELETE FROM pgqueuer")  # only the copies below
            await connection.execute(  # every channel, and a webhook for the reminder
                "INSERT INTO notification_settings (user_id, channels)"
                " SELECT owner_id, '{IN_APP,EMAIL,WEBHOOK}' FROM tasks"
            )
            await connection.execute(
                "INSERT INTO webhooks (id, owner_id, url, events, enabled, secret_salt)"
                " SELECT gen_random_uuid(), owner_id, $1, '{TASK_DUE_SOON}', true, 's' FROM tasks",
                receiver.url,
            )
            job = ReminderJob(str(await connection.fetchval("SELECT id FROM tasks")), stored.isoformat(), 60)
            # The job twice (as a retry after a crash would run it), and a worker killed while it holds one.
            holder = await asyncpg.connect(database.dsn)
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE notifications IN EXCLUSIVE MODE")  # the job waits at its insert
            await enqueued(settings, job, job)
            doomed = WorkerProcess(database, url, tmp_path, "doomed", JOBS_HEARTBEAT_SECONDS="2")
            async with asyncio.timeout(60):
                while await jobs_left(database.dsn) != {"picked": 2}:  # noqa: ASYNC110 (polled in PostgreSQL)
                    await asyncio.sleep(0.05)
            doomed.process.send_signal(signal.SIGKILL)
            doomed.process.wait(timeout=30)
            await transaction.rollback()
            await holder.close()
            survivors = [
                WorkerProcess(
                    database, url, tmp_path, f"survivor{n}", JOBS_HEARTBEAT_SECONDS="2",
                    WEBHOOKS_ALLOW_PRIVATE="true",
                )
                for n in (1, 2)
            ]  # fmt: skip
            try:
                await until_no_jobs(database.dsn)
                for worker in survivors:
                    await worker.started()  # a SIGTERM before it handles them would kill it
            finally:
                for worker in survivors:
                    assert worker.stop() == 0
            assert await connection.fetchval("SELECT count(*) FROM notifications") == 1
            assert await connection.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
            mail = await sink.next("gus@example.com")
            while "Due soon" not in mail["Subject"]:
                mail = await sink.next("gus@example.com")
            assert task["title"] == "Twice"
        finally:
            await connection.close()
    # One mail job was enqueued with the one notification: one mail (the sink got no second reminder).
    assert [m for m in sink.received if "Due soon" in str(m["Subject"])] == []


async def test_only_a_reopened_task_gets_a_new_reminder_among_status_changes(world: World) -> None:
    hal = await register(world.gql, email="hal@example.com")
    task = await world.task(hal, datetime.now(UTC) + timedelta(days=1))
    assert await reminders_waiting(world.dsn) == 1
    for status, reminders in (("IN_PROGRESS", 1), ("TODO", 1), ("DONE", 1), ("TODO", 2)):
        (await world.gql.run("UpdateTask", {"id": task, "input": {"status": status}}, token=hal.token)).ok()
        assert await reminders_waiting(world.dsn) == reminders, status


async def reminders_waiting(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'reminder' AND status = 'queued'"
            )
        )
    finally:
        await connection.close()


# -- With the queue's clock set by the test (tests.queue_clock): the minute, to the minute.


async def test_on_the_queues_clock_a_reminder_comes_at_its_minute_not_one_before(world: World) -> None:
    clock = QueueClock(world.dsn)
    fay = await register(world.gql, email="fay@example.com", name="Fay")
    await world.sink.next("fay@example.com")  # the verification mail
    due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    await world.task(fay, due_at, title="Renew the passport")  # reminded an hour ahead: in two hours
    await clock.settled()
    (moment,) = await clock.moments("reminder")
    assert abs(moment - (due_at - timedelta(hours=1))) < timedelta(seconds=2)

    await clock.advance(timedelta(hours=1, minutes=59))
    assert (await world.inbox(fay))["notifications"]["edges"] == []  # a minute before: nothing
    await clock.advance(timedelta(minutes=1))
    (notification,) = (await world.inbox(fay))["notifications"]["edges"]  # at its minute
    assert notification["node"]["title"] == "Due soon: Renew the passport"
    assert (await world.sink.next("fay@example.com"))["Subject"] == "Due soon: Renew the passport"
    await clock.advance(timedelta(hours=2))
    assert len((await world.inbox(fay))["notifications"]["edges"]) == 1  # once
    assert await clock.moments("reminder") == []


async def test_on_the_queues_clock_a_rescheduled_reminder_comes_at_its_new_minute_only(world: World) -> None:
    clock = QueueClock(world.dsn)
    gus = await register(world.gql, email="gus@example.com", name="Gus")
    due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    task_id = await world.task(gus, due_at, title="Moved twice")
    later = due_at + timedelta(hours=5)
    (
        await world.gql.run(
            "UpdateTask", {"id": task_id, "input": {"dueAt": later.isoformat()}}, token=gus.token
        )
    ).ok()
    await remind_before(world, gus, 30)  # and the setting: half an hour ahead
    await clock.settled()

    await clock.advance(timedelta(hours=2, minutes=1))  # past the first moment: the old job does nothing
    assert (await world.inbox(gus))["notifications"]["edges"] == []
    await clock.advance(timedelta(hours=5, minutes=28))  # 7 h 29 min: a minute before the new moment
    assert (await world.inbox(gus))["notifications"]["edges"] == []
    await clock.advance(timedelta(minutes=1))
    (notification,) = (await world.inbox(gus))["notifications"]["edges"]
    assert notification["node"]["task"]["id"] == task_id


async def test_on_the_queues_clock_a_done_or_deleted_task_is_never_reminded(world: World) -> None:
    clock = QueueClock(world.dsn)
    hal = await register(world.gql, email="hal@example.com", name="Hal")
    due_at = datetime.now(UTC) + timedelta(hours=2)
    done = await world.task(hal, due_at, title="Done early")
    deleted = await world.task(hal, due_at, title="Dropped")
    (await world.gql.run("UpdateTask", {"id": done, "input": {"status": "DONE"}}, token=hal.token)).ok()
    (await world.gql.run("DeleteTask", {"id": deleted}, token=hal.token)).ok()
    await clock.settled()

    await clock.advance(timedelta(hours=3))
    assert (await world.inbox(hal))["notifications"]["edges"] == []
    assert await clock.moments("reminder") == []
    assert [
        m for m in world.sink.received if m["To"] == "hal@example.com" and "Due soon" in m["Subject"]
    ] == []


async def test_on_the_queues_clock_no_reminder_reaches_an_owner_who_left_the_tasks_project(
    world: World,
) -> None:
    clock = QueueClock(world.dsn)
    olga = await register(world.gql, email="olga@example.com", name="Olga")
    ivy = await register(world.gql, email="ivy@example.com", name="Ivy")
    project_id = await create_project(world.gql, olga, "Trip")
    await add_member(world.gql, world.dsn, project_id, olga, ivy, "EDITOR")
    due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    values = {"title": "Book the hotel", "dueAt": due_at.isoformat(), "projectId": project_id}
    (await world.gql.run("CreateTask", {"input": values}, token=ivy.token)).ok()
    await world.task(ivy, due_at, title="Water the plants")  # personal: reminded as always
    leave = {"projectId": project_id, "userId": ivy.id}
    (await world.gql.run("RemoveProjectMember", leave, token=ivy.token)).ok()
    await clock.settled()
    await clock.advance(timedelta(hours=2, minutes=1))
    reminded = [
        edge["node"]["title"]
        for edge in (await world.inbox(ivy))["notifications"]["edges"]
        if edge["node"]["kind"] == "TASK_DUE_SOON"
    ]
    assert reminded == ["Due soon: Water the plants"]
