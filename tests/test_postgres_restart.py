"""PostgreSQL restarted under load: taskql recovers by itself, without a restart of its own. No request
hangs: those that need PostgreSQL while it is down fail at once with a 503 and ``SERVICE_UNAVAILABLE``
(never a 500, a traceback in the log or a word about the internals); every request after it is back
succeeds, also the first ones on connections that were pooled before the restart.

The test runs its own PostgreSQL (tests.fault_servers) to stop and start, and a real ``taskql serve``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import Account, register
from tests.fault_servers import PostgresProcess, taskql_on
from tests.graphql_client import GraphQLClient, operation
from tests.processes import TaskqlProcess
from tests.ws_client import Closed, Subscriber

# A request during the outage fails at once (the socket is gone, or PostgreSQL says it is shutting down or
# starting up); the bound leaves room for a loaded machine, far below any timeout (10 s connect).
MAX_REQUEST_SECONDS = 3.0
UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNALS = ("sqlalchemy", "asyncpg", "postgres", "sql", "traceback", "connection")
LOAD_CLIENTS = 8
KINDS = ("create", "update", "delete", "node", "stats", "search", "page")
STATS = "query Stats { taskStats { total byStatus { status count } } }"
SEARCH = (
    "query Search($q: String!) { tasks(first: 10, filter: {search: $q}) "
    "{ totalCount edges { node { id } } } }"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("postgres-restart")


@pytest.fixture(scope="module")
def postgres(folder: Path) -> Iterator[PostgresProcess]:
    server = PostgresProcess(folder)
    yield server
    server.close()


@pytest.fixture(scope="module")
def taskql(folder: Path, postgres: PostgresProcess) -> Iterator[TaskqlProcess]:
    with taskql_on(postgres, folder) as server:
        yield server


@pytest.fixture
async def gql(taskql: TaskqlProcess) -> AsyncIterator[GraphQLClient]:
    # The server may close a connection while PostgreSQL is away; the client must not reuse stale ones.
    async with httpx.AsyncClient(base_url=taskql.url, timeout=30) as http:
        yield GraphQLClient(http)


@dataclass
class Answer:
    what: str
    began: float
    took: float
    status: int
    body: dict[str, Any]
    retry_after: str | None

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.body.get("errors") or []]

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.codes


@dataclass
class Load:
    """Users reading (uncached task pages, a node, stats, search) and writing (create, update, delete)."""

    gql: GraphQLClient
    users: list[Account]
    answers: list[Answer] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # transport errors: a hang, a reset, a timeout
    running: bool = True
    nonces: Iterator[int] = field(default_factory=itertools.count)
    mine: dict[int, list[str]] = field(default_factory=dict)  # each client's tasks (it alone changes them)

    async def send(self, what: str, document: str, variables: dict[str, Any], user: Account) -> Answer | None:
        began = time.monotonic()
        try:
            response = await self.gql.http.post(
                "/graphql",
                json={"query": document, "variables": variables},
                headers={"authorization": f"Bearer {user.token}"},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            self.broken.append(f"{what}: {error!r}")
            return None
        answer = Answer(what, began, time.monotonic() - began, response.status_code, body, None)
        answer.retry_after = response.headers.get("retry-after")
        self.answers.append(answer)
        return answer

    async def client(self, number: int) -> None:
        for step in itertools.count():
            if not self.running:
                return
            await self.one(number, step % len(KINDS))
            await asyncio.sleep(0.005)

    async def one(self, number: int, kind: int) -> None:
        """Client ``number``'s request of ``KINDS[kind]``, on the tasks it created."""
        user, mine = self.users[number % len(self.users)], self.mine.setdefault(number, [])
        what = KINDS[kind] if mine else "create"
        nonce = next(self.nonces)  # an undeclared variable: never a cache hit, always PostgreSQL
        if what == "create":
            answer = await self.send(
                what, operation("CreateTask"), {"input": {"title": f"load {nonce}"}}, user
            )
            if answer is not None and answer.ok:
                mine.append(answer.body["data"]["createTask"]["id"])
        elif what == "update":
            update = {"id": mine[-1], "input": {"title": f"load {nonce}", "status": "IN_PROGRESS"}}
            await self.send(what, operation("UpdateTask"), update, user)
        elif what == "delete" and len(mine) > 3:
            answer = await self.send(what, operation("DeleteTask"), {"id": mine[0]}, user)
            if answer is not None and answer.ok:
                mine.remove(answer.body["data"]["deleteTask"])
        elif what == "node":
            await self.send(what, operation("Node"), {"id": mine[-1], "nonce": nonce}, user)
        elif what == "stats":
            await self.send(what, STATS, {"nonce": nonce}, user)
        elif what == "search":
            await self.send(what, SEARCH, {"q": "load", "nonce": nonce}, user)
        elif what == "page":
            await self.send(what, operation("TaskPage"), {"first": 20, "nonce": nonce}, user)


