"""Benchmark and profile TaskPage (`tasks(first: 50)` with owners, cursors and pageInfo) as an admin.

    python -m bench.profile_taskpage load [--seconds 10] [--concurrency 8] [--py-spy FILE]
    python -m bench.profile_taskpage inprocess [--requests 300] [--pyinstrument]

``load`` starts `python -m taskql serve` (one uvicorn worker) on the data set of ``bench.tasks_query``
(1,000 users, 100,000 tasks in `.data/bench`, seeded once) and drives it over loopback with a small
keep-alive HTTP/1.1 client (raw asyncio streams: far less client CPU than httpx, which shares the same two
cores), then prints requests/s. ``--py-spy`` records the server meanwhile (a flame graph SVG, or
``--py-spy-format raw`` for collapsed stacks).

``inprocess`` runs the app in this process (ASGI, no sockets) and prints CPU time per request; with
``--pyinstrument``, where it goes. Not a test: figures go into notes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.tasks_query import ADMIN, ROOT, prepare

QUERY = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()


def bench_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}}
    env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    return env


def login_body() -> dict[str, Any]:
    return {
        "query": "mutation($i: LoginInput!){ login(input: $i) { accessToken } }",
        "variables": {"i": {"email": ADMIN[0], "password": ADMIN[1]}},
    }


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(data_dir: Path) -> list[int]:
    """The embedded PostgreSQL's processes (the postmaster and its backends) of this data folder."""
    postmaster = data_dir.resolve() / "postgres" / "postmaster.pid"
    try:
        root = int(postmaster.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:
                continue
            if parent == root:
                pids.append(int(entry.name))
    return pids


def check(payload: dict[str, Any], first: int) -> None:
    assert "errors" not in payload, payload
    assert len(payload["data"]["tasks"]["edges"]) == first, payload


async def raw_load(
    host: str, port: int, token: str, first: int, seconds: float, concurrency: int
) -> tuple[int, list[float]]:
    body = json.dumps({"query": QUERY, "variables": {"first": first}}).encode()
    request = (
        f"POST /graphql HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(checked: bool) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                payload = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                assert head.startswith(b"HTTP/1.1 200"), head
                if checked:
                    check(json.loads(payload), first)
                    checked = False
        finally:
            writer.close()

    await asyncio.gather(*(worker(index == 0) for index in range(concurrency)))
    return len(latencies), latencies


def load(args: argparse.Namespace) -> None:
    env = bench_env(args.data_dir)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    prepare(env, args.data_dir, args.users, args.tasks)
    command = [sys.executable, "-m", "taskql", "serve", "--port", str(args.port)]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    spy: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        login = httpx.post(f"{base}/graphql", json=login_body(), timeout=30).json()
        token = login["data"]["login"]["accessToken"]
        body = {"query": QUERY, "variables": {"first": args.first}}
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(50):  # warm-up: pools, parse and validation caches
                check(client.post("/graphql", json=body, headers=headers).json(), args.first)
        if args.py_spy:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "250",
                    "--format",
                    args.py_spy_format,
                    "--output",
                    str(args.py_spy),
                ],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
        for concurrency in args.concurrency:
            database = postgres_pids(args.data_dir)
            server_cpu, database_cpu = cpu_seconds([server.pid]), cpu_seconds(database)
            count, latencies = asyncio.run(
                raw_load("127.0.0.1", args.port, token, args.first, args.seconds, concurrency)
            )
            server_cpu = cpu_seconds([server.pid]) - server_cpu
            # Backends the pool opened during the run count in full (all their CPU is from this run).
            database_cpu = cpu_seconds(postgres_pids(args.data_dir)) - database_cpu
            ms = sorted(latency * 1000 for latency in latencies)
            print(
                json.dumps(
                    {
                        "query": f"TaskPage(first: {args.first}), as an admin",
                        "concurrency": concurrency,
                        "seconds": args.seconds,
                        "requests": count,
                        "requests_per_s": round(count / args.seconds, 1),
                        "median_ms": round(statistics.median(ms), 2),
                        "p95_ms": round(statistics.quantiles(ms, n=100)[94], 2),
                        # CPU per request: what decides the rate once the cores are busy, and far less
                        # sensitive than the rate to other work on a shared machine.
                        "server_cpu_ms": round(server_cpu / count * 1000, 2),
                        "postgres_cpu_ms": round(database_cpu / count * 1000, 2),
                    }
                ),
                flush=True,
            )
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        if spy is not None and spy.poll() is None:
            spy.terminate()
        server.terminate()
        server.wait(timeout=30)


async def inprocess_run(args: argparse.Namespace) -> None:
    from asgi_lifespan import LifespanManager

    from core.settings import Settings
    from taskql.app import create_app
    from taskql.cli import services

    settings = services.resolve(Settings(data_dir=args.data_dir, log_level="WARNING"))
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # each request gets the lifespan's state
        async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as client:
            login = (await client.post("/graphql", json=login_body())).json()
            headers = {"authorization": f"Bearer {login['data']['login']['accessToken']}"}
            body = {"query": QUERY, "variables": {"first": args.first}}
            for _ in range(50):
                check((await client.post("/graphql", json=body, headers=headers)).json(), args.first)
            profiler: Any = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                (await client.post("/graphql", json=body, headers=headers)).raise_for_status()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if profiler is not None:
                profiler.stop()
    print(
        f"{args.requests} requests in process: {cpu / args.requests * 1000:.2f} ms CPU, "
        f"{wall / args.requests * 1000:.2f} ms wall per request (client included)"
    )
    if profiler is not None:
        print(profiler.output_text(unicode=True, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["load", "inprocess"])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--py-spy", type=Path, default=None)
    parser.add_argument("--py-spy-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"])
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    if args.mode == "load":
        load(args)
    else:
        asyncio.run(inprocess_run(args))


if __name__ == "__main__":
    main()
