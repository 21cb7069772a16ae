"""A randomized fault run: the durable write path (issue 13) under the faults it claims to survive.

    python -m bench.fault_run [--duration 40] [--seed N] [--users 4] [--drain 20] [--keep]

1. PostgreSQL: the database DATABASE_URL names (the run fills it: give it a scratch one), else an embedded
   one in a temporary folder; migrated once. Redis: a redis-server of the run's own (tests.fault_servers),
   which it kills, freezes and restarts, with snapshots. Two `python -m taskql serve` processes on both.
2. USERS users and an admin (plus a second admin, to demote, and an account, to deactivate). Each user's
   tasks are written by one writer, one write at a time (createTask, updateTask, deleteTask, sent to either
   server), every write setting a title with the user's next counter (``u2 n41``): a read shows which
   writes it reflects. Readers list the user's tasks (a cacheable query, X-Cache recorded) and ask ``me``
   on either server. taskEvents subscribers: two per user (one per server), two of the admin's, one of the
   second admin's, and one per extra session; every socket that closes with another code than 4403
   reconnects (to its server, or the other one) with ``after: <last cursor>``.
3. Faults, one after the other, in a random order and at random moments: Redis SIGKILLed and restarted
   empty (down REDIS_DOWN_SECONDS); Redis restarted from an old snapshot (SAVE, more writes, SIGKILL,
   restart loading the dump); Redis frozen (SIGSTOP) for about 3 s; one taskql server SIGKILLed and
   restarted. Revocations: an extra session logged out while Redis is down, another while it is frozen,
   another at a random moment; the second admin demoted; an account deactivated.
4. Checks, each a count that must be zero (the run exits 1 otherwise):
   - stale reads beyond the bound: a read that started more than BOUND seconds after a write was
     acknowledged (and after Redis was back, if it was away during the write) and does not reflect it;
     ``me`` of the demoted admin still ADMIN as long after;
   - per subscriber: an acknowledged write's event lost (after the drain), delivered twice, or out of order
     (cursors not strictly increasing across reconnects, or a user's writes not in the order they were
     acknowledged), or an event that is no write's;
   - revoked sessions: an event delivered, or the socket still open, more than REVOCATION_BOUND seconds
     after the revocation was acknowledged; ``me`` answered more than BOUND seconds after;
   - acknowledged writes lost: read in PostgreSQL at the end;
   - errors: a subscriber sent an error (INTERNAL_SERVER_ERROR counted apart), a request answered an
     error, a server logged a traceback.
   Measured and printed: the longest stale-read window, the longest event delay (after Redis was back),
   the longest revocation delays.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.servers import BUDGETS, ROOT
from core.ids import encode_id
from tests.databases import dsn_of
from tests.fault_servers import RedisProcess
from tests.processes import TaskqlProcess, environment, free_port
from tests.ws_client import Closed, Subscriber

QUERIES = ROOT / "graphql" / "queries"
REGISTER, LOGIN, LOGOUT, ME, CREATE, UPDATE, DELETE, SET_ROLE, SET_ACTIVE = (
    (QUERIES / f"{name}.graphql").read_text()
    for name in (
        "Register", "Login", "Logout", "Me", "CreateTask", "UpdateTask", "DeleteTask", "SetUserRole",
        "SetUserActive",
    )
)  # fmt: skip
# Cacheable, and everything a stale read would show: the user's tasks (fewer than a page) and titles.
TASKS = "query FaultRunTasks { tasks(first: 100) { totalCount edges { node { id title } } } }"
PASSWORD = "fault run passphrase"  # noqa: S105  (accounts of a throwaway run)

# The servers' settings that the bounds are made of (their defaults, set explicitly).
OUTBOX_RELAY_SECONDS = 1.0
REDIS_CIRCUIT_OPEN_SECONDS = 1.0
SESSION_RECHECK_SECONDS = 5.0
# A read may miss a write acknowledged less than BOUND seconds before it started (after Redis was back): the
# relay's period, the circuit's, and a second of slack for a loaded 2-core machine.
BOUND = OUTBOX_RELAY_SECONDS + REDIS_CIRCUIT_OPEN_SECONDS + 1.0
# A revoked socket gets nothing, and is closed, within the recheck's period (whatever Redis does), plus
# half a second of scheduling slack; measured from the acknowledgement (the commit comes before).
REVOCATION_BOUND = SESSION_RECHECK_SECONDS + 0.5
REDIS_DOWN_SECONDS = (6.5, 7.5)  # longer than the recheck's period: revocation must not wait for Redis
FREEZE_SECONDS = (2.5, 3.5)
WARMUP_SECONDS = 3.0
MAX_LIVE_TASKS = 25


class Failed(Exception):
    """The run cannot go on: the message says why."""


def now() -> float:
    return time.monotonic()


def position(cursor: str) -> tuple[int, int]:
    """A taskEvents cursor's position (milliseconds, sequence)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    milliseconds, _, sequence = raw.partition("-")
    return int(milliseconds), int(sequence or 0)


