"""Benchmark over WebSocket: many idle taskEvents subscribers on one instance, their memory, and how fast
and how completely a steady stream of mutations reaches them.

    python -m bench.subscriptions [--subscribers 5000] [--users 1000] [--rate 20] [--duration 30]
                                  [--open-batch 200] [--deflate] [--py-spy FILE [--py-spy-format raw]]
                                  [--data-dir .data/bench-subs] [--port 8097]

1. Seeds SEED_USERS users (password ``seeded-user-password``) into DATA_DIR, once.
2. Serves taskql as production would: `python -m taskql serve`, ENVIRONMENT=production, a random JWT_SECRET,
   LOG_LEVEL=WARNING, one worker, ACCESS_TOKEN_TTL_SECONDS=3600 (so that no socket reaches its token's
   expiry during the run), every other setting at its default, on 127.0.0.1:PORT.
3. From this process (over loopback): logs in USERS seeded users (a few at a time: argon2), warms the
   server up (a few subscribers and mutations, then closed), and reads its RSS (VmRSS): RSS_0.
4. Opens SUBSCRIBERS WebSockets (graphql-transport-ws, no compression), OPEN_BATCH at a time, spread
   round-robin over the users, each subscribed to ``taskEvents``; then confirms every subscription is live by
   a first event (a probe task created for each user, again until all of that user's subscribers got one).
   After SETTLE seconds of idling, reads the RSS again: RSS_N. Memory per idle subscription =
   (RSS_N - RSS_0) / SUBSCRIBERS.
5. Drives mutations at RATE per second for DURATION seconds over HTTP (createTask or updateTask, each for a
   random user with no mutation of theirs in flight, so that the order of one user's events is defined),
   recording when each response arrived; every subscriber records when each event arrived (both with
   time.monotonic() in this process). Delivery latency = event arrival - mutation response arrival (it can
   be negative: the server publishes before it answers).
6. Checks that every subscriber got every event of its user, and nothing else, exactly once and in order;
   prints a table and one JSON line, and exits 1 if delivered != expected or any check failed.

``--deflate`` offers permessage-deflate, as browsers do; ``--py-spy`` records the server during the
mutations (which slows it). ``python -m bench.ws_memory`` shows where the memory per subscription goes.
Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import itertools
import json
import os
import random
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.servers import ADMIN, LOGIN, ROOT, environment, measure_served, prepare, refuse_busy_port

HOST = "127.0.0.1"
TRANSPORT_WS = "graphql-transport-ws"
SUBSCRIPTION = "subscription { taskEvents { cursor kind taskId task { id title } at } }"
CREATE = (ROOT / "graphql" / "queries" / "CreateTask.graphql").read_text()
UPDATE = (ROOT / "graphql" / "queries" / "UpdateTask.graphql").read_text()
USERS = "query($after: String) { users(first: 100, after: $after) { edges { node { email role } } pageInfo { hasNextPage endCursor } } }"  # noqa: E501
SEED_DOMAIN = "@seed.taskql.dev"
SEED_PASSWORD = "seeded-user-password"  # noqa: S105  (taskql.data.seed's, documented in the README)
TOKEN_TTL_SECONDS = 3600
LOGIN_CONCURRENCY = 8  # argon2 runs in the server's thread pool: more at once only queue
PROBE_CONCURRENCY = 16
PROBE_WAIT_SECONDS = 3.0
PROBE_ATTEMPTS = 5
WARM_UP_SUBSCRIBERS = 20
TARGET_P99_MS = 250.0
TARGET_BYTES_PER_SUBSCRIPTION = 50_000  # 50 kB


class Failed(Exception):
    """The run cannot go on: the message says why."""


# The server process ---------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS, which /proc gives in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise Failed(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settled_rss(pid: int, seconds: float) -> int:
    """RSS after ``seconds`` of idling: the median of three readings over the last second."""
    await asyncio.sleep(max(0.0, seconds - 1))
    readings = []
    for _ in range(3):
        readings.append(rss_bytes(pid))
        await asyncio.sleep(0.5)
    return int(statistics.median(readings))


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"{needed} sockets need `ulimit -n` of at least {needed} (the hard limit is {hard})")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # the server inherits it


# Users and their tokens ------------------------------------------------------------------------------


@dataclass
class User:
    index: int
    email: str
    token: str = ""
    tasks: list[str] = field(default_factory=list)  # global ids of the user's tasks made during the run
    busy: bool = False  # a mutation of theirs is in flight

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    payload: dict[str, Any] = response.json()
    if response.status_code != 200 or "errors" in payload:
        raise Failed(f"{query.split('(')[0].strip()[:40]!r} answered {response.status_code}: {payload}")
    data: dict[str, Any] = payload["data"]
    return data


async def login(client: httpx.AsyncClient, email: str, password: str) -> str:
    data = await graphql(client, LOGIN, {"i": {"email": email, "password": password}})
    return str(data["login"]["accessToken"])


async def seeded_emails(client: httpx.AsyncClient, admin_token: str) -> list[str]:
    """Every seeded user's email (their run id is random: the admin lists them)."""
    emails: list[str] = []
    after = None
    while True:
        page = (await graphql(client, USERS, {"after": after}, admin_token))["users"]
        emails += [
            edge["node"]["email"]
            for edge in page["edges"]
            if edge["node"]["role"] == "USER" and edge["node"]["email"].endswith(SEED_DOMAIN)
        ]
        if not page["pageInfo"]["hasNextPage"]:
            return sorted(emails, key=lambda email: int(email.removeprefix("user").split(".")[0]))
        after = page["pageInfo"]["endCursor"]


