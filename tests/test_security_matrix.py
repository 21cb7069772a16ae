"""Every path that takes an ID, against every kind of ID, as a user, an admin and anonymous.

The paths are derived from the schema: each argument (or input field inside one) of type ``ID``. A new one
without a row in ``MATRIX`` fails ``test_the_matrix_has_a_row_for_every_argument_that_takes_an_id``.

Each path is tried with the viewer's own object, someone else's, a missing one, an ID of the wrong type
(a User's where a Task's belongs, and the reverse) and malformed IDs. What must hold:
- the outcome is the one in the matrix (``ok`` or an error code), for users and for admins' wider rights;
- someone else's object is answered exactly like a missing one: same code, same message, same data, once
  the ID itself is masked (``test_someone_elses_object_is_answered_exactly_like_a_missing_one``);
- a refusal leaks nothing (no data, none of the other people's emails, names or titles) and writes nothing;
- a malformed ID is ``BAD_USER_INPUT`` naming the argument.

Elsewhere: the authorization matrix per operation (``test_authorization_matrix``), the JWT negative matrix
(``test_tokens``), refresh-token families (``test_auth_flow``), a subscriber never receiving another user's
events (``test_subscriptions``: ``test_a_user_receives_only_events_about_their_own_tasks`` and the move
between owners). Here also: one viewer's cached answer is never another's, by every form of request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import TokenConfig
from core.ids import encode_id
from core.settings import Settings
from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLObjectType, GraphQLSchema, get_named_type
from models import NotificationKind
from resolvers.inbox import encode_cursor as encode_inbox_cursor
from resolvers.notifications import notify
from schema.build import build_schema
from schema.planning.strawberry_compat import graphql_schema_of
from taskql.data.engine import async_url
from tests.fixed_world import (
    ALICE,
    BOB,
    CAROL,
    MISSING_TASK,
    MISSING_USER,
    PEOPLE,
    ROOT,
    TASKS,
    FixedTask,
    Person,
    access_token,
    rebuild,
    snapshot,
)
from tests.processes import TEST_SECRET, servers_on
from tests.services import Services
from tests.ws_client import Closed, Subscriber, refused

VIEWERS = {"user": ALICE, "admin": ROOT}
# Whose objects count as "someone else's": another user's (for an admin too: admins may see them).
OTHERS = {"user": BOB, "admin": ALICE}


def own_task(person: Person) -> FixedTask:
    return next(task for task in TASKS if task.owner == person)


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MALFORMED: dict[str, Any] = {
    "malformed:empty": "",
    "malformed:word": "nope",
    "malformed:not-a-uuid": _b64("Task:not-a-uuid"),
    "malformed:no-key": _b64("Task"),
    "malformed:not-encoded": f"Task:{own_task(ALICE).key}",
    "malformed:not-utf8": _b64(b"\xff\xfe:\x00"),
    "malformed:huge": "VGFzazo" * 1000,
    "malformed:integer": 12345,  # a JSON number is a valid ID value: it becomes "12345"
}


def task_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        "own": own_task(me).id,
        "others": own_task(other).id,
        "missing": MISSING_TASK,
        "wrong_type": me.id,  # the viewer's own User ID where a Task's belongs
        **MALFORMED,
    }


def user_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        "own": me.id,
        "others": other.id,
        "missing": MISSING_USER,
        "wrong_type": own_task(me).id,  # the viewer's own Task ID where a User's belongs
        **MALFORMED,
    }


def node_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        **task_ids(viewer),
        "wrong_type": encode_id("Secret", own_task(me).key),  # no such type
        "own_user": me.id,
        "others_user": other.id,
        "missing_user": MISSING_USER,
        "own_notification": me.notification_id,
        "others_notification": other.notification_id,
        "own_webhook": me.webhook_id,
        "others_webhook": other.webhook_id,
    }


@dataclass(frozen=True)
class Row:
    """One path: its document (the ID goes in ``$id``), the IDs to try, the argument a malformed one is
    reported on, and the outcome per viewer and kind of ID (kinds not listed: BAD_USER_INPUT for
    malformed ones)."""

    document: str
    ids: Callable[[str], dict[str, Any]]
    field: str
    expected: dict[str, dict[str, str]]
    more_variables: Callable[[str], dict[str, Any]] = lambda viewer: {}
    writes: bool = False
    typed: bool = True  # the ID must name one type (node(id:) takes any)

    def outcome(self, viewer: str, kind: str) -> str:
        default = "BAD_USER_INPUT" if kind.startswith("malformed:") else None
        value = self.expected[viewer].get(kind, default)
        assert value is not None, (viewer, kind)
        return value


def owned_ids(
    type_name: str, of: Callable[[Person], str], missing: int, wrong_type: Callable[[Person], str]
) -> Callable[[str], dict[str, Any]]:
    """The IDs to try on a path that takes one of a person's own objects of ``type_name``: the viewer's
    (``of``), another person's, a missing one, another type's (``wrong_type``) and malformed ones."""

    def ids(viewer: str) -> dict[str, Any]:
        me, other = VIEWERS[viewer], OTHERS[viewer]
        return {
            "own": of(me),
            "others": of(other),
            "missing": encode_id(type_name, uuid.UUID(f"dead0000-0000-4000-8000-{missing:012d}")),
            "wrong_type": wrong_type(me),
            **MALFORMED,
        }

    return ids


session_ids = owned_ids("Session", lambda p: encode_id("Session", p.session), 3, lambda p: p.id)
notification_ids = owned_ids("Notification", lambda p: p.notification_id, 4, lambda p: own_task(p).id)
webhook_ids = owned_ids("Webhook", lambda p: p.webhook_id, 5, lambda p: own_task(p).id)
delivery_ids = owned_ids("WebhookDelivery", lambda p: p.delivery_id, 6, lambda p: p.webhook_id)


def job_ids(viewer: str) -> dict[str, Any]:
    """Jobs have numbers, not global IDs; none is failed in the world: every number is NOT_FOUND."""
    numbers = {"own": "900000000000001", "others": "900000000000002", "missing": "900000000000999"}
    return {**numbers, "wrong_type": VIEWERS[viewer].id, **MALFORMED}


OWN_ONLY = {"own": "ok", "others": "NOT_FOUND", "missing": "NOT_FOUND", "wrong_type": "NOT_FOUND"}
ANY_OWNER = {**OWN_ONLY, "others": "ok"}
# An inbox is its owner's alone: an admin does not see another's notification either.
NOTIFICATIONS = {"own_notification": "ok", "others_notification": "NOT_FOUND"}
# So are a user's webhooks and their deliveries.
NOTIFICATIONS |= {"own_webhook": "ok", "others_webhook": "NOT_FOUND"}
NODE_USER = {
    **OWN_ONLY, "own_user": "ok", "others_user": "NOT_FOUND", "missing_user": "NOT_FOUND", **NOTIFICATIONS
}  # fmt: skip
NODE_ADMIN = {
    **ANY_OWNER,
    "own_user": "ok",
    "others_user": "ok",
    "missing_user": "NOT_FOUND",
    **NOTIFICATIONS,
}
ANONYMOUS = {"others": "UNAUTHENTICATED", "missing": "UNAUTHENTICATED"}
ADMINS_ONLY = dict.fromkeys((*OWN_ONLY, *MALFORMED), "FORBIDDEN")  # refused before the ID is read
ON_OTHERS = {"own": "BAD_USER_INPUT", "others": "ok", "missing": "NOT_FOUND", "wrong_type": "NOT_FOUND"}
NEVER = dict.fromkeys(OWN_ONLY, "BAD_USER_INPUT")

MATRIX: dict[str, Row] = {
    "Query.task(id)": Row(
        "query($id: ID!) { task(id: $id) { id title owner { email } } }",
        task_ids,
        "id",
        {"user": OWN_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
    ),
    "Query.node(id)": Row(
        "query($id: ID!) { node(id: $id) { id ... on Task { title } ... on User { email name }"
        " ... on Notification { title } ... on Webhook { url } } }",
        node_ids,
        "id",
        {"user": NODE_USER, "admin": NODE_ADMIN, "anonymous": ANONYMOUS},
        typed=False,
    ),
    "Query.tasks(filter.ownerId)": Row(
        "query($id: ID) { tasks(first: 10, filter: {ownerId: $id}) { totalCount edges { node { title } } } }",
        user_ids,
        "filter.ownerId",
        {"user": OWN_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
    ),
    "Query.taskStats(ownerId)": Row(
        "query($id: ID) { taskStats(ownerId: $id) { total overdue } }",
        user_ids,
        "ownerId",
        {"user": OWN_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
    ),
    "User.tasks(filter.ownerId)": Row(
        # The owner of User.tasks is the parent: a filter naming one is refused, whoever it names.
        "query($id: ID) { me { tasks(filter: {ownerId: $id}) { totalCount edges { node { title } } } } }",
        user_ids,
        "filter.ownerId",
        # Anonymous: `me` is null, so there is no User.tasks to refuse.
        {"user": NEVER, "admin": NEVER, "anonymous": {"others": "ok", "missing": "ok"}},
    ),
    "Mutation.updateTask(id)": Row(
        'mutation($id: ID!) { updateTask(id: $id, input: {title: "changed"}) { id title } }',
        task_ids,
        "id",
        {"user": OWN_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.updateTask(input.ownerId)": Row(
        "mutation($task: ID!, $id: ID) {"
        " updateTask(id: $task, input: {ownerId: $id}) { id owner { email } } }",
        user_ids,
        "input.ownerId",
        {
            # A user may not give a task away: to someone, or to no one, it is the same refusal.
            "user": {"own": "ok", "others": "FORBIDDEN", "missing": "FORBIDDEN", "wrong_type": "NOT_FOUND"},
            "admin": ANY_OWNER,
            "anonymous": ANONYMOUS,
        },
        more_variables=lambda viewer: {"task": own_task(VIEWERS.get(viewer, ALICE)).id},
        writes=True,
    ),
    "Mutation.deleteTask(id)": Row(
        "mutation($id: ID!) { deleteTask(id: $id) }",
        task_ids,
        "id",
        {"user": OWN_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.setUserRole(userId)": Row(
        "mutation($id: ID!) { setUserRole(userId: $id, role: ADMIN) { id role } }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ON_OTHERS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.setUserActive(userId)": Row(
        "mutation($id: ID!) { setUserActive(userId: $id, active: false) { id isActive } }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ON_OTHERS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.revokeSession(id)": Row(
        "mutation($id: ID!) { revokeSession(id: $id) }",
        session_ids,
        "id",
        # Admins too end only their own sessions here (deactivating an account ends all of its sessions).
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.sendPasswordReset(userId)": Row(
        "mutation($id: ID!) { sendPasswordReset(userId: $id) }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ANY_OWNER, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.retryJob(id)": Row(
        "mutation($id: ID!) { retryJob(id: $id) }",
        job_ids,
        "id",
        {
            "user": ADMINS_ONLY,
            "admin": {
                **dict.fromkeys(("own", "others", "missing", "malformed:integer"), "NOT_FOUND"),
                "wrong_type": "BAD_USER_INPUT",
            },
            "anonymous": ANONYMOUS,
        },
        writes=True,
    ),
    "Mutation.markNotificationsRead(ids)": Row(
        "mutation($id: ID!) { markNotificationsRead(ids: [$id]) }",
        notification_ids,
        "ids",
        # Another's, a missing and a wrong type's entry are none of the viewer's: 0 marked, alike.
        {
            "user": dict.fromkeys(OWN_ONLY, "ok"),
            "admin": dict.fromkeys(OWN_ONLY, "ok"),
            "anonymous": ANONYMOUS,
        },
        writes=True,
    ),
    "Mutation.updateWebhook(id)": Row(
        'mutation($id: ID!) { updateWebhook(id: $id, input: {description: "changed"}) { id url } }',
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.deleteWebhook(id)": Row(
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.rotateWebhookSecret(id)": Row(
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { url } } }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.testWebhook(id)": Row(
        "mutation($id: ID!) { testWebhook(id: $id) { status error } }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.retryWebhookDelivery(id)": Row(
        "mutation($id: ID!) { retryWebhookDelivery(id: $id) { status error } }",
        delivery_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Subscription.taskEvents(ownerId)": Row(
        "subscription($id: ID) { taskEvents(ownerId: $id) { kind task { title owner { email } } } }",
        user_ids,
        "ownerId",
        # A socket needs a token in connection_init: without one it is closed before any subscription.
        {
            "user": OWN_ONLY,
            "admin": ANY_OWNER,
            "anonymous": {"others": "closed 4403", "missing": "closed 4403"},
        },
    ),
}


def id_arguments(schema: GraphQLSchema) -> set[str]:
    """``Type.field(argument.inputField...)`` for every argument, or input field within one, of type ID."""

    def paths(type_: GraphQLInputType, path: str, seen: frozenset[str]) -> Iterator[str]:
        named = get_named_type(type_)
        if named.name == "ID":
            yield path
        elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
            for name, field in named.fields.items():
                yield from paths(field.type, f"{path}.{name}", seen | {named.name})

    return {
        f"{type_.name}.{field_name}({path})"
        for type_ in schema.type_map.values()
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__")
        for field_name, field in type_.fields.items()
        for argument_name, argument in field.args.items()
        for path in paths(argument.type, argument_name, frozenset())
    }


def test_the_matrix_has_a_row_for_every_argument_that_takes_an_id() -> None:
    assert id_arguments(graphql_schema_of(build_schema())) == set(MATRIX)


# What a viewer must never see in a refusal: the other people's data.
def secrets_hidden_from(viewer: str) -> list[str]:
    me = VIEWERS.get(viewer)
    if me is ROOT:
        return []
    return [
        *(text for person in PEOPLE if person is not me for text in (person.email, person.name)),
        *(task.title for task in TASKS if task.owner is not me),
    ]


@dataclass
class Answer:
    outcome: str  # "ok" or the first error's code
    body: dict[str, Any]  # the GraphQL response (for a subscription: its first message's payload)


@dataclass
class Live:
    """One taskql process, for WebSocket subscriptions; its tokens are signed with the test secret."""

    base: str
    tokens: TokenConfig

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def live(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with servers_on(database.database_url, database.redis_url, tmp_path_factory.mktemp("security")) as bases:
        config = TokenConfig(TEST_SECRET, "taskql", "taskql", timedelta(minutes=15), timedelta(days=30))
        yield Live(bases[0], config)


@dataclass
class World:
    http: httpx.AsyncClient
    connection: asyncpg.Connection
    redis: Redis
    tokens: TokenConfig
    request: pytest.FixtureRequest

    async def rebuild(self) -> None:
        await rebuild(self.connection, self.redis)

    def token(self, viewer: str) -> str | None:
        person = VIEWERS.get(viewer)
        return access_token(self.tokens, person) if person else None

    async def ask(self, row: Row, viewer: str, global_id: Any) -> Answer:
        variables = {"id": global_id, **row.more_variables(viewer)}
        if row.document.startswith("subscription"):
            return await self.subscribe(row.document, viewer, variables)
        token = self.token(viewer)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": row.document, "variables": variables}, headers=headers
        )
        assert response.status_code < 500, response.text
        body = response.json()
        return Answer(body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok", body)

    async def subscribe(self, document: str, viewer: str, variables: dict[str, Any]) -> Answer:
        live: Live = self.request.getfixturevalue("live")
        person = VIEWERS.get(viewer)
        payload = {"authorization": f"Bearer {access_token(live.tokens, person)}"} if person else {}
        try:
            subscriber = await Subscriber.open(live.ws, payload)
        except Closed as closed:  # the socket itself was refused
            return Answer(f"closed {closed.code}", {"closed": closed.code, "reason": closed.reason})
        try:
            await subscriber.subscribe(variables, query=document)
            try:
                message = await subscriber.receive(timeout=0.5)
            except TimeoutError:  # subscribed: the owner's next write must arrive
                owner = next((p for p in PEOPLE if p.id == variables["id"]), None)
                assert owner is not None, variables
                await _create_task_on(live, owner, "written while subscribed")
                message = await subscriber.receive()
        finally:
            await subscriber.close()
        assert message["type"] == "next", message
        body: dict[str, Any] = message["payload"]
        return Answer(body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok", body)


async def _create_task_on(live: Live, owner: Person, title: str) -> None:
    async with httpx.AsyncClient(base_url=live.base) as http:
        response = await http.post(
            "/graphql",
            json={
                "query": "mutation($t: String!) { createTask(input: {title: $t}) { id } }",
                "variables": {"t": title},
            },
            headers={"authorization": f"Bearer {access_token(live.tokens, owner)}"},
        )
    assert "errors" not in response.json(), response.json()


@pytest.fixture
async def world(
    http: httpx.AsyncClient, database: Services, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    connection = await asyncpg.connect(database.dsn)
    redis = Redis.from_url(database.redis_url)
    world = World(http, connection, redis, TokenConfig.of(settings), request)
    await world.rebuild()
    try:
        yield world
    finally:
        await redis.aclose()
        await connection.close()


def kinds_for(row: Row, viewer: str) -> dict[str, Any]:
    """The IDs ``viewer`` tries on ``row``, by kind (anonymous: someone's, and a missing one)."""
    if viewer == "anonymous":
        return {
            kind: global_id for kind, global_id in row.ids("user").items() if kind in ("others", "missing")
        }
    return row.ids(viewer)


PATHS_AND_VIEWERS = [
    pytest.param(path, viewer, id=f"{path}-{viewer}")
    for path in MATRIX
    for viewer in ("user", "admin", "anonymous")
]


async def misfits(world: World, row: Row, viewer: str, kind: str, global_id: Any) -> list[str]:
    """What is wrong with the answer to ``row`` for ``viewer`` with this ID, from a freshly built world."""
    await world.rebuild()
    expected = row.outcome(viewer, kind)
    before = await snapshot(world.connection)
    answer = await world.ask(row, viewer, global_id)
    if answer.outcome != expected:
        return [f"{kind}: {answer.outcome} where the matrix says {expected}: {answer.body}"]
    if expected == "ok" or expected.startswith("closed"):
        return []
    found = []
    data = answer.body.get("data")
    if len(answer.body["errors"]) != 1 or not (data is None or all(value is None for value in data.values())):
        found.append(f"{kind}: a refusal with data or several errors: {answer.body}")
    text = json.dumps(answer.body)
    if leaked := [secret for secret in secrets_hidden_from(viewer) if secret in text]:
        found.append(f"{kind}: a refusal shows {leaked}: {answer.body}")
    if row.writes and await snapshot(world.connection) != before:
        found.append(f"{kind}: a refusal wrote to the database")
    field = answer.body["errors"][0]["extensions"].get("field")
    if kind.startswith("malformed:") and expected == "BAD_USER_INPUT" and field != row.field:
        found.append(f"{kind}: BAD_USER_INPUT names {field!r}, not {row.field!r}")
    return found


@pytest.mark.parametrize(("path", "viewer"), PATHS_AND_VIEWERS)
async def test_every_kind_of_id_gets_the_matrix_outcome_and_a_refusal_leaks_and_writes_nothing(
    world: World, path: str, viewer: str
) -> None:
    row = MATRIX[path]
    found = [
        misfit
        for kind, global_id in kinds_for(row, viewer).items()
        for misfit in await misfits(world, row, viewer, kind, global_id)
    ]
    assert not found, "\n".join(found)


def masked(answer: Answer, global_id: Any) -> Any:
    body = {name: value for name, value in answer.body.items() if name != "extensions"}  # the budget
    return json.loads(json.dumps(body).replace(str(global_id), "<id>"))


INDISTINGUISHABLE = [
    pytest.param(path, viewer, id=f"{path}-{viewer}")
    for path, row in MATRIX.items()
    for viewer in ("user", "admin", "anonymous")
    if row.outcome(viewer, "others") != "ok"
]


@pytest.mark.parametrize(("path", "viewer"), INDISTINGUISHABLE)
async def test_someone_elses_object_is_answered_exactly_like_a_missing_one(
    world: World, path: str, viewer: str
) -> None:
    row = MATRIX[path]
    ids = kinds_for(row, viewer)
    theirs = await world.ask(row, viewer, ids["others"])
    missing = await world.ask(row, viewer, ids["missing"])
    assert masked(theirs, ids["others"]) == masked(missing, ids["missing"])
    if (
        row.typed
        and viewer != "anonymous"
        and row.outcome(viewer, "wrong_type") == row.outcome(viewer, "missing")
    ):
        # An ID of another type names nothing of this type: the same answer again.
        wrong = await world.ask(row, viewer, ids["wrong_type"])
        assert masked(wrong, ids["wrong_type"]) == masked(missing, ids["missing"])


async def test_an_admin_subscribed_to_one_owner_receives_that_owners_events_only(
    world: World, live: Live
) -> None:
    payload = {"authorization": f"Bearer {access_token(live.tokens, ROOT)}"}
    subscriber = await Subscriber.open(live.ws, payload)
    try:
        await subscriber.subscribe(
            {"id": ALICE.id}, query=MATRIX["Subscription.taskEvents(ownerId)"].document
        )
        await asyncio.sleep(0.3)
        await _create_task_on(live, BOB, "bob's, not asked for")
        await _create_task_on(live, ALICE, "alice's")
        event = await subscriber.event()
        assert (event["kind"], event["task"]["title"]) == ("CREATED", "alice's")
        assert await subscriber.silent_for(0.3)
    finally:
        await subscriber.close()


NOTIFICATION_EVENTS = "subscription($after: String) { notificationEvents(after: $after) { title cursor } }"


async def _notify(database: Services, person: Person, title: str) -> None:
    """An entry in ``person``'s inbox, committed, as the worker makes one."""
    engine = create_async_engine(async_url(database.database_url))
    try:
        async with AsyncSession(engine) as db, db.begin():
            await notify(
                db, person.key, NotificationKind.TASK_DUE_SOON, title=title, body="", dedupe_key=title
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("viewer", ["user", "admin"])
async def test_a_subscriber_receives_their_own_notifications_only_an_admin_too(
    world: World, live: Live, database: Services, viewer: str
) -> None:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    subscriber = await Subscriber.open(live.ws, {"authorization": f"Bearer {access_token(live.tokens, me)}"})
    try:
        await subscriber.subscribe({"after": encode_inbox_cursor(0)}, query=NOTIFICATION_EVENTS)
        first = await subscriber.receive()
        assert first["payload"]["data"]["notificationEvents"]["title"] == f"for {me.name}", first
        await _notify(database, other, f"{other.name}'s, not {me.name}'s")
        await _notify(database, me, "mine")
        mine = await subscriber.receive()  # another's would have come first
        assert mine["payload"]["data"]["notificationEvents"] == {
            "title": "mine",
            "cursor": encode_inbox_cursor(2),
        }
        assert await subscriber.silent_for(0.3)
    finally:
        await subscriber.close()


async def test_an_anonymous_socket_gets_no_inbox(live: Live) -> None:
    assert (await refused(live.ws, None)).code == 4403


async def test_a_deactivated_accounts_id_is_no_way_in(world: World) -> None:
    """Carol is deactivated: her ID works as any other user's for an admin, and tells a user nothing."""
    row = MATRIX["Query.node(id)"]
    assert (await world.ask(row, "admin", CAROL.id)).outcome == "ok"
    theirs, missing = await world.ask(row, "user", CAROL.id), await world.ask(row, "user", MISSING_USER)
    assert masked(theirs, CAROL.id) == masked(missing, MISSING_USER)


# The response cache: the same request bytes from another viewer never get the first viewer's answer.
MY_TASKS = "query Mine { tasks(first: 10) { edges { node { title } } } }"


APQ = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(MY_TASKS.encode()).hexdigest()}}