def counter_of(title: str) -> int:
    return int(title.rpartition(" n")[2])


# What happened, when -------------------------------------------------------------------------------------


@dataclass
class Outages:
    """Redis's outages (killed, restarting, frozen): [down, back] in monotonic seconds."""

    spans: list[list[float]] = field(default_factory=list)

    def down(self) -> None:
        self.spans.append([now(), float("inf")])

    def back(self) -> None:
        self.spans[-1][1] = now()

    def effective(self, sent: float, acked: float) -> float:
        """When a write acknowledged at ``acked`` must be visible from: then, or when Redis came back if it
        was away at any moment of the request."""
        moment = acked
        for down, back in self.spans:
            if down <= acked and back >= sent:
                moment = max(moment, back)
        return moment


@dataclass
class Write:
    user: int
    op: str  # create, update, delete
    task: str | None  # None: a creation whose answer never came
    title: str  # the title it set ("" for a deletion)
    sent: float
    acked: float | None = None  # None: the outcome is unknown (the server died)
    probe: bool = False  # a first write, before every subscriber is known to be registered

    @property
    def identity(self) -> tuple[str, str, str]:
        """What its event looks like to a subscriber."""
        kind = {"create": "CREATED", "update": "UPDATED", "delete": "DELETED"}[self.op]
        return kind, self.task or "?", self.title


@dataclass
class Figures:
    stale_reads: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    transport_errors: int = 0
    reads: int = 0
    hits: int = 0
    stale_window: float = 0.0  # the longest: read start - acknowledgement of a write it did not reflect
    stale_window_effective: float = 0.0  # the same, from when it had to be visible


# Players ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    name: str
    email: str
    user_id: str
    token: str


@dataclass
class Player:
    index: int
    session: Session
    writes: list[Write] = field(default_factory=list)
    counter: int = 0

    def acked(self) -> list[Write]:
        return [write for write in self.writes if write.acked is not None]

    def live_tasks(self) -> list[str]:
        """Tasks created and not (being) deleted, as far as acknowledged."""
        created = [w.task for w in self.writes if w.op == "create" and w.task and w.acked is not None]
        gone = {w.task for w in self.writes if w.op == "delete"}
        return [task for task in created if task not in gone]


