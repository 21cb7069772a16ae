"""Subscriptions with the real ``graphql-ws`` client from npm (``createClient`` over the ``ws`` package),
unmodified, against a live server process: live events, resuming from a cursor, and a refused token.

``tests/js/graphql_ws.mjs`` subscribes to ``taskEvents`` and prints what the client reports, one JSON line
at a time (see its header); these tests create tasks over HTTP and read those lines as they come.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient
from tests.node import JS, needs_node, node_with_packages
from tests.processes import servers_on
from tests.services import Services

pytestmark = needs_node


@dataclass
class Server:
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


@dataclass
class Script:
    """One run of graphql_ws.mjs: one client, one subscription."""

    process: asyncio.subprocess.Process
    reports: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def start(cls, node: str, url: str, token: str, after: str | None = None) -> Script:
        process = await asyncio.create_subprocess_exec(
            node,
            "graphql_ws.mjs",
            url,
            token,
            *([after] if after is not None else []),
            cwd=JS,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        script = cls(process)
        start = await script.report()
        assert start["type"] == "start", script.explain()
        return script

    async def report(self, timeout: float = 15) -> dict[str, Any]:
        """The client's next report; TimeoutError if none comes in time."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no report within {timeout} s\n{self.explain()}") from None
        if not line:
            raise AssertionError(f"the script ended without a word more\n{await self._stderr()}")
        report: dict[str, Any] = json.loads(line)
        self.reports.append(report)
        return report

    async def connected(self) -> None:
        report = await self.report()
        assert report == {"type": "connected"}, self.explain()

    async def event(self, timeout: float = 15) -> dict[str, Any]:
        """The next task event (asserting the next report is one)."""
        report = await self.report(timeout)
        assert report["type"] == "next", self.explain()
        assert "errors" not in report["payload"], self.explain()
        event: dict[str, Any] = report["payload"]["data"]["taskEvents"]
        return event

    async def silent_for(self, seconds: float) -> bool:
        try:
            report = await self.report(timeout=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected nothing, got {report}\n{self.explain()}")

    async def until_exit(self) -> list[dict[str, Any]]:
        """Every report until the script's last one; asserts it exited 0."""
        start = len(self.reports)
        while (await self.report())["type"] != "exit":
            pass
        assert await asyncio.wait_for(self.process.wait(), 15) == 0, self.explain()
        return self.reports[start:]

    async def stop(self) -> list[dict[str, Any]]:
        """Close the script's standard input: it unsubscribes and disposes of its client. Its last reports."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return await self.until_exit()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

    def explain(self) -> str:
        return "reports so far:\n" + "\n".join(json.dumps(report) for report in self.reports)

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


@pytest.fixture(scope="module")
def server(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    node_with_packages()  # before the server starts: fails at once in CI without node
    folder = tmp_path_factory.mktemp("graphql-ws")
    with servers_on(database.database_url, database.redis_url, folder) as (base,):
        yield Server(int(base.rsplit(":", 1)[1]))


@pytest.fixture
async def gql(server: Server) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        yield GraphQLClient(http)


@pytest.fixture
async def alice(gql: GraphQLClient) -> Account:
    return await register(gql, email="alice@example.com", name="Alice")


@pytest.fixture
async def scripts() -> AsyncIterator[list[Script]]:
    """The scripts a test started; any still running at its end is killed."""
    started: list[Script] = []
    yield started
    for script in started:
        script.kill()
        await script.process.wait()


async def subscribe(
    scripts: list[Script], server: Server, account: Account, after: str | None = None
) -> Script:
    script = await Script.start(node_with_packages(), server.ws, account.token, after)
    scripts.append(script)
    await script.connected()
    return script


async def until_live(script: Script, gql: GraphQLClient, account: Account) -> list[str]:
    """Wait until the subscription delivers; the titles of the probe tasks it has still to report.

    ``connected`` comes with connection_ack, before the client even sends its subscribe message, and the
    protocol acknowledges no subscription: the server starts it a moment later, from the events that come
    after that. So create probe tasks one at a time until one arrives. The probes created after the first
    one to arrive (usually none) are then delivered too, in order, before anything else.
    """
    probes: list[str] = []
    for number in range(20):
        probes.append((await create_task(gql, account, title=f"probe {number}"))["title"])
        try:
            first = await script.event(timeout=0.5)
        except TimeoutError:
            continue
        assert first["task"]["title"] in probes, script.explain()
        return probes[probes.index(first["task"]["title"]) + 1 :]
    raise AssertionError(f"no probe reached the subscriber in 20 tries\n{script.explain()}")


def created(tasks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [("CREATED", task["id"]) for task in tasks]


def kinds_and_ids(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event["kind"], event["taskId"]) for event in events]


async def test_the_graphql_ws_client_receives_each_new_task_once_and_in_order(
    server: Server, gql: GraphQLClient, alice: Account, scripts: list[Script]
) -> None:
    script = await subscribe(scripts, server, alice)
    pending = await until_live(script, gql, alice)
    tasks = [await create_task(gql, alice, title=f"live {number}") for number in range(3)]

    events = [await script.event() for _ in range(len(pending) + len(tasks))]
    assert [event["task"]["title"] for event in events] == [*pending, "live 0", "live 1", "live 2"]
    mine = events[len(pending) :]
    assert kinds_and_ids(mine) == created(tasks)
    assert [event["task"]["id"] for event in mine] == [task["id"] for task in tasks]
    assert len({event["cursor"] for event in events}) == len(events)
    assert await script.silent_for(0.5)


async def test_the_graphql_ws_client_resumes_after_its_last_cursor_with_no_gap_and_no_duplicate(
    server: Server, gql: GraphQLClient, alice: Account, scripts: list[Script]
) -> None:
    first = await subscribe(scripts, server, alice)
    pending = await until_live(first, gql, alice)
    await create_task(gql, alice, title="seen")
    seen = [await first.event() for _ in range(len(pending) + 1)]
    assert [event["task"]["title"] for event in seen] == [*pending, "seen"]
    assert [report["type"] for report in await first.stop()] == ["complete", "closed", "exit"]
    missed = [await create_task(gql, alice, title=f"missed {number}") for number in range(5)]

    resumed = await subscribe(scripts, server, alice, after=seen[-1]["cursor"])
    replayed = [await resumed.event() for _ in missed]
    assert kinds_and_ids(replayed) == created(missed)
    # It is live now (it registers before it replays): what comes next was created after it started.
    live = [await create_task(gql, alice, title=f"live {number}") for number in range(2)]
    after = [await resumed.event() for _ in live]
    assert kinds_and_ids(after) == created(live)
    assert await resumed.silent_for(0.5)  # nothing twice at the seam
    cursors = [event["cursor"] for event in [*seen, *replayed, *after]]
    assert len(set(cursors)) == len(cursors)


async def test_the_graphql_ws_client_reports_a_refused_token_as_a_4403_close(
    server: Server, scripts: list[Script]
) -> None:
    script = await Script.start(node_with_packages(), server.ws, "not-a-token")
    scripts.append(script)
    reports = await script.until_exit()
    assert [report["type"] for report in reports] == ["closed", "error", "exit"], script.explain()
    closed, error, _ = reports
    assert (closed["code"], error["code"]) == (4403, 4403), script.explain()
    assert closed["reason"] == error["reason"] == "Forbidden"
