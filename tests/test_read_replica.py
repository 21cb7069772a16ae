"""Read routing with ``DATABASE_READ_URL``: which pool serves which read.

The "replica" here is the test database reached through a second pool (``application_name``
``taskql-replica``): the tests prove the routing (which pool each statement went to, as ``captured`` and
``pg_stat_activity`` show it), not replication.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from core import cache_tags
from core.reader import Reader
from core.settings import Settings
from taskql.app import TaskqlApp, create_app
from taskql.data.routing import ReplicaLag, mark_everything_written, mark_key
from tests.conftest import make_settings, served
from tests.factories import Account, create_task, promote_to_admin, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient
from tests.processes import free_port
from tests.services import Services
from tests.sql import captured
from tests.ws_client import Subscriber

WINDOW = 0.6  # DATABASE_READ_AFTER_WRITE_SECONDS, short for the tests
MY_TASKS = "query MyTasks($first: Int) { tasks(first: $first) { edges { node { title } } } }"
CREATE_WITH_STATS = """
mutation CreateWithStats($input: CreateTaskInput!) {
  createTask(input: $input) { id owner { name taskStats { total } } }
}
"""


@dataclass
class Instance:
    app: TaskqlApp
    gql: GraphQLClient


@contextlib.asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[Instance]:
    """One taskql instance (its own lifespan: pools, Redis clients), as a process behind a balancer."""
    application = create_app(settings)
    # Generous timeouts: two instances start and stop per test, on a machine shared with other work.
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=served(application))
        async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as client:
            yield Instance(application, GraphQLClient(client))


def replicated_settings(database: Services, **overrides: Any) -> Settings:
    # The cache off: every query below runs its resolvers (a hit would read nothing at all).
    values: dict[str, Any] = {
        "database_read_url": database.database_url,
        "database_read_after_write_seconds": WINDOW,
        "response_cache": False,
    }
    return make_settings(database, **{**values, **overrides})


@pytest.fixture
async def two_instances(database: Services) -> AsyncIterator[tuple[Instance, Instance]]:
    settings = replicated_settings(database)
    async with instance(settings) as first, instance(settings) as second:
        yield first, second


async def quiet(seconds: float = WINDOW + 0.3) -> None:
    """Let every read-after-write marker expire (and the replica's position be measured again)."""
    await asyncio.sleep(seconds)


async def my_tasks(gql: GraphQLClient, account: Account, first: int = 10) -> list[str]:
    data = (await gql.query(MY_TASKS, {"first": first}, token=account.token)).ok()
    return [edge["node"]["title"] for edge in data["tasks"]["edges"]]


async def test_a_query_long_after_any_write_reads_the_replica_and_checks_the_session_on_the_primary(
    two_instances: tuple[Instance, Instance], database: Services
) -> None:
    node, _ = two_instances
    alice = await register(node.gql, email="alice@example.com")
    await create_task(node.gql, alice, title="water the plants")
    await quiet()
    with captured(node.app) as statements:
        assert await my_tasks(node.gql, alice) == ["water the plants"]
    assert statements.served_by("FROM tasks") == ["replica"]
    assert statements.served_by("auth_sessions") == ["primary"]  # the viewer: user and session
    connection = await asyncpg.connect(database.dsn)
    try:
        names = {row["application_name"] for row in await connection.fetch("SELECT * FROM pg_stat_activity")}
    finally:
        await connection.close()
    assert {"taskql", "taskql-replica"} <= names


async def test_a_query_right_after_the_viewers_own_write_reads_the_primary_on_another_instance(
    two_instances: tuple[Instance, Instance],
) -> None:
    writer, reader = two_instances
    alice = await register(writer.gql, email="alice@example.com")
    await quiet()
    await create_task(writer.gql, alice, title="file the taxes")
    with captured(reader.app) as statements:
        assert await my_tasks(reader.gql, alice) == ["file the taxes"]
    assert statements.served_by("FROM tasks") == ["primary"]
    await quiet()
    with captured(reader.app) as statements:
        assert await my_tasks(reader.gql, alice, first=11) == ["file the taxes"]
    assert statements.served_by("FROM tasks") == ["replica"]


async def test_a_mutation_reads_the_primary_down_to_its_payload(
    two_instances: tuple[Instance, Instance],
) -> None:
    node, _ = two_instances
    alice = await register(node.gql, email="alice@example.com", name="Alice")
    await quiet()
    with captured(node.app) as statements:
        data = (await node.gql.query(CREATE_WITH_STATS, {"input": {"title": "one"}}, token=alice.token)).ok()
    assert data["createTask"]["owner"] == {"name": "Alice", "taskStats": {"total": 1}}
    assert statements.served_by("count(*)") == ["primary"]  # the payload's statistics
    assert "replica" not in statements.sources


async def test_another_users_write_keeps_a_users_reads_on_the_replica_but_not_an_admins(
    two_instances: tuple[Instance, Instance], database: Services
) -> None:
    node, _ = two_instances
    alice = await register(node.gql, email="alice@example.com")
    bob = await register(node.gql, email="bob@example.com")
    admin = await register(node.gql, email="admin@example.com")
    await promote_to_admin(database.dsn, admin)
    await create_task(node.gql, alice, title="alice's")
    await quiet()
    await create_task(node.gql, bob, title="bob's")
    with captured(node.app) as statements:
        assert await my_tasks(node.gql, alice) == ["alice's"]  # bob's write is not in alice's answer
        assert sorted(await my_tasks(node.gql, admin)) == ["alice's", "bob's"]  # but in an admin's
    assert statements.served_by("FROM tasks") == ["replica", "primary"]


EVENT_WITH_OWNER = """
subscription Events { taskEvents { kind task { title owner { name } } } }
"""


@contextlib.asynccontextmanager
async def live(settings: Settings) -> AsyncIterator[tuple[TaskqlApp, str]]:
    """The app served by uvicorn in this process (WebSockets need a real server), and its address."""
    application = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.02)
        yield application, f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_a_subscriptions_event_fields_are_read_on_the_primary(database: Services) -> None:
    """An event follows its write by milliseconds, sooner than a replica could have it: its fields (the
    task's owner here) are read on the primary."""
    settings = replicated_settings(database)
    async with (
        live(settings) as (application, address),
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        gql = GraphQLClient(http)
        alice = await register(gql, email="alice@example.com", name="Alice")
        subscriber = await Subscriber.open(
            f"ws://{address}/graphql", {"authorization": f"Bearer {alice.token}"}
        )
        try:
            await subscriber.subscribe(query=EVENT_WITH_OWNER)
            await quiet()
            with captured(application) as statements:
                await create_task(gql, alice, title="seen live")
                event = await subscriber.event()
        finally:
            await subscriber.close()
    assert event == {"kind": "CREATED", "task": {"title": "seen live", "owner": {"name": "Alice"}}}
    assert statements.served_by("WHERE users.id = ANY") == ["primary"]  # the owner, by the dataloader
    assert "replica" not in statements.sources


async def test_without_redis_every_read_goes_to_the_primary(
    database: Services, redis_process: RedisProcess
) -> None:
    settings = replicated_settings(database, redis_url=redis_process.url)
    async with instance(settings) as node:
        alice = await register(node.gql, email="alice@example.com")
        await create_task(node.gql, alice, title="still here")
        await quiet()
        redis_process.kill()
        with captured(node.app) as statements:
            assert await my_tasks(node.gql, alice) == ["still here"]
        assert statements.served_by("FROM tasks") == ["primary"]


async def test_without_a_replica_there_is_one_read_pool_and_every_read_uses_it(
    app: TaskqlApp, gql: GraphQLClient, alice: Account
) -> None:
    await create_task(gql, alice, title="one pool")
    assert [reader.name for reader in app.resources.reads.readers] == ["primary"]
    with captured(app) as statements:
        assert await my_tasks(gql, alice) == ["one pool"]
    assert statements.served_by("FROM tasks") == ["primary"]


async def _end_backends_of(pool: Any, database: Services, *, wait: bool) -> None:
    """End the pool's connections on the server's side (what a restart does to each: 57P01)."""
    held = [await pool.acquire() for _ in range(3)]  # open a few, and learn their backends
    pids = [connection.get_server_pid() for connection in held]
    for connection in held:
        await pool.release(connection)
    admin = await asyncpg.connect(database.dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        for _ in range(1000 if wait else 0):  # until the backends have exited
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = any($1)", pids):
                break
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


@pytest.mark.parametrize("wait", [True, False], ids=["after-they-exited", "while-they-exit"])
async def test_reads_recover_at_once_when_postgresql_ends_every_pooled_connection(
    app: TaskqlApp, gql: GraphQLClient, alice: Account, database: Services, wait: bool
) -> None:
    """Connections the pool has seen close are replaced; a read that meets one whose end was not seen yet
    is sent again on a fresh connection. Either way every request answers."""
    await create_task(gql, alice, title="survives")
    await _end_backends_of(app.resources.reads.primary.pool, database, wait=wait)
    for _ in range(5):
        assert await my_tasks(gql, alice) == ["survives"]


async def test_a_replica_that_does_not_answer_gets_no_reads(database: Services) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/taskql"
    async with instance(replicated_settings(database, database_read_url=nowhere)) as node:
        alice = await register(node.gql, email="alice@example.com")
        await create_task(node.gql, alice, title="from the primary")
        await quiet()
        with captured(node.app) as statements:
            assert await my_tasks(node.gql, alice) == ["from the primary"]
    assert statements.served_by("FROM tasks") == ["primary"]


async def test_a_write_whose_marker_redis_missed_keeps_reads_on_the_primary_until_a_window_after_redis(
    database: Services, redis_process: RedisProcess
) -> None:
    """Redis down during a write: its marker is lost, so this instance reads the primary; once Redis is
    back it marks everything as just written (for every instance: the epoch), then reads the replica again
    a window later."""
    settings = replicated_settings(database, redis_url=redis_process.url, redis_circuit_open_seconds=0.2)
    async with instance(settings) as node:
        alice = await register(node.gql, email="alice@example.com")
        redis_process.kill()
        await create_task(node.gql, alice, title="written blind")
        redis_process.start()
        await quiet()
        redis = Redis.from_url(redis_process.url)
        try:
            served: list[str] = []
            for attempt in range(50):  # until this instance has marked the epoch in Redis
                with captured(node.app) as statements:
                    assert await my_tasks(node.gql, alice, first=attempt + 1) == ["written blind"]
                served += statements.served_by("FROM tasks")
                if await redis.exists(mark_key(cache_tags.EPOCH)):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the epoch was never marked")
        finally:
            await redis.aclose()
        assert set(served) == {"primary"}
        await quiet()
        with captured(node.app) as statements:
            assert await my_tasks(node.gql, alice, first=100) == ["written blind"]
        assert statements.served_by("FROM tasks") == ["replica"]


def test_the_replica_is_current_up_to_the_last_moment_whose_primary_position_it_has_replayed() -> None:
    lag = ReplicaLag(Reader(None, "primary"), Reader(None, "replica"), interval=0.5)
    assert lag.behind() == math.inf  # not measured yet: no reads on the replica
    lag.note(10.0, 100)
    lag.note(10.5, 250)
    lag.note(11.0, 250)
    lag.replayed(99)
    assert lag.caught_up_at == -math.inf
    lag.replayed(200)
    assert lag.caught_up_at == 10.0  # has what was committed before 10.0, not all before 10.5
    lag.replayed(250)
    assert lag.caught_up_at == 11.0
    lag.note(11.5, 300)
    lag.replayed(250)
    assert lag.caught_up_at == 11.0


async def test_a_write_outside_graphql_sends_every_read_to_the_primary_for_one_window(
    two_instances: tuple[Instance, Instance], database: Services
) -> None:
    """What the CLI does after ``seed``, ``create-admin``, ``migrate`` or ``flush-cache``."""
    node, _ = two_instances
    alice = await register(node.gql, email="alice@example.com")
    await quiet()
    await mark_everything_written(database.redis_url, WINDOW)
    with captured(node.app) as statements:
        assert await my_tasks(node.gql, alice) == []
    assert statements.served_by("FROM tasks") == ["primary"]
    await quiet()
    with captured(node.app) as statements:
        assert await my_tasks(node.gql, alice, first=11) == []
    assert statements.served_by("FROM tasks") == ["replica"]
