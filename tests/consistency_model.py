"""The model ``tests.test_cache_consistency`` checks two taskql processes against: users, tasks, shared
projects with their members and roles, pending invitations, comments; who may see and change what; which
task events each write owes to whom; and one ``taskEvents`` subscription per user that records what it gets.

Everything is keyed by global IDs, and every choice the test makes walks lists and dicts in insertion order
(never a set), so that a seed replays the same steps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from tests.ws_client import Closed, Subscriber

WRITERS = ("OWNER", "EDITOR")  # the project roles that change tasks (a VIEWER reads and comments)


@dataclass
class User:
    id: str
    email: str
    token: str
    role: str = "USER"
    active: bool = True
    verified: bool = False

    @property
    def admin(self) -> bool:
        return self.role == "ADMIN"


@dataclass
class Task:
    id: str
    owner: str
    title: str
    status: str
    project: str | None = None
    assignee: str | None = None


@dataclass
class Project:
    id: str
    name: str
    members: dict[str, str]  # user id -> OWNER, EDITOR or VIEWER, in the order they joined

    @property
    def owner(self) -> str:
        return next(user for user, role in self.members.items() if role == "OWNER")


@dataclass
class Comment:
    id: str
    task: str
    author: str
    body: str


@dataclass
class Invitation:
    id: str
    project: str
    user: str  # the account of the invited address
    role: str


@dataclass(frozen=True)
class Sight:
    """A task as one write found or left it (None: not there), and who saw it then (admins aside)."""

    task: Task | None
    audience: frozenset[str]


@dataclass
class World:
    users: list[User]
    tasks: dict[str, Task] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    comments: dict[str, Comment] = field(default_factory=dict)
    invitations: dict[str, Invitation] = field(default_factory=dict)
    gone_tasks: list[str] = field(default_factory=list)
    gone_projects: list[str] = field(default_factory=list)
    gone_comments: list[str] = field(default_factory=list)

    def user(self, user_id: str) -> User:
        return next(user for user in self.users if user.id == user_id)

    # -- Who sees and changes what (resolvers.visibility, as the rules of issue 18 state it)

    def audience(self, task: Task | None) -> frozenset[str]:
        """The users (admins aside) who see ``task``: its owner's alone if personal, else its members."""
        if task is None:
            return frozenset()
        if task.project is None:
            return frozenset((task.owner,))
        project = self.projects.get(task.project)
        return frozenset(project.members) if project is not None else frozenset()

    def sight(self, task_id: str) -> Sight:
        task = self.tasks.get(task_id)
        return Sight(copy.copy(task), self.audience(task))

    def sees(self, user: User, task: Task) -> bool:
        return user.admin or user.id in self.audience(task)

    def writes(self, user: User, task: Task) -> bool:
        if user.admin:
            return True
        if task.project is None:
            return task.owner == user.id
        return self.role_in(user, task.project) in WRITERS

    def role_in(self, user: User, project_id: str) -> str | None:
        project = self.projects.get(project_id)
        return project.members.get(user.id) if project is not None else None

    def sees_project(self, user: User, project_id: str) -> bool:
        return project_id in self.projects and (user.admin or self.role_in(user, project_id) is not None)

    def manages(self, user: User, project_id: str) -> bool:
        return project_id in self.projects and (user.admin or self.role_in(user, project_id) == "OWNER")

    def adds_to(self, user: User, project_id: str) -> bool:
        """May create tasks in, or move tasks into, the project."""
        return project_id in self.projects and (user.admin or self.role_in(user, project_id) in WRITERS)

    def visible_tasks(self, user: User) -> list[Task]:
        return [task for task in self.tasks.values() if self.sees(user, task)]

    def writable_tasks(self, user: User) -> list[Task]:
        return [task for task in self.tasks.values() if self.writes(user, task)]

    def admins(self) -> frozenset[str]:
        return frozenset(user.id for user in self.users if user.admin)

    # -- What writes do besides what they are asked

    def settle_assignee(self, task: Task) -> None:
        """A task moved (or given) where its assignee is not a member (of a personal task: its owner) is
        unassigned."""
        if task.assignee is None:
            return
        allowed = (
            task.assignee == task.owner
            if task.project is None
            else task.assignee in self.projects[task.project].members
        )
        if not allowed:
            task.assignee = None

    def drop_task(self, task_id: str) -> None:
        del self.tasks[task_id]
        self.gone_tasks.append(task_id)
        for comment_id in [c.id for c in self.comments.values() if c.task == task_id]:
            self.drop_comment(comment_id)

    def drop_comment(self, comment_id: str) -> None:
        del self.comments[comment_id]
        self.gone_comments.append(comment_id)

    def drop_project(self, project_id: str) -> list[str]:
        """The project, its tasks (with their comments) and invitations; the ids of the tasks."""
        task_ids = [task.id for task in self.tasks.values() if task.project == project_id]
        for task_id in task_ids:
            self.drop_task(task_id)
        for invitation_id in [i.id for i in self.invitations.values() if i.project == project_id]:
            del self.invitations[invitation_id]
        del self.projects[project_id]
        self.gone_projects.append(project_id)
        return task_ids

    # -- What the reads answer

    def task_row(self, task: Task) -> tuple[Any, ...]:
        project = (task.project, self.projects[task.project].name) if task.project is not None else None
        return (task.id, task.title, task.status, task.owner, project, task.assignee)


