"""Benchmark: task writes through the API, each delivered as a signed webhook by one worker process to local
receivers (issue 17: "1,000 webhook deliveries to a local receiver: rate and p99 delivery delay").

    python -m bench.webhooks [--writes 1000] [--in-flight 8] [--users 10] [--writes-each 100]
                             [--concurrency 8] [--port 8094] [--data-dir DIR]

1. PostgreSQL and Redis as `python -m taskql` finds them: DATABASE_URL and REDIS_URL when set, else the
   embedded servers in DATA_DIR (default .data/bench-webhooks); migrates the database.
2. Serves taskql (`python -m taskql serve`, one worker, ENVIRONMENT=production, WEBHOOKS_ALLOW_PRIVATE=true,
   JOBS_EMBEDDED_WORKER=false) on 127.0.0.1:PORT and runs one `python -m taskql worker`
   (JOBS_CONCURRENCY=CONCURRENCY) beside it: the webhooks are the worker's alone.
3. In this process, one HTTP receiver per endpoint (tests/webhook_receiver.py: asyncio streams and h11,
   answering 200 at once, verifying every request with PyPI's standardwebhooks) that stamps each arrival.
4. Scenarios, each user registered over the API with one webhook (TASK_CREATED) to its own receiver, warmed
   up (3 writes delivered), then a burst of createTask over HTTP as fast as the server answers them, each
   acknowledgement stamped:
     1 endpoint     one user, WRITES writes, IN_FLIGHT at a time (one connection each)
     N endpoints    USERS users in parallel, WRITES_EACH writes each, one at a time per user
5. Per scenario: deliveries/s from the first arrival to the last; delivery delay = arrival at the receiver
   - the write's acknowledgement (p50, p99, max; both stamped with time.monotonic() here); the check that
   every write arrived exactly once, verified, in its user's write order (a write acknowledged before
   another was sent arrives before it: with one in flight, the order of the acknowledgements; writes in
   flight together have no order of their own); and where the time goes: the sender's round trip per
   attempt (the delivery log's duration_ms), the worker's and the server's CPU per delivery. Prints a
   table, a one-line summary and one JSON line; exits 1 if a check failed.

Not a test: the figures go into closing notes and the README. The server's and the worker's output
(warnings and errors only) is kept in DATA_DIR/webhooks-serve.log and DATA_DIR/webhooks-worker.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import h11
import httpx

from bench.servers import ROOT, environment, refuse_busy_port, running
from bench.subscriptions import CREATE, Failed, cpu_seconds, graphql, percentile, show_log
from core.settings import Settings
from taskql.cli import services
from taskql.data import migrations
from tests.webhook_receiver import Delivery, Receiver

HOST = "127.0.0.1"
QUERIES = ROOT / "graphql" / "queries"
REGISTER = (QUERIES / "Register.graphql").read_text()
CREATE_WEBHOOK = (QUERIES / "CreateWebhook.graphql").read_text()
PASSWORD = "bench webhooks passphrase"  # noqa: S105  (throwaway accounts)
WARM_UP = 3  # writes per endpoint delivered before the burst
WARM_UP_TITLE = "warm-up"
WAIT_SECONDS = 600.0
QUIET_SECONDS = 1.0  # after the last expected arrival: time for a duplicate to show


@dataclass(eq=False)
class Timed(Receiver):
    """The tests' receiver, stamping when each request was read (and verified)."""

    arrivals: list[tuple[float, Delivery]] = field(default_factory=list)

    async def _request(self, http: h11.Connection, reader: asyncio.StreamReader) -> Delivery | None:
        delivery = await super()._request(http, reader)
        if delivery is not None:
            self.arrivals.append((time.monotonic(), delivery))
        return delivery

    def reset(self) -> None:
        self.arrivals.clear()
        self.received.clear()


@dataclass
class Write:
    task_id: str  # the task's global id: the payload's data.id
    sent: float
    acked: float


@dataclass
class Endpoint:
    email: str
    token: str
    receiver: Timed
    writes: list[Write] = field(default_factory=list)


