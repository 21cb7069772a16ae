"""The side effects of a write survive faults: each test reproduces one fault an operator meets (a server
killed after COMMIT, Redis restarted from an older snapshot, Redis stopped during writes, revocations
while Redis is down) with real processes it owns, and asserts the bound the README states.

Two ``taskql serve`` processes share the suite's PostgreSQL and a Redis of the test's own (killable, with a
snapshot file in the test's folder: ``SAVE`` writes it, a restart loads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from core.ids import decode_id
from models.outbox import BACKLOG_LIMIT
from resolvers.events import EventDraft, TaskEventKind
from resolvers.writes import Written, effects_of
from taskql.data import migrations as migrate
from taskql.jobs.cleanup import clean_up
from taskql.outbox.relay import Outbox, stream_key
from taskql.redis.client import RedisGuard
from taskql.redis.pipeline import PipelinedRedis
from tests.conftest import TABLES
from tests.databases import scratch_database
from tests.factories import PASSWORD, Account, promote_to_admin, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient, Response
from tests.processes import TEST_SECRET, TaskqlProcess, environment
from tests.services import Services
from tests.teams import make_team
from tests.test_project_events import listening, quiet_until_marker
from tests.ws_client import Closed, Subscriber

RELAY_SECONDS = 1.0  # OUTBOX_RELAY_SECONDS, the default
CIRCUIT_SECONDS = 1.0  # REDIS_CIRCUIT_OPEN_SECONDS, the default
RECHECK_SECONDS = 5.0  # SESSION_RECHECK_SECONDS, the default
SLACK_SECONDS = 1.0  # scheduling on a loaded 2-core machine
# After Redis is reachable again: the relay's next round, behind a circuit that may still be open.
STALE_BOUND_SECONDS = RELAY_SECONDS + CIRCUIT_SECONDS + SLACK_SECONDS
EVENT_BOUND_SECONDS = RELAY_SECONDS + CIRCUIT_SECONDS + SLACK_SECONDS
REVOCATION_BOUND_SECONDS = RECHECK_SECONDS + SLACK_SECONDS


def measured(name: str, seconds: float) -> None:
    """A window a test measured, in the test's output (``pytest -s``) for the README's figures."""
    print(f"\nMEASURED {name}: {seconds:.2f} s")


@pytest.fixture(scope="module")
async def own_database(database: Services) -> AsyncIterator[Services]:
    """A database of these tests' own: an instance on another Redis sharing theirs (the suite's in-process
    app) would relay their outbox rows to that Redis. Every instance of a deployment shares one Redis."""
    async with scratch_database(database, "taskql_durability") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        yield Services(url, database.redis_url, embedded=database.embedded)


@pytest.fixture(autouse=True)
async def clean_own_database(own_database: Services) -> None:
    connection = await asyncpg.connect(own_database.dsn)
    try:
        await connection.execute(f"TRUNCATE {TABLES} CASCADE")
    finally:
        await connection.close()


@pytest.fixture
def servers(
    own_database: Services, redis_process: RedisProcess, tmp_path: Path
) -> Iterator[list[TaskqlProcess]]:
    env = environment(
        DATABASE_URL=own_database.database_url,
        REDIS_URL=redis_process.url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
    )
    started = [TaskqlProcess(env, tmp_path, f"taskql-{n}") for n in range(2)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.kill()


@contextlib.asynccontextmanager
async def clients(servers: list[TaskqlProcess]) -> AsyncIterator[list[GraphQLClient]]:
    async with contextlib.AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
            for server in servers
        ]
        yield [GraphQLClient(http) for http in https]


def ws_url(server: TaskqlProcess) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


async def login(gql: GraphQLClient, account: Account) -> Account:
    """A second session of the same account."""
    data = (await gql.run("Login", {"input": {"email": account.email, "password": PASSWORD}})).ok()
    return Account(account.id, account.email, data["login"]["accessToken"], data["login"]["refreshToken"])


async def titles(gql: GraphQLClient, account: Account) -> tuple[set[str], str]:
    """The account's task titles, and whether the answer came from the cache."""
    response = await gql.run("MyTasks", {"first": 100}, token=account.token)
    tasks = response.ok()["me"]["tasks"]["edges"]
    return {edge["node"]["title"] for edge in tasks}, response.headers.get("x-cache", "")