class Run:
    def __init__(self, args: argparse.Namespace, servers: list[TaskqlProcess], redis: RedisProcess) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.servers = servers
        self.redis = redis
        self.outages = Outages()
        self.figures = Figures()
        self.players: list[Player] = []
        self.subscribers: list[Sub] = []
        self.revocations: list[Revocation] = []
        self.pollers: list[MePoller] = []
        self.faults: list[dict[str, Any]] = []
        self.stopping = False
        self.load_until = float("inf")  # set once the faults are over
        self.admin_session: Session | None = None
        self.started = now()  # the load's start: times in the report are from it
        self.clients = [httpx.AsyncClient(base_url=server.url, timeout=15) for server in servers]

    def client(self) -> httpx.AsyncClient:
        return self.rng.choice(self.clients)

    async def post(
        self,
        document: str,
        variables: dict[str, Any],
        token: str | None,
        client: httpx.AsyncClient | None = None,
    ) -> tuple[dict[str, Any], httpx.Headers] | None:
        """The answer; None when the server could not be reached or went away (its outcome unknown)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            response = await (client or self.client()).post(
                "/graphql", json={"query": document, "variables": variables}, headers=headers
            )
        except httpx.TransportError:
            self.figures.transport_errors += 1
            return None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {"errors": [{"message": response.text[:200]}]}
        for error in body.get("errors", []):
            if error.get("extensions", {}).get("code") == "INTERNAL_SERVER_ERROR":
                self.figures.internal_errors.append(f"HTTP: {error}")
        return body, response.headers

    async def must(
        self, document: str, variables: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        """Set-up requests: retried on a transport error, and must succeed."""
        for _ in range(20):
            answer = await self.post(document, variables, token)
            if answer is None:
                await asyncio.sleep(0.2)
                continue
            body, _ = answer
            if "errors" in body:
                raise Failed(f"{document.split('(')[0]}: {body['errors']}")
            return dict(body["data"])
        raise Failed("no server answered")

    # Accounts -----------------------------------------------------------------------------------------

    async def register(self, name: str) -> Session:
        email = f"{name}-{secrets.token_hex(4)}@example.com"
        data = await self.must(REGISTER, {"input": {"email": email, "password": PASSWORD, "name": name}})
        return Session(name, email, data["register"]["user"]["id"], data["register"]["accessToken"])

    async def login(self, session: Session, name: str) -> Session:
        """Another session of ``session``'s account."""
        data = await self.must(LOGIN, {"input": {"email": session.email, "password": PASSWORD}})
        return Session(name, session.email, session.user_id, data["login"]["accessToken"])

    async def admin(self, name: str, dsn: str) -> Session:
        email = f"{name}-{secrets.token_hex(4)}@example.com"
        await self.must(REGISTER, {"input": {"email": email, "password": PASSWORD, "name": name}})
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("UPDATE users SET role = 'ADMIN' WHERE email = $1", email)
        finally:
            await connection.close()
        data = await self.must(LOGIN, {"input": {"email": email, "password": PASSWORD}})
        return Session(name, email, data["login"]["user"]["id"], data["login"]["accessToken"])

    # Writing and reading --------------------------------------------------------------------------------

    async def write(self, player: Player) -> None:
        live = player.live_tasks()
        choice = self.rng.random()
        player.counter += 1
        title = f"u{player.index} n{player.counter}"
        variables: dict[str, Any]
        if len(live) < 3 or (choice < 0.3 and len(live) < MAX_LIVE_TASKS):
            write = Write(player.index, "create", None, title, now())
            document, variables, field_name = CREATE, {"input": {"title": title}}, "createTask"
        elif choice < 0.85:
            task = self.rng.choice(live)
            write = Write(player.index, "update", task, title, now())
            document, variables, field_name = UPDATE, {"id": task, "input": {"title": title}}, "updateTask"
        else:
            task = self.rng.choice(live)
            write = Write(player.index, "delete", task, "", now())
            document, variables, field_name = DELETE, {"id": task}, "deleteTask"
        player.writes.append(write)
        answer = await self.post(document, variables, player.session.token)
        if answer is None:
            return  # the server died: maybe written, maybe not
        body, _ = answer
        if "errors" in body:
            self.figures.unexpected.append(f"{field_name}: {body['errors']}")
            write.acked = None
            player.writes.remove(write)
            return
        write.acked = now()
        if write.op == "create":
            write.task = str(body["data"]["createTask"]["id"])

    async def writer(self, player: Player) -> None:
        while now() < self.load_until:
            await self.write(player)
            await asyncio.sleep(self.rng.uniform(0.05, 0.15))

    async def reader(self, player: Player) -> None:
        while now() < self.load_until:
            if self.rng.random() < 0.15:
                answer = await self.post(ME, {}, player.session.token)
                if answer is not None and "errors" in answer[0]:
                    self.figures.unexpected.append(f"me: {answer[0]['errors']}")
            else:
                await self.read_tasks(player)
            await asyncio.sleep(self.rng.uniform(0.03, 0.08))

    async def read_tasks(self, player: Player) -> None:
        started = now()
        answer = await self.post(TASKS, {}, player.session.token)
        finished = now()
        if answer is None:
            return
        body, headers = answer
        self.figures.reads += 1
        self.figures.hits += headers.get("x-cache") == "HIT"
        if "errors" in body:
            self.figures.unexpected.append(f"tasks: {body['errors']}")
            return
        seen = {
            edge["node"]["id"]: counter_of(edge["node"]["title"]) for edge in body["data"]["tasks"]["edges"]
        }
        self.check_read(player, started, finished, seen, headers.get("x-cache", "?"))

    def check_read(
        self, player: Player, started: float, finished: float, seen: dict[str, int], cache: str
    ) -> None:
        """Each task's last write acknowledged before the read started must show (or a later one)."""
        last: dict[str, Write] = {}
        deleting: set[str] = set()
        for write in player.writes:
            if write.op == "delete" and write.sent < finished and write.task:
                deleting.add(write.task)
            if write.acked is not None and write.acked <= started and write.task:
                last[write.task] = write
        for task, write in last.items():
            if write.op == "delete":
                reflected = task not in seen
            elif task not in seen:
                reflected = task in deleting
            else:
                reflected = seen[task] >= counter_of(write.title)
            if reflected:
                continue
            assert write.acked is not None
            self.figures.stale_window = max(self.figures.stale_window, started - write.acked)
            # When it had to be visible, as known now (an outage still going on: not yet).
            late = started - self.outages.effective(write.sent, write.acked)
            self.figures.stale_window_effective = max(self.figures.stale_window_effective, late)
            if late > BOUND:
                self.figures.stale_reads.append(
                    f"u{player.index}: a read {late:.2f} s after {write.op} {write.title or task} was due "
                    f"showed {seen.get(task, 'no task')} (X-Cache {cache})"
                )


# Subscribers -----------------------------------------------------------------------------------------