def task_row(node: dict[str, Any]) -> tuple[Any, ...]:
    """A task as the test's queries select it (``TASK_FIELDS``), in ``World.task_row``'s shape."""
    project = node["project"]
    return (
        node["id"],
        node["title"],
        node["status"],
        node["owner"]["id"],
        (project["id"], project["name"]) if project is not None else None,
        node["assignee"]["id"] if node["assignee"] is not None else None,
    )


# -- Checks


@dataclass
class Checks:
    """Every failure, counted by kind, with the first few of each kind in full."""

    reads: int = 0
    hits: int = 0
    events: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 6:
            shown.append(message)

    def report(self, seed: int) -> str:
        lines = [f"seed {seed}: " + ", ".join(f"{n} {kind}" for kind, n in self.counts.most_common())]
        for kind, shown in self.examples.items():
            lines += [f"-- {kind}:", *shown]
        return "\n".join(lines)


# -- Events


@dataclass(frozen=True)
class Owed:
    """One task event a write owes one subscriber, as the subscriber must see it."""

    step: int
    task_id: str
    kind: str
    title: str | None  # the task's title as the write left it (None: DELETED)
    comment: str | None  # the comment of a COMMENT_* event
    project: str | None  # the project of the task the event carries (None: personal, or DELETED)


@dataclass(frozen=True)
class TaskChange:
    """What one write did to one task: its event kind, and the task before and after."""

    kind: str
    task_id: str
    before: Sight
    after: Sight
    comment: str | None = None


def owed_by(step: int, change: TaskChange, world: World) -> dict[str, Owed]:
    """Each subscriber's event of ``change`` (resolvers.events.drafts_for_write): an admin's subscription
    gets every write's event as it is; a user's, DELETED for a task that left their sight, CREATED for one
    that entered it, else the write's kind."""
    after_task = change.after.task
    project = after_task.project if after_task is not None else None
    title = after_task.title if after_task is not None else None
    owed: dict[str, Owed] = {}
    for user in world.users:
        if user.admin:
            kind = change.kind
        elif user.id in change.before.audience and user.id not in change.after.audience:
            kind = "DELETED"
        elif user.id in change.after.audience and user.id not in change.before.audience:
            kind = "CREATED"
        elif user.id in change.after.audience:
            kind = change.kind
        else:
            continue
        if kind == "DELETED":
            owed[user.id] = Owed(step, change.task_id, kind, None, None, None)
        else:
            owed[user.id] = Owed(step, change.task_id, kind, title, change.comment, project)
    return owed


@dataclass(frozen=True)
class Written:
    """An acknowledged write that told events: for judging an event nobody was owed."""

    step: int
    name: str
    sights: dict[str, tuple[frozenset[str], frozenset[str]]]  # task id -> audience before, after
    admins: frozenset[str]

    def could_see(self, user_id: str, task_id: str) -> bool:
        before, after = self.sights.get(task_id, (frozenset(), frozenset()))
        return user_id in self.admins or user_id in before or user_id in after


SUBSCRIPTION = """
subscription Feed($after: String) {
  taskEvents(after: $after) { cursor kind taskId task { id title } comment { id } }
}
"""


@dataclass(eq=False)
class Received:
    cursor: str
    kind: str
    task_id: str
    title: str | None
    comment: str | None
    step: int  # the test's step when it arrived
    process: int

    def matches(self, owed: Owed) -> bool:
        return (self.task_id, self.kind) == (owed.task_id, owed.kind)

    @property
    def position(self) -> tuple[int, int]:
        return _position(self.cursor)


def _position(cursor: str) -> tuple[int, int]:
    """The Redis stream id a cursor encodes: (milliseconds, sequence)."""
    milliseconds, _, sequence = (
        base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("-")
    )
    return int(milliseconds), int(sequence or 0)


Pair = tuple[Owed, Received]


