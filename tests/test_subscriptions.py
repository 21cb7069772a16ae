"""Subscriptions over WebSocket against two real server processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from auth.tokens import ALGORITHM
from taskql.realtime.hub import encode_cursor
from tests.factories import Account, create_task, promote_to_admin, register
from tests.graphql_client import GraphQLClient
from tests.processes import TEST_SECRET, environment, free_port, servers_on, start_server, stop, wait_ready
from tests.services import Services
from tests.ws_client import Subscriber, refused

WITH_DESCRIPTIONS = "subscription { taskEvents { cursor kind task { description } } }"

MAX_QUEUE = 50
LEEWAY = 5  # JWT_LEEWAY_SECONDS: a token is accepted this long after its exp
ALLOWED_ORIGIN = "https://app.example.com"


@dataclass
class Server:
    base: str

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def servers(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    folder = tmp_path_factory.mktemp("subscriptions")
    settings = {
        "EVENTS_MAX_QUEUE": str(MAX_QUEUE),
        "CORS_ORIGINS": json.dumps([ALLOWED_ORIGIN]),
        "JWT_LEEWAY_SECONDS": str(LEEWAY),
    }
    with servers_on(database.database_url, database.redis_url, folder, count=2, **settings) as bases:
        yield [Server(base) for base in bases]


@pytest.fixture
async def clients(servers: list[Server]) -> AsyncIterator[list[GraphQLClient]]:
    https = [httpx.AsyncClient(base_url=server.base, timeout=30) for server in servers]
    try:
        yield [GraphQLClient(http) for http in https]
    finally:
        for http in https:
            await http.aclose()


@pytest.fixture
async def people(clients: list[GraphQLClient], database: Services) -> dict[str, Account]:
    gql = clients[0]
    accounts = {
        name: await register(gql, email=f"{name}@example.com", name=name) for name in ("alice", "bob", "root")
    }
    await promote_to_admin(database.dsn, accounts["root"])
    return accounts


def init(account: Account) -> dict[str, str]:
    return {"authorization": f"Bearer {account.token}"}


async def test_connection_init_needs_a_valid_token(servers: list[Server], people: dict[str, Account]) -> None:
    url = servers[0].ws
    subscriber = await Subscriber.open(url, init(people["alice"]))
    await subscriber.close()
    for alias in ("Authorization", "authToken", "token"):  # the usual spellings
        await (await Subscriber.open(url, {alias: people["alice"].token})).close()
    await (
        await Subscriber.open(url, {"headers": {"authorization": f"Bearer {people['alice'].token}"}})
    ).close()
    assert (await refused(url, None)).code == 4403
    assert (await refused(url, {"authorization": "Bearer not-a-token"})).code == 4403
    expired = _reissued(people["alice"].token, expires_in=-LEEWAY - 1)
    assert (await refused(url, {"authorization": f"Bearer {expired}"})).code == 4403


async def test_a_browser_origin_outside_the_allowlist_is_refused(
    servers: list[Server], people: dict[str, Account]
) -> None:
    with pytest.raises(Exception, match="403"):
        await Subscriber.open(servers[0].ws, init(people["alice"]), origin="https://evil.example.com")
    await (await Subscriber.open(servers[0].ws, init(people["alice"]), origin=ALLOWED_ORIGIN)).close()


async def test_a_user_receives_only_events_about_their_own_tasks(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    alice = await Subscriber.open(servers[0].ws, init(people["alice"]))
    root = await Subscriber.open(servers[0].ws, init(people["root"]))
    for subscriber in (alice, root):
        await subscriber.subscribe()
    await asyncio.sleep(0.3)
    await create_task(clients[0], people["bob"], title="bob's")
    mine = await create_task(clients[0], people["alice"], title="alice's")
    event = await alice.event()
    assert (event["kind"], event["taskId"], event["task"]["title"]) == ("CREATED", mine["id"], "alice's")
    assert [e["task"]["title"] for e in [await root.event(), await root.event()]] == ["bob's", "alice's"]
    assert await alice.silent_for(0.5)


async def test_a_write_on_one_process_reaches_a_subscriber_on_the_other(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    subscriber = await Subscriber.open(servers[1].ws, init(people["alice"]))
    await subscriber.subscribe()
    await asyncio.sleep(0.3)
    task = await create_task(clients[0], people["alice"], title="from the other side")
    updated = await clients[0].run(
        "UpdateTask", {"id": task["id"], "input": {"status": "DONE"}}, token=people["alice"].token
    )
    updated.ok()
    await clients[0].run("DeleteTask", {"id": task["id"]}, token=people["alice"].token)
    kinds = [(await subscriber.event())["kind"] for _ in range(3)]
    assert kinds == ["CREATED", "UPDATED", "DELETED"]


async def test_resuming_with_a_cursor_delivers_every_missed_event_once_and_in_order(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    alice = people["alice"]
    subscriber = await Subscriber.open(servers[0].ws, init(alice))
    await subscriber.subscribe()
    await asyncio.sleep(0.3)
    await create_task(clients[0], alice, title="seen")
    cursor = (await subscriber.event())["cursor"]
    await subscriber.close()
    for number in range(5):  # missed while disconnected
        await create_task(clients[number % 2], alice, title=f"missed {number}")

    resumed = await Subscriber.open(servers[1].ws, init(alice))
    await resumed.subscribe({"after": cursor})
    live = asyncio.create_task(_create_later(clients[0], alice, ["live 0", "live 1"]))
    titles = [(await resumed.event())["task"]["title"] for _ in range(7)]
    await live
    assert titles == [*(f"missed {n}" for n in range(5)), "live 0", "live 1"]
    assert await resumed.silent_for(0.5)  # nothing twice at the seam


async def test_an_expired_cursor_is_refused_with_its_own_code(
    servers: list[Server], people: dict[str, Account]
) -> None:
    subscriber = await Subscriber.open(servers[0].ws, init(people["alice"]))
    await subscriber.subscribe({"after": encode_cursor((1, 0))})
    message = await subscriber.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
    assert [error["extensions"]["code"] for error in errors] == ["CURSOR_EXPIRED"], message


async def test_a_task_given_to_another_owner_leaves_one_feed_and_enters_the_other(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    alice = await Subscriber.open(servers[0].ws, init(people["alice"]))
    bob = await Subscriber.open(servers[1].ws, init(people["bob"]))
    for subscriber in (alice, bob):
        await subscriber.subscribe()
    await asyncio.sleep(0.3)
    task = await create_task(clients[0], people["alice"], title="moving")
    assert (await alice.event())["kind"] == "CREATED"
    moved = await clients[0].run(
        "UpdateTask", {"id": task["id"], "input": {"ownerId": people["bob"].id}}, token=people["root"].token
    )
    moved.ok()
    gone = await alice.event()
    assert (gone["kind"], gone["taskId"], gone["task"]) == ("DELETED", task["id"], None)
    arrived = await bob.event()
    assert (arrived["kind"], arrived["task"]["owner"]["id"]) == ("CREATED", people["bob"].id)


async def test_a_stalled_client_is_closed_without_delaying_others_or_the_writer(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    alice = people["alice"]
    # A client that reads nothing, with a tiny receive buffer: what the server sends it piles up.
    stalled = await Subscriber.open(servers[0].ws, init(alice), max_queue=1, receive_buffer=4096)
    await stalled.subscribe(query=WITH_DESCRIPTIONS)
    reader = await Subscriber.open(servers[0].ws, init(alice))
    await reader.subscribe(query=WITH_DESCRIPTIONS)
    await asyncio.sleep(0.3)
    task = await create_task(clients[0], alice, title="busy")
    writes = 600  # 10 kB each: far more than the socket buffers and the server's queue (MAX_QUEUE) hold
    slowest_write = 0.0

    async def write(numbers: range) -> None:
        nonlocal slowest_write
        for number in numbers:
            started = time.monotonic()
            variables = {"id": task["id"], "input": {"description": f"{number} " + "x" * 9_000}}
            (await clients[number % 2].run("UpdateTask", variables, token=alice.token)).ok()
            slowest_write = max(slowest_write, time.monotonic() - started)

    async def read_all() -> int:
        return len([await reader.event(timeout=20) for _ in range(1 + writes)])

    reading = asyncio.create_task(read_all())
    await asyncio.gather(*(write(range(start, writes, 4)) for start in range(4)))
    assert await asyncio.wait_for(reading, 60) == 1 + writes
    assert slowest_write < 1.0
    closed = await stalled.closed(timeout=30)
    assert (closed.code, closed.reason) == (1013, "Too far behind: subscribe again with your last cursor")


async def test_a_subscription_ends_when_its_token_expires_with_the_leeway_http_requests_have(
    servers: list[Server], people: dict[str, Account]
) -> None:
    """At exp + JWT_LEEWAY_SECONDS, when this instance would refuse the token over HTTP too: this one's exp
    is past, and 2 s of leeway are left."""
    short = _reissued(people["alice"].token, expires_in=2 - LEEWAY)
    subscriber = await Subscriber.open(servers[0].ws, {"authorization": f"Bearer {short}"})
    await subscriber.subscribe()
    started = time.monotonic()
    closed = await subscriber.closed(timeout=10)
    assert closed.code == 4403
    assert 1 <= time.monotonic() - started < 5


async def test_logout_deactivation_and_role_changes_end_the_sockets(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    gql, root = clients[0], people["root"]
    alice = await Subscriber.open(servers[1].ws, init(people["alice"]))
    await alice.subscribe()
    await asyncio.sleep(0.2)
    (
        await gql.run("Logout", {"refreshToken": people["alice"].refresh_token}, token=people["alice"].token)
    ).ok()
    assert (await alice.closed()).code == 4403

    bob = await Subscriber.open(servers[1].ws, init(people["bob"]))
    await bob.subscribe()
    await asyncio.sleep(0.2)
    (await gql.run("SetUserRole", {"userId": people["bob"].id, "role": "ADMIN"}, token=root.token)).ok()
    assert (await bob.closed()).code == 4403
    bob = await Subscriber.open(servers[1].ws, init(people["bob"]))
    await bob.subscribe()
    await asyncio.sleep(0.2)
    (await gql.run("SetUserActive", {"userId": people["bob"].id, "active": False}, token=root.token)).ok()
    assert (await bob.closed()).code == 4403
    assert (await refused(servers[1].ws, init(people["bob"]))).code == 4403


async def test_the_legacy_graphql_ws_protocol_works_too(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    async with connect(servers[0].ws, subprotocols=["graphql-ws"], compression=None) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": init(people["alice"])}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = "subscription { taskEvents { kind task { title } } }"
        await socket.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
        await asyncio.sleep(0.3)
        await create_task(clients[0], people["alice"], title="old protocol")
        while (message := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] == "ka":
            pass
        assert message["payload"]["data"]["taskEvents"] == {
            "kind": "CREATED",
            "task": {"title": "old protocol"},
        }


async def test_shutdown_closes_sockets_with_going_away(
    database: Services, people: dict[str, Account], tmp_path: Path
) -> None:
    env = environment(
        DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET
    )
    port = free_port()
    process = start_server(env, tmp_path, port)
    try:
        wait_ready(process, port)
        subscriber = await Subscriber.open(f"ws://127.0.0.1:{port}/graphql", init(people["alice"]))
        await subscriber.subscribe()
        await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert (await subscriber.closed()).code == 1001
    finally:
        stop(process)


async def _close_code(socket: ClientConnection) -> int | None:
    """Read until the server closes the socket; the code it closed with."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), 20)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def _create_later(gql: GraphQLClient, account: Account, titles: list[str]) -> None:
    await asyncio.sleep(0.3)
    for title in titles:
        await create_task(gql, account, title=title)


