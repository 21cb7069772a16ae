"""Two server processes share PostgreSQL and Redis; thousands of random reads and writes go to either one.
After every acknowledged write, every later read, on either process, must reflect it: zero stale reads,
and zero answers holding another user's data. A share of the reads must be cache hits, or the test would
prove nothing about the cache.

Phase one is sequential, so every read is checked exactly against a model of the data: users, an admin,
task moves between owners, role changes and deactivation included. Phase two runs one client per user
concurrently (each the only writer of its own tasks), so reads are checked exactly against that user's
model while the others write.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.factories import PASSWORD, Account, promote_to_admin
from tests.graphql_client import operation
from tests.processes import servers_on
from tests.services import Services

SEED = int(os.environ.get("CONSISTENCY_SEED", "20261201"))
SEQUENTIAL_STEPS = 1500
CONCURRENT_STEPS_PER_USER = 400
USERS = 4
MAX_TASKS_PER_USER = 25

TASKS = "query Titles { tasks(first: 100) { edges { node { id title status owner { id } } } } }"
STATS = "query Counts { taskStats { total byStatus { status count } } }"
ONE = "query One($id: ID!) { task(id: $id) { id title status owner { id } } }"
ME = "query Who { me { id role isActive } }"
STATUSES = ("TODO", "IN_PROGRESS", "DONE")


@dataclass
class Task:
    id: str
    owner: str
    title: str
    status: str


@dataclass
class User:
    id: str
    email: str
    token: str
    role: str = "USER"
    active: bool = True


@dataclass
class Checks:
    reads: int = 0
    hits: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(message)


@dataclass
class Cluster:
    clients: list[httpx.AsyncClient]
    rng: random.Random
    checks: Checks = field(default_factory=Checks)

    def any(self) -> httpx.AsyncClient:
        return self.rng.choice(self.clients)

    async def send(
        self, client: httpx.AsyncClient, document: str, variables: dict[str, Any] | None, token: str | None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await client.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )

    async def write(self, document: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        response = await self.send(self.any(), document, variables, token)
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"])

    async def read(self, document: str, variables: dict[str, Any] | None, token: str) -> list[dict[str, Any]]:
        """The same read on every process at once (each must agree with the model)."""
        responses = await asyncio.gather(*(self.send(c, document, variables, token) for c in self.clients))
        self.checks.reads += len(responses)
        self.checks.hits += sum(r.headers.get("x-cache") == "HIT" for r in responses)
        return [r.json() for r in responses]


def visible(tasks: dict[str, Task], viewer: User) -> dict[str, Task]:
    return {k: t for k, t in tasks.items() if viewer.role == "ADMIN" or t.owner == viewer.id}


def check_reads(
    checks: Checks, step: str, viewer: User, answers: list[dict[str, Any]], tasks: dict[str, Task]
) -> None:
    expected = {(t.id, t.title, t.status, t.owner) for t in visible(tasks, viewer).values()}
    for number, answer in enumerate(answers):
        if "errors" in answer:
            checks.fail(f"{step}: process {number} answered {answer['errors']}")
            continue
        seen = {
            (e["node"]["id"], e["node"]["title"], e["node"]["status"], e["node"]["owner"]["id"])
            for e in answer["data"]["tasks"]["edges"]
        }
        if seen != expected:
            foreign = {s for s in seen if viewer.role != "ADMIN" and s[3] != viewer.id}
            checks.fail(
                f"{step}: process {number} for {viewer.email} ({viewer.role}): missing "
                f"{sorted(expected - seen)[:3]}, unexpected {sorted(seen - expected)[:3]}, foreign {foreign}"
            )


def check_stats(
    checks: Checks, step: str, viewer: User, answers: list[dict[str, Any]], tasks: dict[str, Task]
) -> None:
    mine = visible(tasks, viewer).values()
    expected = {status: sum(t.status == status for t in mine) for status in STATUSES}
    for number, answer in enumerate(answers):
        stats = answer.get("data", {}).get("taskStats") if "errors" not in answer else None
        got = {row["status"]: row["count"] for row in stats["byStatus"]} if stats else None
        if got != expected:
            checks.fail(f"{step}: process {number} stats for {viewer.email}: {got} != {expected}")


@pytest.fixture(scope="module")
def servers(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    folder = tmp_path_factory.mktemp("consistency")
    # Thousands of operations by a few users from one address: budgets far above what they spend (the
    # charging still runs, hits included), so that what is checked is consistency, not rate limits.
    unlimited = dict.fromkeys(("RATE_LIMIT_POINTS", "RATE_LIMIT_ANONYMOUS_POINTS"), "1000000000")
    with servers_on(database.database_url, database.redis_url, folder, count=2, **unlimited) as bases:
        yield bases


@pytest.fixture
async def cluster(servers: list[str]) -> AsyncIterator[Cluster]:
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for base in servers]
    try:
        yield Cluster(clients, random.Random(SEED))
    finally:
        for client in clients:
            await client.aclose()


async def register(cluster: Cluster, number: int) -> User:
    email = f"consistency{number}@example.com"
    data = await cluster.write(
        operation("Register"), {"input": {"email": email, "password": PASSWORD, "name": email}}, ""
    )
    return User(data["register"]["user"]["id"], email, data["register"]["accessToken"])


async def login(cluster: Cluster, user: User) -> None:
    data = await cluster.write(operation("Login"), {"input": {"email": user.email, "password": PASSWORD}}, "")
    user.token = data["login"]["accessToken"]


async def sequential_step(
    cluster: Cluster, step: int, users: list[User], admin: User, tasks: dict[str, Task]
) -> None:
    rng = cluster.rng
    actor = rng.choice([*users, admin])
    kind = rng.choices(
        ["create", "update", "delete", "move", "role", "deactivate", "list", "stats", "one", "me"],
        weights=[14, 12, 6, 3, 2, 1, 30, 14, 12, 6],
    )[0]
    name = f"step {step} ({kind})"
    if not actor.active:
        await cluster.write(operation("SetUserActive"), {"userId": actor.id, "active": True}, admin.token)
        actor.active = True
        await login(cluster, actor)  # deactivation ended its sessions
    owned = [t for t in tasks.values() if t.owner == actor.id] if actor is not admin else list(tasks.values())
    if kind == "create" and len(owned) < MAX_TASKS_PER_USER:
        title = f"task {step}"
        data = await cluster.write(operation("CreateTask"), {"input": {"title": title}}, actor.token)
        created = data["createTask"]
        tasks[created["id"]] = Task(created["id"], actor.id, title, created["status"])
    elif kind == "update" and owned:
        task = rng.choice(owned)
        status, title = rng.choice(STATUSES), f"{task.title.split(' v')[0]} v{step}"
        await cluster.write(
            operation("UpdateTask"), {"id": task.id, "input": {"status": status, "title": title}}, actor.token
        )
        task.status, task.title = status, title
    elif kind == "delete" and owned:
        task = rng.choice(owned)
        await cluster.write(operation("DeleteTask"), {"id": task.id}, actor.token)
        del tasks[task.id]
    elif kind == "move" and tasks:
        task, target = rng.choice(list(tasks.values())), rng.choice(users)
        await cluster.write(
            operation("UpdateTask"), {"id": task.id, "input": {"ownerId": target.id}}, admin.token
        )
        task.owner = target.id
    elif kind == "role":
        user = rng.choice(users)
        role = "ADMIN" if user.role == "USER" else "USER"
        await cluster.write(operation("SetUserRole"), {"userId": user.id, "role": role}, admin.token)
        user.role = role
    elif kind == "deactivate":
        user = rng.choice(users)
        await cluster.write(operation("SetUserActive"), {"userId": user.id, "active": False}, admin.token)
        user.active = False
        answers = await cluster.read(TASKS, None, user.token)
        if not all(
            a.get("errors", [{}])[0].get("extensions", {}).get("code") == "UNAUTHENTICATED" for a in answers
        ):
            cluster.checks.fail(f"{name}: a deactivated account was answered: {answers}")
    elif kind == "stats":
        check_stats(cluster.checks, name, actor, await cluster.read(STATS, None, actor.token), tasks)
    elif kind == "one" and tasks:
        task = rng.choice(list(tasks.values()))
        for number, answer in enumerate(await cluster.read(ONE, {"id": task.id}, actor.token)):
            allowed = actor.role == "ADMIN" or task.owner == actor.id
            got = answer.get("data", {}).get("task") if "errors" not in answer else None
            want = {"id": task.id, "title": task.title, "status": task.status, "owner": {"id": task.owner}}
            if (got == want) != allowed or (not allowed and got is not None):
                cluster.checks.fail(
                    f"{name}: process {number} task for {actor.email}: {answer} (allowed {allowed})"
                )
    elif kind == "me":
        for number, answer in enumerate(await cluster.read(ME, None, actor.token)):
            if answer.get("data", {}).get("me") != {"id": actor.id, "role": actor.role, "isActive": True}:
                cluster.checks.fail(f"{name}: process {number} me of {actor.email}: {answer}")
    else:
        check_reads(cluster.checks, name, actor, await cluster.read(TASKS, None, actor.token), tasks)


async def test_every_read_after_an_acknowledged_write_reflects_it_on_both_processes(
    cluster: Cluster, database: Services
) -> None:
    users = [await register(cluster, number) for number in range(USERS)]
    admin = await register(cluster, 99)
    await promote_to_admin(database.dsn, Account(admin.id, admin.email, admin.token, ""))
    admin.role = "ADMIN"
    tasks: dict[str, Task] = {}
    for step in range(SEQUENTIAL_STEPS):
        await sequential_step(cluster, step, users, admin, tasks)
    checks = cluster.checks
    assert checks.failures == [], f"seed {SEED}: " + "\n".join(checks.failures)
    assert checks.reads > 2000
    assert checks.hits > checks.reads * 0.1, f"only {checks.hits} of {checks.reads} reads were cache hits"


async def concurrent_client(cluster: Cluster, user: User, steps: int, rng: random.Random) -> None:
    tasks: dict[str, Task] = {}
    for step in range(steps):
        name = f"{user.email} step {step}"
        kind = rng.choices(["create", "update", "delete", "list", "stats"], weights=[20, 15, 8, 40, 17])[0]
        if kind == "create" and len(tasks) < MAX_TASKS_PER_USER:
            data = await cluster.write(operation("CreateTask"), {"input": {"title": name}}, user.token)
            tasks[data["createTask"]["id"]] = Task(data["createTask"]["id"], user.id, name, "TODO")
        elif kind == "update" and tasks:
            task = rng.choice(list(tasks.values()))
            task.status = rng.choice(STATUSES)
            await cluster.write(
                operation("UpdateTask"), {"id": task.id, "input": {"status": task.status}}, user.token
            )
        elif kind == "delete" and tasks:
            task = tasks.pop(rng.choice(list(tasks)))
            await cluster.write(operation("DeleteTask"), {"id": task.id}, user.token)
        elif kind == "stats":
            check_stats(cluster.checks, name, user, await cluster.read(STATS, None, user.token), tasks)
        else:
            check_reads(cluster.checks, name, user, await cluster.read(TASKS, None, user.token), tasks)


async def test_concurrent_writers_each_read_their_own_writes_on_both_processes(cluster: Cluster) -> None:
    users = [await register(cluster, 10 + number) for number in range(USERS)]
    await asyncio.gather(
        *(
            concurrent_client(cluster, user, CONCURRENT_STEPS_PER_USER, random.Random(SEED + number))
            for number, user in enumerate(users)
        )
    )
    checks = cluster.checks
    assert checks.failures == [], f"seed {SEED}: " + "\n".join(checks.failures)
    assert checks.hits > checks.reads * 0.1, f"only {checks.hits} of {checks.reads} reads were cache hits"