@dataclass
class Sub:
    """A taskEvents subscriber that reconnects with its last cursor, until closed 4403."""

    name: str
    audience: int | None  # a player's index; None: every task (an admin's)
    token: str
    home: int
    run: Run
    counted: bool = True  # must receive every acknowledged write of its audience
    events: list[tuple[float, tuple[int, int], tuple[str, str, str]]] = field(default_factory=list)
    cursor: str | None = None
    closed_4403: float | None = None
    reconnects: int = 0
    live: asyncio.Event = field(default_factory=asyncio.Event)
    socket: Subscriber | None = None

    async def follow(self) -> None:
        attempt = 0
        while not self.run.stopping:
            server = self.run.servers[(self.home + attempt) % len(self.run.servers)]
            try:
                self.socket = await Subscriber.open(
                    server.url.replace("http", "ws") + "/graphql", {"authorization": f"Bearer {self.token}"}
                )
                await self.socket.subscribe({"after": self.cursor} if self.cursor else {})
                attempt = 0
                await self.listen(self.socket)
            except Closed as closed:
                if closed.code == 4403:
                    self.closed_4403 = now()
                    if self.counted:
                        self.run.figures.unexpected.append(f"{self.name}: closed 4403 ({closed.reason})")
                    return
            except Exception:  # noqa: S110  (refused, or the server died: reconnect)
                pass
            if self.run.stopping:
                return
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(0.2)

    async def listen(self, socket: Subscriber) -> None:
        while True:
            message = await socket.receive(timeout=3600)
            if message["type"] == "next":
                errors = message["payload"].get("errors")
                if errors:
                    self.error(errors)
                    continue
                self.received(message["payload"]["data"]["taskEvents"])
            elif message["type"] == "error":
                self.error(message["payload"])
                await socket.close()
                return
            elif message["type"] == "complete":
                await socket.close()
                return

    def error(self, errors: Any) -> None:
        listed = errors if isinstance(errors, list) else [errors]
        for error in listed:
            text = f"{self.name}: {error}"
            if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR":
                self.run.figures.internal_errors.append(text)
            self.run.figures.unexpected.append(text)

    def received(self, event: dict[str, Any]) -> None:
        self.cursor = event["cursor"]
        title = (event.get("task") or {}).get("title") or ""
        self.events.append((now(), position(event["cursor"]), (event["kind"], event["taskId"], title)))
        self.live.set()

    def covers(self, write: Write) -> bool:
        return self.audience is None or self.audience == write.user

    async def close(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await self.socket.close()


@dataclass
class MePoller:
    """``me`` with one session, every quarter of a second, on either server: (started, ok, role)."""

    session: Session
    run: Run
    answers: list[tuple[float, bool, str | None]] = field(default_factory=list)

    async def poll(self) -> None:
        while not self.run.stopping:
            started = now()
            answer = await self.run.post(ME, {}, self.session.token)
            if answer is not None:
                data = answer[0].get("data") or {}
                me = data.get("me")
                self.answers.append((started, me is not None, (me or {}).get("role")))
            await asyncio.sleep(0.25)


@dataclass
class Revocation:
    kind: str  # logout, deactivate, demote
    session: Session
    subscriber: Sub
    poller: MePoller
    sent: float = float("inf")
    acked: float = float("inf")


# Faults --------------------------------------------------------------------------------------------------


async def redis_killed_restarted_empty(run: Run) -> dict[str, Any]:
    down = run.rng.uniform(*REDIS_DOWN_SECONDS)
    run.outages.down()
    await asyncio.to_thread(run.redis.kill)
    await asyncio.sleep(run.rng.uniform(0.2, 0.8))
    revoked = await revoke_next_logout(run)
    await asyncio.sleep(max(0.0, down - (now() - run.outages.spans[-1][0])))
    await asyncio.to_thread(run.redis.start)
    run.outages.back()
    return {"fault": "redis killed, restarted empty", "down_s": round(down, 2), "logout_while_down": revoked}


async def redis_restarted_from_old_snapshot(run: Run) -> dict[str, Any]:
    await asyncio.to_thread(run.redis.save)
    after = run.rng.uniform(1.5, 3.0)
    await asyncio.sleep(after)  # writes the snapshot does not have
    run.outages.down()
    await asyncio.to_thread(run.redis.kill)
    await asyncio.to_thread(lambda: run.redis.start(from_snapshot=True))
    run.outages.back()
    return {"fault": "redis restarted from an old snapshot", "snapshot_age_s": round(after, 2)}


async def redis_frozen(run: Run) -> dict[str, Any]:
    frozen = run.rng.uniform(*FREEZE_SECONDS)
    run.outages.down()
    run.redis.signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(run.rng.uniform(0.2, 0.8))
        revoked = await revoke_next_logout(run)
        await asyncio.sleep(max(0.0, frozen - (now() - run.outages.spans[-1][0])))
    finally:
        run.redis.signal(signal.SIGCONT)
    run.outages.back()
    return {"fault": "redis frozen (SIGSTOP)", "frozen_s": round(frozen, 2), "logout_while_frozen": revoked}


async def server_killed_restarted(run: Run) -> dict[str, Any]:
    index = run.rng.randrange(len(run.servers))
    await asyncio.to_thread(run.servers[index].kill)
    await asyncio.sleep(run.rng.uniform(0.5, 1.5))
    started = now()
    await asyncio.to_thread(run.servers[index].start)
    return {
        "fault": f"server {index + 1} killed (SIGKILL), restarted",
        "restart_s": round(now() - started, 2),
    }


FAULTS: list[Callable[[Run], Awaitable[dict[str, Any]]]] = [
    redis_killed_restarted_empty,
    redis_restarted_from_old_snapshot,
    redis_frozen,
    server_killed_restarted,
]


async def revoke(
    run: Run, revocation: Revocation, document: str, variables: dict[str, Any], token: str
) -> str:
    sent = now()
    first = run.rng.randrange(2)
    answer = await run.post(document, variables, token, client=run.clients[first])
    if answer is None:  # the server died under it: on the other one
        answer = await run.post(document, variables, token, client=run.clients[1 - first])
    if answer is None or "errors" in answer[0]:
        run.figures.unexpected.append(f"{revocation.kind}: {answer and answer[0].get('errors')}")
        return "failed"
    revocation.acked = now()
    revocation.sent = sent
    return revocation.session.name


async def revoke_next_logout(run: Run) -> str:
    pending = [r for r in run.revocations if r.kind == "logout" and r.acked == float("inf")]
    if not pending:
        return "none left"
    revocation = pending[0]
    return await revoke(run, revocation, LOGOUT, {}, revocation.session.token)


async def schedule(run: Run, started: float, admin: Session) -> None:
    """The faults in a random order, each at a random moment of its slot; the other revocations at random
    moments between them."""
    slot = (run.args.duration - WARMUP_SECONDS) / len(FAULTS)
    faults = run.rng.sample(FAULTS, len(FAULTS))
    others = {
        kind: started + run.rng.uniform(WARMUP_SECONDS, run.args.duration - 2)
        for kind in ("logout", "demote", "deactivate")
    }
    tasks = [asyncio.create_task(other(run, kind, at, admin)) for kind, at in others.items()]
    for number, fault in enumerate(faults):
        at = started + WARMUP_SECONDS + number * slot + run.rng.uniform(0, 0.25 * slot)
        await asyncio.sleep(max(0.0, at - now()))
        record = await fault(run)
        record["at_s"] = round(at - started, 2)
        run.faults.append(record)
        print(f"  {record}", flush=True)
    await asyncio.gather(*tasks)


async def other(run: Run, kind: str, at: float, admin: Session) -> None:
    await asyncio.sleep(max(0.0, at - now()))
    if kind == "logout":
        await revoke_next_logout(run)
        return
    revocation = next(r for r in run.revocations if r.kind == kind)
    if kind == "demote":
        variables: dict[str, Any] = {"userId": revocation.session.user_id, "role": "USER"}
        await revoke(run, revocation, SET_ROLE, variables, admin.token)
    else:
        variables = {"userId": revocation.session.user_id, "active": False}
        await revoke(run, revocation, SET_ACTIVE, variables, admin.token)


# The run ---------------------------------------------------------------------------------------------


async def prepare(run: Run, dsn: str) -> Session:
    admin = await run.admin("admin", dsn)
    for index in range(run.args.users):
        run.players.append(Player(index, await run.register(f"u{index}")))
    for player in run.players:
        for home in range(2):
            run.subscribers.append(
                Sub(f"u{player.index}@{home + 1}", player.index, player.session.token, home, run)
            )
    for home in range(2):
        run.subscribers.append(Sub(f"admin@{home + 1}", None, admin.token, home, run))
    # Sessions to revoke: three extra sessions (logged out), a second admin (demoted), an account
    # (deactivated); each with a subscriber and a `me` poller.
    targets: list[tuple[str, Session, int | None]] = []
    for index in range(3):
        player = run.players[index % len(run.players)]
        extra = await run.login(player.session, f"u{player.index}-extra{index}")
        targets.append(("logout", extra, player.index))
    targets.append(("demote", await run.admin("admin2", dsn), None))
    account = await run.register("deactivated")
    targets.append(("deactivate", account, None))
    for kind, session, audience in targets:
        sub = Sub(session.name, audience, session.token, run.rng.randrange(2), run, counted=False)
        if kind == "deactivate":
            sub.audience = -1  # its own tasks: it has none
        run.subscribers.append(sub)
        poller = MePoller(session, run)
        run.pollers.append(poller)
        run.revocations.append(Revocation(kind, session, sub, poller))
    return admin


async def confirm_live(run: Run) -> None:
    """A first write per player, until every subscriber has received an event (it is then registered)."""
    for _ in range(10):
        for player in run.players:
            await run.write(player)
        for player in run.players:
            player.writes[-1].probe = True  # a subscriber registered after it may not have it
        waiting = [sub.live.wait() for sub in run.subscribers if not sub.live.is_set() and sub.audience != -1]
        if not waiting:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting), 3)
    raise Failed("subscribers never received a first event")