async def bounded(concurrency: int, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def log_in(client: httpx.AsyncClient, count: int) -> list[User]:
    admin_token = await login(client, *ADMIN)
    emails = await seeded_emails(client, admin_token)
    if len(emails) < count:
        raise Failed(f"--users {count}, but only {len(emails)} seeded users: raise --seed-users")
    users = [User(index, email) for index, email in enumerate(emails[:count])]

    async def one(user: User) -> None:
        user.token = await login(client, user.email, SEED_PASSWORD)

    await bounded(LOGIN_CONCURRENCY, (functools.partial(one, user) for user in users))
    return users


# Subscribers -----------------------------------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    user: User
    socket: ClientConnection
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (arrival, taskEvents)
    errors: list[dict[str, Any]] = field(default_factory=list)
    live: asyncio.Event = field(default_factory=asyncio.Event)
    closed: tuple[int | None, str] | None = None
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            async for raw in self.socket:
                arrived = time.monotonic()
                message = json.loads(raw)
                if message["type"] == "next" and "errors" not in message["payload"]:
                    self.events.append((arrived, message["payload"]["data"]["taskEvents"]))
                    self.live.set()
                elif message["type"] == "ping":
                    await self.socket.send(json.dumps({"type": "pong"}))
                elif message["type"] != "pong":
                    self.errors.append(message)
        except ConnectionClosed as closed:
            self.closed = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "no close frame")
        else:
            received = getattr(self.socket, "close_rcvd", None)  # websockets' connection, not in its stubs
            self.closed = (received.code, received.reason) if received else (None, "no close frame")


async def subscribe(url: str, user: User, *, deflate: bool) -> Subscriber:
    """Connect, initialise with the user's token, subscribe to taskEvents; the subscriber reads on."""
    socket = await connect(
        url,
        subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
        compression="deflate" if deflate else None,
        ping_interval=None,  # the server pings (uvicorn's keepalive); browsers do not ping either
        open_timeout=60,
        close_timeout=5,
    )
    try:
        await socket.send(
            json.dumps(
                {"type": "connection_init", "payload": {"authorization": user.headers["authorization"]}}
            )
        )
        ack = json.loads(await asyncio.wait_for(socket.recv(), 60))
        if ack.get("type") != "connection_ack":
            raise Failed(f"connection_init for {user.email} answered {ack}")
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    except ConnectionClosed as closed:
        raise Failed(f"the server closed {user.email}'s socket at connection_init: {closed}") from None
    except BaseException:
        await socket.close()
        raise
    subscriber = Subscriber(user, socket)
    subscriber.reader = asyncio.create_task(subscriber.read())
    return subscriber


