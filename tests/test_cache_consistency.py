"""Two server processes share PostgreSQL and Redis; thousands of random reads and writes go to either one.
After every acknowledged write, every later read, on either process, must reflect it: zero stale reads,
and zero answers holding what the viewer may not see. A share of the reads must be cache hits, or the test
would prove nothing about the cache.

Phase one is sequential, so every read is checked exactly against a model of the data
(``tests.consistency_model``): users, an admin, personal tasks, shared projects with members and roles
(invitations accepted by verified addresses, roles changed, ownership handed over, members removed or
leaving), tasks created in, moved between and out of projects, assigned, commented; plus task moves between
owners, account role changes and deactivation. Every user holds a ``taskEvents`` subscription (alternating
processes): after each write, each subscriber the write owes an event must get exactly that event (no
loss), and at the end, after a last marker write each subscriber must receive, no subscriber may hold an
event nobody owed them: none about a task they could not see before or after the write (zero events to a
non-member), nor about a task of another deployment sharing the Redis server (its pub/sub channels span
the server's databases).

Phase two runs one client per user concurrently, each the only writer of its own tasks, its own project
and their comments, so reads are checked exactly against that user's model while the others write, and each
user's subscription must carry exactly their own writes' events, in order.

Phase three removes a member and adds them again, over and over, while an editor changes the project's
tasks: from each removal's acknowledgment on, the member reads nothing of the project and is told no event
of a write sent after it (until the next addition).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from taskql.outbox.relay import stream_key
from taskql.realtime.hub import encode_cursor
from tests.consistency_model import (
    Checks,
    Comment,
    Feed,
    Invitation,
    Owed,
    Pair,
    Project,
    Sight,
    Task,
    TaskChange,
    User,
    World,
    Written,
    owed_by,
    task_row,
)
from tests.factories import PASSWORD, Account, promote_to_admin
from tests.graphql_client import operation
from tests.processes import servers_on
from tests.services import Services
from tests.teams import verify_address

SEED = int(os.environ.get("CONSISTENCY_SEED", "20261201"))
SEQUENTIAL_STEPS = 2000
CONCURRENT_STEPS_PER_USER = 400
USERS = 4
MAX_TASKS = 60  # all of them fit on one page of an admin's list
MAX_PROJECTS = 6
MAX_COMMENTS = 60
EVENT_TIMEOUT = 5.0  # for an owed event (they come in milliseconds); 0.3 s once one was lost
CLOSE_TIMEOUT = 10.0  # for the socket of a deactivated account, or of one whose role changed

TASK_FIELDS = "id title status owner { id } project { id name } assignee { id }"
TASKS = (
    "query Tasks($filter: TaskFilter) "
    f"{{ tasks(first: 100, filter: $filter) {{ edges {{ node {{ {TASK_FIELDS} }} }} }} }}"
)
STATS = "query Counts { taskStats { total byStatus { status count } } }"
ONE = f"query One($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"
NODE = f"query Node($id: ID!) {{ node(id: $id) {{ id ... on Task {{ {TASK_FIELDS} }} }} }}"
ME = "query Who { me { id role isActive } }"
PROJECTS = "query Projects { projects(first: 100) { edges { node { id name viewerRole } } } }"
MEMBERS = """query Members($id: ID!) { node(id: $id) { id ... on Project {
  name viewerRole members(first: 100) { edges { node { role user { id } } } } } } }"""
COMMENTS = """query Talk($id: ID!) { task(id: $id) {
  id comments(first: 100) { edges { node { id body author { id } } } } } }"""
COMMENT = "query Said($id: ID!) { node(id: $id) { id ... on Comment { body author { id } } } }"
INVITATIONS = "query Invited { myInvitations { id role project { id } } }"
STATUSES = ("TODO", "IN_PROGRESS", "DONE")
NOT_FOUND = "NOT_FOUND"

# Sequential steps: writes, then reads (each read goes to both processes at once, and each answer is checked).
STEPS = {
    "create": 5, "project_task": 6, "update": 6, "delete": 4, "give": 2, "assign": 5, "place": 5,
    "comment": 5, "uncomment": 3, "edit_comment": 1, "project": 2, "rename": 2, "drop_project": 0.6,
    "invite": 4, "accept": 2.5, "decline": 0.5, "set_role": 3, "remove": 2, "leave": 1.5, "role": 1,
    "deactivate": 0.7, "trespass": 3,
    "list": 22, "stats": 7, "one": 11, "me": 2, "projects": 6, "members": 6, "comments": 6, "invitations": 2,
}  # fmt: skip


class Diverged(Exception):
    """A write the model expected to succeed was refused (or one it expected refused went through): the
    model no longer describes the data, so the phase stops there (the failure is recorded)."""


@dataclass
class Cluster:
    clients: list[httpx.AsyncClient]
    rng: random.Random
    checks: Checks = field(default_factory=Checks)
    turn: int = 0

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
        """The same read on each process, one after the other, the first in turn (each answer must agree
        with the model; the second is often the cache entry the first left, read by the other process)."""
        self.turn += 1
        answers: dict[int, dict[str, Any]] = {}
        for number in [*range(len(self.clients))][self.turn % 2 :] + [*range(len(self.clients))][
            : self.turn % 2
        ]:
            response = await self.send(self.clients[number], document, variables, token)
            answers[number] = {**response.json(), "cache": response.headers.get("x-cache")}
            self.checks.reads += 1
            self.checks.hits += answers[number]["cache"] == "HIT"
        return [answers[number] for number in range(len(self.clients))]  # by process


def who(user: User) -> str:
    return f"{user.email} ({user.role})"


def codes(answer: dict[str, Any]) -> list[str | None]:
    return [error.get("extensions", {}).get("code") for error in answer.get("errors") or []]


def difference(expected: Any, got: Any) -> str:
    if isinstance(expected, set) and isinstance(got, set):
        return (
            f"missing {sorted(expected - got, key=str)[:3]}, unexpected {sorted(got - expected, key=str)[:3]}"
        )
    return f"expected {expected}, got {got}"


def judge(
    checks: Checks,
    what: str,
    viewer: User,
    answers: list[dict[str, Any]],
    expected: Any,
    got_of: Callable[[dict[str, Any]], Any],
    leaked: Callable[[Any], bool],
) -> None:
    """Each process's answer against the model: ``expected`` (NOT_FOUND: that error and nothing else).
    A wrong answer holding something the viewer may not see is a foreign row; any other, a stale read."""
    for number, answer in enumerate(answers):
        errors, data = answer.get("errors"), answer.get("data")
        where = f"{what}: process {number} ({answer['cache']}) for {who(viewer)}"
        if expected == NOT_FOUND:
            if codes(answer) == [NOT_FOUND]:
                continue
            if errors:
                checks.fail("wrong error", f"{where}: expected NOT_FOUND, got {errors}")
                continue
            got = got_of(data or {})
            kind = "foreign row" if leaked(got) else "stale read"
            checks.fail(kind, f"{where}: expected NOT_FOUND, got {got}")
            continue
        if errors or data is None:
            checks.fail("error", f"{where}: expected {expected}, got {errors}")
            continue
        got = got_of(data)
        if got != expected:
            kind = "foreign row" if leaked(got) else "stale read"
            checks.fail(kind, f"{where}: {difference(expected, got)}")


# -- Reads, each checked exactly against the model


async def read_list(
    cluster: Cluster, name: str, world: World, viewer: User, rng: random.Random, *, variant: str = "all"
) -> None:
    """The viewer's task list: everything they see, a project's tasks, or the tasks assigned to them."""
    tasks: list[Task] = world.visible_tasks(viewer)
    filter_: dict[str, Any] | None = None
    seen = True
    if variant == "project" and (world.projects or world.gone_projects):
        project_id = rng.choice([*world.projects, *world.gone_projects[-2:]])
        filter_ = {"projectId": project_id}
        tasks = [t for t in world.tasks.values() if t.project == project_id]
        seen = world.sees_project(viewer, project_id)
    elif variant == "mine":
        filter_ = {"assignedToMe": True}
        tasks = [t for t in tasks if t.assignee == viewer.id]
    expected: Any = {world.task_row(task) for task in tasks} if seen else NOT_FOUND
    answers = await cluster.read(TASKS, {"filter": filter_}, viewer.token)

    def leaked(rows: set[tuple[Any, ...]]) -> bool:
        return any(row[0] in world.tasks and not world.sees(viewer, world.tasks[row[0]]) for row in rows)

    def rows(data: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {task_row(edge["node"]) for edge in data["tasks"]["edges"]} if data.get("tasks") else set()

    judge(cluster.checks, f"{name}: tasks {filter_}", viewer, answers, expected, rows, leaked)


async def read_stats(cluster: Cluster, name: str, world: World, viewer: User) -> None:
    """The viewer's statistics: every task for an admin; else their own tasks that they see. Counting one
    they own but may not see (in a project they left) tells them of a task not theirs to see."""
    if viewer.admin:
        mine = list(world.tasks.values())
        owned = mine
    else:
        owned = [t for t in world.tasks.values() if t.owner == viewer.id]
        mine = [t for t in owned if world.sees(viewer, t)]
    expected = {status: sum(t.status == status for t in mine) for status in STATUSES}
    counted = {status: sum(t.status == status for t in owned) for status in STATUSES}
    for number, answer in enumerate(await cluster.read(STATS, None, viewer.token)):
        stats = (answer.get("data") or {}).get("taskStats") if "errors" not in answer else None
        got = {row["status"]: row["count"] for row in stats["byStatus"]} if stats else None
        if got == expected:
            continue
        where = f"{name}: process {number} ({answer['cache']}) stats for {who(viewer)}"
        if got == counted:
            hidden = [(t.id, t.project, t.status) for t in owned if not world.sees(viewer, t)]
            cluster.checks.fail(
                "stats count tasks the viewer may not see",
                f"{where}: {got} != {expected}; counted the tasks they own but do not see: {hidden}",
            )
        else:
            cluster.checks.fail("stale read", f"{where}: {got} != {expected} (owned: {counted})")


async def read_one(cluster: Cluster, name: str, world: World, viewer: User, rng: random.Random) -> None:
    """One task by id, by ``task`` or ``node``: NOT_FOUND unless the viewer sees it."""
    candidates = [*world.tasks, *world.gone_tasks[-5:]]
    if not candidates:
        return
    task_id = rng.choice(candidates)
    by_node = rng.random() < 0.4
    task = world.tasks.get(task_id)
    expected: Any = world.task_row(task) if task is not None and world.sees(viewer, task) else NOT_FOUND
    answers = await cluster.read(NODE if by_node else ONE, {"id": task_id}, viewer.token)

    def row(data: dict[str, Any]) -> Any:
        node = data.get("node" if by_node else "task")
        return task_row(node) if node is not None else None

    def leaked(got: Any) -> bool:
        return got is not None and task is not None and not world.sees(viewer, task)

    what = f"{name}: {'node' if by_node else 'task'}({task_id})"
    judge(cluster.checks, what, viewer, answers, expected, row, leaked)


async def read_me(cluster: Cluster, name: str, viewer: User) -> None:
    for number, answer in enumerate(await cluster.read(ME, None, viewer.token)):
        if answer.get("data", {}).get("me") != {"id": viewer.id, "role": viewer.role, "isActive": True}:
            cluster.checks.fail("stale read", f"{name}: process {number} me of {who(viewer)}: {answer}")


async def read_projects(cluster: Cluster, name: str, world: World, viewer: User) -> None:
    """The viewer's projects (an admin's: all), with the viewer's role in each."""
    expected = {
        (p.id, p.name, p.members.get(viewer.id))
        for p in world.projects.values()
        if world.sees_project(viewer, p.id)
    }

    def rows(data: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {
            (e["node"]["id"], e["node"]["name"], e["node"]["viewerRole"]) for e in data["projects"]["edges"]
        }

    def leaked(got: set[tuple[Any, ...]]) -> bool:
        return any(row[0] in world.projects and not world.sees_project(viewer, row[0]) for row in got)

    answers = await cluster.read(PROJECTS, None, viewer.token)
    judge(cluster.checks, f"{name}: projects", viewer, answers, expected, rows, leaked)


async def read_members(cluster: Cluster, name: str, world: World, viewer: User, rng: random.Random) -> None:
    """A project's name, the viewer's role and its members, earliest first: NOT_FOUND to a non-member."""
    candidates = [*world.projects, *world.gone_projects[-2:]]
    if not candidates:
        return
    project_id = rng.choice(candidates)
    project = world.projects.get(project_id)
    expected: Any = NOT_FOUND
    if project is not None and world.sees_project(viewer, project_id):
        expected = (project.name, project.members.get(viewer.id), list(project.members.items()))

    def shape(data: dict[str, Any]) -> Any:
        node = data.get("node")
        if node is None:
            return None
        members = [(e["node"]["user"]["id"], e["node"]["role"]) for e in node["members"]["edges"]]
        return (node["name"], node["viewerRole"], members)

    def leaked(got: Any) -> bool:
        return got is not None and project is not None and not world.sees_project(viewer, project_id)

    answers = await cluster.read(MEMBERS, {"id": project_id}, viewer.token)
    judge(cluster.checks, f"{name}: members of {project_id}", viewer, answers, expected, shape, leaked)


async def read_comments(cluster: Cluster, name: str, world: World, viewer: User, rng: random.Random) -> None:
    """A task's comments, oldest first, or one comment by ``node``: NOT_FOUND unless the viewer sees the
    task."""
    if rng.random() < 0.3 and (world.comments or world.gone_comments):
        comment_id = rng.choice([*world.comments, *world.gone_comments[-5:]])
        comment = world.comments.get(comment_id)
        task = world.tasks.get(comment.task) if comment is not None else None
        expected: Any = NOT_FOUND
        if comment is not None and task is not None and world.sees(viewer, task):
            expected = (comment.id, comment.body, comment.author)

        def one(data: dict[str, Any]) -> Any:
            node = data.get("node")
            return (node["id"], node["body"], node["author"]["id"]) if node is not None else None

        def leaked_one(got: Any) -> bool:
            return got is not None and task is not None and not world.sees(viewer, task)

        answers = await cluster.read(COMMENT, {"id": comment_id}, viewer.token)
        judge(cluster.checks, f"{name}: node({comment_id})", viewer, answers, expected, one, leaked_one)
        return
    candidates = [*world.tasks, *world.gone_tasks[-5:]]
    if not candidates:
        return
    task_id = rng.choice(candidates)
    found = world.tasks.get(task_id)
    expected = NOT_FOUND
    if found is not None and world.sees(viewer, found):
        expected = [(c.id, c.body, c.author) for c in world.comments.values() if c.task == task_id]

    def thread(data: dict[str, Any]) -> Any:
        node = data.get("task")
        if node is None:
            return None
        return [
            (e["node"]["id"], e["node"]["body"], e["node"]["author"]["id"]) for e in node["comments"]["edges"]
        ]

    def leaked(got: Any) -> bool:
        return got is not None and found is not None and not world.sees(viewer, found)

    answers = await cluster.read(COMMENTS, {"id": task_id}, viewer.token)
    judge(cluster.checks, f"{name}: comments of {task_id}", viewer, answers, expected, thread, leaked)


async def read_invitations(cluster: Cluster, name: str, world: World, viewer: User) -> None:
    expected = {(i.id, i.role, i.project) for i in world.invitations.values() if i.user == viewer.id}

    def rows(data: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {(i["id"], i["role"], i["project"]["id"]) for i in data["myInvitations"]}

    def leaked(got: set[tuple[Any, ...]]) -> bool:
        return any(
            row[0] not in world.invitations or world.invitations[row[0]].user != viewer.id for row in got
        )

    answers = await cluster.read(INVITATIONS, None, viewer.token)
    judge(cluster.checks, f"{name}: myInvitations", viewer, answers, expected, rows, leaked)


# -- Fixtures


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


async def latest_cursor(redis_url: str) -> str:
    """A cursor at the latest task event of all (the admins' stream holds every one), so that a subscription
    opened with it gets every event from now on, however long it takes the server to start it."""
    redis = Redis.from_url(redis_url)
    try:
        entries: Any = await redis.xrevrange(stream_key("*"), count=1)
        if entries:
            milliseconds, _, sequence = entries[0][0].decode().partition("-")
            return encode_cursor((int(milliseconds), int(sequence)))
        seconds, microseconds = await redis.time()
        return encode_cursor((int(seconds) * 1000 + int(microseconds) // 1000 - 1, 0))
    finally:
        await redis.aclose()


async def open_feeds(
    users: list[User], servers: list[str], after: str, clock: Callable[[], int]
) -> dict[str, Feed]:
    feeds = {user.id: Feed(user, servers, number % len(servers), clock) for number, user in enumerate(users)}
    for feed in feeds.values():
        feed.resume = after
        await feed.connect()
    return feeds


# -- Phase one: sequential, every read and every event checked exactly


class Sequential:
    def __init__(self, cluster: Cluster, world: World, admin: User, feeds: dict[str, Feed], dsn: str) -> None:
        self.cluster, self.world, self.admin, self.feeds, self.dsn = cluster, world, admin, feeds, dsn
        self.rng, self.checks = cluster.rng, cluster.checks
        self.step, self.name = -1, "setup"
        self.written: dict[str, Written] = {}  # cursor -> the write that told it
        self.pending: dict[str, list[tuple[str | None, list[Owed]]]] = {}  # owed to closed feeds
        self.event_timeout = EVENT_TIMEOUT
        self.tally: dict[str, int] = {}
        self.strays = 0  # events about tasks this test never made (see finish)

    def clock(self) -> int:
        return self.step

    @property
    def users(self) -> list[User]:
        return [user for user in self.world.users if user is not self.admin]

    # -- Writes

    async def write(self, name: str, variables: dict[str, Any], actor: User) -> dict[str, Any]:
        response = await self.cluster.send(self.cluster.any(), operation(name), variables, actor.token)
        body = response.json()
        if body.get("errors") or not body.get("data"):
            self.checks.fail(
                "write refused", f"{self.name}: {name} {variables} by {who(actor)} -> {body.get('errors')}"
            )
            raise Diverged
        return dict(body["data"])

    async def refused(self, name: str, variables: dict[str, Any], actor: User, code: str) -> None:
        """A write the viewer may not make: refused with ``code``, and nothing written."""
        response = await self.cluster.send(self.cluster.any(), operation(name), variables, actor.token)
        body = response.json()
        if codes(body) != [code]:
            kind = "trespass accepted" if not body.get("errors") else "wrong error"
            self.checks.fail(
                kind, f"{self.name}: {name} {variables} by {who(actor)}: expected {code}, got {body}"
            )
            if not body.get("errors"):
                raise Diverged

    async def ready(self, user: User) -> User:
        """An actor's account active (reactivated by the admin if it was not), its subscription open again
        and caught up with what it was owed while closed."""
        if user.active:
            return user
        await self.write("SetUserActive", {"userId": user.id, "active": True}, self.admin)
        user.active = True
        await login(self.cluster, user)  # deactivation ended its sessions
        feed = self.feeds[user.id]
        if not feed.open:
            await feed.connect()
        for cursor, items in self.pending.pop(user.id, []):
            # A project's event kept for them goes only if they are still a member (events._still_visible).
            kept = [
                item
                for item in items
                if user.admin
                or item.project is None
                or (
                    item.project in self.world.projects
                    and user.id in self.world.projects[item.project].members
                )
            ]
            if kept:
                await self.collect(feed, kept, cursor)
        return user

    async def settle(self, changes: list[TaskChange]) -> None:
        """The events the write owes, task by task (each task's events are told in an outbox row of their
        own, under one cursor): the admin's subscription gets each (which tells its cursor); then every other
        subscriber owed one must get exactly it (a closed one, when it is open again)."""
        for change in changes:
            owed = owed_by(self.step, change, self.world)
            cursor = await self.collect(self.feeds[self.admin.id], [owed.pop(self.admin.id)], None)
            for user_id, item in owed.items():
                user = self.world.user(user_id)
                if not user.active:
                    self.pending.setdefault(user_id, []).append((cursor, [item]))
                else:  # (if the admin's never came, the first that does tells the cursor)
                    cursor = await self.collect(self.feeds[user_id], [item], cursor) or cursor
            if cursor is not None:
                sights = {change.task_id: (change.before.audience, change.after.audience)}
                self.written[cursor] = Written(self.step, self.name, sights, self.world.admins())

    async def collect(self, feed: Feed, items: list[Owed], cursor: str | None) -> str | None:
        """Take the events ``items`` (of one write) off the feed; the cursor they came under (None: none
        came)."""
        found, missing = await feed.take(items, cursor, self.event_timeout, () if cursor else self.written)
        self.compare(feed.user, found, missing, cursor)
        return found[0][1].cursor if found else None

    def compare(self, user: User, found: list[Pair], missing: list[Owed], cursor: str | None) -> None:
        self.checks.events += len(found)
        for owed, got in found:
            if (got.title, got.comment) != (owed.title, owed.comment):
                self.checks.fail("event content", f"{self.name}: {who(user)} got {got}, owed {owed}")
        if missing:
            made = {*self.world.tasks, *self.world.gone_tasks}
            unmatched = self.feeds[user.id].unmatched
            strays = [(r.kind, r.position) for r in unmatched if r.task_id not in made]
            self.checks.fail(
                "lost event",
                f"{self.name}: {who(user)} never got {missing} (cursor {cursor}); unmatched "
                f"{[r for r in unmatched if r.task_id in made][-3:]}; other deployments' events it got "
                f"(an admin's subscriber skips an event at or before the position of the last it sent, or "
                f"of the same outbox id): {strays[-3:]}",
            )
            self.event_timeout = 0.3  # once one is lost, a wait is a formality: they come in milliseconds

    async def new_task(self, actor: User, title: str, **placement: Any) -> Task:
        data = await self.write("CreateTask", {"input": {"title": title, **placement}}, actor)
        created = data["createTask"]
        task = Task(
            created["id"],
            actor.id,
            title,
            created["status"],
            placement.get("projectId"),
            placement.get("assigneeId"),
        )
        self.world.tasks[task.id] = task
        await self.settle(
            [TaskChange("CREATED", task.id, Sight(None, frozenset()), self.world.sight(task.id))]
        )
        return task

    def pick_actor(self) -> User:
        return self.rng.choice(self.world.users)

    # -- Steps: each returns False when it has nothing to act on (a task list is read instead)

    async def create(self) -> bool:
        if len(self.world.tasks) >= MAX_TASKS:
            return False
        await self.new_task(await self.ready(self.pick_actor()), f"task {self.step}")
        return True

    async def project_task(self) -> bool:
        pairs = [(u, p) for u in self.world.users for p in self.world.projects if self.world.adds_to(u, p)]
        if len(self.world.tasks) >= MAX_TASKS or not pairs:
            return False
        actor, project_id = self.rng.choice(pairs)
        assignee = self.rng.choice([None, *self.world.projects[project_id].members])
        await self.ready(actor)
        await self.new_task(actor, f"task {self.step}", projectId=project_id, assigneeId=assignee)
        return True

    async def update(self) -> bool:
        actor = self.pick_actor()
        writable = self.world.writable_tasks(actor)
        if not writable:
            return False
        task = self.rng.choice(writable)
        status, title = self.rng.choice(STATUSES), f"{task.title.split(' v')[0]} v{self.step}"
        before = self.world.sight(task.id)
        variables = {"id": task.id, "input": {"status": status, "title": title}}
        await self.write("UpdateTask", variables, await self.ready(actor))
        task.status, task.title = status, title
        await self.settle([TaskChange("UPDATED", task.id, before, self.world.sight(task.id))])
        return True

    async def delete(self) -> bool:
        actor = self.pick_actor()
        writable = self.world.writable_tasks(actor)
        if not writable:
            return False
        task = self.rng.choice(writable)
        before = self.world.sight(task.id)
        await self.write("DeleteTask", {"id": task.id}, await self.ready(actor))
        self.world.drop_task(task.id)
        await self.settle([TaskChange("DELETED", task.id, before, Sight(None, frozenset()))])
        return True

    async def give(self) -> bool:
        """An admin gives a task to another owner (a project's task stays in its project)."""
        if not self.world.tasks:
            return False
        task, target = self.rng.choice(list(self.world.tasks.values())), self.rng.choice(self.users)
        before = self.world.sight(task.id)
        await self.write("UpdateTask", {"id": task.id, "input": {"ownerId": target.id}}, self.admin)
        task.owner = target.id
        self.world.settle_assignee(task)
        await self.settle([TaskChange("UPDATED", task.id, before, self.world.sight(task.id))])
        return True

    def check_placed(self, data: dict[str, Any], task: Task) -> None:
        placed = data["updateTask"]
        got = (
            placed["owner"]["id"],
            placed["project"]["id"] if placed["project"] else None,
            placed["assignee"]["id"] if placed["assignee"] else None,
        )
        if got != (task.owner, task.project, task.assignee):
            self.checks.fail(
                "write answer",
                f"{self.name}: {task.id} placed as {got}, model {task.owner, task.project, task.assignee}",
            )
            raise Diverged

    async def assign(self) -> bool:
        actor = self.pick_actor()
        writable = self.world.writable_tasks(actor)
        if not writable:
            return False
        task = self.rng.choice(writable)
        people = list(self.world.projects[task.project].members) if task.project else [task.owner]
        assignee = self.rng.choice([None, *people])
        before = self.world.sight(task.id)
        data = await self.write(
            "PlaceTask", {"id": task.id, "input": {"assigneeId": assignee}}, await self.ready(actor)
        )
        task.assignee = assignee
        self.check_placed(data, task)
        await self.settle([TaskChange("UPDATED", task.id, before, self.world.sight(task.id))])
        return True

    async def place(self) -> bool:
        """Move a task into a project, to another, or out of one (into the mover's own tasks)."""
        actor = self.pick_actor()
        moves = [
            (task, target)
            for task in self.world.writable_tasks(actor)
            for target in [*self.world.projects, None]
            if target != task.project and (target is None or self.world.adds_to(actor, target))
        ]
        if not moves:
            return False
        task, target = self.rng.choice(moves)
        before = self.world.sight(task.id)
        data = await self.write(
            "PlaceTask", {"id": task.id, "input": {"projectId": target}}, await self.ready(actor)
        )
        task.project = target
        if target is None and not actor.admin:
            task.owner = actor.id
        self.world.settle_assignee(task)
        self.check_placed(data, task)
        await self.settle([TaskChange("UPDATED", task.id, before, self.world.sight(task.id))])
        return True

    async def comment(self) -> bool:
        actor = self.pick_actor()
        visible = self.world.visible_tasks(actor)
        if len(self.world.comments) >= MAX_COMMENTS or not visible:
            return False
        task = self.rng.choice(visible)
        body = f"comment {self.step}"
        data = await self.write("AddComment", {"taskId": task.id, "body": body}, await self.ready(actor))
        comment = Comment(data["addComment"]["id"], task.id, actor.id, body)
        self.world.comments[comment.id] = comment
        sight = self.world.sight(task.id)
        await self.settle([TaskChange("COMMENT_ADDED", task.id, sight, sight, comment.id)])
        return True

    def may_delete(self, user: User, comment: Comment) -> bool:
        task = self.world.tasks[comment.task]
        if not self.world.sees(user, task):
            return False
        owner = task.project is not None and self.world.role_in(user, task.project) == "OWNER"
        return user.admin or comment.author == user.id or owner

    async def uncomment(self) -> bool:
        actor = self.pick_actor()
        candidates = [c for c in self.world.comments.values() if self.may_delete(actor, c)]
        if not candidates:
            return False
        comment = self.rng.choice(candidates)
        await self.write("DeleteComment", {"id": comment.id}, await self.ready(actor))
        self.world.drop_comment(comment.id)
        sight = self.world.sight(comment.task)
        await self.settle([TaskChange("COMMENT_DELETED", comment.task, sight, sight, comment.id)])
        return True

    async def edit_comment(self) -> bool:
        actor = self.pick_actor()
        candidates = [
            c
            for c in self.world.comments.values()
            if c.author == actor.id and self.world.sees(actor, self.world.tasks[c.task])
        ]
        if not candidates:
            return False
        comment = self.rng.choice(candidates)
        body = f"{comment.body.split(' e')[0]} e{self.step}"
        await self.write("UpdateComment", {"id": comment.id, "body": body}, await self.ready(actor))
        comment.body = body
        sight = self.world.sight(comment.task)
        await self.settle([TaskChange("COMMENT_UPDATED", comment.task, sight, sight, comment.id)])
        return True

    async def project(self) -> bool:
        if len(self.world.projects) >= MAX_PROJECTS:
            return False
        actor = await self.ready(self.pick_actor())
        name = f"project {self.step}"
        data = await self.write("CreateProject", {"input": {"name": name}}, actor)
        project_id = data["createProject"]["id"]
        self.world.projects[project_id] = Project(project_id, name, {actor.id: "OWNER"})
        return True

    def managed(self) -> tuple[User, Project] | None:
        """A project and one who may manage it: its OWNER mostly, sometimes an admin."""
        if not self.world.projects:
            return None
        project = self.rng.choice(list(self.world.projects.values()))
        managers = [u for u in self.world.users if self.world.manages(u, project.id)]
        owner = self.world.user(project.owner)
        return (owner if self.rng.random() < 0.8 else self.rng.choice(managers)), project

    async def rename(self) -> bool:
        if (chosen := self.managed()) is None:
            return False
        actor, project = chosen
        name = f"{project.name.split(' r')[0]} r{self.step}"
        await self.write(
            "UpdateProject", {"id": project.id, "input": {"name": name}}, await self.ready(actor)
        )
        project.name = name
        return True

    async def drop_project(self) -> bool:
        if (chosen := self.managed()) is None:
            return False
        actor, project = chosen
        doomed = [t.id for t in self.world.tasks.values() if t.project == project.id]
        befores = {task_id: self.world.sight(task_id) for task_id in doomed}
        await self.write("DeleteProject", {"id": project.id}, await self.ready(actor))
        self.world.drop_project(project.id)
        gone = Sight(None, frozenset())
        await self.settle([TaskChange("DELETED", task_id, befores[task_id], gone) for task_id in doomed])
        return True

    async def invite(self) -> bool:
        if (chosen := self.managed()) is None:
            return False
        actor, project = chosen
        outsiders = [u for u in self.world.users if u.id not in project.members]
        if not outsiders:
            return False
        invitee, role = self.rng.choice(outsiders), self.rng.choice(("EDITOR", "VIEWER"))
        variables = {"projectId": project.id, "email": invitee.email, "role": role}
        data = await self.write("InviteToProject", variables, await self.ready(actor))
        for old in [
            i.id for i in self.world.invitations.values() if (i.project, i.user) == (project.id, invitee.id)
        ]:
            del self.world.invitations[old]  # renewed
        invitation = Invitation(data["inviteToProject"]["id"], project.id, invitee.id, role)
        self.world.invitations[invitation.id] = invitation
        if self.rng.random() < 0.6:
            await self.accept_one(invitation)
        return True

    async def accept_one(self, invitation: Invitation) -> None:
        invitee = await self.ready(self.world.user(invitation.user))
        if not invitee.verified:  # what following the verification mail does
            await verify_address(self.dsn, Account(invitee.id, invitee.email, invitee.token, ""))
            invitee.verified = True
        data = await self.write("AcceptInvitation", {"id": invitation.id}, invitee)
        if data["acceptInvitation"]["viewerRole"] != invitation.role:
            self.checks.fail("write answer", f"{self.name}: accepted as {data}, invited as {invitation.role}")
        self.world.projects[invitation.project].members[invitee.id] = invitation.role
        del self.world.invitations[invitation.id]

    async def accept(self) -> bool:
        if not self.world.invitations:
            return False
        await self.accept_one(self.rng.choice(list(self.world.invitations.values())))
        return True

    async def decline(self) -> bool:
        if not self.world.invitations:
            return False
        invitation = self.rng.choice(list(self.world.invitations.values()))
        invitee = await self.ready(self.world.user(invitation.user))
        await self.write("DeclineInvitation", {"id": invitation.id}, invitee)
        del self.world.invitations[invitation.id]
        return True

    async def set_role(self) -> bool:
        """Change a member's role: EDITOR, VIEWER, or OWNER (handing the project over; the OWNER before
        becomes an EDITOR)."""
        if (chosen := self.managed()) is None:
            return False
        actor, project = chosen
        others = [user_id for user_id, role in project.members.items() if role != "OWNER"]
        if not others:
            return False
        target, role = self.rng.choice(others), self.rng.choice(("EDITOR", "VIEWER", "OWNER"))
        variables = {"projectId": project.id, "userId": target, "role": role}
        data = await self.write("SetProjectMemberRole", variables, await self.ready(actor))
        if data["setProjectMemberRole"]["role"] != role:
            self.checks.fail("write answer", f"{self.name}: {variables} answered {data}")
        if role == "OWNER":
            project.members[project.owner] = "EDITOR"
        project.members[target] = role
        return True

    async def part(self, actor: User, project: Project, user_id: str) -> None:
        """``user_id`` leaves the project (removed by ``actor``, or by themselves): the tasks assigned to
        them there are unassigned, and told to the members who remain."""
        variables = {"projectId": project.id, "userId": user_id}
        await self.write("RemoveProjectMember", variables, await self.ready(actor))
        del project.members[user_id]
        changes = []
        for task in self.world.tasks.values():
            if task.project == project.id and task.assignee == user_id:
                task.assignee = None
                sight = self.world.sight(task.id)  # told to who remains, before and after alike
                changes.append(TaskChange("UPDATED", task.id, sight, sight))
        await self.settle(changes)

    async def remove(self) -> bool:
        if (chosen := self.managed()) is None:
            return False
        actor, project = chosen
        others = [user_id for user_id, role in project.members.items() if role != "OWNER"]
        if not others:
            return False
        await self.part(actor, project, self.rng.choice(others))
        return True

    async def leave(self) -> bool:
        pairs = [
            (self.world.user(user_id), project)
            for project in self.world.projects.values()
            for user_id, role in project.members.items()
            if role != "OWNER"
        ]
        if not pairs:
            return False
        user, project = self.rng.choice(pairs)
        await self.part(user, project, user.id)
        return True

    async def role(self) -> bool:
        """An admin makes a user an admin, or a user again: their sockets close (the role is read again
        when they reconnect)."""
        actives = [u for u in self.users if u.active]
        if not actives:
            return False
        user = self.rng.choice(actives)
        role = "ADMIN" if user.role == "USER" else "USER"
        await self.write("SetUserRole", {"userId": user.id, "role": role}, self.admin)
        user.role = role
        feed = self.feeds[user.id]
        if not await feed.closed(CLOSE_TIMEOUT):
            self.checks.fail(
                "socket kept", f"{self.name}: {who(user)}'s socket stayed open after a role change"
            )
        # Everyone has every event owed so far: the new subscription starts after the latest of all.
        feed.resume = self.feeds[self.admin.id].resume
        if not feed.open:
            await feed.connect()
        return True

    async def deactivate(self) -> bool:
        actives = [u for u in self.users if u.active]
        if not actives:
            return False
        user = self.rng.choice(actives)
        await self.write("SetUserActive", {"userId": user.id, "active": False}, self.admin)
        user.active = False
        if not await self.feeds[user.id].closed(CLOSE_TIMEOUT):
            self.checks.fail(
                "socket kept", f"{self.name}: {who(user)}'s socket stayed open after deactivation"
            )
        answers = await self.cluster.read(TASKS, None, user.token)
        if not all(codes(a) == ["UNAUTHENTICATED"] for a in answers):
            self.checks.fail("foreign row", f"{self.name}: a deactivated account was answered: {answers}")
        return True

    async def trespass(self) -> bool:
        """A user tries what they may not: change, delete or comment on a task they do not see (NOT_FOUND),
        change or delete one of a project where they are a VIEWER (FORBIDDEN), rename a project they do not
        own. Nothing may be written, nor any event told (an event of no acknowledged write fails the end)."""
        plain = [u for u in self.users if not u.admin]
        if not plain:
            return False
        actor = self.rng.choice(plain)
        hidden = [t for t in self.world.tasks.values() if not self.world.sees(actor, t)]
        viewing = [
            t
            for t in self.world.tasks.values()
            if t.project and self.world.role_in(actor, t.project) == "VIEWER"
        ]
        unowned = [p for p in self.world.projects.values() if p.members.get(actor.id) != "OWNER"]
        options = [
            name for name, there in (("hidden", hidden), ("viewing", viewing), ("unowned", unowned)) if there
        ]
        if not options:
            return False
        option = self.rng.choice(options)
        await self.ready(actor)
        if option == "hidden":
            task = self.rng.choice(hidden)
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("UpdateTask", {"id": task.id, "input": {"title": "stolen"}}),
                ("DeleteTask", {"id": task.id}),
                ("AddComment", {"taskId": task.id, "body": "intruding"}),
                ("PlaceTask", {"id": task.id, "input": {"projectId": None}}),
            ]
            name, variables = self.rng.choice(attempts)
            await self.refused(name, variables, actor, NOT_FOUND)
        elif option == "viewing":
            task = self.rng.choice(viewing)
            tries: list[tuple[str, dict[str, Any]]] = [
                ("UpdateTask", {"id": task.id, "input": {"title": "viewer's"}}),
                ("DeleteTask", {"id": task.id}),
            ]
            name, variables = self.rng.choice(tries)
            await self.refused(name, variables, actor, "FORBIDDEN")
        else:
            project = self.rng.choice(unowned)
            code = "FORBIDDEN" if actor.id in project.members else NOT_FOUND
            await self.refused("UpdateProject", {"id": project.id, "input": {"name": "taken"}}, actor, code)
        return True

    # -- Reads

    async def read(self, kind: str) -> None:
        viewer = await self.ready(self.pick_actor())
        world, cluster, name, rng = self.world, self.cluster, self.name, self.rng
        if kind == "stats":
            await read_stats(cluster, name, world, viewer)
        elif kind == "one":
            await read_one(cluster, name, world, viewer, rng)
        elif kind == "me":
            await read_me(cluster, name, viewer)
        elif kind == "projects":
            await read_projects(cluster, name, world, viewer)
        elif kind == "members":
            await read_members(cluster, name, world, viewer, rng)
        elif kind == "comments":
            await read_comments(cluster, name, world, viewer, rng)
        elif kind == "invitations":
            await read_invitations(cluster, name, world, viewer)
        else:
            variant = rng.choices(("all", "project", "mine"), weights=(6, 3, 1))[0]
            await read_list(cluster, name, world, viewer, rng, variant=variant)

    async def run(self, steps: int) -> None:
        kinds, weights = list(STEPS), list(STEPS.values())
        for step in range(steps):
            self.step = step
            kind = self.rng.choices(kinds, weights=weights)[0]
            self.name = f"step {step} ({kind})"
            handler = getattr(self, kind, None)
            if handler is not None and await handler():
                self.tally[kind] = self.tally.get(kind, 0) + 1
                continue
            kind = kind if handler is None else "list"
            self.tally[kind] = self.tally.get(kind, 0) + 1
            await self.read(kind)

    async def finish(self) -> None:
        """Every account active again; then a last marker task of each user, which each subscriber must
        receive: events come in order, so after its marker a subscriber has every event it will get. None may
        hold one it was not owed."""
        self.step, self.name = self.step + 1, "the end"
        for user in self.world.users:
            await self.ready(user)
        for user in self.world.users:
            await self.new_task(user, f"marker {user.email}")
        made = {*self.world.tasks, *self.world.gone_tasks}
        for feed in self.feeds.values():
            for problem in feed.problems:
                self.checks.fail("subscription", problem)
            for event in feed.unmatched:
                written = self.written.get(event.cursor)
                if event.task_id not in made:
                    # Redis pub/sub channels span the server's databases: the live events of another taskql
                    # deployment on this Redis server (another database index) reach this one's admins, and
                    # make their subscribers skip this one's event of the same outbox row id.
                    self.strays += 1
                    self.checks.fail(
                        "event of another deployment (pub/sub channels span the Redis server's databases)",
                        f"{who(feed.user)} got {event} at {event.position}",
                    )
                elif written is None:
                    self.checks.fail("event of no acknowledged write", f"{who(feed.user)} got {event}")
                elif event.step < written.step:
                    # It came before the write it is filed under: that write's event was lost everywhere
                    # it was awaited, and its cursor taken from an earlier event (see the lost events).
                    self.checks.fail(
                        "event filed under a later write", f"{written.name}: {who(feed.user)} got {event}"
                    )
                elif not written.could_see(feed.user.id, event.task_id):
                    self.checks.fail(
                        "event to a non-member",
                        f"{written.name} ({written.sights.get(event.task_id)}): {who(feed.user)} got {event}",
                    )
                else:
                    self.checks.fail("event not owed", f"{written.name}: {who(feed.user)} got {event}")


async def test_every_read_after_an_acknowledged_write_reflects_it_on_both_processes(
    cluster: Cluster, database: Services, servers: list[str]
) -> None:
    users = [await register(cluster, number) for number in range(USERS)]
    admin = await register(cluster, 99)
    await promote_to_admin(database.dsn, Account(admin.id, admin.email, admin.token, ""))
    admin.role = "ADMIN"
    world = World([*users, admin])
    run = Sequential(cluster, world, admin, {}, database.dsn)
    run.feeds = await open_feeds(world.users, servers, await latest_cursor(database.redis_url), run.clock)
    try:
        with contextlib.suppress(Diverged):  # recorded: the failures below say where
            await run.run(SEQUENTIAL_STEPS)
            await run.finish()
    finally:
        for feed in run.feeds.values():
            await feed.stop()
    checks = cluster.checks
    print(
        f"\nsequential: {run.tally}; {checks.reads} reads, {checks.hits} hits, {checks.events} events owed "
        f"and received, {run.strays} events of other deployments"
    )
    assert not checks.counts, checks.report(SEED)
    assert checks.reads > SEQUENTIAL_STEPS
    assert checks.events > SEQUENTIAL_STEPS / 2
    assert checks.hits > checks.reads * 0.2, f"only {checks.hits} of {checks.reads} reads were cache hits"


# -- Phase two: concurrent clients, each alone with its own tasks, project and comments


def has(feed: Feed, event: tuple[str, str]) -> Callable[[], bool]:
    return lambda: any((r.task_id, r.kind) == event for r in feed.received)


async def concurrent_client(
    cluster: Cluster, world: World, steps: int, rng: random.Random, told: list[tuple[str, str]]
) -> None:
    """One user's steps; ``told``: the events their writes owe their subscription, in order."""
    user = world.users[0]
    project_id = next(iter(world.projects))
    for step in range(steps):
        name = f"{user.email} step {step}"
        kind = rng.choices(
            [
                "create",
                "update",
                "delete",
                "place",
                "comment",
                "uncomment",
                "list",
                "stats",
                "one",
                "talk",
                "projects",
            ],
            weights=[14, 12, 6, 6, 6, 3, 30, 8, 6, 5, 4],
        )[0]
        tasks = list(world.tasks.values())
        if kind == "create" and len(tasks) < MAX_TASKS // 2:
            placement = {"projectId": project_id, "assigneeId": user.id} if rng.random() < 0.5 else {}
            data = await cluster.write(
                operation("CreateTask"), {"input": {"title": name, **placement}}, user.token
            )
            task_id = data["createTask"]["id"]
            world.tasks[task_id] = Task(
                task_id, user.id, name, "TODO", placement.get("projectId"), placement.get("assigneeId")
            )
            told.append((task_id, "CREATED"))
        elif kind == "update" and tasks:
            task = rng.choice(tasks)
            task.status = rng.choice(STATUSES)
            await cluster.write(
                operation("UpdateTask"), {"id": task.id, "input": {"status": task.status}}, user.token
            )
            told.append((task.id, "UPDATED"))
        elif kind == "delete" and tasks:
            task = rng.choice(tasks)
            await cluster.write(operation("DeleteTask"), {"id": task.id}, user.token)
            world.drop_task(task.id)
            told.append((task.id, "DELETED"))
        elif kind == "place" and tasks:
            task = rng.choice(tasks)
            task.project = None if task.project else project_id
            await cluster.write(
                operation("PlaceTask"), {"id": task.id, "input": {"projectId": task.project}}, user.token
            )
            told.append((task.id, "UPDATED"))
        elif kind == "comment" and tasks and len(world.comments) < MAX_COMMENTS // 2:
            task = rng.choice(tasks)
            data = await cluster.write(operation("AddComment"), {"taskId": task.id, "body": name}, user.token)
            comment_id = data["addComment"]["id"]
            world.comments[comment_id] = Comment(comment_id, task.id, user.id, name)
            told.append((task.id, "COMMENT_ADDED"))
        elif kind == "uncomment" and world.comments:
            comment = rng.choice(list(world.comments.values()))
            await cluster.write(operation("DeleteComment"), {"id": comment.id}, user.token)
            world.drop_comment(comment.id)
            told.append((comment.task, "COMMENT_DELETED"))
        elif kind == "stats":
            await read_stats(cluster, name, world, user)
        elif kind == "one":
            await read_one(cluster, name, world, user, rng)
        elif kind == "talk":
            await read_comments(cluster, name, world, user, rng)
        elif kind == "projects":
            await read_projects(cluster, name, world, user)
        else:
            variant = rng.choices(("all", "project", "mine"), weights=(6, 3, 1))[0]
            await read_list(cluster, name, world, user, rng, variant=variant)


async def test_concurrent_writers_each_read_their_own_writes_and_get_only_their_own_events(
    cluster: Cluster, database: Services, servers: list[str]
) -> None:
    users = [await register(cluster, 10 + number) for number in range(USERS)]
    worlds = []
    for user in users:
        data = await cluster.write(
            operation("CreateProject"), {"input": {"name": f"{user.email}'s"}}, user.token
        )
        project_id = data["createProject"]["id"]
        worlds.append(
            World([user], projects={project_id: Project(project_id, f"{user.email}'s", {user.id: "OWNER"})})
        )
    feeds = await open_feeds(users, servers, await latest_cursor(database.redis_url), lambda: 0)
    told: list[list[tuple[str, str]]] = [[] for _ in users]
    try:
        await asyncio.gather(
            *(
                concurrent_client(
                    cluster, world, CONCURRENT_STEPS_PER_USER, random.Random(SEED + number), told[number]
                )
                for number, world in enumerate(worlds)
            )
        )
        for user, owed in zip(users, told, strict=True):  # a last marker each: after it, nothing more comes
            data = await cluster.write(operation("CreateTask"), {"input": {"title": "marker"}}, user.token)
            owed.append((data["createTask"]["id"], "CREATED"))
        for user, owed in zip(users, told, strict=True):
            feed = feeds[user.id]
            await feed.until(has(feed, owed[-1]), 15)
            got = [(r.task_id, r.kind) for r in feed.received]
            theirs = {task_id for task_id, _ in owed}
            foreign = [r for r in feed.received if r.task_id not in theirs]
            if foreign:
                cluster.checks.fail("event to a non-member", f"{who(user)} got {foreign[:3]}")
            if got != owed:
                missing = [item for item in owed if item not in got]
                first = next(
                    (i for i, pair in enumerate(zip(got, owed, strict=False)) if pair[0] != pair[1]), None
                )
                cluster.checks.fail(
                    "lost event" if missing else "event not owed",
                    f"{who(user)}: {len(got)} events, owed {len(owed)}; missing {missing[:3]}; "
                    f"first difference at {first}",
                )
            for problem in feed.problems:
                cluster.checks.fail("subscription", problem)
            cluster.checks.events += len(got)
    finally:
        for feed in feeds.values():
            await feed.stop()
    checks = cluster.checks
    print(f"\nconcurrent: {checks.reads} reads, {checks.hits} hits, {checks.events} events")
    assert not checks.counts, checks.report(SEED)
    assert checks.hits > checks.reads * 0.2, f"only {checks.hits} of {checks.reads} reads were cache hits"


# -- Phase three: a member removed and added again while an editor writes


REMOVAL_WRITES = 250


def task_ids(answer: dict[str, Any]) -> set[str] | None:
    data = answer.get("data") or {}
    return {edge["node"]["id"] for edge in data["tasks"]["edges"]} if data.get("tasks") else None


def overlaps(window: tuple[float, float], spans: list[tuple[float, float]]) -> bool:
    return any(start <= window[1] and window[0] <= end for start, end in spans)


async def test_a_member_removed_while_an_editor_writes_gets_nothing_of_the_project_once_removed(
    cluster: Cluster, database: Services, servers: list[str]
) -> None:
    """The editor changes the project's tasks without pause; meanwhile the OWNER adds the member and removes
    them, again and again. Each removal counts from its acknowledgment: the member's reads after it (either
    process, cached or not) hold nothing of the project, and their subscription holds no event of a write
    sent after it and answered before the next addition was sent. Each addition counts from its
    acknowledgment too: the member's reads show every task of the project."""
    owner, editor, member = [await register(cluster, 20 + number) for number in range(3)]
    for user in (editor, member):
        await verify_address(database.dsn, Account(user.id, user.email, user.token, ""))
    data = await cluster.write(operation("CreateProject"), {"input": {"name": "shared"}}, owner.token)
    project = data["createProject"]["id"]

    async def join(user: User, role: str) -> None:
        variables = {"projectId": project, "email": user.email, "role": role}
        invited = await cluster.write(operation("InviteToProject"), variables, owner.token)
        await cluster.write(
            operation("AcceptInvitation"), {"id": invited["inviteToProject"]["id"]}, user.token
        )

    await join(editor, "EDITOR")
    tasks = []
    for number in range(5):
        variables = {"input": {"title": f"seed {number}", "projectId": project}}
        tasks.append(
            (await cluster.write(operation("CreateTask"), variables, editor.token))["createTask"]["id"]
        )
    feed = (await open_feeds([member], servers, await latest_cursor(database.redis_url), lambda: 0))[
        member.id
    ]
    clock = asyncio.get_running_loop().time
    writes: dict[str, tuple[float, float]] = {}  # title -> when its request went, when its answer came
    spans: list[tuple[float, float]] = []  # membership: from the accept's request to the removal's answer
    done = asyncio.Event()
    checks, rng = cluster.checks, random.Random(SEED)

    async def edit() -> None:
        for number in range(REMOVAL_WRITES):
            title, sent = f"write {number}", clock()
            variables = {"id": rng.choice(tasks), "input": {"title": title}}
            await cluster.write(operation("UpdateTask"), variables, editor.token)
            writes[title] = (sent, clock())
        done.set()

    async def churn() -> None:
        while not done.is_set():
            cycle, joined = len(spans), clock()
            await join(member, "VIEWER")
            for number, answer in enumerate(await cluster.read(TASKS, {"filter": None}, member.token)):
                if task_ids(answer) != set(tasks):
                    where = f"cycle {cycle}, added: process {number} ({answer['cache']})"
                    checks.fail("stale read", f"{where}: the member's tasks {task_ids(answer)}, not {tasks}")
            variables = {"projectId": project, "userId": member.id}
            await cluster.write(operation("RemoveProjectMember"), variables, owner.token)
            spans.append((joined, clock()))
            reads = [(TASKS, {"filter": None}), (ONE, {"id": rng.choice(tasks)}), (MEMBERS, {"id": project})]
            for document, variables in reads:
                for number, answer in enumerate(await cluster.read(document, variables, member.token)):
                    if (task_ids(answer) == set()) if document is TASKS else (codes(answer) == [NOT_FOUND]):
                        continue
                    where = f"cycle {cycle}, removed: process {number} ({answer['cache']}) {document[:12]}"
                    checks.fail("foreign row", f"{where}: {answer}")

    try:
        await asyncio.gather(edit(), churn())
        data = await cluster.write(operation("CreateTask"), {"input": {"title": "marker"}}, member.token)
        marker = data["createTask"]["id"]  # their own: after its event, nothing more comes
        if not await feed.until(has(feed, (marker, "CREATED")), 15):
            checks.fail("lost event", f"the member never got the event of their marker task {marker}")
    finally:
        await feed.stop()
    told = 0
    for event in feed.received:
        window = writes.get(event.title or "")
        if event.task_id == marker:
            continue
        if event.task_id not in tasks or event.kind != "UPDATED" or window is None:
            checks.fail("event not owed", f"the member got {event}")
        elif not overlaps(window, spans):
            shown = [(f"{start:.3f}", f"{end:.3f}") for start, end in spans]
            checks.fail(
                "event to a non-member",
                f"the member got {event}: its write was sent at {window[0]:.3f} and answered at "
                f"{window[1]:.3f}; the member was one from (accept sent) to (removal answered): {shown}",
            )
        else:
            told += 1
    for problem in feed.problems:
        checks.fail("subscription", problem)
    print(f"\nremovals: {len(spans)} cycles, {len(writes)} writes, {told} events to the member while one")
    print(f"removals: {checks.reads} reads, {checks.hits} hits")
    assert not checks.counts, checks.report(SEED)
    assert len(spans) >= 3, "the member was added and removed too few times to prove anything"
    assert told > 0, "the member never got an event while a member: the check above proved nothing"
    assert checks.hits > checks.reads * 0.1, f"only {checks.hits} of {checks.reads} reads were cache hits"