async def under_load(gql: GraphQLClient, fault: Callable[[], Awaitable[None]]) -> Load:
    users = [await register(gql) for _ in range(3)]
    load = Load(gql, users)
    clients = [asyncio.create_task(load.client(number)) for number in range(LOAD_CLIENTS)]
    await asyncio.sleep(1.0)
    await fault()
    await asyncio.sleep(1.5)
    load.running = False
    await asyncio.gather(*clients)
    return load


def unavailable_properly(answer: Answer) -> bool:
    """A 503 with Retry-After when no data came back (a 200 with the error in place when some did), every
    error SERVICE_UNAVAILABLE, and nothing said about what failed inside."""
    expected_status = 503 if answer.body.get("data") is None else 200
    messages = " ".join(error.get("message", "") for error in answer.body.get("errors") or []).lower()
    return (
        answer.status == expected_status
        and (answer.retry_after == "1" or expected_status == 200)
        and bool(answer.codes)
        and set(answer.codes) == {UNAVAILABLE}
        and not any(word in messages for word in INTERNALS)
    )


async def test_postgresql_restarted_mid_load_fails_only_requests_of_the_outage_at_once_and_coded(
    gql: GraphQLClient, postgres: PostgresProcess, taskql: TaskqlProcess
) -> None:
    moments: dict[str, float] = {}
    ready_during_outage: list[int] = []

    async def restart() -> None:
        moments["stop"] = time.monotonic()
        await asyncio.to_thread(postgres.stop, "fast")
        await asyncio.sleep(0.5)  # down for a moment, under load
        ready_during_outage.append((await gql.http.get("/readyz")).status_code)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.start)
        moments["back"] = time.monotonic()

    load = await under_load(gql, restart)
    assert load.broken == []
    assert max(answer.took for answer in load.answers) < MAX_REQUEST_SECONDS
    failed = [answer for answer in load.answers if not answer.ok]
    assert [(a.what, a.status, a.body) for a in failed if not unavailable_properly(a)] == []
    # Only requests that overlapped the outage failed; every one sent after PostgreSQL was back succeeded.
    assert all(a.began < moments["back"] and a.began + a.took > moments["stop"] for a in failed)
    after = [answer for answer in load.answers if answer.began > moments["back"]]
    assert len(after) > 20
    assert [(a.what, a.body) for a in after if not a.ok] == []
    assert len(failed) >= 3, "the load never met the outage: the test proved nothing"
    assert {a.what for a in failed} >= {"create", "page"}  # writes and reads both met it
    assert ready_during_outage == [503]
    assert (await gql.http.get("/readyz")).json()["status"] == "ready"
    log = taskql.output()
    assert "Traceback" not in log, log
    assert 1 <= log.count("PostgreSQL unavailable") <= 3, log  # once per outage, not once per request
    assert "PostgreSQL is back" in log


async def test_after_postgresql_restarts_while_idle_the_first_requests_on_old_connections_succeed(
    gql: GraphQLClient, postgres: PostgresProcess
) -> None:
    users = [await register(gql) for _ in range(2)]
    load = Load(gql, users)
    clients = [asyncio.create_task(load.client(number)) for number in range(LOAD_CLIENTS)]
    await asyncio.sleep(0.5)  # the pool now holds several connections
    load.running = False
    await asyncio.gather(*clients)
    assert load.answers
    assert all(answer.ok for answer in load.answers)
    await asyncio.to_thread(postgres.stop, "fast")
    await asyncio.to_thread(postgres.start)  # nothing asked for PostgreSQL meanwhile
    load.answers.clear()
    # As many requests at once as the pool held connections, each of every kind but delete.
    burst = [(number % LOAD_CLIENTS, kind) for number, kind in enumerate([0, 1, 3, 4, 5, 6] * 3)]
    await asyncio.gather(*(load.one(number, kind) for number, kind in burst))
    assert len(load.answers) == len(burst)
    assert [(a.what, a.body) for a in load.answers if not a.ok] == []
    assert load.broken == []


async def test_a_subscription_opened_while_postgresql_is_down_is_closed_with_try_again_later(
    gql: GraphQLClient, postgres: PostgresProcess, taskql: TaskqlProcess
) -> None:
    user = await register(gql)
    ws_url = taskql.url.replace("http", "ws") + "/graphql"
    await asyncio.to_thread(postgres.stop, "fast")
    try:
        with pytest.raises(Closed) as closed:
            await Subscriber.open(ws_url, {"authorization": f"Bearer {user.token}"})
    finally:
        await asyncio.to_thread(postgres.start)
    assert closed.value.code == 1013
    subscriber = await Subscriber.open(ws_url, {"authorization": f"Bearer {user.token}"})
    await subscriber.socket.close()