async def drain(run: Run, seconds: float) -> float:
    """Wait until every counted subscriber has every acknowledged write's event; the seconds it took."""
    started = now()
    while now() - started < seconds:
        if not any(missing(run, sub) for sub in run.subscribers if sub.counted):
            break
        await asyncio.sleep(0.2)
    return now() - started


def missing(run: Run, sub: Sub) -> list[tuple[str, str, str]]:
    received = {identity for _, _, identity in sub.events}
    return [
        write.identity
        for player in run.players
        for write in player.acked()
        if sub.covers(write) and not write.probe and write.identity not in received
    ]


async def play(run: Run) -> dict[str, Any]:
    followers = [asyncio.create_task(sub.follow()) for sub in run.subscribers]
    await confirm_live(run)
    pollers = [asyncio.create_task(poller.poll()) for poller in run.pollers]
    started = run.started = now()
    assert run.admin_session is not None
    load = [asyncio.create_task(run.writer(player)) for player in run.players]
    load += [asyncio.create_task(run.reader(player)) for player in run.players]
    await schedule(run, started, run.admin_session)
    # The load goes on a while after the last fault (Redis back, reads and events checked after it).
    run.load_until = max(started + run.args.duration, now() + 2 * BOUND)
    await asyncio.gather(*load)
    drained = await drain(run, run.args.drain)
    run.stopping = True
    for sub in run.subscribers:
        await sub.close()
    for task in followers + pollers:
        task.cancel()
    await asyncio.gather(*followers, *pollers, return_exceptions=True)
    return {"drain_s": round(drained, 2)}