async def open_all(url: str, users: list[User], count: int, batch: int, *, deflate: bool) -> list[Subscriber]:
    """``count`` subscribers, round-robin over ``users``, ``batch`` at a time (each batch acknowledged and
    subscribed before the next starts)."""
    subscribers: list[Subscriber] = []
    try:
        for start in range(0, count, batch):
            owners = [users[index % len(users)] for index in range(start, min(count, start + batch))]
            subscribers += await asyncio.gather(*(subscribe(url, user, deflate=deflate) for user in owners))
    except BaseException:
        await close_all(subscribers)
        raise
    return subscribers


async def close_all(subscribers: list[Subscriber]) -> None:
    async def one(subscriber: Subscriber) -> None:
        with contextlib.suppress(Exception):
            await subscriber.socket.close()
        if subscriber.reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await subscriber.reader

    for start in range(0, len(subscribers), 500):
        await asyncio.gather(*(one(subscriber) for subscriber in subscribers[start : start + 500]))


# Mutations -------------------------------------------------------------------------------------------


@dataclass
class Mutation:
    seq: int
    user: User
    kind: str  # CREATED or UPDATED, the event it should cause
    title: str
    sent: float
    responded: float = 0.0
    task_id: str = ""


async def mutate(client: httpx.AsyncClient, user: User, title: str, *, update: bool) -> str:
    """createTask (or updateTask of one of the user's tasks) with ``title``; the task's global id."""
    if update:
        variables = {"id": random.choice(user.tasks), "input": {"title": title}}
        task = (await graphql(client, UPDATE, variables, user.token))["updateTask"]
    else:
        task = (await graphql(client, CREATE, {"input": {"title": title}}, user.token))["createTask"]
        user.tasks.append(task["id"])
    return str(task["id"])


async def confirm_live(
    client: httpx.AsyncClient, subscribers: list[Subscriber], run: str
) -> tuple[int, dict[str, int]]:
    """Every subscriber has received a first event (probes: tasks created for its user, again while any of
    that user's subscribers has none). Returns the number of probes and the probe tasks' owners."""
    by_user: dict[int, list[Subscriber]] = {}
    for subscriber in subscribers:
        by_user.setdefault(subscriber.user.index, []).append(subscriber)
    probes = 0
    owners: dict[str, int] = {}

    async def probe(group: list[Subscriber]) -> None:
        nonlocal probes
        user = group[0].user
        for attempt in range(PROBE_ATTEMPTS):
            probes += 1
            task_id = await mutate(client, user, f"probe {run} u{user.index} #{attempt}", update=False)
            owners[task_id] = user.index
            waiting = [subscriber.live.wait() for subscriber in group if not subscriber.live.is_set()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), PROBE_WAIT_SECONDS)
                return
        silent = sum(not subscriber.live.is_set() for subscriber in group)
        raise Failed(f"{silent} subscribers of {user.email} received no event after {PROBE_ATTEMPTS} probes")

    await bounded(PROBE_CONCURRENCY, (functools.partial(probe, group) for group in by_user.values()))
    return probes, owners


async def drive(
    client: httpx.AsyncClient, users: list[User], rate: float, duration: float, run: str
) -> list[Mutation]:
    """``rate`` mutations a second for ``duration`` seconds, each for a random user with none in flight."""
    mutations: list[Mutation] = []
    running: set[asyncio.Task[None]] = set()
    rng = random.Random(run)

    async def one(mutation: Mutation, update: bool) -> None:
        try:
            mutation.task_id = await mutate(client, mutation.user, mutation.title, update=update)
            mutation.responded = time.monotonic()
        finally:
            mutation.user.busy = False

    started = time.monotonic() + 0.2
    for seq in range(int(rate * duration)):
        await asyncio.sleep(max(0.0, started + seq / rate - time.monotonic()))
        idle = [user for user in rng.sample(users, min(len(users), 8)) if not user.busy]
        if not idle:
            raise Failed("every sampled user has a mutation in flight: the server is not keeping up")
        user = idle[0]
        user.busy = True
        update = rng.random() < 0.5
        mutation = Mutation(seq, user, "UPDATED" if update else "CREATED", f"m {run} {seq}", time.monotonic())
        mutations.append(mutation)
        task = asyncio.create_task(one(mutation, update))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    return mutations