@dataclass
class Outcome:
    name: str
    writes: int
    write_seconds: float  # first write sent to last acknowledged
    span_seconds: float  # first arrival to last
    total_seconds: float  # first write sent to last arrival
    delays_ms: list[float]
    problems: list[str]
    attempt_ms: list[float]  # the delivery log's duration_ms of each
    worker_cpu_s: float
    server_cpu_s: float

    def figures(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "writes_per_second": round(self.writes / self.write_seconds, 1),
            "deliveries_per_second": round(self.writes / self.span_seconds, 1),
            "first_write_to_last_arrival_s": round(self.total_seconds, 2),
            "delay_ms_p50": round(statistics.median(self.delays_ms), 1),
            "delay_ms_p99": round(percentile(self.delays_ms, 0.99), 1),
            "delay_ms_max": round(max(self.delays_ms), 1),
            "attempt_ms_mean": round(statistics.fmean(self.attempt_ms), 2) if self.attempt_ms else None,
            "worker_cpu_ms_per_delivery": round(self.worker_cpu_s / self.writes * 1000, 2),
            "server_cpu_ms_per_write": round(self.server_cpu_s / self.writes * 1000, 2),
            "ok": not self.problems,
            "problems": self.problems,
        }


@contextlib.asynccontextmanager
async def receivers(count: int) -> AsyncIterator[list[Timed]]:
    started: list[tuple[Timed, asyncio.Server]] = []
    try:
        for _ in range(count):
            receiver = Timed()
            server = await asyncio.start_server(receiver.serve, HOST, 0)
            receiver.port = server.sockets[0].getsockname()[1]
            started.append((receiver, server))
        yield [receiver for receiver, _ in started]
    finally:
        for _, server in started:
            server.close()


async def endpoint(client: httpx.AsyncClient, receiver: Timed, email: str) -> Endpoint:
    """A new user with one webhook (TASK_CREATED) to ``receiver``, which knows its secret."""
    registered = await graphql(
        client, REGISTER, {"input": {"email": email, "password": PASSWORD, "name": "B"}}
    )
    token = str(registered["register"]["accessToken"])
    hook = {"input": {"url": receiver.url, "events": ["TASK_CREATED"], "description": "bench"}}
    created = await graphql(client, CREATE_WEBHOOK, hook, token)
    receiver.secrets.append(str(created["createWebhook"]["secret"]))
    return Endpoint(email, token, receiver)


async def write(client: httpx.AsyncClient, user: Endpoint, title: str) -> Write:
    sent = time.monotonic()
    task = (await graphql(client, CREATE, {"input": {"title": title}}, user.token))["createTask"]
    return Write(str(task["id"]), sent, time.monotonic())


async def burst(client: httpx.AsyncClient, user: Endpoint, count: int, in_flight: int) -> None:
    """``count`` writes, ``in_flight`` at a time (1: one after the other, the order fully defined)."""
    numbers = iter(range(count))

    async def one_by_one() -> None:
        for n in numbers:
            user.writes.append(await write(client, user, f"bench {n}"))

    await asyncio.gather(*(one_by_one() for _ in range(in_flight)))


async def arrived(users: list[Endpoint], counts: list[int], within: float) -> None:
    """Until each receiver has its count of requests, then a quiet moment for duplicates."""
    deadline = time.monotonic() + within
    while any(len(user.receiver.arrivals) < count for user, count in zip(users, counts, strict=True)):
        if time.monotonic() > deadline:
            got = sum(len(user.receiver.arrivals) for user in users)
            raise Failed(f"{got} of {sum(counts)} deliveries arrived within {within:.0f} s")
        await asyncio.sleep(0.01)
    await asyncio.sleep(QUIET_SECONDS)


def check(user: Endpoint) -> list[str]:
    """Every write of ``user`` arrived, once, verified by its secret, in write order (and nothing else)."""
    by_id = {w.task_id: w for w in user.writes}
    arrivals = [delivery for _, delivery in user.receiver.arrivals]
    ids = [str(delivery.event["data"]["id"]) for delivery in arrivals]
    seen = Counter(ids)
    problems = []
    if missing := sum(1 for task_id in by_id if task_id not in seen):
        problems.append(f"{user.email}: {missing} writes never arrived")
    if repeated := sum(count - 1 for count in seen.values() if count > 1):
        problems.append(f"{user.email}: {repeated} arrived more than once")
    if foreign := sum(1 for task_id in seen if task_id not in by_id):
        problems.append(f"{user.email}: {foreign} deliveries of no write of the burst")
    if unverified := sum(1 for delivery in arrivals if delivery.verified_by != user.receiver.secrets):
        problems.append(f"{user.email}: {unverified} not verified by the webhook's secret")
    if wrong := sum(1 for delivery in arrivals if delivery.event["type"] != "task.created"):
        problems.append(f"{user.email}: {wrong} not task.created")
    # In write order: a write acknowledged before another was sent arrives before it (writes in flight at
    # the same time have no order of their own). With one in flight, the order of the acknowledgements.
    latest_sent, inversions = float("-inf"), 0
    for task_id in dict.fromkeys(ids):
        if (written := by_id.get(task_id)) is not None:
            inversions += written.acked < latest_sent
            latest_sent = max(latest_sent, written.sent)
    if inversions:
        problems.append(f"{user.email}: {inversions} out of write order")
    return problems