# Checks ------------------------------------------------------------------------------------------------


def event_checks(run: Run) -> dict[str, Any]:
    acked = {w.identity: w for p in run.players for w in p.acked()}
    writes = {w.identity: w for p in run.players for w in p.writes if w.task}
    # Creations whose answer never came (the server died): their events may come, by title.
    unknown = {w.title for p in run.players for w in p.writes if w.task is None}
    order = {w.identity: (w.user, i) for p in run.players for i, w in enumerate(p.acked())}
    lost = duplicated = backwards = out_of_order = foreign = 0
    delay = delay_after_redis = 0.0
    examples: dict[str, list[str]] = {"lost": [], "order": [], "other": []}
    for sub in run.subscribers:
        identities = [identity for _, _, identity in sub.events]
        duplicated += len(identities) - len(set(identities))
        positions = [pos for _, pos, _ in sub.events]
        backwards += sum(1 for a, b in itertools.pairwise(positions) if b <= a)
        last: dict[int, tuple[int, float]] = {}
        for received, _, identity in sub.events:
            if identity not in order:
                continue
            user, index = order[identity]
            latest, at = last.get(user, (-1, 0.0))
            if index < latest:
                out_of_order += 1
                write = acked[identity]
                assert write.acked is not None
                examples["order"].append(
                    f"{sub.name}: {write.op} {write.title or write.task} (acknowledged at "
                    f"{write.acked - run.started:.2f} s) received at {received - run.started:.2f} s, after "
                    f"u{user}'s write #{latest} (received at {at - run.started:.2f} s)"
                )
            if index > latest:
                last[user] = (index, received)
        for identity in identities:
            told = writes.get(identity)
            if told is None and not (identity[0] == "CREATED" and identity[2] in unknown):
                foreign += 1
                examples["other"].append(f"{sub.name}: {identity} is no write's")
            elif told is not None and not sub.covers(told):
                foreign += 1
                examples["other"].append(f"{sub.name}: {identity} is not its audience's")
        if sub.counted:
            gone = missing(run, sub)
            lost += len(gone)
            for identity in gone[:3]:
                write = acked[identity]
                assert write.acked is not None
                examples["lost"].append(
                    f"{sub.name} never received {identity} "
                    f"(acknowledged at {write.acked - run.started:.2f} s)"
                )
            for received, _, identity in sub.events:
                done = acked.get(identity)
                if done is None or done.acked is None:
                    continue
                # From when it could be delivered: acknowledged, and Redis back from every outage between
                # the write and the delivery.
                spans = run.outages.spans
                due = max(
                    [done.acked, *(back for down, back in spans if down <= received and back >= done.sent)]
                )
                delay = max(delay, received - due)
                if due > done.acked:  # Redis was away in between
                    delay_after_redis = max(delay_after_redis, received - due)
    return {
        "events_lost": lost,
        "events_duplicated": duplicated,
        "event_cursors_not_increasing": backwards,
        "events_out_of_write_order": out_of_order,
        "events_foreign": foreign,
        "events_delivered": sum(len(sub.events) for sub in run.subscribers),
        "max_event_delay_s": round(delay, 2),
        "max_event_delay_after_redis_back_s": round(delay_after_redis, 2),
        "event_examples": examples["lost"][:4] + examples["order"][:4] + examples["other"][:4],
    }


