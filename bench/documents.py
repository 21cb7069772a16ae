"""Every query document under load, against honest references: requests/s, latency and server CPU per request.

    python -m bench.documents [--duration 5] [--rounds 2] [--connections 16] [--only TaskPage,Me]
                              [--users 1000] [--tasks 100000] [--data-dir .data/bench] [--port 8099]

1. Seeds USERS users and TASKS tasks into DATA_DIR (once), and starts its embedded PostgreSQL and Redis in
   this process, so that every server below reads the same data.
2. Serves taskql as production would (``python -m taskql serve``, one worker, ENVIRONMENT=production,
   LOG_LEVEL=WARNING, budgets no client can spend), the ceiling (``bench.ceiling``: a plain Starlette app
   answering each document's bytes from memory), and each reference server of ``bench.references`` that
   exists (``handwritten``: Starlette, asyncpg and orjson, no GraphQL; ``bare``: Strawberry with its caches
   and a dataloader, no auth or cache), with the options ``serve`` uses.
3. For every query document in graphql/queries/ (RateLimit aside: its answer changes with every request),
   with variables that make it do its work (pages of 50, a task's id), as the benchmark's admin:
   ``taskql``     POST, an undeclared variable that changes on every request: a cache miss each time
   ``taskql-hit`` POST, the same body every time: the response cache's hit
   ``taskql-off`` POST, the same body every time, to a second taskql with RESPONSE_CACHE=false (port PORT+4):
                  no lookup or store, the viewer's session read in PostgreSQL on every request
   ``ceiling``    GET of the same bytes from memory
   and each reference that implements the document (bare Strawberry answers the floor too). Each answer is
   checked first (taskql's: 200 and no errors; a reference's: taskql's bytes, or for bare Strawberry the same
   JSON), and wrk then checks that every answer under load has the checked answer's length.
4. ROUNDS rounds, alternating the servers within each round (the machine's noise spreads over all of them),
   DURATION seconds each. Server CPU per request is the server process's user + system time (/proc) over
   the requests wrk completed; the figures of a scenario are the medians of its rounds.
5. Prints a table per document and the ratios the performance issue asks for, then one JSON line.

Needs wrk (Debian: ``apt-get install -y wrk``). Not a test: figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.http_load import NONCE, Failed, Scenario, check_run, loud, run_wrk
from bench.servers import ROOT, environment, login, prepare, refuse_busy_port, running

HOST = "127.0.0.1"
QUERIES = ROOT / "graphql" / "queries"
SKIPPED = {"RateLimit": "its answer (the budget used) changes with every request"}
PAGE = 50
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OPERATION = re.compile(r"^\s*(query|mutation|subscription)\s+(\w+)", re.MULTILINE)
FLOOR = "query Floor { __typename }"


@dataclass(frozen=True)
class Document:
    name: str
    query: str
    variables: dict[str, Any]

    def body(self, **extra: Any) -> bytes:
        variables = {**self.variables, **extra}
        return json.dumps({"query": self.query, "operationName": self.name, "variables": variables}).encode()


@dataclass
class Run:
    """One scenario's rounds: requests/s, p50 and p99 in ms, server CPU per request in µs."""

    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def median(self) -> dict[str, float]:
        return {
            "requests_per_second": round(statistics.median(self.rps), 1),
            "p50_ms": round(statistics.median(self.p50), 2),
            "p99_ms": round(statistics.median(self.p99), 2),
            "cpu_us_per_request": round(statistics.median(self.cpu_us), 1),
        }


def query_documents(only: set[str] | None) -> list[tuple[str, str]]:
    """(name, text) of every query document, and the floor; mutations and subscriptions are not read here."""
    found = [("Floor", FLOOR)]
    for path in sorted(QUERIES.glob("*.graphql")):
        text = path.read_text()
        match = OPERATION.search(text)
        if match is None or match.group(1) != "query" or match.group(2) in SKIPPED:
            continue
        found.append((match.group(2), text))
    return [(name, text) for name, text in found if only is None or name in only]


def variables_for(name: str, text: str, task_id: str) -> dict[str, Any]:
    """Variables that make a document do its work: a page of ``PAGE``, and an existing task's id."""
    variables: dict[str, Any] = {}
    if "$first" in text:
        variables["first"] = PAGE
    if "$id" in text:
        variables["id"] = task_id
    return variables


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # its GraphQL endpoint (the ceiling's: its base URL)
    pid: int


