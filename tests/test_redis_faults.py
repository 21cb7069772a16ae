"""Redis killed or frozen under load: every request still succeeds (reads, creations, updates and
deletions: none needs Redis), none waits long, no answer is stale, sessions still fail closed, and caching
comes back by itself. Frozen, Redis opens the circuit: requests then skip it at once.

Each test runs its own redis-server process (tests.fault_servers), so it can kill it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import client_for
from tests.factories import Account, create_task, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient, Response

MY_TASKS = "query MyTitles { tasks(first: 100) { edges { node { id title } } } }"
# Socket timeout 0.5 s (the default) plus scheduling slack on a loaded machine.
MAX_STALL_SECONDS = 1.5
# Without the circuit, every request would wait out the socket timeout (0.5 s); with it, most wait for none.
MAX_MEDIAN_WHILE_FROZEN = 0.2


@pytest.fixture
async def faulty(settings: Settings, redis_process: RedisProcess) -> AsyncIterator[GraphQLClient]:
    async with client_for(settings.model_copy(update={"redis_url": redis_process.url})) as http:
        yield GraphQLClient(http)


@dataclass
class Load:
    """One user creating, updating and deleting tasks while three readers list them, every answer checked
    against what was acknowledged before it was asked for. Titles carry a version (``task 7 v2``)."""

    gql: GraphQLClient
    account: Account
    versions: dict[str, int] = field(default_factory=dict)  # task id: last acknowledged version
    attempted: dict[str, int] = field(default_factory=dict)  # task id: highest version sent
    bases: dict[str, str] = field(default_factory=dict)  # task id: its title without the version
    deleted: set[str] = field(default_factory=set)  # acknowledged
    deleting: set[str] = field(default_factory=set)  # sent
    writes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("create", "update", "delete"), 0))
    failures: list[str] = field(default_factory=list)
    timings: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds) of every request
    running: bool = True

    def adopt(self, task: dict[str, str], base: str) -> None:
        """A task created before the load (its title ``base``, version 0)."""
        self.versions[task["id"]] = self.attempted[task["id"]] = 0
        self.bases[task["id"]] = base

    async def _timed(
        self, name: str, variables: dict[str, Any] | None = None, document: str = ""
    ) -> Response:
        started = time.monotonic()
        if document:
            response = await self.gql.query(document, token=self.account.token)
        else:
            response = await self.gql.run(name, variables, token=self.account.token)
        self.timings.append((started, time.monotonic() - started))
        if response.errors:
            self.failures.append(f"{name}: {response.errors}")
        return response

    async def writer(self) -> None:
        for step in itertools.count():
            if not self.running:
                return
            live = [task for task in self.versions if task not in self.deleting]
            if step % 3 == 0 or len(live) < 2:
                base = f"task {step}"
                response = await self._timed("CreateTask", {"input": {"title": f"{base} v0"}})
                if not response.errors:
                    self.adopt(response.data["createTask"], base)
                    self.writes["create"] += 1
            elif step % 3 == 1:
                task = live[-1]
                version = self.attempted[task] = self.attempted[task] + 1
                title = f"{self.bases[task]} v{version}"
                response = await self._timed("UpdateTask", {"id": task, "input": {"title": title}})
                if not response.errors:
                    self.versions[task] = version
                    self.writes["update"] += 1
            else:
                self.deleting.add(live[0])
                response = await self._timed("DeleteTask", {"id": live[0]})
                if not response.errors:
                    self.deleted.add(live[0])
                    self.writes["delete"] += 1
            await asyncio.sleep(0.05)

    async def reader(self) -> None:
        while self.running:
            await self.read()
            await asyncio.sleep(0.01)

    async def read(self) -> None:
        """List the tasks: everything acknowledged before the read must show (or something newer)."""
        versions, deleted = dict(self.versions), set(self.deleted)
        response = await self._timed("MyTasks", document=MY_TASKS)
        if response.errors:
            return
        seen = {edge["node"]["id"]: edge["node"]["title"] for edge in response.data["tasks"]["edges"]}
        for task, version in versions.items():
            if task in deleted:
                if task in seen:
                    self.failures.append(f"stale read: {seen[task]!r} was deleted")
            elif task not in seen:
                if task not in self.deleting:
                    self.failures.append(f"stale read: {self.bases[task]} v{version} missing")
            elif not version <= int(seen[task].rpartition(" v")[2]) <= self.attempted[task]:
                self.failures.append(f"stale read: {seen[task]!r}, v{version} was acknowledged")

    def seconds_after(self, moment: float) -> list[float]:
        return [seconds for sent, seconds in self.timings if sent >= moment]


async def run_load(load: Load, during: float, fault: Callable[[], object]) -> float:
    """The moment of the fault."""
    tasks = [asyncio.create_task(load.writer()), *(asyncio.create_task(load.reader()) for _ in range(3))]
    await asyncio.sleep(0.5)
    moment = time.monotonic()
    fault()
    await asyncio.sleep(during)
    load.running = False
    await asyncio.gather(*tasks)
    return moment


async def hit_within(gql: GraphQLClient, token: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await gql.query(MY_TASKS, token=token)
        response.ok()
        if response.headers.get("x-cache") == "HIT":
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"no cache hit within {seconds} s of Redis coming back")


async def test_redis_killed_mid_load_fails_no_read_or_write_and_caching_resumes(
    faulty: GraphQLClient, redis_process: RedisProcess
) -> None:
    account = await _register(faulty)
    load = Load(faulty, account)
    await run_load(load, 2.0, redis_process.kill)
    assert load.failures == []
    assert min(load.writes.values()) >= 3, load.writes  # creations, updates and deletions all went on
    assert max(seconds for _, seconds in load.timings) < MAX_STALL_SECONDS
    ready = await faulty.http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    redis_process.start()
    await hit_within(faulty, account.token, 10)
    assert (await faulty.http.get("/readyz")).json()["status"] == "ready"
    await load.read()  # and what it answers from the cache again is current
    assert load.failures == []


async def test_redis_frozen_opens_the_circuit_adds_bounded_delay_and_hides_no_write(
    faulty: GraphQLClient, redis_process: RedisProcess
) -> None:
    account = await _register(faulty)
    load = Load(faulty, account)
    load.adopt(await create_task(faulty, account, title="before v0"), "before")
    await faulty.query(MY_TASKS, token=account.token)
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "HIT"
    frozen_at = await run_load(load, 2.0, lambda: redis_process.signal(signal.SIGSTOP))
    assert load.failures == []
    assert min(load.writes.values()) >= 3, load.writes
    during = load.seconds_after(frozen_at)
    assert len(during) > 30
    assert max(during) < MAX_STALL_SECONDS  # one socket timeout at most, never a hang
    # The circuit is open: all but the few requests that met a timeout skip Redis at once.
    assert statistics.median(during) < MAX_MEDIAN_WHILE_FROZEN, sorted(during)[-10:]
    ready = (await faulty.http.get("/readyz")).json()
    assert (ready["status"], ready["checks"]["redis"]["circuit"]) == ("degraded", "open")
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "MISS"
    # With the circuit open, this write sends no invalidation at all.
    load.adopt(await create_task(faulty, account, title="while frozen v0"), "while frozen")
    redis_process.signal(signal.SIGCONT)  # Redis still holds the entries from before the freeze
    await asyncio.sleep(1.2)  # past the circuit's open time: Redis is used again
    for _ in range(3):
        await load.read()
    assert load.failures == []
    await hit_within(faulty, account.token, 10)


async def test_a_session_ended_while_redis_was_frozen_stays_refused_when_it_thaws(
    faulty: GraphQLClient, redis_process: RedisProcess
) -> None:
    account = await _register(faulty)
    await faulty.query(MY_TASKS, token=account.token)
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "HIT"
    redis_process.signal(signal.SIGSTOP)  # Redis still holds the answer and the session's state
    # A read first opens the circuit, so the logout after it sends no invalidation at all.
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "MISS"
    (await faulty.run("Logout", {"refreshToken": account.refresh_token}, token=account.token)).ok()
    assert (await faulty.query(MY_TASKS, token=account.token)).codes == ["UNAUTHENTICATED"]
    redis_process.signal(signal.SIGCONT)
    await asyncio.sleep(1.2)  # past the circuit's open time: Redis is used again
    for _ in range(3):
        assert (await faulty.query(MY_TASKS, token=account.token)).codes == ["UNAUTHENTICATED"]


async def _register(gql: GraphQLClient) -> Account:
    return await register(gql)