def revocation_checks(run: Run) -> dict[str, Any]:
    late_events = open_late = me_late = stale_role = 0
    socket_delay = me_window = 0.0
    details = []
    for revocation in run.revocations:
        if revocation.acked == float("inf"):
            details.append(f"{revocation.kind} {revocation.session.name}: not done")
            continue
        sub = revocation.subscriber
        due = run.outages.effective(revocation.sent, revocation.acked)
        late_events += sum(1 for at, _, _ in sub.events if at > revocation.acked + REVOCATION_BOUND)
        closed = sub.closed_4403
        if closed is None or closed > revocation.acked + REVOCATION_BOUND:
            open_late += 1
        socket_delay = max(socket_delay, (closed if closed is not None else now()) - revocation.acked)
        for started, ok, role in revocation.poller.answers:
            if started < revocation.acked:
                continue
            if revocation.kind == "demote":
                if role == "ADMIN":
                    me_window = max(me_window, started - revocation.acked)
                    stale_role += started > due + BOUND
            elif ok:
                me_window = max(me_window, started - revocation.acked)
                me_late += started > due + BOUND
        details.append(
            f"{revocation.kind} {revocation.session.name}: socket closed "
            + (f"{closed - revocation.acked:.2f} s after" if closed is not None else "never")
        )
    return {
        "revoked_events_late": late_events,
        "revoked_sockets_open_late": open_late,
        "revoked_me_answered_late": me_late,
        "demoted_me_still_admin_late": stale_role,
        "max_revocation_socket_delay_s": round(socket_delay, 2),
        "max_revoked_me_window_s": round(me_window, 2),
        "revocations": details,
    }


async def durability_checks(run: Run, dsn: str) -> dict[str, Any]:
    """Every acknowledged creation is in PostgreSQL unless deleted, with its last acknowledged title or a
    later one; every acknowledged deletion stays deleted."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT id, title FROM tasks")
    finally:
        await connection.close()
    stored = {encode_id("Task", row["id"]): row["title"] for row in rows}
    lost: list[str] = []
    for player in run.players:
        last: dict[str, Write] = {}
        deleting = {w.task for w in player.writes if w.op == "delete"}
        for write in player.acked():
            assert write.task is not None
            last[write.task] = write
        for task, write in last.items():
            if write.op == "delete":
                if task in stored:
                    lost.append(f"u{player.index}: deleted {task} is back as {stored[task]!r}")
            elif task not in stored:
                if task not in deleting:
                    lost.append(f"u{player.index}: {write.title} ({task}) is gone")
            elif counter_of(stored[task]) < counter_of(write.title):
                lost.append(
                    f"u{player.index}: {task} holds {stored[task]!r}, {write.title!r} was acknowledged"
                )
    return {"acknowledged_writes_lost": len(lost), "lost_examples": lost[:5]}


def tracebacks(servers: list[TaskqlProcess]) -> int:
    return sum(server.output().count("Traceback") for server in servers)


# Main ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(folder: Path) -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL in ``folder``."""
    import os

    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from taskql.cli.services import start_embedded_postgres, stop_embedded

    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")
    try:
        yield start_embedded_postgres(folder)
    finally:
        stop_embedded()


async def measure(
    args: argparse.Namespace, servers: list[TaskqlProcess], redis: RedisProcess, dsn: str
) -> dict[str, Any]:
    run = Run(args, servers, redis)
    try:
        run.admin_session = await prepare(run, dsn)
        outcome = await play(run)
    finally:
        run.stopping = True
        for client in run.clients:
            await client.aclose()
    figures = run.figures
    line: dict[str, Any] = {
        "benchmark": "fault_run",
        "seed": args.seed,
        "duration_s": args.duration,
        "bound_s": BOUND,
        "revocation_bound_s": REVOCATION_BOUND,
        "faults": run.faults,
        "redis_outages_s": [[round(t - run.started, 2) for t in span] for span in run.outages.spans],
        "writes_acknowledged": sum(len(p.acked()) for p in run.players),
        "writes_unknown": sum(len(p.writes) - len(p.acked()) for p in run.players),
        "reads": figures.reads,
        "cache_hits": figures.hits,
        "transport_errors": figures.transport_errors,
        "reconnects": sum(sub.reconnects for sub in run.subscribers),
        "stale_reads": len(figures.stale_reads),
        "stale_examples": figures.stale_reads[:5],
        "max_stale_window_s": round(figures.stale_window, 2),
        "max_stale_window_after_due_s": round(figures.stale_window_effective, 2),
        **outcome,
        **event_checks(run),
        **revocation_checks(run),
        **await durability_checks(run, dsn),
        "internal_server_errors": len(figures.internal_errors),
        "unexpected_errors": len(figures.unexpected),
        "unexpected_examples": figures.unexpected[:5],
    }
    return line


