"""Who may do what: anonymous, the owner, another user and an admin, against every query and mutation.

Someone else's task is NOT_FOUND, exactly like a missing one; a missing role is FORBIDDEN; no viewer at all
is UNAUTHENTICATED. Admins may see and change everything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from core.ids import encode_id
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient, Response
from tests.services import Services

MISSING_TASK = encode_id("Task", uuid.UUID(int=1))
MISSING_SESSION = encode_id("Session", uuid.UUID(int=1))
WRONG = "not the password"


@dataclass
class World:
    gql: GraphQLClient
    owner: Account
    other: Account
    admin: Account
    task_id: str
    webhook_id: str
    delivery_id: str

    def token(self, who: str) -> str | None:
        return {
            "anonymous": None,
            "owner": self.owner.token,
            "other": self.other.token,
            "admin": self.admin.token,
        }[who]


@pytest.fixture
async def world(
    gql: GraphQLClient, alice: Account, bob: Account, admin: Account, database: Services
) -> World:
    task = await create_task(gql, alice, title="Alice's secret plan", description="for Alice only")
    webhook_id, delivery_id = await _webhook_with_a_failed_delivery(database.dsn, alice)
    return World(
        gql, alice, bob, admin, task["id"], encode_id("Webhook", webhook_id),
        encode_id("WebhookDelivery", delivery_id),
    )  # fmt: skip


async def _webhook_with_a_failed_delivery(dsn: str, owner: Account) -> tuple[uuid.UUID, uuid.UUID]:
    """Alice's webhook, to a closed local port (refused by the address rules: an attempt fails at once, with
    no network), and one failed delivery of hers."""
    webhook_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """INSERT INTO webhooks (id, owner_id, url, events, description, enabled, secret_salt)
            SELECT $1, id, 'http://127.0.0.1:9/alice-secret-hook', '{TASK_CREATED}', 'secret plan', true,
                   'salt'
            FROM users WHERE email = $2""",
            webhook_id,
            owner.email,
        )
        await connection.execute(
            """INSERT INTO webhook_deliveries
                (id, webhook_id, message_id, event_type, payload, status, attempt)
            VALUES ($1, $2, $3, 'TASK_CREATED', '{"type": "task.created"}', 'failed', 1)""",
            delivery_id,
            webhook_id,
            uuid.uuid4(),
        )
    finally:
        await connection.close()
    return webhook_id, delivery_id


Operation = Callable[[World, str | None], Awaitable[Response]]

OPERATIONS: dict[str, Operation] = {
    "task": lambda w, t: w.gql.run("Task", {"id": w.task_id}, token=t),
    "node(task)": lambda w, t: w.gql.run("Node", {"id": w.task_id}, token=t),
    "node(user)": lambda w, t: w.gql.run("Node", {"id": w.owner.id}, token=t),
    "tasks": lambda w, t: w.gql.run("Tasks", {"first": 10}, token=t),
    "tasks(filter ownerId)": lambda w, t: w.gql.run("Tasks", {"filter": {"ownerId": w.owner.id}}, token=t),
    "taskStats(ownerId)": lambda w, t: w.gql.run("TaskStats", {"ownerId": w.owner.id}, token=t),
    "taskStats": lambda w, t: w.gql.run("TaskStats", token=t),
    "users": lambda w, t: w.gql.run("Users", {"first": 10}, token=t),
    "me": lambda w, t: w.gql.run("Me", token=t),
    "rateLimit": lambda w, t: w.gql.run("RateLimit", token=t),
    "createTask": lambda w, t: w.gql.run("CreateTask", {"input": {"title": "new"}}, token=t),
    "updateTask": lambda w, t: w.gql.run(
        "UpdateTask", {"id": w.task_id, "input": {"title": "mine now"}}, token=t
    ),
    "deleteTask": lambda w, t: w.gql.run("DeleteTask", {"id": w.task_id}, token=t),
    "setUserRole": lambda w, t: w.gql.run("SetUserRole", {"userId": w.other.id, "role": "ADMIN"}, token=t),
    "setUserActive": lambda w, t: w.gql.run(
        "SetUserActive", {"userId": w.other.id, "active": False}, token=t
    ),
    "sessions": lambda w, t: w.gql.run("Sessions", token=t),
    "failedJobs": lambda w, t: w.gql.run("FailedJobs", token=t),
    "verifyEmail": lambda w, t: w.gql.run("VerifyEmail", {"token": "not-a-token"}, token=t),
    "resendVerificationEmail": lambda w, t: w.gql.run("ResendVerificationEmail", token=t),
    "requestPasswordReset": lambda w, t: w.gql.run("RequestPasswordReset", {"email": w.owner.email}, token=t),
    "resetPassword": lambda w, t: w.gql.run(
        "ResetPassword", {"token": "not-a-token", "newPassword": "a long enough new password"}, token=t
    ),
    "updateProfile": lambda w, t: w.gql.run("UpdateProfile", {"input": {"name": "Renamed"}}, token=t),
    "changePassword": lambda w, t: w.gql.run(
        "ChangePassword", {"currentPassword": WRONG, "newPassword": "a long enough new password"}, token=t
    ),
    "changeEmail": lambda w, t: w.gql.run(
        "ChangeEmail", {"newEmail": "new@example.com", "password": WRONG}, token=t
    ),
    "revokeSession": lambda w, t: w.gql.run("RevokeSession", {"id": MISSING_SESSION}, token=t),
    "requestDataExport": lambda w, t: w.gql.run("RequestDataExport", token=t),
    "deleteAccount": lambda w, t: w.gql.run("DeleteAccount", {"password": WRONG}, token=t),
    "sendPasswordReset": lambda w, t: w.gql.run("SendPasswordReset", {"userId": w.other.id}, token=t),
    "retryJob": lambda w, t: w.gql.run("RetryJob", {"id": "900000000000001"}, token=t),
    "notificationSettings": lambda w, t: w.gql.run("NotificationSettings", token=t),
    "notifications": lambda w, t: w.gql.run("Notifications", token=t),
    "unreadNotificationCount": lambda w, t: w.gql.query("{ unreadNotificationCount }", token=t),
    "updateNotificationSettings": lambda w, t: w.gql.run(
        "UpdateNotificationSettings", {"input": {"remindBeforeMinutes": 30}}, token=t
    ),
    "markNotificationsRead": lambda w, t: w.gql.run("MarkNotificationsRead", {"all": True}, token=t),
    "webhooks": lambda w, t: w.gql.run("Webhooks", token=t),
    "node(webhook)": lambda w, t: w.gql.run("Node", {"id": w.webhook_id}, token=t),
    "webhookDeliveries": lambda w, t: w.gql.run("WebhookDeliveries", {"id": w.webhook_id}, token=t),
    "createWebhook": lambda w, t: w.gql.run(
        "CreateWebhook", {"input": {"url": "https://93.184.215.14/hook", "events": ["TASK_CREATED"]}}, token=t
    ),
    "updateWebhook": lambda w, t: w.gql.run(
        "UpdateWebhook", {"id": w.webhook_id, "input": {"description": "changed"}}, token=t
    ),
    "deleteWebhook": lambda w, t: w.gql.run("DeleteWebhook", {"id": w.webhook_id}, token=t),
    "rotateWebhookSecret": lambda w, t: w.gql.run("RotateWebhookSecret", {"id": w.webhook_id}, token=t),
    "testWebhook": lambda w, t: w.gql.run("TestWebhook", {"id": w.webhook_id}, token=t),
    "retryWebhookDelivery": lambda w, t: w.gql.run("RetryWebhookDelivery", {"id": w.delivery_id}, token=t),
}
SIGNED_IN = {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "ok", "admin": "ok"}
ADMINS = {"anonymous": "UNAUTHENTICATED", "owner": "FORBIDDEN", "other": "FORBIDDEN", "admin": "ok"}
# A webhook is its owner's alone: another user's, an admin's too, is NOT_FOUND.
OWNER_ONLY = {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "NOT_FOUND"}


def everyone(outcome: str, *, anonymous: str | None = None) -> dict[str, str]:
    return {"anonymous": anonymous or outcome, "owner": outcome, "other": outcome, "admin": outcome}


# The expected outcome: an error code, or "ok" (no error).
MATRIX: dict[str, dict[str, str]] = {
    "task": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "ok"},
    "node(task)": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "ok"},
    "node(user)": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "ok"},
    "tasks": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "ok", "admin": "ok"},
    "tasks(filter ownerId)": {
        "anonymous": "UNAUTHENTICATED",
        "owner": "ok",
        "other": "NOT_FOUND",
        "admin": "ok",
    },
    "taskStats(ownerId)": {
        "anonymous": "UNAUTHENTICATED",
        "owner": "ok",
        "other": "NOT_FOUND",
        "admin": "ok",
    },
    "taskStats": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "ok", "admin": "ok"},
    "users": {"anonymous": "UNAUTHENTICATED", "owner": "FORBIDDEN", "other": "FORBIDDEN", "admin": "ok"},
    "me": {"anonymous": "ok", "owner": "ok", "other": "ok", "admin": "ok"},
    # Everyone's own budget (the client address's when anonymous).
    "rateLimit": {"anonymous": "ok", "owner": "ok", "other": "ok", "admin": "ok"},
    "createTask": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "ok", "admin": "ok"},
    "updateTask": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "ok"},
    "deleteTask": {"anonymous": "UNAUTHENTICATED", "owner": "ok", "other": "NOT_FOUND", "admin": "ok"},
    "setUserRole": {
        "anonymous": "UNAUTHENTICATED",
        "owner": "FORBIDDEN",
        "other": "FORBIDDEN",
        "admin": "ok",
    },
    "setUserActive": {
        "anonymous": "UNAUTHENTICATED",
        "owner": "FORBIDDEN",
        "other": "FORBIDDEN",
        "admin": "ok",
    },
    "sessions": SIGNED_IN,
    "failedJobs": ADMINS,
    # Open to anyone: a token proves the right (a bad one is refused alike), an address gets a mail or not.
    "verifyEmail": everyone("BAD_USER_INPUT"),
    "requestPasswordReset": everyone("ok"),
    "resetPassword": everyone("BAD_USER_INPUT"),
    "resendVerificationEmail": SIGNED_IN,
    "updateProfile": SIGNED_IN,
    "changePassword": everyone("BAD_USER_INPUT", anonymous="UNAUTHENTICATED"),  # the wrong password
    "changeEmail": everyone("BAD_USER_INPUT", anonymous="UNAUTHENTICATED"),
    "revokeSession": everyone("NOT_FOUND", anonymous="UNAUTHENTICATED"),
    "requestDataExport": SIGNED_IN,
    "deleteAccount": everyone("BAD_USER_INPUT", anonymous="UNAUTHENTICATED"),
    "sendPasswordReset": ADMINS,
    "retryJob": {**ADMINS, "admin": "NOT_FOUND"},
    "notificationSettings": SIGNED_IN,
    "notifications": SIGNED_IN,
    "unreadNotificationCount": SIGNED_IN,
    "updateNotificationSettings": SIGNED_IN,
    "markNotificationsRead": SIGNED_IN,
    "webhooks": SIGNED_IN,
    "node(webhook)": OWNER_ONLY,
    "webhookDeliveries": OWNER_ONLY,
    "createWebhook": SIGNED_IN,
    "updateWebhook": OWNER_ONLY,
    "deleteWebhook": OWNER_ONLY,
    "rotateWebhookSecret": OWNER_ONLY,
    "testWebhook": OWNER_ONLY,
    "retryWebhookDelivery": OWNER_ONLY,
}
CASES = [(operation, who, expected) for operation, row in MATRIX.items() for who, expected in row.items()]


def test_the_matrix_covers_every_query_and_mutation() -> None:
    from schema.build import build_schema
    from schema.planning.strawberry_compat import graphql_schema_of

    schema = graphql_schema_of(build_schema())
    roots = {*schema.query_type.fields, *(schema.mutation_type.fields if schema.mutation_type else {})}  # type: ignore[union-attr]
    covered = {name.split("(")[0] for name in MATRIX}
    # Login, register, refresh and logout are open to anyone by design: test_auth_flow covers them.
    assert roots - covered == {"register", "login", "refreshToken", "logout"}


def test_every_subscription_is_covered_over_websocket() -> None:
    """Subscriptions run over WebSocket only, where test_security_matrix covers them: taskEvents per owner
    (its ownerId row), notificationEvents per viewer (anonymous closed, each one's own inbox only)."""
    from schema.build import build_schema
    from schema.planning.strawberry_compat import graphql_schema_of

    subscription = graphql_schema_of(build_schema()).subscription_type
    assert subscription is not None
    assert set(subscription.fields) == {"taskEvents", "notificationEvents"}


@pytest.mark.parametrize(("operation", "who", "expected"), CASES)
async def test_authorization(world: World, operation: str, who: str, expected: str) -> None:
    response = await OPERATIONS[operation](world, world.token(who))
    assert (response.codes[0] if response.errors else "ok") == expected, response.body
    if expected != "ok":
        # Nothing of the protected object leaks, in data or in the message.
        assert "secret plan" not in str(response.body)
        assert "alice@example.com" not in str(response.body)
        assert "alice-secret-hook" not in str(response.body)


async def test_another_users_task_is_indistinguishable_from_a_missing_one(world: World) -> None:
    theirs = await world.gql.run("Task", {"id": world.task_id}, token=world.other.token)
    missing = await world.gql.run("Task", {"id": MISSING_TASK}, token=world.other.token)

    def anonymized(response: Response, global_id: str) -> Any:
        body = {name: value for name, value in response.body.items() if name != "extensions"}  # the budget
        return json.loads(json.dumps(body).replace(global_id, "<id>"))

    assert anonymized(theirs, world.task_id) == anonymized(missing, MISSING_TASK)
    assert theirs.codes == ["NOT_FOUND"]


async def test_a_user_lists_only_their_own_tasks(world: World) -> None:
    await create_task(world.gql, world.other, title="Bob's task")
    owner = (await world.gql.run("Tasks", {"first": 10}, token=world.owner.token)).ok()["tasks"]
    other = (await world.gql.run("Tasks", {"first": 10}, token=world.other.token)).ok()["tasks"]
    admin = (await world.gql.run("Tasks", {"first": 10}, token=world.admin.token)).ok()["tasks"]
    assert [edge["node"]["title"] for edge in owner["edges"]] == ["Alice's secret plan"]
    assert [edge["node"]["title"] for edge in other["edges"]] == ["Bob's task"]
    assert admin["totalCount"] == 2


async def test_a_failed_update_or_delete_by_another_user_changes_nothing(world: World) -> None:
    await world.gql.run(
        "UpdateTask", {"id": world.task_id, "input": {"title": "hijacked"}}, token=world.other.token
    )
    await world.gql.run("DeleteTask", {"id": world.task_id}, token=world.other.token)
    task = (await world.gql.run("Task", {"id": world.task_id}, token=world.owner.token)).ok()["task"]
    assert task["title"] == "Alice's secret plan"


async def test_a_user_cannot_give_a_task_to_someone_else(world: World) -> None:
    response = await world.gql.run(
        "UpdateTask", {"id": world.task_id, "input": {"ownerId": world.other.id}}, token=world.owner.token
    )
    assert response.codes == ["FORBIDDEN"]


async def test_an_admin_can_give_a_task_to_another_user(world: World) -> None:
    response = await world.gql.run(
        "UpdateTask", {"id": world.task_id, "input": {"ownerId": world.other.id}}, token=world.admin.token
    )
    assert response.ok()["updateTask"]["owner"]["id"] == world.other.id
    assert (await world.gql.run("Task", {"id": world.task_id}, token=world.owner.token)).codes == [
        "NOT_FOUND"
    ]
    assert (await world.gql.run("Task", {"id": world.task_id}, token=world.other.token)).ok()


async def test_nested_owner_fields_show_only_the_viewers_own_account(world: World) -> None:
    data = (await world.gql.run("MyTasks", {"first": 5}, token=world.owner.token)).ok()
    assert data["me"]["tasks"]["totalCount"] == 1
    other = (await world.gql.run("MyTasks", {"first": 5}, token=world.other.token)).ok()
    assert other["me"]["tasks"]["totalCount"] == 0


async def test_a_user_id_where_a_task_id_belongs_is_not_found(world: World) -> None:
    assert (await world.gql.run("Task", {"id": world.owner.id}, token=world.owner.token)).codes == [
        "NOT_FOUND"
    ]


async def test_deleted_accounts_tokens_stop_working(world: World, database: Services) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.execute("DELETE FROM users WHERE email = $1", world.other.email)
    finally:
        await connection.close()
    assert (await world.gql.run("Tasks", {"first": 1}, token=world.other.token)).codes == ["UNAUTHENTICATED"]


async def test_registering_never_grants_admin(gql: GraphQLClient) -> None:
    account = await register(gql, email="eve@example.com")
    assert (await gql.run("Users", {"first": 1}, token=account.token)).codes == ["FORBIDDEN"]


async def test_nested_paths_cannot_reach_another_users_tasks(world: World) -> None:
    nested = await world.gql.query(
        "query($other: ID!) { me { tasks(filter: {ownerId: $other}) { totalCount } } }",
        {"other": world.owner.id},
        token=world.other.token,
    )
    assert nested.codes == ["BAD_USER_INPUT"]  # User.tasks takes its owner from the parent, never a filter
    via_task = await world.gql.query(
        "query($id: ID!) { task(id: $id) { owner { taskStats { total } tasks { totalCount } } } }",
        {"id": world.task_id},
        token=world.other.token,
    )
    assert via_task.codes == ["NOT_FOUND"]
    assert "secret plan" not in str(via_task.body)