async def cached(gql: GraphQLClient, account: Account) -> None:
    """Ask until the answer is a cache hit (the entry is stored after the first answer is sent)."""
    deadline = time.monotonic() + 10
    while (await titles(gql, account))[1] != "HIT":
        assert time.monotonic() < deadline, "the answer was never cached"
        await asyncio.sleep(0.05)


async def me(gql: GraphQLClient, account: Account) -> Response:
    return await gql.run("Me", token=account.token)


def metric(scrape: httpx.Response, name: str) -> float:
    """A sample's value in a Prometheus scrape (0 when absent)."""
    for line in scrape.text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


def refused(response: Response) -> bool:
    return response.codes == ["UNAUTHENTICATED"]


async def until(check: Callable[[], Awaitable[bool]], seconds: float, step: float = 0.05) -> float:
    """Seconds until ``check()`` held (asked every ``step``); fails after ``seconds``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(step)
    return time.monotonic() - start


async def subscribe(server: TaskqlProcess, account: Account, after: str | None = None) -> Subscriber:
    subscriber = await Subscriber.open(ws_url(server), {"authorization": f"Bearer {account.token}"})
    await subscriber.subscribe({"after": after} if after else {})
    return subscriber


async def events(subscriber: Subscriber, count: int, timeout: float) -> list[dict[str, Any]]:
    """The next ``count`` task events, none an error."""
    return [await subscriber.event(timeout) for _ in range(count)]


async def created(gql: GraphQLClient, account: Account, title: str) -> None:
    (await gql.run("CreateTask", {"input": {"title": title}}, token=account.token)).ok()


def outbox_on(redis_process: RedisProcess, pool: asyncpg.Pool) -> tuple[Outbox, Redis, PipelinedRedis]:
    """The app's outbox, in the test's process (not started: the test calls what the relay would)."""
    redis = Redis.from_url(redis_process.url)
    pipe = PipelinedRedis(redis_process.url, timeout=0.5)
    outbox = Outbox(
        RedisGuard(redis), pipe, pool, retention_seconds=3600, max_per_stream=100, relay_seconds=1
    )
    return outbox, redis, pipe


# The relay ------------------------------------------------------------------------------------------


async def _insert(connection: asyncpg.Connection, audience: str) -> int:
    draft = EventDraft(audience, TaskEventKind.DELETED, uuid.uuid4(), None)
    effects = effects_of(["tasks"], [draft], datetime.now(UTC))
    return int(await connection.fetchval("INSERT INTO outbox (effects) VALUES ($1::jsonb) RETURNING id",
                                         json.dumps(effects)))  # fmt: skip


async def test_the_relay_publishes_a_row_whose_transaction_commits_after_a_later_one(
    own_database: Services, redis_process: RedisProcess
) -> None:
    """A transaction that took a lower id can commit after one with a higher id: the relay must still
    publish it (a relay that kept a high-water mark of ids would skip it for good)."""
    pool = await asyncpg.create_pool(own_database.dsn, min_size=1, max_size=4)
    outbox, redis, pipe = outbox_on(redis_process, pool)
    try:
        async with pool.acquire() as early, pool.acquire() as late:
            slow = early.transaction()
            await slow.start()
            low = await _insert(early, "slow")  # takes its id first, commits last
            async with late.transaction():
                high = await _insert(late, "fast")
            assert low < high
            assert await outbox.relay_once() == 1  # only the committed one is visible
            await slow.commit()
        assert await outbox.relay_once() == 1
        assert await outbox.relay_once() == 0
        rows = await pool.fetch(
            "SELECT id, position_ms IS NOT NULL FROM outbox WHERE published_at IS NOT NULL"
        )
        assert sorted(rows) == [(low, True), (high, True)]
        # Both reached Redis, the late committer after the other (positions only grow).
        fast: Any = await redis.xrange(stream_key("fast"))
        late_entries: Any = await redis.xrange(stream_key("slow"))
        [(fast_id, _)], [(slow_id, _)] = fast, late_entries
        assert tuple(map(int, slow_id.split(b"-"))) > tuple(map(int, fast_id.split(b"-")))
    finally:
        pipe.close()
        await redis.aclose()
        await pool.close()


# Faults -----------------------------------------------------------------------------------------------


async def test_a_server_killed_after_commit_leaves_no_stale_answer_or_live_session_on_the_other(
    servers: list[TaskqlProcess], redis_process: RedisProcess
) -> None:
    """Redis frozen, a write and a logout acknowledged by one server with their side effects unpublished,
    that server SIGKILLed, Redis thawed: the other server serves neither the pre-write answer nor the ended
    session beyond the bound."""
    async with clients(servers) as (one, other):
        alice = await register(one)
        second = await login(one, alice)
        await created(one, alice, "before")
        await cached(other, alice)
        assert (await me(other, second)).ok()["me"]["id"] == alice.id  # its session state cached too
        redis_process.signal(signal.SIGSTOP)
        try:
            await created(one, alice, "while frozen")  # acknowledged: committed, effects deferred
            assert (await one.run("Logout", {}, token=second.token)).ok()["logout"] is True
        finally:
            servers[0].kill()
            redis_process.signal(signal.SIGCONT)
        thawed = time.monotonic()
        stale_until = thawed
        while True:
            seen, cache = await titles(other, alice)
            live = not refused(await me(other, second))
            if "while frozen" in seen and not live:
                break
            stale_until = time.monotonic()
            assert stale_until - thawed < STALE_BOUND_SECONDS, (seen, cache, live)
            await asyncio.sleep(0.05)
        measured("stale window after a crash between COMMIT and publish", stale_until - thawed)

        async def relayed() -> bool:  # the write's and the logout's rows, by the surviving instance's relay
            return metric(await other.http.get("/metrics"), "taskql_outbox_relayed_total") >= 2

        measured(
            "the survivor's relay published them, after the thaw", await until(relayed, STALE_BOUND_SECONDS)
        )
        # And for good: the answer now cached is the new one.
        await cached(other, alice)
        assert "while frozen" in (await titles(other, alice))[0]


async def test_redis_restarted_from_an_older_snapshot_serves_nothing_stale_and_replays_lost_events(
    servers: list[TaskqlProcess], redis_process: RedisProcess
) -> None:
    async with clients(servers) as gqls:
        alice = await register(gqls[0])
        second = await login(gqls[0], alice)
        subscriber = await subscribe(servers[1], alice)
        await created(gqls[0], alice, "before")
        [before] = await events(subscriber, 1, 10)
        for gql in gqls:
            await cached(gql, alice)
            assert (await me(gql, second)).ok()
        redis_process.save()  # Redis will come back with this
        await created(gqls[0], alice, "after the snapshot")
        assert (await gqls[0].run("Logout", {}, token=second.token)).ok()["logout"] is True
        [lost] = await events(subscriber, 1, 10)
        assert lost["task"]["title"] == "after the snapshot"
        redis_process.kill()
        redis_process.start(from_snapshot=True)  # the write's and the logout's invalidations are gone
        restored = Redis.from_url(redis_process.url)
        try:  # the older data set is back: the answers cached before the snapshot among it
            assert [key async for key in restored.scan_iter(match="taskql:c:r:*")]
        finally:
            await restored.aclose()
        for gql in gqls:  # the very first request on each instance
            assert "after the snapshot" in (await titles(gql, alice))[0]
            assert refused(await me(gql, second))
        # The live subscriber saw the event once; it is not sent again when delivery resumes.
        await created(gqls[0], alice, "after the restart")
        [resumed] = await events(subscriber, 1, 10)
        assert resumed["task"]["title"] == "after the restart"
        # A subscriber resuming from before the snapshot gets what Redis lost, from PostgreSQL, once.
        replayer = await subscribe(servers[0], alice, after=before["cursor"])
        replayed = await events(replayer, 2, 10)
        assert [event["task"]["title"] for event in replayed] == ["after the snapshot", "after the restart"]
        assert replayed[0]["cursor"] == lost["cursor"]
        assert await replayer.silent_for(0.5)
        await subscriber.close()
        await replayer.close()


async def test_events_of_writes_acknowledged_while_redis_was_stopped_reach_subscribers_once_in_order(
    servers: list[TaskqlProcess], redis_process: RedisProcess
) -> None:
    async with clients(servers) as gqls:
        alice = await register(gqls[0])
        subscriber = await subscribe(servers[1], alice)
        await created(gqls[0], alice, "before")
        [before] = await events(subscriber, 1, 10)
        redis_process.kill()
        for n in range(3):
            await created(gqls[0], alice, f"while stopped {n}")  # acknowledged without Redis
        redis_process.start()  # empty: nothing was saved
        back = time.monotonic()
        delivered = await events(subscriber, 3, EVENT_BOUND_SECONDS + 5)
        measured("event delay after Redis came back", time.monotonic() - back)
        assert time.monotonic() - back < EVENT_BOUND_SECONDS
        expected = [f"while stopped {n}" for n in range(3)]
        assert [event["task"]["title"] for event in delivered] == expected
        assert await subscriber.silent_for(0.5)  # once
        replayer = await subscribe(servers[0], alice, after=before["cursor"])
        assert [event["task"]["title"] for event in await events(replayer, 3, 10)] == expected
        assert await replayer.silent_for(0.5)
        await subscriber.close()
        await replayer.close()


async def test_sessions_revoked_while_redis_is_down_lose_their_sockets_within_the_recheck_period(
    own_database: Services, servers: list[TaskqlProcess], redis_process: RedisProcess
) -> None:
    async with clients(servers) as (one, _):
        boss, demoted, bob = await register(one), await register(one), await register(one)
        for admin in (boss, demoted):
            await promote_to_admin(own_database.dsn, admin)
        boss, demoted = await login(one, boss), await login(one, demoted)  # tokens with the new role
        watcher = await subscribe(servers[1], demoted)  # an admin's socket: every user's events
        logged_out = await subscribe(servers[1], bob)
        await created(one, bob, "seen by both")
        assert (await watcher.event())["task"]["title"] == "seen by both"
        assert (await logged_out.event())["task"]["title"] == "seen by both"
        redis_process.kill()
        demoted_id = demoted.id
        (await one.run("SetUserRole", {"userId": demoted_id, "role": "USER"}, token=boss.token)).ok()
        (await one.run("Logout", {}, token=bob.token)).ok()
        revoked = time.monotonic()
        for subscriber in (watcher, logged_out):
            closed = await subscriber.closed(timeout=REVOCATION_BOUND_SECONDS + 5)
            assert closed.code == 4403, closed
        delay = time.monotonic() - revoked
        measured("socket revocation delay with Redis down", delay)
        assert delay < REVOCATION_BOUND_SECONDS
        scrape = await httpx.AsyncClient(base_url=servers[1].url).get("/metrics")
        assert metric(scrape, 'taskql_websocket_revocations_total{source="recheck"}') == 2
        redis_process.start()
        # Reconnecting shows the new rights: the ended session is refused.
        with pytest.raises(Closed):
            await subscribe(servers[1], bob)


async def test_a_row_published_twice_reaches_a_live_subscriber_once(
    own_database: Services, servers: list[TaskqlProcess], redis_process: RedisProcess
) -> None:
    """Its request and the relay race (the Redis key that makes the second a no-op), and, should Redis lose
    that key, a subscriber still skips the row it already sent (by its outbox id)."""
    async with clients(servers) as gqls:
        alice = await register(gqls[0])
        subscriber = await subscribe(servers[1], alice)
        pool = await asyncpg.create_pool(own_database.dsn, min_size=1, max_size=2)
        outbox, redis, pipe = outbox_on(redis_process, pool)
        try:
            await created(gqls[0], alice, "once")
            [event] = await events(subscriber, 1, 10)
            row_id = await pool.fetchval("SELECT max(id) FROM outbox")
            effects = json.loads(await pool.fetchval("SELECT effects FROM outbox WHERE id = $1", row_id))
            row = Written.of(row_id, effects)
            assert await outbox.publish([row]) == await outbox.publish([row])  # the same position: a no-op
            entries: Any = await redis.xrange(stream_key(str(decode_id(alice.id)[1])))
            assert len(entries) == 1
            await redis.delete(f"taskql:ob:{row_id}")  # as if Redis had lost it
            await outbox.publish([row])  # now a second entry, at a new position
            await created(gqls[0], alice, "next")
            [following] = await events(subscriber, 1, 10)
            assert following["task"]["title"] == "next", following
            assert event["task"]["title"] == "once"
        finally:
            pipe.close()
            await redis.aclose()
            await pool.close()
            await subscriber.close()


@pytest.fixture
def slow_relay(
    own_database: Services, redis_process: RedisProcess, tmp_path: Path
) -> Iterator[TaskqlProcess]:
    """A server whose relay does not come round during a test (OUTBOX_RELAY_SECONDS is 60)."""
    env = environment(
        DATABASE_URL=own_database.database_url,
        REDIS_URL=redis_process.url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
        OUTBOX_RELAY_SECONDS="60",
    )
    server = TaskqlProcess(env, tmp_path, "taskql-slow-relay")
    server.start()
    yield server
    server.kill()


async def pending_creations(database: Services, account: Account, titles: list[str]) -> None:
    """Committed writes whose publication is pending, as a process that died after COMMIT leaves them: the
    outbox rows of task creations (no task rows: only their events are looked at)."""
    owner = str(decode_id(account.id)[1])
    rows = []
    for title in titles:
        now = datetime.now(UTC).isoformat()
        task: dict[str, Any] = {
            "id": str(uuid.uuid4()), "owner_id": owner, "title": title, "description": None,
            "status": "TODO", "priority": "MEDIUM", "due_at": None, "tags": [], "created_at": now,
            "updated_at": now, "completed_at": None,
        }  # fmt: skip
        payload = json.dumps({"kind": "CREATED", "taskId": task["id"], "task": task, "at": now})
        rows.append((json.dumps({"tags": [], "control": [], "events": {"*": payload, owner: payload}}),))
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.executemany("INSERT INTO outbox (effects) VALUES ($1::jsonb)", rows)
    finally:
        await connection.close()


async def test_a_write_publishes_the_older_pending_writes_before_itself(
    own_database: Services, slow_relay: TaskqlProcess
) -> None:
    """A committed write whose publication is pending is published before the next write's events, by that
    write's own request: events keep the order of their writes, even before the relay comes round."""
    async with clients([slow_relay]) as (gql,):
        alice = await register(gql)
        subscriber = await subscribe(slow_relay, alice)
        await pending_creations(own_database, alice, ["pending"])
        await created(gql, alice, "next")
        received = [event["task"]["title"] for event in await events(subscriber, 2, 10)]
        assert received == ["pending", "next"]
        await subscriber.close()


