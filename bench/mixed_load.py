"""Benchmark: a mix of reads and writes from many users at a fixed rate (open loop), for a minute.

    python -m bench.mixed_load [--duration 60] [--rate 200] [--users 100] [--seed-users 1000]
                               [--tasks 100000] [--connections 256] [--data-dir .data/bench] [--port 8097]

1. Seeds SEED_USERS users and TASKS tasks into DATA_DIR (once; the embedded PostgreSQL and Redis; the same
   data set as bench.http_load's by default).
2. Serves taskql as production would: `python -m taskql serve`, ENVIRONMENT=production, a random JWT_SECRET,
   LOG_LEVEL=WARNING (no access log), one worker, on 127.0.0.1:PORT.
3. Logs in USERS seeded users, reads each one's first page of tasks (for the ids `node` asks for and the
   cursor of the second page) and creates two tasks for each (for the first updates and deletions). Not
   measured; it also fills the response cache as earlier traffic would.
4. From this process, sends RATE requests per second for DURATION seconds on a fixed schedule, whatever
   the answers' speed (open loop: a slow answer delays no later request, so a stall shows in the latencies
   rather than lowering the rate). Each request is for a random user, of a kind drawn from MIX:
     page     TaskPage(first: 20)                     node     node(id:) of one of the user's tasks
     page2    TaskPage(first: 20, after: <cursor>)    stats    taskStats
     search   tasks(first: 20, filter: {search: w})   create   createTask
     update   updateTask (title, status) of a task the run created (none yet for the user: a create)
     delete   deleteTask of a task the run created (none yet for the user: a create)
   A task is never updated and deleted at once. At most CONNECTIONS requests are in flight (more, and
   httpx's own bookkeeping slows this client down when it matters most); the others wait their turn, and
   latency runs from the moment the schedule said to send, so that wait counts (no coordinated omission).
5. Every answer must be a 200 without `errors` (and with data); anything else, a timeout or a broken
   connection is an error. The run exits 1 if there was any.
6. Prints the rate achieved (answers per second), p50/p90/p99 latency overall and per kind, the errors,
   the share of queries answered from the response cache, and the server process's RSS (VmRSS) when
   ready, before and after the load, and its peak (read every second), the server's and this client's
   CPU and the machine's load average; then the same as one JSON line.
7. Deletes the tasks the run created (not measured), so that the data set stays as it was seeded.

Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ROOT, environment, measure_served, prepare, refuse_busy_port
from bench.subscriptions import Failed, User, bounded, cpu_seconds, graphql, log_in, rss_bytes
from taskql.data.seed import WORDS

HOST = "127.0.0.1"
QUERIES = ROOT / "graphql" / "queries"
MIX = {"page": 25, "page2": 10, "node": 15, "stats": 15, "search": 15, "create": 8, "update": 8, "delete": 4}
WRITES = frozenset({"create", "update", "delete"})
STATUSES = ("TODO", "IN_PROGRESS", "DONE")
TIMEOUT_SECONDS = 30.0
LATE_SECONDS = 0.010  # a request sent later than this after its slot: the client could not keep up
CLEANUP_CONCURRENCY = 8


@functools.cache
def document(name: str) -> str:
    return (QUERIES / f"{name}.graphql").read_text()


@dataclass(eq=False)
class Shopper:
    """A user and what the run may ask for on their behalf."""

    user: User
    seeded: list[str] = field(default_factory=list)  # ids of seeded tasks (node reads them)
    cursor: str | None = None  # the end of their first page
    created: list[str] = field(default_factory=list)  # tasks the run made and nobody is changing


@dataclass
class Outcome:
    kind: str
    latency: float  # seconds from the scheduled send to the answer
    ok: bool
    cached: bool
    error: str | None = None


@dataclass
class Run:
    client: httpx.AsyncClient
    shoppers: list[Shopper]
    rng: random.Random
    connections: asyncio.Semaphore
    outcomes: list[Outcome] = field(default_factory=list)
    late: int = 0
    rss_peak: int = 0

    def request(
        self, shopper: Shopper, kind: str, number: int
    ) -> tuple[str, str, dict[str, Any], str | None]:
        """What to send: (the kind actually sent, operation, variables, the task it reserves)."""
        if kind in {"update", "delete"} and not shopper.created:
            kind = "create"
        if kind == "create":
            return kind, "CreateTask", {"input": {"title": f"bench mixed {number}", "tags": ["bench"]}}, None
        if kind == "update":
            task = shopper.created.pop(self.rng.randrange(len(shopper.created)))
            title = f"bench mixed {number}"
            return kind, "UpdateTask", {"id": task, "input": {"title": title, "status": self.status()}}, task
        if kind == "delete":
            return kind, "DeleteTask", {"id": shopper.created.pop(0)}, None
        if kind == "node":
            return kind, "Node", {"id": self.rng.choice(shopper.seeded)}, None
        if kind == "stats":
            return kind, "TaskStats", {}, None
        if kind == "search":
            return kind, "Tasks", {"first": 20, "filter": {"search": self.rng.choice(WORDS)}}, None
        if kind == "page2" and shopper.cursor is not None:
            return kind, "TaskPage", {"first": 20, "after": shopper.cursor}, None
        return "page", "TaskPage", {"first": 20}, None

    def status(self) -> str:
        return self.rng.choice(STATUSES)

    async def one(self, shopper: Shopper, kind: str, number: int, scheduled: float) -> None:
        # Waiting here rather than in httpx's pool: its queue costs time per waiting request on every
        # answer, so a backlog would slow this client down just when the server falls behind.
        async with self.connections:
            await self._send(shopper, kind, number, scheduled)

    async def _send(self, shopper: Shopper, kind: str, number: int, scheduled: float) -> None:
        kind, name, variables, reserved = self.request(shopper, kind, number)
        error: str | None = None
        cached = False
        try:
            response = await self.client.post(
                "/graphql",
                json={"query": document(name), "variables": variables},
                headers=shopper.user.headers,
            )
            payload = response.json()
            cached = response.headers.get("x-cache") == "HIT"
            data = payload.get("data") if isinstance(payload, dict) else None
            if response.status_code != 200 or "errors" in payload or not data:
                error = f"{kind}: {response.status_code} {json.dumps(payload)[:300]}"
            elif kind == "create":
                shopper.created.append(data["createTask"]["id"])
        except (httpx.HTTPError, ValueError) as failure:
            error = f"{kind}: {type(failure).__name__} {failure}"
        if reserved is not None:
            shopper.created.append(reserved)  # free to be changed again
        latency = time.monotonic() - scheduled
        self.outcomes.append(Outcome(kind, latency, error is None, cached, error))

    async def drive(self, rate: float, duration: float) -> float:
        """Send on schedule; wait for every answer. Returns the seconds from the first slot to the last
        answer."""
        kinds, weights = list(MIX), list(MIX.values())
        total = int(rate * duration)
        start = time.monotonic() + 0.05
        pending: set[asyncio.Task[None]] = set()
        for number in range(total):
            scheduled = start + number / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_SECONDS:
                self.late += 1
            shopper = self.rng.choice(self.shoppers)
            kind = self.rng.choices(kinds, weights)[0]
            task = asyncio.create_task(self.one(shopper, kind, number, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=TIMEOUT_SECONDS + 5)
        return time.monotonic() - start

    async def watch_rss(self, pid: int) -> None:
        while True:
            self.rss_peak = max(self.rss_peak, rss_bytes(pid))
            await asyncio.sleep(1.0)


async def prepare_shoppers(client: httpx.AsyncClient, count: int) -> list[Shopper]:
    users = await log_in(client, count)
    shoppers = [Shopper(user) for user in users]

    async def first_page(shopper: Shopper) -> None:
        data = await graphql(client, document("TaskPage"), {"first": 20}, shopper.user.token)
        page = data["tasks"]
        shopper.seeded = [edge["node"]["id"] for edge in page["edges"]]
        shopper.cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        if not shopper.seeded:
            raise Failed(f"{shopper.user.email} has no tasks: seed more (--tasks)")

    async def task_to_change(shopper: Shopper, number: int) -> None:
        variables = {"input": {"title": f"bench mixed seed {number}", "tags": ["bench"]}}
        data = await graphql(client, document("CreateTask"), variables, shopper.user.token)
        shopper.created.append(data["createTask"]["id"])

    await bounded(16, (functools.partial(first_page, shopper) for shopper in shoppers))
    # Something for the first updates and deletions to change (removed with the rest at the end).
    jobs = [functools.partial(task_to_change, shopper, n) for shopper in shoppers for n in range(2)]
    await bounded(16, jobs)
    return shoppers


async def clean_up(client: httpx.AsyncClient, shoppers: list[Shopper]) -> int:
    """Delete what the run created; the number deleted."""

    async def delete(shopper: Shopper, task: str) -> None:
        await graphql(client, document("DeleteTask"), {"id": task}, shopper.user.token)

    jobs = [functools.partial(delete, shopper, task) for shopper in shoppers for task in shopper.created]
    await bounded(CLEANUP_CONCURRENCY, jobs)
    return len(jobs)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures_of(outcomes: list[Outcome]) -> dict[str, Any]:
    latencies = [outcome.latency * 1000 for outcome in outcomes]
    return {
        "requests": len(outcomes),
        "errors": sum(not outcome.ok for outcome in outcomes),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p90_ms": round(percentile(latencies, 0.90), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
    }


async def measure(args: argparse.Namespace, base: str, pid: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    timeout = httpx.Timeout(TIMEOUT_SECONDS, pool=None)  # waiting for a connection counts as latency
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        rss_ready = rss_bytes(pid)
        print(f"logging in {args.users} users and reading their first pages")
        shoppers = await prepare_shoppers(client, args.users)
        run = Run(client, shoppers, random.Random(args.seed), asyncio.Semaphore(args.connections))
        rss_before, cpu_before, own_cpu_before = rss_bytes(pid), cpu_seconds(pid), time.process_time()
        print(f"sending {args.rate:g} requests/s for {args.duration:g} s (open loop)")
        watcher = asyncio.create_task(run.watch_rss(pid))
        elapsed = await run.drive(args.rate, args.duration)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        rss_after, cpu_used = rss_bytes(pid), cpu_seconds(pid) - cpu_before
        own_cpu_used = time.process_time() - own_cpu_before
        deleted = await clean_up(client, shoppers)
        print(f"deleted the {deleted} tasks the run left")
    outcomes = run.outcomes
    answered = [outcome for outcome in outcomes if outcome.error is None or "Timeout" not in outcome.error]
    queries = [outcome for outcome in outcomes if outcome.kind not in WRITES]
    return {
        "benchmark": "mixed_load",
        "rate_target": args.rate,
        "duration_s": args.duration,
        "users": args.users,
        "seed_users": args.seed_users,
        "tasks": args.tasks,
        "scheduled": int(args.rate * args.duration),
        "rate_achieved": round(len(answered) / elapsed, 1),
        "late_sends": run.late,
        "overall": figures_of(outcomes),
        "kinds": {
            kind: figures_of([outcome for outcome in outcomes if outcome.kind == kind])
            for kind in sorted({outcome.kind for outcome in outcomes})
        },
        "cache_hit_share_of_queries": round(sum(o.cached for o in queries) / max(1, len(queries)), 3),
        "error_samples": [outcome.error for outcome in outcomes if outcome.error][:5],
        "server_rss_mib": {
            "ready": round(rss_ready / 2**20, 1),
            "before_load": round(rss_before / 2**20, 1),
            "after_load": round(rss_after / 2**20, 1),
            "peak_during_load": round(max(run.rss_peak, rss_after) / 2**20, 1),
        },
        "server_cpu_share_of_one_core": round(cpu_used / elapsed, 3),
        "client_cpu_share_of_one_core": round(own_cpu_used / elapsed, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),  # others' work on the machine skews every figure
    }


def report(figures: dict[str, Any]) -> None:
    overall = figures["overall"]
    print(
        f"\nmixed load: {figures['rate_target']:g} requests/s scheduled for {figures['duration_s']:g} s "
        f"({figures['scheduled']} requests), {figures['users']} users; "
        f"{figures['seed_users']} users and {figures['tasks']} tasks seeded"
    )
    print(f"rate achieved: {figures['rate_achieved']:.1f} answers/s; late sends: {figures['late_sends']}")
    print(f"{'kind':<8}{'requests':>10}{'errors':>8}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind, row in [*figures["kinds"].items(), ("all", overall)]:
        print(
            f"{kind:<8}{row['requests']:>10}{row['errors']:>8}{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}"
            f"{row['p99_ms']:>10.2f}{row['max_ms']:>10.2f}"
        )
    print(f"errors: {overall['errors']}")
    for sample in figures["error_samples"]:
        print(f"  {sample}")
    print(f"queries answered from the response cache: {100 * figures['cache_hit_share_of_queries']:.1f}%")
    rss = figures["server_rss_mib"]
    print(
        f"server RSS: {rss['ready']} MiB ready, {rss['before_load']} MiB before the load, "
        f"{rss['after_load']} MiB after (peak {rss['peak_during_load']} MiB); "
        f"server CPU: {100 * figures['server_cpu_share_of_one_core']:.0f}% of one core"
    )
    print(
        f"this client's CPU: {100 * figures['client_cpu_share_of_one_core']:.0f}% of one core; "
        f"load average: {figures['load_average_1min']} on {os.cpu_count()} CPUs"
    )
    if figures["late_sends"] > 0.01 * figures["scheduled"]:
        print(
            "!!! more than 1% of requests left late: this client could not keep its schedule (on a busy"
            " machine, see the load average)",
            file=sys.stderr,
        )
    print(json.dumps(figures))


def show_log(path: Path) -> None:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    if not lines:
        print("server: nothing logged at WARNING or above")
        return
    print(f"server logged {len(lines)} lines ({path}), among them:", file=sys.stderr)
    for line, count in Counter(line for line in lines if line and not line[0].isspace()).most_common(10):
        print(f"  {count:>5} x {line[:150]}", file=sys.stderr)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60, help="Seconds of load.")
    parser.add_argument("--rate", type=float, default=200, help="Requests per second, on a fixed schedule.")
    parser.add_argument("--users", type=int, default=100, help="Seeded users the requests are spread over.")
    parser.add_argument("--seed-users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16, help="At most this many open at once.")
    parser.add_argument("--seed", type=int, default=1, help="Of the random choices (kinds, users).")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    if args.duration <= 0 or args.rate <= 0 or args.users < 1 or args.connections < 1:
        raise SystemExit("--duration, --rate, --users and --connections must be positive")
    return args


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    args.data_dir = args.data_dir.resolve()
    refuse_busy_port(HOST, args.port)
    env = environment(args.data_dir, ENVIRONMENT="production", JWT_SECRET=secrets.token_urlsafe(48))
    prepare(env, args.data_dir, args.seed_users, args.tasks)
    log_path = args.data_dir / "mixed_load-taskql.log"
    try:
        figures = measure_served(
            HOST, args.port, env=env, log_path=log_path, measure=functools.partial(measure, args)
        )
    except Failed as failure:
        print(f"\n!!! {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        show_log(log_path)
    report(figures)
    if figures["overall"]["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