ZERO = (
    "stale_reads", "events_lost", "events_duplicated", "event_cursors_not_increasing",
    "events_out_of_write_order", "events_foreign",
    "revoked_events_late", "revoked_sockets_open_late", "revoked_me_answered_late",
    "demoted_me_still_admin_late", "acknowledged_writes_lost", "internal_server_errors",
    "unexpected_errors", "server_tracebacks",
)  # fmt: skip


def report(line: dict[str, Any]) -> None:
    print(
        f"\nfault run (seed {line['seed']}, {line['duration_s']:g} s): {line['writes_acknowledged']} writes "
        f"acknowledged ({line['writes_unknown']} cut off), {line['reads']} reads "
        f"({line['cache_hits']} hits), "
        f"{line['events_delivered']} events delivered, {line['reconnects']} reconnects"
    )
    print(f"bounds: stale reads {line['bound_s']:g} s, revocation {line['revocation_bound_s']:g} s")
    for name in ZERO:
        print(f"  {'ok    ' if line[name] == 0 else 'FAILED'} {name}: {line[name]}")
    print(
        f"windows: stale read {line['max_stale_window_s']} s after the acknowledgement "
        f"({line['max_stale_window_after_due_s']} s after it was due); "
        f"event delay {line['max_event_delay_s']} s "
        f"({line['max_event_delay_after_redis_back_s']} s after Redis was back); revoked socket closed "
        f"within {line['max_revocation_socket_delay_s']} s; revoked me answered up to "
        f"{line['max_revoked_me_window_s']} s after"
    )
    for key in ("stale_examples", "event_examples", "lost_examples", "unexpected_examples", "revocations"):
        for example in line[key]:
            print(f"  {example}")
    print(json.dumps(line))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=40, help="Seconds of load (the faults fit in).")
    parser.add_argument("--seed", type=int, default=None, help="The run's random seed (printed).")
    parser.add_argument("--users", type=int, default=4, help="Users writing, reading and subscribing.")
    parser.add_argument("--drain", type=float, default=20, help="Seconds to wait for the last events.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, snapshot).")
    args = parser.parse_args()
    if args.duration < 30:
        parser.error("--duration: at least 30 s (four faults, the longest Redis outage 7.5 s)")
    if args.users < 1:
        parser.error("--users must be positive")
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    return args


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    folder = Path(tempfile.mkdtemp(prefix="taskql-fault-run-"))
    redis = RedisProcess(free_port(), folder)
    servers: list[TaskqlProcess] = []
    try:
        with database(folder) as database_url:
            redis.start()
            env = environment(
                DATABASE_URL=database_url,
                REDIS_URL=redis.url,
                JWT_SECRET=secrets.token_urlsafe(48),
                LOG_LEVEL="WARNING",
                DATA_DIR=str(folder),
                OUTBOX_RELAY_SECONDS=str(OUTBOX_RELAY_SECONDS),
                REDIS_CIRCUIT_OPEN_SECONDS=str(REDIS_CIRCUIT_OPEN_SECONDS),
                SESSION_RECHECK_SECONDS=str(SESSION_RECHECK_SECONDS),
                **BUDGETS,
            )
            migrate = subprocess.run(
                [sys.executable, "-m", "taskql", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True
            )
            if migrate.returncode != 0:
                raise SystemExit(f"migrate failed:\n{migrate.stderr}")
            servers = [TaskqlProcess(env, folder, f"taskql-{index + 1}") for index in range(2)]
            for server in servers:
                server.start()
            print(f"seed {args.seed}: 2 taskql processes ({', '.join(s.url for s in servers)}), {redis.url}")
            try:
                line = asyncio.run(measure(args, servers, redis, dsn_of(database_url)))
            except (Failed, httpx.HTTPError) as failure:
                print(f"\n!!! {type(failure).__name__}: {failure}", file=sys.stderr)
                raise SystemExit(1) from None
            for server in servers:
                server.stop()
            line["server_tracebacks"] = tracebacks(servers)
        report(line)
    finally:
        for server in servers:
            server.kill()
        redis.close()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if any(line[name] for name in ZERO) or line["cache_hits"] == 0 or len(line["faults"]) != len(FAULTS):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