def check(response: httpx.Response, what: str) -> bytes:
    if response.status_code != 200:
        raise Failed(f"{what} answered {response.status_code}: {response.text[:500]}")
    payload = response.json()
    if "errors" in payload or payload.get("data") is None:
        raise Failed(f"{what} answered errors: {response.text[:500]}")
    return response.content


REFERENCES = {"handwritten": "bench.references.handwritten", "bare": "bench.references.bare_strawberry"}
REFERENCE_DOCUMENTS = ("TaskPage", "TasksWithOwners", "TaskStats", "Task", "Node")
# What each reference answers: bare Strawberry answers the floor too (its `__typename`, its session check).
IMPLEMENTED = {"handwritten": REFERENCE_DOCUMENTS, "bare": (*REFERENCE_DOCUMENTS, "Floor")}
CACHE_OFF = "taskql-off"  # taskql with RESPONSE_CACHE=false: no lookup, no store, the session read in SQL


@contextlib.contextmanager
def serving(args: argparse.Namespace, env: dict[str, str]) -> Iterator[dict[str, Server]]:
    """taskql and the references, on PostgreSQL and Redis started here (the data folder's embedded ones),
    so that they all read the same data."""
    from core.settings import Settings
    from taskql.cli import services

    resolved = services.resolve(Settings(data_dir=args.data_dir, jwt_secret=env["JWT_SECRET"]))
    assert resolved.database_url
    assert resolved.redis_url
    env = {**env, "DATABASE_URL": resolved.database_url, "REDIS_URL": resolved.redis_url}
    args.redis_url = resolved.redis_url  # for fresh_cache()
    with contextlib.ExitStack() as stack:
        stack.callback(services.stop_embedded)
        servers: dict[str, Server] = {}
        serve = [sys.executable, "-m", "taskql", "serve", "--host", HOST, "--port", str(args.port)]
        serve += ["--workers", "1"]
        print(f"starting taskql: {' '.join(serve[1:])} (ENVIRONMENT=production, LOG_LEVEL=WARNING)")
        log = stack.enter_context((args.data_dir / "documents-taskql.log").open("wb"))
        taskql = stack.enter_context(
            running(serve, env=env, ready_url=f"http://{HOST}:{args.port}/readyz", log=log)
        )
        servers["taskql"] = Server("taskql", f"http://{HOST}:{args.port}/graphql", taskql.pid)
        off_port = args.port + 4  # checked free by main()
        serve_off = [*serve[:-4], "--port", str(off_port), "--workers", "1"]
        print(f"starting taskql with RESPONSE_CACHE=false on port {off_port}")
        log = stack.enter_context((args.data_dir / "documents-taskql-off.log").open("wb"))
        taskql_off = stack.enter_context(
            running(
                serve_off,
                env={**env, "RESPONSE_CACHE": "false"},
                ready_url=f"http://{HOST}:{off_port}/readyz",
                log=log,
            )
        )
        servers[CACHE_OFF] = Server(CACHE_OFF, f"http://{HOST}:{off_port}/graphql", taskql_off.pid)
        for offset, (name, module) in enumerate(REFERENCES.items(), start=2):
            port = args.port + offset
            refuse_busy_port(HOST, port)
            command = [sys.executable, "-m", module, "--host", HOST, "--port", str(port)]
            command += ["--database-url", resolved.database_url, "--jwt-secret", env["JWT_SECRET"]]
            print(f"starting the reference {name}: -m {module} on port {port}")
            log = stack.enter_context((args.data_dir / f"documents-{name}.log").open("wb"))
            server = stack.enter_context(
                running(command, env=env, ready_url=f"http://{HOST}:{port}/readyz", log=log)
            )
            servers[name] = Server(name, f"http://{HOST}:{port}/graphql", server.pid)
        yield servers


