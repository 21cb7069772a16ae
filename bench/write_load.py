"""Benchmark over HTTP: mutation throughput (createTask, updateTask) under load (wrk), optionally of another
checkout of taskql too, alternately, to compare the write path's cost between two versions.

    python -m bench.write_load [--duration 10] [--warmup 3] [--connections 16] [--users 100]
                               [--seed-users 1000] [--tasks 100000] [--data-dir DIR] [--port 8096]
                               [--code PATH] [--baseline PATH --rounds 3]

1. Seeds SEED_USERS users and TASKS tasks into DATA_DIR (once; the embedded PostgreSQL and Redis) and
   applies the code's migrations (`python -m taskql migrate`, every run: its own schema, whatever created
   the folder). DATA_DIR defaults to the code's own .data/bench-write: two checkouts never share a database.
2. Serves taskql as production would: `python -m taskql serve`, ENVIRONMENT=production, a random
   JWT_SECRET, LOG_LEVEL=WARNING (no access log), one worker, on 127.0.0.1:PORT, from the checkout at CODE
   (default: this one; its own folder as the working directory and PYTHONPATH, this virtualenv's Python).
3. Logs in USERS seeded users and reads each one's first 20 tasks (not measured).
4. Runs wrk (1 thread, CONNECTIONS connections, from its own process; bench/wrk/writes.lua) twice per kind,
   WARMUP seconds not measured, then DURATION seconds measured:
     create   createTask (a title and a tag), as the users in turn: writes spread across owners
     update   updateTask (a new title and a random status) of a random one of the user's tasks: row locks
              on existing rows, as real edits take them (rarely the same row at once)
   Every answer must be a 200 with the mutation's field and no `errors`; wrk must report no socket error
   or timeout. Any of these counts as an error: the figures are printed, then the command exits 1.
5. Prints per kind requests/s, p50, p99, the server process's CPU per request (ms) and the load average
   before the window (the machine is shared: read the figures against it); then one JSON line.

With --baseline PATH, does ROUNDS rounds, each one run of the baseline checkout (A, its own data folder
under PATH/.data/bench-write) then one of CODE (B), with the same options, and prints each run and, per
kind, B/A of the medians' requests/s and the median of each round's B/A. For example, this branch against
the commit before it, in a throwaway worktree (which uses this virtualenv, and its own data folder):

    git worktree add --detach ../wt-before <commit>; ln -s "$PWD/.venv" ../wt-before/.venv
    python -m bench.write_load --baseline ../wt-before --rounds 3

Needs wrk (Debian: `apt-get install -y wrk`). Not a test: the figures go into closing notes and the README.
The server's output (warnings and errors only) is kept in DATA_DIR/write_load-taskql.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ROOT, environment, prepare, refuse_busy_port, running, taskql
from bench.subscriptions import Failed, User, bounded, cpu_seconds, graphql, log_in

HOST = "127.0.0.1"
KINDS = ("create", "update")
SCRIPT = Path(__file__).resolve().parent / "wrk" / "writes.lua"
QUERIES = ROOT / "graphql" / "queries"
TASKS_PER_USER = 20  # the tasks of each user that updates change: their first page
PAGE_CONCURRENCY = 8
WRK_TIMEOUT_SECONDS = 10  # wrk's default, 2 s, could count a loaded server's slowest answers as errors
DISCONNECT_HINT = (
    "wrk closes its connections when the time is up, also those whose request the server has received but"
    " not read yet; Starlette then raises ClientDisconnect and uvicorn logs it as an error"
)


@dataclass(frozen=True)
class Side:
    """A checkout of taskql to serve, and the data folder its server uses."""

    name: str  # A (the baseline) or B
    code: Path
    data_dir: Path


@dataclass(frozen=True)
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_ms: float  # the server process's CPU time per request
    database_cpu_ms: float  # PostgreSQL's (every process of it) per request
    loadavg: str  # /proc/loadavg's 1, 5 and 15 minutes before the window
    first_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "requests": self.requests,
            "errors": self.errors,
            "server_cpu_ms_per_request": round(self.server_cpu_ms, 3),
            "database_cpu_ms_per_request": round(self.database_cpu_ms, 3),
            "loadavg": self.loadavg,
            "first_error": self.first_error,
        }


@dataclass(frozen=True)
class Run:
    side: Side
    round: int
    figures: dict[str, Figures]  # by kind


def commit_of(code: Path) -> str:
    """The checkout's commit, with a + when it has uncommitted changes to tracked files."""
    git = ["git", "-C", str(code)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD"], capture_output=True, check=False).returncode
    return head.stdout.strip() + ("+" if dirty else "") if head.returncode == 0 else "?"


def database_cpu(data_dir: Path) -> float:
    """CPU seconds so far of the embedded PostgreSQL serving ``data_dir`` (its postmaster, found by its
    command line, and the backends it forked; one that exits takes its time with it, but the server's pools
    keep theirs)."""
    postmaster = f"postgres -D {data_dir / 'postgres'} "
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if postmaster in command:
            roots.add(int(proc.name))
    total = 0.0
    for pid, parent in parents.items():
        if pid in roots or parent in roots:
            with contextlib.suppress(OSError):  # it exited meanwhile
                total += cpu_seconds(pid)
    return total


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def body_template(kind: str) -> str:
    """The request body of ``kind``, with writes.lua's placeholders (@TITLE@, @ID@, @STATUS@)."""
    if kind == "create":
        operation = "CreateTask"
        variables: dict[str, Any] = {"input": {"title": "@TITLE@", "tags": ["bench"]}}
    else:
        operation = "UpdateTask"
        variables = {"id": "@ID@", "input": {"title": "@TITLE@", "status": "@STATUS@"}}
    query = (QUERIES / f"{operation}.graphql").read_text()
    return json.dumps({"query": query, "operationName": operation, "variables": variables})


async def writers(base: str, count: int) -> list[User]:
    """``count`` seeded users, logged in, each with the ids of their first tasks (in ``User.tasks``)."""
    page = (QUERIES / "TaskPage.graphql").read_text()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        users = await log_in(client, count)

        async def tasks_of(user: User) -> None:
            data = await graphql(client, page, {"first": TASKS_PER_USER}, user.token)
            user.tasks = [edge["node"]["id"] for edge in data["tasks"]["edges"]]
            if not user.tasks:
                raise Failed(f"{user.email} has no tasks: seed more (--tasks)")

        await bounded(PAGE_CONCURRENCY, (functools.partial(tasks_of, user) for user in users))
    return users


def write_data(folder: Path, kind: str, users: list[User]) -> Path:
    path = folder / f"{kind}.tsv"
    lines = [body_template(kind), *("\t".join([user.token, *user.tasks]) for user in users)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def run_wrk(url: str, kind: str, data: Path, seconds: int, connections: int) -> dict[str, Any]:
    command = ["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s"]
    command += ["--timeout", f"{WRK_TIMEOUT_SECONDS}s", "--script", str(SCRIPT), url]
    command += ["--", kind, str(data), f"{secrets.token_hex(4)}-"]
    completed = subprocess.run(
        command, capture_output=True, text=True, errors="replace", timeout=seconds + 60, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if completed.returncode != 0 or not lines:
        raise Failed(f"{kind}: wrk exited with {completed.returncode}\n{completed.stdout}{completed.stderr}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("WRK_JSON "))
    return result


def figures_of(wrk: dict[str, Any], cpu: float, database: float, load: str) -> Figures:
    latency = wrk["latency_us"]
    requests = int(wrk["requests"])
    errors = int(wrk["unexpected"]) + sum(int(count) for count in wrk["errors"].values())
    first = wrk["first_unexpected"]
    if first is None and errors:
        first = f"wrk's errors: {wrk['errors']}"
    return Figures(
        requests_per_second=requests / (wrk["duration_us"] / 1e6),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        requests=requests,
        errors=errors,
        server_cpu_ms=1000 * cpu / max(requests, 1),
        database_cpu_ms=1000 * database / max(requests, 1),
        loadavg=load,
        first_error=first,
    )


def migrate(side: Side, env: dict[str, str]) -> None:
    try:
        taskql("migrate", env=env, cwd=side.code)
    except subprocess.CalledProcessError as error:
        raise Failed(f"migrate in {side.code} failed:\n{error.stdout}{error.stderr}") from error


def measure(side: Side, round_: int, args: argparse.Namespace) -> Run:
    """One run of ``side``: a server of its own, both kinds, warm-up then measured."""
    env = environment(
        side.data_dir,
        ENVIRONMENT="production",
        JWT_SECRET=secrets.token_urlsafe(48),
        PYTHONPATH=str(side.code),
    )
    prepare(env, side.data_dir, args.seed_users, args.tasks, cwd=side.code)
    migrate(side, env)
    base = f"http://{HOST}:{args.port}"
    serve = [
        sys.executable,
        "-m",
        "taskql",
        "serve",
        "--host",
        HOST,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    print(
        f"\n[{side.name} round {round_}] {side.code} ({commit_of(side.code)}):"
        f" starting taskql: {' '.join(serve[1:])}"
    )
    figures: dict[str, Figures] = {}
    with (
        (side.data_dir / "write_load-taskql.log").open("ab") as log,
        running(serve, env=env, ready_url=f"{base}/readyz", log=log, cwd=side.code) as server,
        tempfile.TemporaryDirectory(prefix="write_load-") as folder,  # only this user can read it
    ):
        started = time.perf_counter()
        users = asyncio.run(writers(base, args.users))
        print(f"  {len(users)} users logged in, their tasks read ({time.perf_counter() - started:.1f} s)")
        for kind in KINDS:
            data = write_data(Path(folder), kind, users)
            if args.warmup:
                run_wrk(f"{base}/graphql", kind, data, args.warmup, args.connections)
            load = loadavg()
            cpu, database = cpu_seconds(server.pid), database_cpu(side.data_dir)
            wrk = run_wrk(f"{base}/graphql", kind, data, args.duration, args.connections)
            cpu, database = cpu_seconds(server.pid) - cpu, database_cpu(side.data_dir) - database
            figures[kind] = figures_of(wrk, cpu, database, load)
            print("  " + line_of(kind, figures[kind]))
    return Run(side, round_, figures)


def line_of(kind: str, figure: Figures) -> str:
    return (
        f"{kind:<8}{figure.requests_per_second:>10.1f} req/s  p50 {figure.p50_ms:>7.2f} ms  p99"
        f" {figure.p99_ms:>7.2f} ms  CPU/req server {figure.server_cpu_ms:>5.2f} ms, PostgreSQL"
        f" {figure.database_cpu_ms:>5.2f} ms  errors {figure.errors}"
        f"  (load {figure.loadavg})"
    )


def sides(args: argparse.Namespace) -> Iterator[tuple[Side, int]]:
    code = args.code.resolve()
    data_dir = (args.data_dir or code / ".data" / "bench-write").resolve()
    current = Side("B" if args.baseline else "-", code, data_dir)
    if args.baseline is None:
        yield current, 1
        return
    baseline = args.baseline.resolve()
    before = Side("A", baseline, baseline / ".data" / "bench-write")
    if before.data_dir == current.data_dir:
        raise SystemExit("--baseline and --code must not share a data folder (their schemas differ)")
    for round_ in range(1, args.rounds + 1):
        yield before, round_
        yield current, round_


def summary(runs: list[Run]) -> dict[str, Any]:
    """Per kind, the medians of each side and B/A (of the medians, and the median of the rounds')."""
    result: dict[str, Any] = {}
    for kind in KINDS:
        a = {run.round: run.figures[kind].requests_per_second for run in runs if run.side.name == "A"}
        b = {run.round: run.figures[kind].requests_per_second for run in runs if run.side.name == "B"}
        rounds = sorted(a.keys() & b.keys())
        result[kind] = {
            "median_a": round(statistics.median(a.values()), 1),
            "median_b": round(statistics.median(b.values()), 1),
            "b_over_a_of_medians": round(statistics.median(b.values()) / statistics.median(a.values()), 3),
            "median_of_rounds_b_over_a": round(statistics.median(b[r] / a[r] for r in rounds), 3),
            "rounds_b_over_a": [round(b[r] / a[r], 3) for r in rounds],
        }
    return result


def report(runs: list[Run], args: argparse.Namespace) -> int:
    """Print every run (and the comparison); the number of errors."""
    print(
        f"\nwrk: 1 thread, {args.connections} connections,"
        f" {args.warmup} s warm-up + {args.duration} s per kind;"
    )
    print(f"{args.users} users of {args.seed_users}, {args.tasks} tasks seeded")
    for run in runs:
        print(f"{run.side.name} round {run.round} ({run.side.code}, {commit_of(run.side.code)}):")
        for kind, figure in run.figures.items():
            print(f"  {line_of(kind, figure)}")
            if figure.first_error:
                print(f"    the first error: {figure.first_error}")
    compared = summary(runs) if args.baseline else None
    if compared:
        for kind, row in compared.items():
            print(
                f"{kind}: median A {row['median_a']} req/s, median B {row['median_b']} req/s;"
                f" B/A of the medians {100 * row['b_over_a_of_medians']:.1f} %, median of the rounds' B/A"
                f" {100 * row['median_of_rounds_b_over_a']:.1f} % (rounds: {row['rounds_b_over_a']})"
            )
    errors = sum(figure.errors for run in runs for figure in run.figures.values())
    line = {
        "benchmark": "write_load",
        "users": args.users,
        "seed_users": args.seed_users,
        "tasks": args.tasks,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "runs": [
            {
                "side": run.side.name,
                "round": run.round,
                "code": str(run.side.code),
                "commit": commit_of(run.side.code),
                "kinds": {kind: figure.as_json() for kind, figure in run.figures.items()},
            }
            for run in runs
        ],
        "compared": compared,
        "errors": errors,
    }
    print(json.dumps(line))
    return errors


def show_log(data_dirs: set[Path]) -> None:
    for data_dir in sorted(data_dirs):
        path = data_dir / "write_load-taskql.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        headlines = [line for line in lines if line and not line[0].isspace()]
        if headlines:
            print(f"{path}: {len(lines)} lines, the first: {headlines[0][:150]}", file=sys.stderr)
            if any("ClientDisconnect" in line for line in headlines):
                print(f"  (ClientDisconnect: {DISCONNECT_HINT})", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="Measured seconds per kind.")
    parser.add_argument("--warmup", type=int, default=3, help="Unmeasured seconds of load before each kind.")
    parser.add_argument("--connections", type=int, default=16, help="Open connections (wrk -c).")
    parser.add_argument("--users", type=int, default=100, help="Users whose tokens the writes use.")
    parser.add_argument("--seed-users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, help="Default: CODE/.data/bench-write.")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--code", type=Path, default=ROOT, help="The checkout of taskql to serve.")
    parser.add_argument("--baseline", type=Path, help="Another checkout, measured alternately (A; CODE: B).")
    parser.add_argument("--rounds", type=int, default=3, help="With --baseline: runs of each.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: on Debian or Ubuntu, `apt-get install -y wrk`")
    if min(args.duration, args.connections, args.users, args.rounds) < 1 or args.warmup < 0:
        raise SystemExit("--duration, --connections, --users and --rounds must be at least 1")
    for path in (args.code, args.baseline):
        if path is not None and not (path / "taskql" / "__main__.py").exists():
            raise SystemExit(f"{path} is not a checkout of taskql (no taskql/__main__.py)")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    refuse_busy_port(HOST, args.port)
    runs: list[Run] = []
    planned = list(sides(args))
    try:
        for side, round_ in planned:
            runs.append(measure(side, round_, args))
    except Failed as failure:
        print(f"\n!!! {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        show_log({side.data_dir for side, _ in planned})
    if report(runs, args):
        print("\n!!! some answers were errors: these figures cannot be trusted", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    os.umask(0o077)  # the data files hold tokens
    main()