async def wait_delivered(subscribers: list[Subscriber], expected: int, run: str, within: float) -> float:
    """Wait until ``expected`` measured events have arrived (at most ``within`` s); the seconds waited."""
    started = time.monotonic()
    prefix = f"m {run} "
    while time.monotonic() - started < within:
        arrived = sum(
            1
            for subscriber in subscribers
            for _, event in subscriber.events
            if (event.get("task") or {}).get("title", "").startswith(prefix)
        )
        if arrived >= expected:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


class LoopLag:
    """How late this process's event loop runs a 10 ms timer: the client's share of any latency."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags.append(time.monotonic() - before - 0.01)

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# Checking --------------------------------------------------------------------------------------------


def stream_id(cursor: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    milliseconds, _, sequence = raw.partition("-")
    return int(milliseconds), int(sequence or 0)


@dataclass
class Check:
    expected: int = 0
    delivered: int = 0  # (subscriber, mutation) pairs that arrived at least once
    duplicates: int = 0
    foreign: int = 0  # events about another user's task
    wrong: int = 0  # a measured event whose kind or task id is not the mutation's
    out_of_order: int = 0  # subscribers whose sequence is not their user's mutations in order
    cursor_regressions: int = 0  # subscribers whose cursors do not strictly increase
    exact_subscribers: int = 0  # got every event of their user exactly once, in order, and nothing else
    latencies: list[float] = field(default_factory=list)  # since the mutation's response
    since_sent: list[float] = field(default_factory=list)  # since the mutation's request was sent

    @property
    def ok(self) -> bool:
        bad = self.duplicates + self.foreign + self.wrong + self.out_of_order + self.cursor_regressions
        return self.delivered == self.expected and bad == 0


def check(subscribers: list[Subscriber], mutations: list[Mutation], owners: dict[str, int]) -> Check:
    by_title = {mutation.title: mutation for mutation in mutations}
    owners = {**owners, **{mutation.task_id: mutation.user.index for mutation in mutations}}
    expected_by_user: dict[int, list[int]] = {}
    for mutation in sorted(mutations, key=lambda mutation: mutation.responded):
        expected_by_user.setdefault(mutation.user.index, []).append(mutation.seq)
    result = Check()
    for subscriber in subscribers:
        expected = expected_by_user.get(subscriber.user.index, [])
        result.expected += len(expected)
        received: list[int] = []
        foreign = 0
        ids = [stream_id(event["cursor"]) for _, event in subscriber.events]
        regressions = any(later <= earlier for earlier, later in itertools.pairwise(ids))
        result.cursor_regressions += regressions
        for arrived, event in subscriber.events:
            if owners.get(event["taskId"], subscriber.user.index) != subscriber.user.index:
                foreign += 1
            found = by_title.get((event.get("task") or {}).get("title", ""))
            if found is None:
                continue  # a probe
            mutation = found
            if (event["kind"], event["taskId"]) != (mutation.kind, mutation.task_id):
                result.wrong += 1
            if mutation.seq not in received:
                result.latencies.append(arrived - mutation.responded)
                result.since_sent.append(arrived - mutation.sent)
            received.append(mutation.seq)
        result.foreign += foreign
        result.delivered += len(set(received) & set(expected))
        result.duplicates += len(received) - len(set(received))
        in_order = received == expected
        result.out_of_order += not in_order and len(set(received)) == len(received) == len(expected)
        result.exact_subscribers += in_order and not foreign and not regressions
    return result


# The run ---------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass
class Figures:
    rss_0: int = 0
    rss_n: int = 0
    rss_after: int = 0  # after the load
    rss_closed: int = 0  # after closing every subscriber
    login_s: float = 0.0
    open_s: float = 0.0
    probe_s: float = 0.0
    probes: int = 0
    server_cpu_idle: float = 0.0  # share of one core, while the subscribers idle
    server_cpu_load: float = 0.0  # share of one core, during the mutations
    drain_s: float = 0.0
    mutations: list[Mutation] = field(default_factory=list)
    check: Check = field(default_factory=Check)
    client_lag: list[float] = field(default_factory=list)
    closed: Counter[str] = field(default_factory=Counter)
    protocol_errors: int = 0


async def warm_up(client: httpx.AsyncClient, url: str, users: list[User], run: str) -> None:
    """Run every code path once (subscribe, publish, deliver, close), so that RSS_0 includes them, and one
    request per user, so that it includes what the server keeps per user (its verified token)."""

    async def me(user: User) -> None:
        await graphql(client, "query { me { id } }", {}, user.token)

    await bounded(PROBE_CONCURRENCY, (functools.partial(me, user) for user in users))
    subscribers = await open_all(url, users, WARM_UP_SUBSCRIBERS, WARM_UP_SUBSCRIBERS, deflate=False)
    await confirm_live(client, subscribers, f"{run}-warm")
    for user in users[:10]:
        await mutate(client, user, f"warm {run}", update=True)
    await close_all(subscribers)


def record(args: argparse.Namespace, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording the server during the mutations, if asked."""
    if args.py_spy is None:
        return None
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "250"]
    command += ["--duration", str(int(args.duration)), "--format", args.py_spy_format]
    return subprocess.Popen([*command, "--output", str(args.py_spy)], stdout=subprocess.DEVNULL)