@contextlib.contextmanager
def ceiling(bodies: dict[str, bytes], port: int, env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    """The ceiling, answering GET /NAME with each document's bytes."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="documents-")))
        command = [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(port)]
        for name, body in bodies.items():
            (folder / f"{name}.json").write_bytes(body)
            command += ["--body", f"{name}={folder / f'{name}.json'}"]
        log = stack.enter_context((log_dir / "documents-ceiling.log").open("wb"))
        first = next(iter(bodies))
        server = stack.enter_context(
            running(command, env=env, ready_url=f"http://{HOST}:{port}/{first}", log=log)
        )
        yield Server("ceiling", f"http://{HOST}:{port}", server.pid)


def scenarios(document: Document, servers: dict[str, Server], ceiling_server: Server) -> list[Scenario]:
    taskql = servers["taskql"]
    found = [
        Scenario("taskql", "uncached.lua", "POST", taskql.url, body=document.body(nonce=NONCE.decode())),
        Scenario("taskql-hit", "cache_hit.lua", "POST", taskql.url, body=document.body()),
        # Nothing to cache on these: the same body every time.
        Scenario(CACHE_OFF, "cache_hit.lua", "POST", servers[CACHE_OFF].url, body=document.body()),
    ]
    found += [
        Scenario(name, "cache_hit.lua", "POST", servers[name].url, body=document.body())
        for name in REFERENCES
        if name in servers and document.name in IMPLEMENTED[name]
    ]
    return [
        *found,
        Scenario("ceiling", "get.lua", "GET", f"{ceiling_server.url}/{document.name}", authorized=False),
    ]


def measure_one(
    scenario: Scenario,
    server: Server,
    token: str,
    folder: Path,
    run_id: str,
    length: int,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], float]:
    before = cpu_seconds(server.pid)
    wrk = run_wrk(
        scenario,
        scenario.wrk_args(folder, run_id),
        token if scenario.authorized else None,
        length,
        args.duration,
        args.connections,
    )
    used = cpu_seconds(server.pid) - before
    check_run(scenario, wrk)
    return wrk, 1e6 * used / max(int(wrk["requests"]), 1)


def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    run_id = f"{secrets.token_hex(6)}-"
    results: dict[str, dict[str, Run]] = {}
    skipped: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        servers = stack.enter_context(serving(args, env))
        taskql = servers["taskql"]
        client = stack.enter_context(httpx.Client(timeout=60, headers={"accept-encoding": "identity"}))
        token = login(httpx.Client(base_url=taskql.url.removesuffix("/graphql"), timeout=60))
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        page = client.post(taskql.url, content=Document("TaskPage", _query("TaskPage"), {"first": 1}).body(),
                           headers=headers).json()  # fmt: skip
        task_id = page["data"]["tasks"]["edges"][0]["node"]["id"]
        documents = [
            Document(name, text, variables_for(name, text, task_id))
            for name, text in query_documents(args.only)
        ]
        bodies = {
            document.name: check(
                client.post(taskql.url, content=document.body(), headers=headers), document.name
            )
            for document in documents
        }
        roof = stack.enter_context(ceiling(bodies, args.port + 1, env, args.data_dir))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="documents-wrk-")))
        for round_number in range(args.rounds):
            fresh_cache(args.redis_url)
            token = login(httpx.Client(base_url=taskql.url.removesuffix("/graphql"), timeout=60))
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            for document in documents:
                # The answer now, from taskql uncached: statistics change with time alone (overdue tasks).
                nonce = f"{run_id}check-{round_number}"
                now = check(client.post(taskql.url, content=document.body(nonce=nonce), headers=headers),
                            document.name)  # fmt: skip
                for scenario in scenarios(document, servers, roof):
                    server = (
                        roof if scenario.name == "ceiling" else servers[scenario.name.removesuffix("-hit")]
                    )
                    probe = _probe(scenario, client, token, f"{run_id}probe-{round_number}")
                    if scenario.name == "taskql-hit" and probe.headers.get("x-cache") != "HIT":
                        skipped[document.name] = "not cacheable (its answer is never a hit)"
                        continue
                    expected = bodies[document.name] if scenario.name == "ceiling" else now
                    if _data(probe.content) != _data(expected):
                        raise Failed(
                            f"{document.name} {scenario.name}: not the checked answer:\n"
                            f"{probe.content[:300]!r}\n{expected[:300]!r}"
                        )
                    wrk, cpu_us = measure_one(
                        scenario, server, token, folder, f"{run_id}{round_number}-", len(probe.content), args
                    )
                    run = results.setdefault(document.name, {}).setdefault(scenario.name, Run())
                    run.rps.append(wrk["requests"] / (wrk["duration_us"] / 1e6))
                    run.p50.append(wrk["latency_us"]["p50"] / 1000)
                    run.p99.append(wrk["latency_us"]["p99"] / 1000)
                    run.cpu_us.append(cpu_us)
                    print(f"round {round_number + 1} {document.name:<16} {scenario.name:<12} "
                          f"{run.rps[-1]:>9.1f}/s  {cpu_us:>8.1f} µs CPU/request")  # fmt: skip
    return {
        name: {scenario: run.median() for scenario, run in runs.items()} for name, runs in results.items()
    }


def fresh_cache(redis_url: str) -> None:
    """Each round starts with an empty response cache: an entry stored a round earlier could reach its TTL
    (5 minutes for statistics) in the middle of a hit's run, and the misses would fail wrk's check."""
    from taskql.cache.store import flush

    asyncio.run(flush(redis_url))


def _probe(scenario: Scenario, client: httpx.Client, token: str, nonce: str) -> httpx.Response:
    """One answer of the scenario; for the hit, once the entry is stored (just after its first answer)."""
    for attempt in range(20):
        probe = scenario.request(client, token, f"{nonce}-{attempt}")
        if scenario.name != "taskql-hit" or probe.headers.get("x-cache") == "HIT":
            break
    return probe


def _data(body: bytes) -> Any:
    """An answer's data: its extensions (the budget's report) change from one request to the next."""
    return json.loads(body)["data"]


def _query(name: str) -> str:
    return (QUERIES / f"{name}.graphql").read_text()


def report(figures: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"\n{args.users} users, {args.tasks} tasks; wrk: 1 thread, {args.connections} connections, "
          f"{args.duration} s x {args.rounds} rounds per scenario (medians)")  # fmt: skip
    header = f"{'document':<16}{'server':<14}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}"
    print(header)
    ratios: dict[str, dict[str, float]] = {}
    for document, scenarios_ in figures.items():
        for scenario, figure in scenarios_.items():
            print(
                f"{document:<16}{scenario:<14}{figure['requests_per_second']:>12.1f}{figure['p50_ms']:>9.2f}"
                f"{figure['p99_ms']:>9.2f}{figure['cpu_us_per_request']:>12.1f}"
            )
        cpu = {scenario: figure["cpu_us_per_request"] for scenario, figure in scenarios_.items()}
        ratios[document] = {
            f"{scenario} / {reference}": round(cpu[scenario] / cpu[reference], 2)
            for scenario, reference in (
                ("taskql-hit", "ceiling"),
                ("taskql", "handwritten"),
                ("taskql", "bare"),
                (CACHE_OFF, "handwritten"),
                (CACHE_OFF, "bare"),
            )
            if scenario in cpu and reference in cpu and cpu[reference] > 0
        }
        print(f"{'':<16}CPU ratios: " + ", ".join(f"{k} {v}x" for k, v in ratios[document].items()))
    print(json.dumps({"benchmark": "documents", "users": args.users, "tasks": args.tasks,
                      "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
                      "figures": figures, "cpu_ratios": ratios}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="Seconds of load per scenario and round.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="Open connections (wrk -c).")
    parser.add_argument("--only", type=lambda value: set(value.split(",")), default=None,
                        help="Comma-separated document names (Floor for { __typename }).")  # fmt: skip
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    parser.add_argument(
        "--port",
        type=int,
        default=8099,
        help="taskql's port; the ceiling's is the next, the references' after.",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: on Debian or Ubuntu, `apt-get install -y wrk`")
    if args.duration < 1 or args.connections < 1 or args.rounds < 1:
        raise SystemExit("--duration, --rounds and --connections must be at least 1")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    args.data_dir = args.data_dir.resolve()
    for port in (args.port, args.port + 1, args.port + 4):
        refuse_busy_port(HOST, port)
    env = environment(args.data_dir, ENVIRONMENT="production", JWT_SECRET=secrets.token_urlsafe(48))
    prepare(env, args.data_dir, args.users, args.tasks)
    try:
        figures = measure(args, env)
    except Failed as failure:
        loud(str(failure))
        raise SystemExit(1) from None
    report(figures, args)


if __name__ == "__main__":
    main()