async def test_past_the_backlog_limit_a_write_invalidates_at_once_and_leaves_its_events_to_the_relay(
    own_database: Services, slow_relay: TaskqlProcess, redis_process: RedisProcess
) -> None:
    async with clients([slow_relay]) as (gql,):
        alice = await register(gql)
        await cached(gql, alice)
        subscriber = await subscribe(slow_relay, alice)
        backlog = [f"pending {n}" for n in range(BACKLOG_LIMIT + 1)]
        await pending_creations(own_database, alice, backlog)
        await created(gql, alice, "next")
        seen, cache = await titles(gql, alice)
        assert "next" in seen, cache  # its cache tags were bumped at once
        assert await subscriber.silent_for(1.0)  # but its event does not overtake the backlog's
        pool = await asyncpg.create_pool(own_database.dsn, min_size=1, max_size=2)
        outbox, redis, pipe = outbox_on(redis_process, pool)
        try:
            while await outbox.relay_once():  # what the relay does when it comes round
                pass
        finally:
            pipe.close()
            await redis.aclose()
            await pool.close()
        received = [event["task"]["title"] for event in await events(subscriber, len(backlog) + 1, 10)]
        assert received == [*backlog, "next"]
        await subscriber.close()


async def test_published_rows_are_pruned_after_the_retention_and_pending_ones_never(
    own_database: Services,
) -> None:
    pool = await asyncpg.create_pool(own_database.dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            old, recent, pending = [await _insert(connection, "prune") for _ in range(3)]
            await connection.execute(
                "UPDATE outbox SET published_at = now() - interval '2 hours' WHERE id = $1", old
            )
            await connection.execute("UPDATE outbox SET published_at = now() WHERE id = $1", recent)
            await connection.execute(
                "UPDATE outbox SET created_at = now() - interval '2 hours' WHERE id = $1", pending
            )
        removed = await clean_up(pool, outbox_retention_seconds=3600)  # the periodic cleanup job's
        assert removed["outbox"] == 1
        assert sorted(await pool.fetchval("SELECT array_agg(id) FROM outbox")) == [recent, pending]
    finally:
        await pool.close()


async def test_a_removal_acked_with_redis_frozen_by_a_server_then_killed_ends_access_within_the_bound(
    servers: list[TaskqlProcess], redis_process: RedisProcess, own_database: Services
) -> None:
    """Redis frozen, a member removed by one server (committed, its cache bump unpublished), that server
    SIGKILLed, Redis thawed: the other server stops serving the removed member their cached project answer
    within the bound, and their open socket there hears nothing written after the removal."""
    async with clients(servers) as (one, other):
        root = await register(one, email="root@example.com", name="Root")
        await promote_to_admin(own_database.dsn, root)
        team = await make_team(one, own_database.dsn, root)

        async def sees_the_project() -> tuple[bool, str]:
            response = await other.run("TeamTaskPage", {"first": 50}, token=team.viewer.token)
            titles = {edge["node"]["title"] for edge in response.ok()["tasks"]["edges"]}
            return "Draft the plan" in titles, response.headers.get("x-cache", "")

        deadline = time.monotonic() + 10
        while (await sees_the_project()) != (True, "HIT"):  # the member's answer cached on the other server
            assert time.monotonic() < deadline, "the answer was never cached"
            await asyncio.sleep(0.05)
        socket = await listening(servers[1].url, team.viewer, other)
        redis_process.signal(signal.SIGSTOP)
        try:
            removal = {"projectId": team.project_id, "userId": team.viewer.id}
            (await one.run("RemoveProjectMember", removal, token=team.owner.token)).ok()
        finally:
            servers[0].kill()
            redis_process.signal(signal.SIGCONT)
        thawed = time.monotonic()
        stale_until = thawed
        while (await sees_the_project())[0]:
            stale_until = time.monotonic()
            assert stale_until - thawed < STALE_BOUND_SECONDS
            await asyncio.sleep(0.05)
        measured(
            "a removed member's cached answer after a crash between COMMIT and publish", stale_until - thawed
        )
        values = {"id": team.task_id, "input": {"title": "written after the removal"}}
        (await other.run("UpdateTask", values, token=team.editor.token)).ok()
        heard = await quiet_until_marker(socket, other, team.viewer)
        assert not [event for event in heard if event["taskId"] == team.task_id and event["task"]], heard
