"""A taskql process killed (SIGKILL) in the middle of a stream of mutations loses no acknowledged write and
leaves none half-applied. Clients write concurrently, each to its own tasks; then the process is killed,
PostgreSQL is read directly, and the process is started again to read the tasks through the API.

Every write carries a version in every field it sets (title, description, tags, status, priority), so a
task whose fields disagree would be a write half-applied; an acknowledged version missing, a write lost.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from core.ids import encode_id
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import TEST_SECRET, TaskqlProcess, environment
from tests.services import Services

USERS = 4
CLIENTS_PER_USER = 2
MAX_TASKS_PER_CLIENT = 40  # a user's tasks fit one page of 100
KILL_AFTER_WRITES = 150  # acknowledged, across all clients: the kill comes mid-stream, however fast it runs
STATUSES = ("TODO", "IN_PROGRESS", "DONE")
PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
TITLE = re.compile(r"^(?P<base>c\d+-\d+) v(?P<version>\d+)$")
MY_TASKS = "query Mine { tasks(first: 100) { edges { node { id title } } } }"


def fields(base: str, client: int, version: int) -> dict[str, Any]:
    """Every field a write sets, all saying its version."""
    return {
        "title": f"{base} v{version}",
        "description": f"v{version}",
        "tags": [f"v{version}", f"c{client}"],
        "status": STATUSES[version % 3],
        "priority": PRIORITIES[version % 4],
    }


@dataclass
class Progress:
    """Acknowledged writes across all clients, and the moment there are enough to kill the server."""

    writes: int = 0
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def acknowledged(self) -> None:
        self.writes += 1
        if self.writes >= KILL_AFTER_WRITES:
            self.enough.set()


@dataclass
class Writer:
    """One client: the only one to change the tasks it created, so it knows what each must hold."""

    number: int
    user: Account
    http: httpx.AsyncClient
    rng: random.Random
    progress: Progress
    acknowledged: dict[str, int] = field(default_factory=dict)  # task id: the last version acknowledged
    attempted: dict[str, int] = field(default_factory=dict)  # task id: the highest version sent
    bases: dict[str, str] = field(default_factory=dict)  # task id: its title without the version
    deleted: set[str] = field(default_factory=set)  # acknowledged deletions
    deleting: set[str] = field(default_factory=set)  # deletions sent
    creating: set[str] = field(default_factory=set)  # titles of creations sent but not acknowledged
    cut_off: str | None = None  # how the request in flight ended when the server died

    async def send(self, name: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The mutation's data; None when the server went away (its outcome is unknown)."""
        try:
            response = await self.http.post(
                "/graphql",
                json={"query": operation(name), "variables": variables},
                headers={"authorization": f"Bearer {self.user.token}"},
            )
        except httpx.TransportError as error:
            self.cut_off = type(error).__name__
            return None
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body
        self.progress.acknowledged()
        return dict(body["data"])

    async def run(self) -> None:
        for step in range(100_000):
            live = [task for task in self.acknowledged if task not in self.deleting]
            choice = self.rng.random()
            if len(live) < 3 or (choice < 0.3 and len(self.bases) < MAX_TASKS_PER_CLIENT):
                done = await self.create(f"c{self.number}-{step}")
            elif choice < 0.85:
                done = await self.update(self.rng.choice(live))
            else:
                done = await self.delete(self.rng.choice(live))
            if not done:
                return

    async def create(self, base: str) -> bool:
        self.creating.add(base)
        data = await self.send("CreateTask", {"input": fields(base, self.number, 0)})
        if data is None:
            return False
        task = data["createTask"]["id"]
        self.creating.discard(base)
        self.bases[task], self.acknowledged[task], self.attempted[task] = base, 0, 0
        return True

    async def update(self, task: str) -> bool:
        version = self.attempted[task] + 1
        self.attempted[task] = version
        data = await self.send(
            "UpdateTask", {"id": task, "input": fields(self.bases[task], self.number, version)}
        )
        if data is None:
            return False
        self.acknowledged[task] = version
        return True

    async def delete(self, task: str) -> bool:
        self.deleting.add(task)
        if await self.send("DeleteTask", {"id": task}) is None:
            return False
        self.deleted.add(task)
        return True


@pytest.fixture
def taskql(database: Services, tmp_path: Path) -> Iterator[TaskqlProcess]:
    env = environment(
        DATABASE_URL=database.database_url,
        REDIS_URL=database.redis_url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
    )
    server = TaskqlProcess(env, tmp_path)
    server.start()
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()


