"""Webhooks, end to end: a user registers an endpoint, each task write is POSTed to it signed the Standard
Webhooks way (a real receiver verifies it with PyPI's ``standardwebhooks``), in order, once per event; a
failing endpoint is retried with the same webhook-id, then disabled and its owner told in-app and by mail;
``testWebhook`` and ``retryWebhookDelivery`` make one attempt at once. The app runs its own worker."""

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
from pydantic import SecretStr

from core.settings import Settings
from taskql.app import create_app
from tests.conftest import make_settings, served
from tests.factories import Account, promote_to_admin, register
from tests.graphql_client import GraphQLClient
from tests.mailbox import Sink, smtp_sink, text_of
from tests.processes import TEST_SECRET
from tests.services import Services
from tests.test_jobs import WorkerProcess, jobs_left, until_no_jobs
from tests.webhook_receiver import Receiver, receiving

ALL_EVENTS = ["TASK_CREATED", "TASK_UPDATED", "TASK_DELETED", "TASK_DUE_SOON"]


@dataclass
class World:
    gql: GraphQLClient
    sink: Sink
    settings: Settings
    dsn: str

    async def webhook(
        self, account: Account, receiver: Receiver, events: list[str] | None = None, **extra: Any
    ) -> str:
        created = await self.gql.run(
            "CreateWebhook",
            {"input": {"url": receiver.url, "events": events or ALL_EVENTS, **extra}},
            token=account.token,
        )
        payload = created.ok()["createWebhook"]
        receiver.secrets.append(payload["secret"])
        return str(payload["webhook"]["id"])

    async def task(self, account: Account, title: str, **fields: Any) -> str:
        created = await self.gql.run("CreateTask", {"input": {"title": title, **fields}}, token=account.token)
        return str(created.ok()["createTask"]["id"])

    async def update(self, account: Account, task_id: str, **fields: Any) -> None:
        (await self.gql.run("UpdateTask", {"id": task_id, "input": fields}, token=account.token)).ok()

    async def delete(self, account: Account, task_id: str) -> None:
        (await self.gql.run("DeleteTask", {"id": task_id}, token=account.token)).ok()

    async def deliveries(self, account: Account, webhook_id: str) -> list[dict[str, Any]]:
        found = await self.gql.run("WebhookDeliveries", {"id": webhook_id, "first": 100}, token=account.token)
        return [edge["node"] for edge in found.ok()["node"]["deliveries"]["edges"]]

    async def webhooks(self, account: Account) -> list[dict[str, Any]]:
        found = await self.gql.run("Webhooks", {"deliveries": 5}, token=account.token)
        return [edge["node"] for edge in found.ok()["webhooks"]["edges"]]


FAST_RETRIES = {"webhook_retry_base_seconds": 0.02, "webhook_retry_max_seconds": 0.1}


@pytest.fixture
async def world(database: Services) -> AsyncIterator[World]:
    with smtp_sink() as (sink, url):
        settings = make_settings(
            database, smtp_url=url, jobs_embedded_worker=True, webhooks_allow_private=True, **FAST_RETRIES
        )
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                yield World(GraphQLClient(http), sink, settings, database.dsn)