def request_forms() -> dict[str, Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]]:
    return {
        "POST": lambda http, headers: http.post("/graphql", json={"query": MY_TASKS}, headers=headers),
        "GET": lambda http, headers: http.get("/graphql", params={"query": MY_TASKS}, headers=headers),
        "APQ over GET": lambda http, headers: http.get(
            "/graphql", params={"extensions": json.dumps(APQ)}, headers=headers
        ),
    }


@pytest.mark.parametrize("form", list(request_forms()))
async def test_a_cached_answer_is_never_served_to_another_viewer(world: World, form: str) -> None:
    send = request_forms()[form]
    alice = {"authorization": f"Bearer {world.token('user')}"}
    if form == "APQ over GET":  # registered once, with its query, as Apollo's link does
        await world.http.post("/graphql", json={"query": MY_TASKS, "extensions": APQ}, headers=alice)
    for _ in range(2):  # the second is a hit
        first = await send(world.http, alice)
    assert first.headers["x-cache"] == "HIT"
    assert "Alice's secret plan" in first.text
    bob = {"authorization": f"Bearer {access_token(world.tokens, BOB)}"}
    etag = first.headers.get("etag")
    for headers in (bob, {**bob, "if-none-match": etag} if etag else bob):
        theirs = await send(world.http, headers)
        assert theirs.status_code == 200
        assert [edge["node"]["title"] for edge in theirs.json()["data"]["tasks"]["edges"]] == ["Bob's errand"]
    for headers in ({}, {"authorization": "Bearer " + (world.token("user") or "")[:-3] + "xyz"}):
        stranger = await send(world.http, {**headers, **({"if-none-match": etag} if etag else {})})
        assert stranger.status_code == 200
        assert stranger.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Alice" not in stranger.text
    admin = await send(world.http, {"authorization": f"Bearer {world.token('admin')}"})
    assert len(admin.json()["data"]["tasks"]["edges"]) == len(TASKS)