async def attempt_durations(dsn: str, emails: list[str]) -> tuple[list[float], list[str]]:
    """The burst's delivery log: each attempt's duration (ms), and anything but one delivered attempt."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
SELECT d.status, d.attempt, d.duration_ms FROM webhook_deliveries AS d
JOIN webhooks AS w ON w.id = d.webhook_id JOIN users AS u ON u.id = w.owner_id
WHERE u.email = ANY($1::text[]) AND d.payload -> 'data' ->> 'title' <> $2
""",
            emails,
            WARM_UP_TITLE,
        )
    finally:
        await connection.close()
    odd = Counter(
        (row["status"], row["attempt"]) for row in rows if (row["status"], row["attempt"]) != ("delivered", 1)
    )
    problems = [
        f"delivery log: {count} x {status} after {attempt} attempts"
        for (status, attempt), count in odd.items()
    ]
    return [float(row["duration_ms"]) for row in rows if row["duration_ms"] is not None], problems


async def scenario(
    name: str,
    client: httpx.AsyncClient,
    receivers: list[Timed],
    writes_each: int,
    in_flight: int,
    *,
    dsn: str,
    run: str,
    pids: tuple[int, int],
) -> Outcome:
    users = [
        await endpoint(client, receiver, f"bench-webhooks-{run}-{name.split()[0]}-{n}@example.com")
        for n, receiver in enumerate(receivers)
    ]
    for user in users:  # the worker's, the server's and the receivers' first requests
        for n in range(WARM_UP):
            await write(client, user, f"{WARM_UP_TITLE} {n}")
    await arrived(users, [WARM_UP] * len(users), 60)
    for user in users:
        user.receiver.reset()

    worker, server = pids
    worker_cpu, server_cpu = cpu_seconds(worker), cpu_seconds(server)
    await asyncio.gather(*(burst(client, user, writes_each, in_flight) for user in users))
    await arrived(users, [writes_each] * len(users), WAIT_SECONDS)
    worker_cpu, server_cpu = cpu_seconds(worker) - worker_cpu, cpu_seconds(server) - server_cpu

    writes = [w for user in users for w in user.writes]
    arrivals = [at for user in users for at, _ in user.receiver.arrivals]
    delays = []
    for user in users:
        acked = {w.task_id: w.acked for w in user.writes}
        for at, delivery in user.receiver.arrivals:
            if (task_id := str(delivery.event["data"]["id"])) in acked:
                delays.append((at - acked[task_id]) * 1000)
    problems = [problem for user in users for problem in check(user)]
    durations, logged = await attempt_durations(dsn, [user.email for user in users])
    return Outcome(
        name=name,
        writes=len(writes),
        write_seconds=max(w.acked for w in writes) - min(w.sent for w in writes),
        span_seconds=max(arrivals) - min(arrivals),
        total_seconds=max(arrivals) - min(w.sent for w in writes),
        delays_ms=delays,
        problems=problems + logged,
        attempt_ms=durations,
        worker_cpu_s=worker_cpu,
        server_cpu_s=server_cpu,
    )