async def test_each_write_is_posted_signed_in_order_once_and_logged(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        webhook_id = await world.webhook(alice, receiver, description="CI")
        assert receiver.secrets[0].startswith("whsec_")

        task_id = await world.task(alice, "Write the report", priority="HIGH")
        await world.update(alice, task_id, status="IN_PROGRESS")
        await world.update(alice, task_id, title="Write the annual report")
        await world.delete(alice, task_id)
        created, started, renamed, deleted = await receiver.until(4)

        assert all(delivery.verified_by == receiver.secrets for delivery in receiver.received)
        assert [d.event["type"] for d in receiver.received] == [
            "task.created", "task.updated", "task.updated", "task.deleted",
        ]  # fmt: skip
        assert created.event["data"]["id"] == task_id
        assert created.event["data"]["title"] == "Write the report"
        assert created.event["data"]["priority"] == "HIGH"
        assert started.event["data"]["status"] == "IN_PROGRESS"
        assert renamed.event["data"]["title"] == "Write the annual report"
        assert deleted.event["data"] == {"id": task_id}
        assert len({delivery.id for delivery in receiver.received}) == 4
        assert all(delivery.id.startswith("msg_") for delivery in receiver.received)
        await until_no_jobs(world.dsn)
        assert len(receiver.received) == 4  # each once

        log = await world.deliveries(alice, webhook_id)
        assert [entry["eventType"] for entry in log] == [
            "TASK_DELETED",
            "TASK_UPDATED",
            "TASK_UPDATED",
            "TASK_CREATED",
        ]  # fmt: skip  (newest first)
        assert {(entry["status"], entry["attempt"], entry["responseStatus"]) for entry in log} == {
            ("delivered", 1, 200)
        }
        assert [entry["messageId"] for entry in reversed(log)] == [d.id for d in receiver.received]
        assert log[0]["responseBody"] == '{"ok":true}'


async def test_a_webhook_gets_only_its_events_and_only_its_owners(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    bob = await register(world.gql, email="bob@example.com", name="Bob")
    async with receiving() as deletions, receiving() as bobs:
        await world.webhook(alice, deletions, events=["TASK_DELETED"])
        await world.webhook(bob, bobs)
        task_id = await world.task(alice, "Alice's")
        await world.update(alice, task_id, status="DONE")
        await world.delete(alice, task_id)
        await world.task(bob, "Bob's")
        (deleted,) = await deletions.until(1)
        (bobs_created,) = await bobs.until(1)
        await until_no_jobs(world.dsn)

        assert deleted.event["type"] == "task.deleted"
        assert len(deletions.received) == 1
        assert bobs_created.event["data"]["title"] == "Bob's"
        assert len(bobs.received) == 1


async def test_a_failing_endpoint_is_retried_with_the_same_id_and_later_events_wait_their_turn(
    world: World,
) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        receiver.status = 503
        webhook_id = await world.webhook(alice, receiver)
        first = await world.task(alice, "First")
        await receiver.until(3)  # three failed attempts at the first event
        await world.task(alice, "Second")
        receiver.status = 200
        await until_no_jobs(world.dsn)
        received = receiver.received

        first_id = received[0].id
        attempts = [delivery for delivery in received if delivery.id == first_id]
        assert len(attempts) >= 4
        assert all(d.event["data"]["id"] == first for d in attempts)
        assert received[-1].event["data"]["title"] == "Second"  # after the first, never before
        assert len([d for d in received if d.id != first_id]) == 1
        assert all(delivery.verified_by for delivery in received)
        second_log, first_log = await world.deliveries(alice, webhook_id)
        assert (first_log["status"], first_log["attempt"]) == ("delivered", len(attempts))
        assert (second_log["status"], second_log["attempt"]) == ("delivered", 1)
        (webhook,) = await world.webhooks(alice)
        assert webhook["enabled"] is True


async def test_twenty_failures_in_a_row_disable_the_endpoint_and_tell_its_owner(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    await world.sink.next("alice@example.com")  # the verification mail
    async with receiving() as receiver:
        receiver.status = 500
        webhook_id = await world.webhook(alice, receiver)
        await world.task(alice, "Never arrives")
        mail = await world.sink.next("alice@example.com", timeout=60)

        assert mail["Subject"] == f"Webhook disabled: {receiver.url}"
        assert "20 failed deliveries in a row" in text_of(mail)
        assert "HTTP status 500" in text_of(mail)
        assert len(receiver.received) == 20
        assert len({delivery.id for delivery in receiver.received}) == 1  # the same event, 20 times
        (webhook,) = await world.webhooks(alice)
        assert webhook["enabled"] is False
        assert webhook["disabledReason"] == "HTTP status 500"
        (entry,) = await world.deliveries(alice, webhook_id)
        assert (entry["status"], entry["attempt"], entry["nextAttemptAt"]) == ("failed", 20, None)
        inbox = (await world.gql.run("Notifications", {}, token=alice.token)).ok()["notifications"]
        (notification,) = [edge["node"] for edge in inbox["edges"]]
        assert notification["kind"] == "WEBHOOK_DISABLED"
        assert receiver.url in notification["body"]

        await world.task(alice, "Written while disabled")
        await until_no_jobs(world.dsn)
        assert len(receiver.received) == 20  # nothing is sent to a disabled endpoint
        assert len(await world.deliveries(alice, webhook_id)) == 1

        receiver.status = 200
        ping = (await world.gql.run("TestWebhook", {"id": webhook_id}, token=alice.token)).ok()["testWebhook"]
        assert (ping["eventType"], ping["status"], ping["attempt"], ping["responseStatus"]) == (
            "PING", "delivered", 1, 200,
        )  # fmt: skip
        assert receiver.received[-1].event["type"] == "webhook.ping"
        refused = await world.gql.run("RetryWebhookDelivery", {"id": entry["id"]}, token=alice.token)
        assert refused.errors[0]["extensions"]["code"] == "WEBHOOK_DISABLED"

        enable = {"id": webhook_id, "input": {"enabled": True}}
        assert (await world.gql.run("UpdateWebhook", enable, token=alice.token)).ok()["updateWebhook"][
            "enabled"
        ]
        retried = await world.gql.run("RetryWebhookDelivery", {"id": entry["id"]}, token=alice.token)
        again = retried.ok()["retryWebhookDelivery"]

        assert (again["status"], again["attempt"], again["messageId"]) == (
            "delivered",
            21,
            entry["messageId"],
        )
        assert receiver.received[-1].id == entry["messageId"]
        assert receiver.received[-1].verified_by == receiver.secrets
        await world.task(alice, "After enabling")
        deliveries = await receiver.until(23)
        assert deliveries[-1].event["data"]["title"] == "After enabling"


async def test_a_rotated_secret_signs_with_the_previous_one_too(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        webhook_id = await world.webhook(alice, receiver)
        old = receiver.secrets[0]
        rotated = await world.gql.run("RotateWebhookSecret", {"id": webhook_id}, token=alice.token)
        new = rotated.ok()["rotateWebhookSecret"]["secret"]
        receiver.secrets.append(new)
        assert new != old
        assert new.startswith("whsec_")

        await world.task(alice, "Signed twice")
        (delivery,) = await receiver.until(1)

        assert delivery.verified_by == [old, new]
        assert len(delivery.headers["webhook-signature"].split(" ")) == 2


async def test_what_another_user_sends_is_not_found_and_changes_nothing(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    mallory = await register(world.gql, email="mallory@example.com", name="Mallory")
    admin = await register(world.gql, email="admin@example.com", name="Admin")
    await promote_to_admin(world.dsn, admin)
    admin = await register_again(world, admin)
    async with receiving() as receiver:
        webhook_id = await world.webhook(alice, receiver)
        await world.task(alice, "Alice's")
        (delivery,) = await world.deliveries(alice, webhook_id)
        attempts: dict[str, dict[str, Any]] = {
            "UpdateWebhook": {"id": webhook_id, "input": {"url": "http://127.0.0.1:1/stolen"}},
            "DeleteWebhook": {"id": webhook_id},
            "RotateWebhookSecret": {"id": webhook_id},
            "TestWebhook": {"id": webhook_id},
            "RetryWebhookDelivery": {"id": delivery["id"]},
            "WebhookDeliveries": {"id": webhook_id},
        }
        for intruder in (mallory, admin):
            for name, variables in attempts.items():
                answer = await world.gql.run(name, variables, token=intruder.token)
                assert answer.errors[0]["extensions"]["code"] == "NOT_FOUND", (name, answer.errors)
            assert await world.webhooks(intruder) == []
        await until_no_jobs(world.dsn)

        (webhook,) = await world.webhooks(alice)
        assert webhook["url"] == receiver.url
        assert len(receiver.received) == 1  # no test, no retry reached it


async def register_again(world: World, account: Account) -> Account:
    """A fresh login, whose token carries the account's current role."""
    from tests.factories import PASSWORD

    answer = await world.gql.run("Login", {"input": {"email": account.email, "password": PASSWORD}})
    payload = answer.ok()["login"]
    return Account(account.id, account.email, payload["accessToken"], payload["refreshToken"])


async def test_bad_input_is_refused_by_field_and_writes_nothing(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        cases = [
            ({"url": "ftp://example.com/hook", "events": ["TASK_CREATED"]}, "input.url"),
            ({"url": "http://user:pw@example.com/", "events": ["TASK_CREATED"]}, "input.url"),
            ({"url": "http://no-such-host.invalid/", "events": ["TASK_CREATED"]}, "input.url"),
            ({"url": receiver.url, "events": []}, "input.events"),
            ({"url": receiver.url, "events": ["PING"]}, "input.events"),
            (
                {"url": receiver.url, "events": ["TASK_CREATED"], "description": "x" * 501},
                "input.description",
            ),
        ]
        for given, field in cases:
            answer = await world.gql.run("CreateWebhook", {"input": given}, token=alice.token)
            error = answer.errors[0]
            assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
        assert await world.webhooks(alice) == []

        for _ in range(10):
            await world.webhook(alice, receiver)
        eleventh = await world.gql.run(
            "CreateWebhook", {"input": {"url": receiver.url, "events": ["TASK_CREATED"]}}, token=alice.token
        )
        assert "At most 10 webhooks" in eleventh.errors[0]["message"]
        assert len(await world.webhooks(alice)) == 10


async def test_a_reminder_reaches_webhooks_when_the_owner_chose_that_channel(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    channels = {"i": {"channels": ["WEBHOOK"]}}
    document = (
        "mutation($i: NotificationSettingsInput!) { updateNotificationSettings(input: $i) { channels } }"
    )
    (await world.gql.query(document, channels, token=alice.token)).ok()
    async with receiving() as receiver:
        await world.webhook(alice, receiver, events=["TASK_DUE_SOON"])
        due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
        task_id = await world.task(alice, "Due soon", dueAt=due_at.isoformat())  # inside the 60-minute window
        (delivery,) = await receiver.until(1)
        await until_no_jobs(world.dsn)

        assert delivery.event["type"] == "task.due_soon"
        assert delivery.event["data"]["id"] == task_id
        assert datetime.fromisoformat(delivery.event["data"]["dueAt"]) == due_at
        assert len(receiver.received) == 1
        inbox = (await world.gql.run("Notifications", {}, token=alice.token)).ok()
        assert inbox["notifications"]["edges"] == []  # IN_APP was not chosen


HOSTILE = [
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/hook",
    "https://192.168.1.10/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[fd00:ec2::254]/hook",
    "https://0.0.0.0/hook",
    "https://2130706433/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f.1/hook",  # and in hexadecimal, short form
    "https://localhost/hook",  # a name that resolves to loopback
    "http://example.com/hook",  # http:// in production
    "https://example.com@127.0.0.1/hook",  # the userinfo trick: the host is 127.0.0.1
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


async def test_hostile_urls_are_refused_in_production_and_nothing_is_written(database: Services) -> None:
    settings = make_settings(database, environment="production", cors_origins=["https://app.example.com"])
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=served(application))
        async with httpx.AsyncClient(transport=transport, base_url="https://taskql.test") as http:
            gql = GraphQLClient(http)
            alice = await register(gql, email="alice@example.com", name="Alice")
            for url in HOSTILE:
                given = {"input": {"url": url, "events": ["TASK_CREATED"]}}
                answer = await gql.run("CreateWebhook", given, token=alice.token)
                (error,) = answer.errors
                assert error["extensions"]["code"] == "BAD_USER_INPUT", (url, error)
                assert error["extensions"]["field"] == "input.url", url
                assert error["message"].startswith("input.url: "), error["message"]
            found = await gql.run("Webhooks", {}, token=alice.token)
            assert found.ok()["webhooks"]["totalCount"] == 0


async def test_a_redirect_is_a_failed_attempt_and_is_never_followed(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        receiver.status = 302
        webhook_id = await world.webhook(alice, receiver)
        await world.task(alice, "Redirected")
        await receiver.until(2)  # the first attempt, then a retry: each a single request
        (failed,) = await world.deliveries(alice, webhook_id)  # the first attempt's outcome is recorded
        assert (failed["error"], failed["responseStatus"]) == ("redirect not followed (302)", 302)
        receiver.status = 200
        await until_no_jobs(world.dsn)

        assert len({delivery.id for delivery in receiver.received}) == 1
        assert all(delivery.headers["host"].startswith("127.0.0.1:") for delivery in receiver.received)
        (entry,) = await world.deliveries(alice, webhook_id)
        assert entry["status"] == "delivered"
        assert entry["attempt"] == len(receiver.received)


@pytest.fixture
async def api(database: Services) -> AsyncIterator[World]:
    """The API alone, with the secret the worker processes have (webhook secrets derive from it)."""
    with smtp_sink() as (sink, url):
        settings = make_settings(
            database, smtp_url=url, jwt_secret=SecretStr(TEST_SECRET), webhooks_allow_private=True
        )
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                yield World(GraphQLClient(http), sink, settings, database.dsn)


def worker(api: World, database: Services, folder: Path, name: str) -> WorkerProcess:
    assert api.settings.smtp_url is not None
    return WorkerProcess(
        database,
        api.settings.smtp_url,
        folder,
        name,
        JOBS_HEARTBEAT_SECONDS="2",
        WEBHOOKS_ALLOW_PRIVATE="true",
    )


async def test_a_worker_killed_mid_delivery_leaves_it_to_another_with_the_same_webhook_id(
    api: World, database: Services, tmp_path: Path
) -> None:
    alice = await register(api.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        webhook_id = await api.webhook(alice, receiver)
        receiver.hold = asyncio.Event()  # the first attempt gets no answer
        task_id = await api.task(alice, "Delivered once")
        first = worker(api, database, tmp_path, "first")
        try:
            await receiver.until(1, timeout=60)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
        finally:
            first.stop()
        receiver.hold.set()
        receiver.hold = None
        second = worker(api, database, tmp_path, "second")
        try:
            killed, delivered = await receiver.until(2, timeout=60)
            await until_no_jobs(api.dsn)
        finally:
            assert second.stop() == 0

        assert (
            killed.id == delivered.id
        )  # the same webhook-id: a receiver keeps the first and drops the other
        assert killed.body == delivered.body
        assert delivered.event["data"]["id"] == task_id
        assert delivered.verified_by == receiver.secrets
        assert len(receiver.received) == 2
        (entry,) = await api.deliveries(alice, webhook_id)
        assert (entry["status"], entry["messageId"]) == ("delivered", delivered.id)


async def test_two_workers_deliver_each_event_once_and_in_order(
    api: World, database: Services, tmp_path: Path
) -> None:
    alice = await register(api.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        await api.webhook(alice, receiver, events=["TASK_CREATED"])
        workers = [worker(api, database, tmp_path, name) for name in ("one", "two")]
        try:
            titles = [f"Task {n}" for n in range(40)]
            for title in titles:
                await api.task(alice, title)
            await receiver.until(len(titles), timeout=60)
            await until_no_jobs(api.dsn)
        finally:
            for process in workers:
                assert process.stop() == 0

        assert [delivery.event["data"]["title"] for delivery in receiver.received] == titles
        assert len({delivery.id for delivery in receiver.received}) == len(titles)
        assert all(delivery.verified_by for delivery in receiver.received)
        assert all("Traceback" not in process.output() for process in workers)


async def test_what_the_worker_changes_is_never_served_from_the_response_cache(world: World) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    async with receiving() as receiver:
        webhook_id = await world.webhook(alice, receiver)
        document = "query($id: ID!) { node(id: $id) { id ... on Webhook { enabled disabledReason } } }"
        shown = await world.gql.query(document, {"id": webhook_id}, token=alice.token)
        assert shown.ok()["node"]["enabled"] is True
        connection = await asyncpg.connect(world.dsn)
        try:  # as the worker disables it: no write of the API, no tag bumped
            await connection.execute(
                "UPDATE webhooks SET enabled = false, disabled_reason = 'HTTP status 500'"
            )
        finally:
            await connection.close()

        again = await world.gql.query(document, {"id": webhook_id}, token=alice.token)
        assert again.ok()["node"] == {"id": webhook_id, "enabled": False, "disabledReason": "HTTP status 500"}
        assert again.headers["x-cache"] == "MISS"
        notification = await world.gql.query("query($id: ID!) { node(id: $id) { id } }", {"id": webhook_id},
                                             token=alice.token)  # fmt: skip
        assert notification.ok()["node"]["id"] == webhook_id  # the id alone may be cached: it never changes


async def test_a_task_given_to_another_owner_leaves_the_first_owners_webhooks_with_its_id_only(
    world: World,
) -> None:
    alice = await register(world.gql, email="alice@example.com", name="Alice")
    bob = await register(world.gql, email="bob@example.com", name="Bob")
    carol = await register(world.gql, email="carol@example.com", name="Carol")
    admin = await register(world.gql, email="admin@example.com", name="Admin")
    await promote_to_admin(world.dsn, admin)
    admin = await register_again(world, admin)
    async with receiving() as alices, receiving() as bobs, receiving() as carols:
        await world.webhook(alice, alices)
        await world.webhook(bob, bobs)
        await world.webhook(carol, carols)
        task_id = await world.task(alice, "Moving house", description="the new address")
        await world.update(admin, task_id, ownerId=bob.id)
        carols_task = await world.task(carol, "Carol's")
        deactivate = {"userId": carol.id, "active": False}
        (await world.gql.run("SetUserActive", deactivate, token=admin.token)).ok()
        await world.update(admin, carols_task, title="Changed while Carol is away")
        await alices.until(2)
        await bobs.until(1)
        await until_no_jobs(world.dsn)

        assert [d.event["type"] for d in alices.received] == ["task.created", "task.deleted"]
        assert alices.received[1].event["data"] == {"id": task_id}  # nothing of it once it is Bob's
        (given,) = bobs.received
        assert (given.event["type"], given.event["data"]["description"]) == (
            "task.created",
            "the new address",
        )
        assert [d.event["data"]["title"] for d in carols.received] == ["Carol's"]  # not after deactivation


async def test_a_deactivated_accounts_deliveries_wait_and_go_once_it_is_reactivated(world: World) -> None:
    carol = await register(world.gql, email="carol@example.com", name="Carol")
    admin = await register(world.gql, email="admin@example.com", name="Admin")
    await promote_to_admin(world.dsn, admin)
    admin = await register_again(world, admin)
    async with receiving() as receiver:
        receiver.status = 503
        webhook_id = await world.webhook(carol, receiver)
        await world.task(carol, "Held back")
        await receiver.until(2)  # failing: retried
        deactivate = {"userId": carol.id, "active": False}
        (await world.gql.run("SetUserActive", deactivate, token=admin.token)).ok()
        await until_no_jobs(world.dsn)  # its retry ran, and sent nothing to a deactivated account's endpoint
        tried = len(receiver.received)
        receiver.status = 200
        (await world.gql.run("SetUserActive", {**deactivate, "active": True}, token=admin.token)).ok()
        await receiver.until(tried + 1)
        await until_no_jobs(world.dsn)

        assert len(receiver.received) == tried + 1
        assert len({delivery.id for delivery in receiver.received}) == 1
        carol = await register_again(world, carol)  # deactivation ended the account's sessions
        (entry,) = await world.deliveries(carol, webhook_id)
        assert (entry["status"], entry["attempt"]) == ("delivered", tried + 1)


async def test_a_later_event_waits_for_the_heads_retry_without_keeping_a_worker_busy(
    database: Services,
) -> None:
    with smtp_sink() as (sink, url):
        settings = make_settings(
            database, smtp_url=url, jobs_embedded_worker=True, webhooks_allow_private=True,
            webhook_retry_base_seconds=30,
        )  # fmt: skip
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                world = World(GraphQLClient(http), sink, settings, database.dsn)
                alice = await register(world.gql, email="alice@example.com", name="Alice")
                async with receiving() as receiver:
                    receiver.status = 503
                    webhook_id = await world.webhook(alice, receiver)
                    await world.task(alice, "First")
                    await receiver.until(1)
                    await world.task(alice, "Second")  # behind the first, which retries in 22 to 38 s
                    await until_jobs(world.dsn, {"queued": 1})  # that retry only: nothing spins meanwhile

                    assert len(receiver.received) == 1
                    first, second = reversed(await world.deliveries(alice, webhook_id))
                    assert (first["status"], first["attempt"]) == ("retrying", 1)
                    assert (second["status"], second["attempt"]) == ("pending", 0)


async def until_jobs(dsn: str, expected: dict[str, int], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await jobs_left(dsn) != expected:  # noqa: ASYNC110 (a condition in PostgreSQL, polled)
            await asyncio.sleep(0.05)