async def rows_in_postgres(dsn: str) -> dict[str, asyncpg.Record]:
    """Every task, read directly from PostgreSQL, by global id."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT id, owner_id, title, description, tags, status, priority, completed_at FROM tasks"
        )
    finally:
        await connection.close()
    return {encode_id("Task", row["id"]): row for row in rows}


def version_of(title: str) -> int | None:
    match = TITLE.match(title)
    return int(match["version"]) if match else None


def check_whole(row: asyncpg.Record, writer: Writer) -> list[str]:
    """A task as one write left it: every field of one version, and its owner the writer's user."""
    match = TITLE.match(row["title"])
    if match is None or not match["base"].startswith(f"c{writer.number}-"):
        return [f"{row['title']!r}: not a title this test wrote"]
    version = int(match["version"])
    expected = fields(match["base"], writer.number, version)
    found = {name: row[name] for name in ("title", "description", "status", "priority")}
    found["tags"] = list(row["tags"])
    problems = [
        f"{row['title']!r}: {name} is {found[name]!r}" for name in found if found[name] != expected[name]
    ]
    if (row["completed_at"] is not None) != (expected["status"] == "DONE"):
        problems.append(f"{row['title']!r}: completed_at {row['completed_at']} with status {row['status']}")
    if encode_id("User", row["owner_id"]) != writer.user.id:
        problems.append(f"{row['title']!r}: owned by someone else")
    return problems


def check_writer(writer: Writer, rows: dict[str, asyncpg.Record]) -> list[str]:
    problems: list[str] = []
    for task, acknowledged in writer.acknowledged.items():
        row = rows.get(task)
        if task in writer.deleted:
            if row is not None:
                problems.append(f"{task}: deletion acknowledged, still there")
            continue
        if row is None:
            if task not in writer.deleting:
                problems.append(f"{task} ({writer.bases[task]} v{acknowledged}): acknowledged, lost")
            continue
        problems += check_whole(row, writer)
        version = version_of(row["title"])
        if version is None or not acknowledged <= version <= writer.attempted[task]:
            problems.append(f"{task}: version {version}, acknowledged {acknowledged}")
    return problems


async def test_a_server_killed_mid_stream_loses_no_acknowledged_write_and_half_applies_none(
    taskql: TaskqlProcess, database: Services
) -> None:
    rng = random.Random(20261201)
    async with httpx.AsyncClient(base_url=taskql.url, timeout=30) as http:
        users = [await register(GraphQLClient(http)) for _ in range(USERS)]
    clients = [httpx.AsyncClient(base_url=taskql.url, timeout=30) for _ in range(USERS * CLIENTS_PER_USER)]
    progress = Progress()
    writers = [
        Writer(number, users[number % USERS], client, random.Random(rng.random()), progress)
        for number, client in enumerate(clients)
    ]
    try:
        running = [asyncio.create_task(writer.run()) for writer in writers]
        await asyncio.wait_for(progress.enough.wait(), 60)
        taskql.kill()
        await asyncio.wait_for(asyncio.gather(*running), 30)
    finally:
        for client in clients:
            await client.aclose()
    # Requests the server had received when it died end with the connection, not with an answer.
    assert any(writer.cut_off in {"RemoteProtocolError", "ReadError"} for writer in writers), [
        writer.cut_off for writer in writers
    ]
    assert "Traceback" not in taskql.output(), taskql.output()

    rows = await rows_in_postgres(database.dsn)
    problems = [problem for writer in writers for problem in check_writer(writer, rows)]
    known = {task for writer in writers for task in writer.acknowledged}
    for task, row in rows.items():
        if task in known:
            continue
        # A creation in flight when the server died may have committed: then it is whole.
        writer = next((w for w in writers if row["title"].split(" v")[0] in w.creating), None)
        if writer is None:
            problems.append(f"{row['title']!r}: in PostgreSQL, never sent")
        else:
            problems += check_whole(row, writer)
    assert problems == []

    taskql.start()  # the same port: clients come back to it
    async with httpx.AsyncClient(base_url=taskql.url, timeout=30) as http:
        for user in users:
            gql = GraphQLClient(http)
            listed = {
                edge["node"]["id"]: edge["node"]["title"]
                for edge in (await gql.query(MY_TASKS, token=user.token)).ok()["tasks"]["edges"]
            }
            for writer in (w for w in writers if w.user is user):
                for task, acknowledged in writer.acknowledged.items():
                    if task in writer.deleted:
                        assert task not in listed
                    elif task not in writer.deleting:
                        version = version_of(listed.get(task, ""))
                        assert version is not None, f"{task}: acknowledged, not listed"
                        assert version >= acknowledged