async def measure(args: argparse.Namespace, base: str, pid: int) -> Figures:
    figures = Figures()
    url = base.replace("http://", "ws://") + "/graphql"
    run = secrets.token_hex(4)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        started = time.monotonic()
        users = await log_in(client, args.users)
        figures.login_s = time.monotonic() - started
        print(f"logged in {len(users)} users in {figures.login_s:.1f} s ({LOGIN_CONCURRENCY} at a time)")
        await warm_up(client, url, users, run)
        figures.rss_0 = await settled_rss(pid, args.settle)
        print(f"RSS with 0 subscribers (after warm-up): {figures.rss_0 / 2**20:.1f} MiB")

        started = time.monotonic()
        subscribers = await open_all(url, users, args.subscribers, args.open_batch, deflate=args.deflate)
        figures.open_s = time.monotonic() - started
        print(f"opened {len(subscribers)} subscribers in {figures.open_s:.1f} s")
        try:
            started = time.monotonic()
            figures.probes, owners = await confirm_live(client, subscribers, run)
            figures.probe_s = time.monotonic() - started
            print(
                f"every subscription live (a first event received): {figures.probes} probes, "
                f"{figures.probe_s:.1f} s"
            )
            cpu = cpu_seconds(pid)
            started = time.monotonic()
            figures.rss_n = await settled_rss(pid, args.settle)
            figures.server_cpu_idle = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
            print(f"RSS with {len(subscribers)} idle subscribers: {figures.rss_n / 2**20:.1f} MiB")

            spy = record(args, pid)
            lag = LoopLag()
            lag.start()
            cpu, started = cpu_seconds(pid), time.monotonic()
            print(f"driving {args.rate:g} mutations/s for {args.duration:g} s")
            figures.mutations = await drive(client, users, args.rate, args.duration, run)
            figures.server_cpu_load = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
            if spy is not None:
                await asyncio.to_thread(spy.wait)
                print(f"py-spy: {args.py_spy} (it slows the server it samples: these figures are not clean)")
            per_user = Counter(subscriber.user.index for subscriber in subscribers)
            expected = sum(per_user[mutation.user.index] for mutation in figures.mutations)
            figures.drain_s = await wait_delivered(subscribers, expected, run, args.drain)
            await lag.stop()
            figures.client_lag = lag.lags
            figures.rss_after = rss_bytes(pid)
            figures.check = check(subscribers, figures.mutations, owners)
            figures.protocol_errors = sum(len(subscriber.errors) for subscriber in subscribers)
            figures.closed = Counter(
                f"{subscriber.closed[0]} {subscriber.closed[1]}".strip()
                for subscriber in subscribers
                if subscriber.closed is not None
            )
        finally:
            await close_all(subscribers)
        figures.rss_closed = await settled_rss(pid, args.settle)
    return figures


def milliseconds(values: list[float], share: float) -> float:
    return percentile(values, share) * 1000