def _reissued(token: str, *, expires_in: float) -> str:
    """The same session's token, expiring ``expires_in`` seconds from now (signed with the test secret)."""
    claims = jwt.decode(token, TEST_SECRET, algorithms=[ALGORITHM], audience="taskql")
    now = datetime.now(UTC)
    claims["iat"] = int((now - timedelta(seconds=30)).timestamp())
    claims["exp"] = int((now + timedelta(seconds=expires_in)).timestamp())
    return jwt.encode(claims, TEST_SECRET, algorithm=ALGORITHM)


async def test_every_write_of_a_multi_field_mutation_has_its_own_event_live_and_on_resume(
    servers: list[Server], clients: list[GraphQLClient], people: dict[str, Account]
) -> None:
    alice = people["alice"]
    live = await Subscriber.open(servers[0].ws, init(alice))
    await live.subscribe()
    await asyncio.sleep(0.3)
    await create_task(clients[0], alice, title="before")
    cursor = (await live.event())["cursor"]
    two = (
        'mutation { a: createTask(input: {title: "one"}) { id } b: createTask(input: {title: "two"}) { id } }'
    )
    (await clients[1].query(two, token=alice.token)).ok()
    seen = [await live.event(), await live.event()]
    assert [event["task"]["title"] for event in seen] == ["one", "two"]
    assert len({event["cursor"] for event in seen}) == 2
    resumed = await Subscriber.open(servers[1].ws, init(alice))
    await resumed.subscribe({"after": cursor})
    assert [(await resumed.event())["task"]["title"] for _ in range(2)] == ["one", "two"]
    assert await resumed.silent_for(0.5)


async def test_queries_and_mutations_go_over_http_not_the_socket(
    servers: list[Server], people: dict[str, Account]
) -> None:
    subscriber = await Subscriber.open(servers[0].ws, init(people["alice"]))
    await subscriber.subscribe(query="query { me { id } }")
    message = await subscriber.receive()
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_the_legacy_protocol_wants_one_init_and_soon(
    servers: list[Server], people: dict[str, Account]
) -> None:
    async with connect(servers[0].ws, subprotocols=["graphql-ws"], compression=None) as socket:  # type: ignore[list-item]
        init_message = json.dumps({"type": "connection_init", "payload": init(people["alice"])})
        await socket.send(init_message)
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(init_message)
        assert await _close_code(socket) == 4429
    started = time.monotonic()
    async with connect(servers[0].ws, subprotocols=["graphql-ws"], compression=None) as silent:  # type: ignore[list-item]
        assert await _close_code(silent) == 4408
    assert 9 <= time.monotonic() - started < 15