class Feed:
    """One user's ``taskEvents`` subscription: on one process, on the other each time it is opened again
    (resuming from the last cursor it got, or from ``resume`` when told). It records every event, and how the
    server ended each socket."""

    def __init__(self, user: User, urls: list[str], process: int, clock: Callable[[], int]) -> None:
        self.user, self.urls, self.process, self.clock = user, urls, process, clock
        # Where a new socket resumes: the furthest event received (a stray event of another deployment, see
        # tests.test_cache_consistency, may come out of order: resuming from it could replay this one's).
        self.resume = ""
        self.received: list[Received] = []
        self.unmatched: list[Received] = []
        self.problems: list[str] = []
        self.closes: list[int | None] = []
        self.opened = 0
        self.changed = asyncio.Event()
        self.socket: Subscriber | None = None
        self.reader: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def connect(self) -> bool:
        """Open the socket and subscribe; False if the server refused the connection."""
        if self.opened:
            self.process = (self.process + 1) % len(self.urls)
        self.opened += 1
        url = self.urls[self.process].replace("http://", "ws://") + "/graphql"
        try:
            socket = await Subscriber.open(url, {"authorization": f"Bearer {self.user.token}"}, max_queue=256)
        except Closed as closed:
            self.problems.append(f"{self.user.email}: refused on process {self.process}: {closed}")
            return False
        await socket.subscribe({"after": self.resume}, query=SUBSCRIPTION)
        self.socket = socket
        self.reader = asyncio.create_task(self._read(socket, self.process))
        return True

    async def _read(self, socket: Subscriber, process: int) -> None:
        try:
            while True:
                message = await socket.receive(timeout=3600)
                payload = message.get("payload") or {}
                if message["type"] != "next" or payload.get("errors"):
                    self.problems.append(f"{self.user.email}: the subscription ended: {message}")
                    await socket.close()
                    return
                event = payload["data"]["taskEvents"]
                task, comment = event["task"], event["comment"]
                received = Received(
                    event["cursor"],
                    event["kind"],
                    event["taskId"],
                    task["title"] if task is not None else None,
                    comment["id"] if comment is not None else None,
                    self.clock(),
                    process,
                )
                self.received.append(received)
                self.unmatched.append(received)
                if _position(received.cursor) > _position(self.resume):  # never back (see ``resume``)
                    self.resume = received.cursor
                self.changed.set()
        except Closed as closed:
            self.closes.append(closed.code)
        finally:
            self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``done()``, reopening the socket if the server closed it while the user is active (it
        resumes from the last event it got: nothing is lost, nothing comes twice)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            if not self.open and self.user.active:
                if not await self.connect():
                    return done()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def closed(self, timeout: float) -> bool:
        """Wait for the server to close the socket."""
        return await self.until(lambda: not self.open, timeout) if self.open else True

    def find(self, owed: list[Owed], cursor: str | None, exclude: Container[str]) -> list[Pair] | None:
        """The received events that are ``owed``, all of one write: of ``cursor``, or else (not knowing it)
        of the latest cursor, not in ``exclude``, whose unmatched events have them all; None while they are
        not all in."""
        # Not knowing it, the newest first: the write's events are the last to have come.
        cursors = (
            [cursor] if cursor is not None else list(dict.fromkeys(r.cursor for r in self.unmatched))[::-1]
        )
        for candidate in cursors:
            if candidate in exclude:
                continue
            pool = [r for r in self.unmatched if r.cursor == candidate]
            found: list[Pair] = []
            for item in owed:
                match = next((r for r in pool if r.matches(item) and all(r is not f for _, f in found)), None)
                if match is None:
                    break
                found.append((item, match))
            else:
                return found
        return None

    async def take(
        self, owed: list[Owed], cursor: str | None, timeout: float, exclude: Container[str] = ()
    ) -> tuple[list[Pair], list[Owed]]:
        """Wait for the events ``owed`` (of one write) and take them off the unmatched ones: those that
        came, each with what it was owed for, and those that did not come in ``timeout``."""
        found: list[Pair] | None = None

        def arrived() -> bool:
            nonlocal found
            found = self.find(owed, cursor, exclude)
            return found is not None

        missing: list[Owed] = []
        if not await self.until(arrived, timeout) or found is None:
            found = []
            for item in owed:
                match = next(
                    (
                        r
                        for r in reversed(self.unmatched)
                        if r.matches(item)
                        and (r.cursor == cursor if cursor is not None else r.cursor not in exclude)
                        and all(r is not f for _, f in found)
                    ),
                    None,
                )
                if match is None:
                    missing.append(item)
                else:
                    found.append((item, match))
        for _, received in found:
            self.unmatched.remove(received)
        return found, missing

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