def summary(args: argparse.Namespace, figures: Figures) -> dict[str, Any]:
    checked = figures.check
    per_subscription = (figures.rss_n - figures.rss_0) / args.subscribers
    responses = [mutation.responded - mutation.sent for mutation in figures.mutations]
    p99 = milliseconds(checked.latencies, 0.99)
    return {
        "benchmark": "subscriptions",
        "subscribers": args.subscribers,
        "users": args.users,
        "deflate": args.deflate,
        "open_batch": args.open_batch,
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "login_s": round(figures.login_s, 1),
        "open_s": round(figures.open_s, 1),
        "opened_per_s": round(args.subscribers / figures.open_s, 1) if figures.open_s else None,
        "probes": figures.probes,
        "probe_s": round(figures.probe_s, 1),
        "rss_0_mib": round(figures.rss_0 / 2**20, 1),
        "rss_n_mib": round(figures.rss_n / 2**20, 1),
        "rss_after_load_mib": round(figures.rss_after / 2**20, 1),
        "rss_closed_mib": round(figures.rss_closed / 2**20, 1),
        "bytes_per_idle_subscription": round(per_subscription),
        "server_cpu_idle_percent": round(100 * figures.server_cpu_idle, 1),
        "server_cpu_load_percent": round(100 * figures.server_cpu_load, 1),
        "mutations": len(figures.mutations),
        "mutations_created": sum(mutation.kind == "CREATED" for mutation in figures.mutations),
        "mutation_response_p50_ms": round(milliseconds(responses, 0.5), 2),
        "mutation_response_p99_ms": round(milliseconds(responses, 0.99), 2),
        "expected": checked.expected,
        "delivered": checked.delivered,
        "duplicates": checked.duplicates,
        "foreign": checked.foreign,
        "wrong": checked.wrong,
        "out_of_order_subscribers": checked.out_of_order,
        "cursor_regressions": checked.cursor_regressions,
        "exact_subscribers": checked.exact_subscribers,
        "latency_ms": {
            "min": round(min(checked.latencies, default=float("nan")) * 1000, 2),
            "p50": round(milliseconds(checked.latencies, 0.5), 2),
            "p99": round(p99, 2),
            "max": round(max(checked.latencies, default=float("nan")) * 1000, 2),
        },
        "latency_since_sent_ms": {
            "p50": round(milliseconds(checked.since_sent, 0.5), 2),
            "p99": round(milliseconds(checked.since_sent, 0.99), 2),
            "max": round(max(checked.since_sent, default=float("nan")) * 1000, 2),
        },
        "drain_s": round(figures.drain_s, 2),
        "client_loop_lag_ms": {
            "p99": round(milliseconds(figures.client_lag, 0.99), 2),
            "max": round(max(figures.client_lag, default=float("nan")) * 1000, 2),
        },
        "closed_sockets": dict(figures.closed),
        "protocol_errors": figures.protocol_errors,
        "targets": {
            "every_event_delivered": checked.delivered == checked.expected,
            "p99_under_250_ms": p99 < TARGET_P99_MS,
            "under_50_kb_per_idle_subscription": per_subscription < TARGET_BYTES_PER_SUBSCRIPTION,
        },
        "ok": checked.ok and not figures.closed and not figures.protocol_errors,
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(args: argparse.Namespace, line: dict[str, Any]) -> None:
    targets, latency, sent = line["targets"], line["latency_ms"], line["latency_since_sent_ms"]
    rows = [
        ("log in users", f"{line['users']} in {line['login_s']} s"),
        (
            "open subscribers",
            f"{line['subscribers']} in {line['open_s']} s ({line['opened_per_s']}/s, "
            f"{line['open_batch']} at a time{', permessage-deflate' if line['deflate'] else ''})",
        ),
        ("confirm live (first event)", f"{line['probes']} probe tasks, {line['probe_s']} s"),
        ("RSS, 0 subscribers", f"{line['rss_0_mib']} MiB"),
        ("RSS, N idle subscribers", f"{line['rss_n_mib']} MiB"),
        (
            "memory per idle subscription",
            f"{line['bytes_per_idle_subscription'] / 1000:.1f} kB "
            f"(target < 50 kB: {verdict(targets['under_50_kb_per_idle_subscription'])})",
        ),
        ("RSS after load / all closed", f"{line['rss_after_load_mib']} / {line['rss_closed_mib']} MiB"),
        (
            "server CPU idle / under load",
            f"{line['server_cpu_idle_percent']} % / {line['server_cpu_load_percent']} % of a core",
        ),
        (
            "mutations",
            f"{line['mutations']} ({line['mutations_created']} createTask, the rest updateTask), "
            f"response p50 {line['mutation_response_p50_ms']} ms, p99 {line['mutation_response_p99_ms']} ms",
        ),
        (
            "delivered / expected",
            f"{line['delivered']} / {line['expected']} ({verdict(targets['every_event_delivered'])})",
        ),
        (
            "exactly once, in order",
            f"{line['exact_subscribers']} of {line['subscribers']} subscribers; "
            f"duplicates {line['duplicates']}, foreign {line['foreign']}, wrong {line['wrong']}, "
            f"out of order {line['out_of_order_subscribers']}, "
            f"cursor regressions {line['cursor_regressions']}",
        ),
        (
            "latency after the response",
            f"min {latency['min']} p50 {latency['p50']} p99 {latency['p99']} "
            f"max {latency['max']} ms (p99 target < 250 ms: {verdict(targets['p99_under_250_ms'])})",
        ),
        ("latency after the request", f"p50 {sent['p50']} p99 {sent['p99']} max {sent['max']} ms"),
        (
            "client loop lag",
            f"p99 {line['client_loop_lag_ms']['p99']} ms, max {line['client_loop_lag_ms']['max']} ms",
        ),
        (
            "sockets closed by the server",
            ", ".join(f"{n} x {why}" for why, n in line["closed_sockets"].items()) or "none",
        ),
        ("protocol errors", str(line["protocol_errors"])),
    ]
    print(
        f"\ntaskEvents: {args.subscribers} subscribers over {args.users} users, one server (one worker); "
        f"{args.rate:g} mutations/s for {args.duration:g} s"
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(line))


def show_log(path: Path) -> int:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    if not lines:
        print("taskql server: nothing logged at WARNING or above")
        return 0
    print(f"taskql server logged {len(lines)} lines ({path}), among them:", file=sys.stderr)
    for line, count in Counter(line for line in lines if line and not line[0].isspace()).most_common(10):
        print(f"  {count:>5} x {line[:150]}", file=sys.stderr)
    return len(lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=5000, help="Concurrent WebSocket subscribers.")
    parser.add_argument("--users", type=int, default=1000, help="Users the subscribers are spread over.")
    parser.add_argument("--seed-users", type=int, default=1000, help="Users in the data set.")
    parser.add_argument("--tasks", type=int, default=10_000, help="Tasks in the data set.")
    parser.add_argument("--rate", type=float, default=20, help="Mutations per second.")
    parser.add_argument("--duration", type=float, default=30, help="Seconds of mutations.")
    parser.add_argument("--open-batch", type=int, default=200, help="Subscribers opened at a time.")
    parser.add_argument("--settle", type=float, default=3, help="Idle seconds before reading the RSS.")
    parser.add_argument("--drain", type=float, default=15, help="Seconds to wait for the last events.")
    parser.add_argument(
        "--deflate", action="store_true", help="Negotiate permessage-deflate, as browsers do."
    )
    parser.add_argument("--py-spy", type=Path, help="Record the server with py-spy during the mutations.")
    parser.add_argument("--py-spy-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-subs")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    if min(args.subscribers, args.users, args.open_batch) < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--subscribers, --users, --open-batch, --rate and --duration must be positive")
    if args.users > args.seed_users:
        parser.error("--users cannot be more than --seed-users")
    return args


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    args.data_dir = args.data_dir.resolve()
    refuse_busy_port(HOST, args.port)
    raise_open_files(2 * args.subscribers + 1000)  # the server's sockets and ours (the server inherits it)
    env = environment(
        args.data_dir,
        ENVIRONMENT="production",
        JWT_SECRET=secrets.token_urlsafe(48),
        ACCESS_TOKEN_TTL_SECONDS=str(TOKEN_TTL_SECONDS),
    )
    prepare(env, args.data_dir, args.seed_users, args.tasks)
    log_path = args.data_dir / "subscriptions-taskql.log"
    try:
        figures = measure_served(
            HOST, args.port, env=env, log_path=log_path, measure=functools.partial(measure, args)
        )
    except Failed as failure:
        show_log(log_path)
        print(f"\n!!! {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    line = summary(args, figures)
    line["server_log_lines"] = show_log(log_path)
    report(args, line)
    if not line["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