async def measure(args: argparse.Namespace, dsn: str, worker: int, server: int) -> list[Outcome]:
    run = uuid.uuid4().hex[:8]
    outcomes = []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{args.port}", timeout=60) as client:
        async with receivers(1) as one:
            outcomes.append(
                await scenario(
                    "1 endpoint",
                    client,
                    one,
                    args.writes,
                    args.in_flight,
                    dsn=dsn,
                    run=run,
                    pids=(worker, server),
                )
            )
        if args.users > 0:
            async with receivers(args.users) as many:
                name = f"{args.users} endpoints"
                outcomes.append(
                    await scenario(
                        name, client, many, args.writes_each, 1, dsn=dsn, run=run, pids=(worker, server)
                    )
                )
    return outcomes


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> bool:
    rows = [(outcome.name, outcome.figures()) for outcome in outcomes]
    header = (
        f"{'scenario':<14} {'writes':>6} {'writes/s':>9} {'deliv./s':>9} {'delay p50':>10} {'p99':>9}"
        f" {'max':>9} {'attempt':>8} {'worker CPU':>11}  all once, in order, verified"
    )
    print(header)
    for name, f in rows:
        print(
            f"{name:<14} {f['writes']:>6} {f['writes_per_second']:>9} {f['deliveries_per_second']:>9}"
            f" {f['delay_ms_p50']:>7} ms {f['delay_ms_p99']:>6} ms {f['delay_ms_max']:>6} ms"
            f" {f['attempt_ms_mean']:>5} ms {f['worker_cpu_ms_per_delivery']:>5} ms/d  "
            f"{'yes' if f['ok'] else 'NO: ' + '; '.join(f['problems'][:3])}"
        )
    first = rows[0][1]
    ok = all(f["ok"] for _, f in rows)
    print(
        f"{first['writes']} webhook deliveries to a local receiver: {first['deliveries_per_second']}/s, "
        f"delay p50 {first['delay_ms_p50']} ms, p99 {first['delay_ms_p99']} ms, "
        f"max {first['delay_ms_max']} ms; "
        f"{'all arrived once, in order, verified' if ok else 'CHECK FAILED'} (one worker, JOBS_CONCURRENCY="
        f"{args.concurrency})"
    )
    line = {
        "concurrency": args.concurrency,
        "scenarios": dict(rows),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(line))
    return ok


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writes", type=int, default=1000, help="Writes of the one-endpoint burst.")
    parser.add_argument(
        "--in-flight", type=int, default=8, help="The one-endpoint burst's writes in flight at once."
    )
    parser.add_argument("--users", type=int, default=10, help="Endpoints of the second scenario (0: none).")
    parser.add_argument("--writes-each", type=int, default=100, help="Writes per user in the second one.")
    parser.add_argument("--concurrency", type=int, default=8, help="The worker's JOBS_CONCURRENCY.")
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-webhooks")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    refuse_busy_port(HOST, args.port)
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    settings = services.resolve(Settings(data_dir=args.data_dir, _env_file=None))
    serve_log, worker_log = args.data_dir / "webhooks-serve.log", args.data_dir / "webhooks-worker.log"
    try:
        assert settings.database_url
        assert settings.redis_url
        migrations.upgrade(settings.database_url)
        env = environment(
            args.data_dir,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            ENVIRONMENT="production",
            JWT_SECRET=secrets.token_urlsafe(48),
            JOBS_EMBEDDED_WORKER="false",
            JOBS_CONCURRENCY=str(args.concurrency),
            WEBHOOKS_ALLOW_PRIVATE="true",
            ACCOUNT_MAILS_PER_IP="1000000000",  # the verification mails of the registrations
        )
        runner: Callable[[Coroutine[Any, Any, list[Outcome]]], list[Outcome]] = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop  # as the server runs

            runner = uvloop.run
        serve = [sys.executable, "-m", "taskql", "serve", "--host", HOST, "--port", str(args.port)]
        with worker_log.open("wb") as worker_output, serve_log.open("wb") as serve_output:
            worker = subprocess.Popen(
                [sys.executable, "-m", "taskql", "worker"],
                env=env,
                cwd=ROOT,
                stdout=worker_output,
                stderr=subprocess.STDOUT,
            )
            try:
                ready = f"http://{HOST}:{args.port}/readyz"
                with running(
                    [*serve, "--workers", "1"], env=env, ready_url=ready, log=serve_output
                ) as server:
                    outcomes = runner(measure(args, settings.database_url, worker.pid, server.pid))
            except Failed as failure:
                show_log(serve_log)
                show_log(worker_log)
                print(f"\n!!! {failure}", file=sys.stderr)
                raise SystemExit(1) from None
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    finally:
        services.stop_embedded()
    ok = report(args, outcomes)
    for path in (serve_log, worker_log):
        if path.read_text(errors="replace").strip():
            show_log(path)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
