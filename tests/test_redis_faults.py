"""Redis killed or frozen under load: every request still succeeds, none waits long, no answer is stale,
sessions still fail closed, and caching comes back by itself.

Each test runs its own redis-server process (tests.fault_servers), so it can kill it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import client_for
from tests.factories import Account, create_task, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient
from tests.processes import free_port

MY_TASKS = "query MyTitles { tasks(first: 100) { edges { node { title } } } }"
# Socket timeout 0.5 s (the default) plus scheduling slack on a loaded machine.
MAX_STALL_SECONDS = 1.5


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    yield server
    server.close()


@pytest.fixture
async def faulty(settings: Settings, redis_process: RedisProcess) -> AsyncIterator[GraphQLClient]:
    async with client_for(settings.model_copy(update={"redis_url": redis_process.url})) as http:
        yield GraphQLClient(http)


@dataclass
class Load:
    """Reads and writes by one user, checking every answer against what it has written."""

    gql: GraphQLClient
    account: Account
    written: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    running: bool = True

    async def _timed(self, coro: object) -> object:
        started = time.monotonic()
        result = await coro  # type: ignore[misc]
        self.slowest = max(self.slowest, time.monotonic() - started)
        return result

    async def writer(self) -> None:
        while self.running:
            title = f"task {len(self.written)}"
            response = await self._timed(
                self.gql.run("CreateTask", {"input": {"title": title}}, token=self.account.token)
            )
            if response.errors:  # type: ignore[attr-defined]
                self.failures.append(f"write: {response.errors}")  # type: ignore[attr-defined]
            else:
                self.written.append(title)
            await asyncio.sleep(0.05)

    async def reader(self) -> None:
        while self.running:
            acknowledged = set(self.written)
            response = await self._timed(self.gql.query(MY_TASKS, token=self.account.token))
            if response.errors:  # type: ignore[attr-defined]
                self.failures.append(f"read: {response.errors}")  # type: ignore[attr-defined]
                continue
            seen = {edge["node"]["title"] for edge in response.data["tasks"]["edges"]}  # type: ignore[attr-defined]
            if not acknowledged <= seen:
                self.failures.append(f"stale read: missing {sorted(acknowledged - seen)}")
            await asyncio.sleep(0.01)


async def run_load(load: Load, during: float, fault: object) -> None:
    tasks = [asyncio.create_task(load.writer()), *(asyncio.create_task(load.reader()) for _ in range(3))]
    await asyncio.sleep(0.5)
    fault()  # type: ignore[operator]
    await asyncio.sleep(during)
    load.running = False
    await asyncio.gather(*tasks)


async def hit_within(gql: GraphQLClient, token: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await gql.query(MY_TASKS, token=token)
        response.ok()
        if response.headers.get("x-cache") == "HIT":
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"no cache hit within {seconds} s of Redis coming back")


async def test_redis_killed_mid_load_fails_no_request_and_caching_resumes(
    faulty: GraphQLClient, redis_process: RedisProcess
) -> None:
    account = await _register(faulty)
    load = Load(faulty, account)
    await run_load(load, 2.0, redis_process.kill)
    assert load.failures == []
    assert len(load.written) > 5
    assert load.slowest < MAX_STALL_SECONDS
    ready = await faulty.http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    redis_process.start()
    await hit_within(faulty, account.token, 10)
    assert (await faulty.http.get("/readyz")).json()["status"] == "ready"


async def test_redis_frozen_adds_bounded_delay_and_a_write_made_meanwhile_is_never_hidden(
    faulty: GraphQLClient, redis_process: RedisProcess
) -> None:
    account = await _register(faulty)
    await create_task(faulty, account, title="before")
    await faulty.query(MY_TASKS, token=account.token)
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "HIT"
    load = Load(faulty, account, written=["before"])
    await run_load(load, 2.0, lambda: redis_process.signal(signal.SIGSTOP))
    assert load.failures == []
    assert load.slowest < MAX_STALL_SECONDS
    # A read first opens the circuit, so the write after it sends no invalidation at all.
    assert (await faulty.query(MY_TASKS, token=account.token)).headers["x-cache"] == "MISS"
    await create_task(faulty, account, title="while frozen")
    redis_process.signal(signal.SIGCONT)  # Redis still holds the entries from before the freeze
    await asyncio.sleep(1.2)  # past the circuit's open time: Redis is used again
    for _ in range(3):
        edges = (await faulty.query(MY_TASKS, token=account.token)).ok()["tasks"]["edges"]
        assert {*load.written, "while frozen"} <= {edge["node"]["title"] for edge in edges}
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
