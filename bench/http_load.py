"""Benchmark over HTTP: TaskPage(first: 50) under load (wrk), uncached, cached, as an APQ GET, and a ceiling.

    python -m bench.http_load [--duration 10] [--connections 16] [--users 1000] [--tasks 100000]
                              [--data-dir .data/bench] [--port 8099]

1. Seeds USERS users and TASKS tasks into DATA_DIR (once; the embedded PostgreSQL and Redis).
2. Serves taskql as production would: `python -m taskql serve`, ENVIRONMENT=production, a random JWT_SECRET,
   LOG_LEVEL=WARNING (no access log), one worker, on 127.0.0.1:PORT. Every other taskql setting is left at
   its default (taskql variables of this environment are not passed on).
3. Serves the ceiling on PORT + 1 (bench/ceiling.py): a plain Starlette app under the same uvicorn options,
   answering from memory the bytes of the TaskPage response fetched once from taskql.
4. Runs wrk (1 thread, CONNECTIONS connections, DURATION seconds each; scripts in bench/wrk/) as an admin:
   uncached    POST, with a variable that changes on every request, so no response cache can answer it
   cache-hit   POST, the same body every time
   apq-get     GET with Apollo's APQ parameters: the hash of TaskPage, a trusted document, no query
   ceiling     GET on the ceiling
   Two more uncached rows show the fixed cost of a request, to read the first against: uncached-1, the same
   query with `first: 1` (one row, one owner, the same two SQL statements), and floor, `{ __typename }`
   (the whole HTTP and GraphQL stack, with a cache miss and its store, and no resolver or SQL).
   Before each one, a request checks the answer (200, no errors, 50 edges; 1 for uncached-1, and
   `{"__typename": "Query"}` for floor) and, when the response cache says so in an X-Cache header, that the
   uncached ones are a MISS and the others a HIT. After each one, wrk must report no socket error or
   timeout, and every answer must be a 200 of the checked answer's length (which catches GraphQL errors
   under a 200).
5. Prints requests/s, p50 and p99 per scenario and each one's share of the ceiling's requests/s, then the
   same as one JSON line. The servers' output (warnings and errors only) is kept in DATA_DIR.

Needs wrk (Debian: `apt-get install -y wrk`). Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ROOT, environment, login, prepare, refuse_busy_port, running

HOST = "127.0.0.1"
FIRST = 50
FLOOR_QUERY = "query Floor { __typename }"
QUERY = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()
MANIFEST = ROOT / "graphql" / "manifest.json"
WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
WRK_TIMEOUT_SECONDS = 10  # wrk's default, 2 s, could count a loaded server's slowest answers as errors
NONCE = b"@NONCE@"  # where uncached.lua puts each request's nonce
DISCONNECT_HINT = (
    "wrk closes its connections when the time is up, also those whose request the server has received but"
    " not read yet; Starlette then raises ClientDisconnect and uvicorn logs it as an error"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str  # under bench/wrk/
    method: str
    url: str
    body: bytes | None = None  # with NONCE for a different body on every request
    cache: str | None = None  # what X-Cache must say, when there is a response cache
    authorized: bool = True
    reference: bytes | None = None  # the body every answer must be, byte for byte
    edges: int | None = FIRST  # the TaskPage's edges; None: the floor's answer, {"__typename": "Query"}

    def request(self, client: httpx.Client, token: str | None, nonce: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        content = None
        if self.body is not None:
            content = self.body.replace(NONCE, nonce.encode())
        # On GETs too, as Apollo Client does: production's CSRF prevention refuses a GET without it (or an
        # Apollo-Require-Preflight header). bench/wrk/get.lua sends the same.
        headers["content-type"] = "application/json"
        return client.request(self.method, self.url, content=content, headers=headers)

    def wrk_args(self, folder: Path, run_id: str) -> list[str]:
        if self.body is None:
            return []
        path = folder / f"{self.name}.json"
        path.write_bytes(self.body)
        return [str(path), run_id] if NONCE in self.body else [str(path)]


@dataclass(frozen=True)
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    x_cache: str | None

    @classmethod
    def of(cls, wrk: dict[str, Any], x_cache: str | None) -> Figures:
        latency = wrk["latency_us"]
        return cls(
            requests_per_second=wrk["requests"] / (wrk["duration_us"] / 1e6),
            p50_ms=latency["p50"] / 1000,
            p99_ms=latency["p99"] / 1000,
            requests=int(wrk["requests"]),
            x_cache=x_cache,
        )


class Failed(Exception):
    """The run cannot be trusted: the message says why."""


def request_body(variables: dict[str, Any], query: str = QUERY, operation: str = "TaskPage") -> bytes:
    return json.dumps({"query": query, "operationName": operation, "variables": variables}).encode()


def trusted_hash() -> str:
    """The SHA-256 of TaskPage, which the server knows without registration as a trusted document."""
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    operations = json.loads(MANIFEST.read_text())["operations"]
    if digest not in {operation["id"] for operation in operations}:
        raise Failed(f"TaskPage is not in {MANIFEST} as it is now: run `python -m taskql build-manifest`")
    return digest


def scenarios(port: int, ceiling_port: int, reference: bytes) -> list[Scenario]:
    graphql = f"http://{HOST}:{port}/graphql"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": trusted_hash()}}
    query_string = urllib.parse.urlencode(
        {
            "operationName": "TaskPage",
            "variables": json.dumps({"first": FIRST}, separators=(",", ":")),
            "extensions": json.dumps(extensions, separators=(",", ":")),
        },
        quote_via=urllib.parse.quote,
    )
    return [
        # An undeclared variable is ignored by execution but is part of any cache key.
        Scenario(
            "uncached",
            "uncached.lua",
            "POST",
            graphql,
            body=request_body({"first": FIRST, "nonce": NONCE.decode()}),
            cache="MISS",
        ),
        Scenario(
            "cache-hit", "cache_hit.lua", "POST", graphql, body=request_body({"first": FIRST}), cache="HIT"
        ),
        Scenario("apq-get", "get.lua", "GET", f"{graphql}?{query_string}", cache="HIT"),
        Scenario(
            "uncached-1",
            "uncached.lua",
            "POST",
            graphql,
            body=request_body({"first": 1, "nonce": NONCE.decode()}),
            cache="MISS",
            edges=1,
        ),
        Scenario(
            "floor",
            "uncached.lua",
            "POST",
            graphql,
            body=request_body({"nonce": NONCE.decode()}, FLOOR_QUERY, "Floor"),
            cache="MISS",
            edges=None,
        ),
        Scenario(
            "ceiling",
            "get.lua",
            "GET",
            f"http://{HOST}:{ceiling_port}/",
            authorized=False,
            reference=reference,
        ),
    ]


def check_answer(
    what: str, response: httpx.Response, reference: bytes | None = None, edges: int | None = FIRST
) -> None:
    """A TaskPage of ``edges`` edges without errors (and, given ``reference``, exactly those bytes); with
    ``edges`` None, the floor's answer."""
    if response.status_code != 200:
        raise Failed(f"{what} answered {response.status_code}: {response.text[:500]}")
    try:
        payload = response.json()
        if "errors" in payload:
            raise Failed(f"{what} answered errors: {payload['errors']}")
        found = payload["data"] if edges is None else payload["data"]["tasks"]["edges"]
    except (ValueError, KeyError, TypeError) as error:
        raise Failed(f"{what} answered something else than expected: {response.text[:500]}") from error
    if edges is None and found != {"__typename": "Query"}:
        raise Failed(f"{what} answered {found!r} instead of the floor's answer")
    if edges is not None and len(found) != edges:
        raise Failed(f"{what} answered {len(found)} edges instead of {edges}")
    if reference is not None and response.content != reference:
        raise Failed(f"{what} answered other bytes than taskql's TaskPage response")


def probe(scenario: Scenario, client: httpx.Client, token: str | None, run_id: str) -> httpx.Response:
    """Check the scenario's answer (after a warm-up request when it should come from the cache)."""
    what = f"{scenario.name} ({scenario.method} {scenario.url[:60]})"
    response = scenario.request(client, token, f"{run_id}probe-1")
    check_answer(what, response, scenario.reference, scenario.edges)
    if scenario.cache == "HIT":
        # The answer (and the new session's state) is stored just after it is sent: ask again shortly.
        for attempt in range(20):
            time.sleep(0.05)
            response = scenario.request(client, token, f"{run_id}probe-{attempt + 2}")
            check_answer(what, response, scenario.reference, scenario.edges)
            if response.headers.get("x-cache", "HIT").upper() == "HIT":
                break
    return response


def cache_note(scenario: Scenario, x_cache: str | None) -> str | None:
    """A warning when the response cache says something else than the scenario needs."""
    if scenario.cache is None:
        return None
    if x_cache is None:
        print(f"  {scenario.name}: (no X-Cache header: response cache not present)")
        return None
    if x_cache.upper() != scenario.cache:
        return (
            f"{scenario.name}: X-Cache is {x_cache!r}, expected {scenario.cache}: "
            "its figures measure something else than the scenario's name says"
        )
    print(f"  {scenario.name}: X-Cache {x_cache}, as expected")
    return None


def run_wrk(
    scenario: Scenario, args: list[str], token: str | None, body_bytes: int, duration: int, connections: int
) -> dict[str, Any]:
    command = ["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{duration}s"]
    command += ["--timeout", f"{WRK_TIMEOUT_SECONDS}s", "--script", str(WRK_SCRIPTS / scenario.script)]
    command += [scenario.url, *(["--", *args] if args else [])]
    # Through the environment, which only this user can read (see common.lua).
    env = {
        **os.environ,
        "BENCH_AUTHORIZATION": f"Bearer {token}" if token else "",
        "BENCH_BODY_BYTES": str(body_bytes),
    }
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, errors="replace", timeout=duration + 60, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if completed.returncode != 0 or not lines:
        raise Failed(
            f"{scenario.name}: wrk exited with {completed.returncode}\n{completed.stdout}{completed.stderr}"
        )
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("WRK_JSON "))
    return result


def check_run(scenario: Scenario, wrk: dict[str, Any]) -> None:
    errors = {name: int(count) for name, count in wrk["errors"].items() if count}
    requests, unexpected = int(wrk["requests"]), int(wrk["unexpected"])
    if errors or unexpected or requests == 0:
        raise Failed(
            f"{scenario.name}: {unexpected} of {requests} answers were not a 200 as long as the checked one"
            f" (the first: {wrk['first_unexpected']!r}); wrk's errors: {errors or 'none'}"
        )


def loud(message: str) -> None:
    print(f"\n{'!' * 100}\n!!! {message}\n{'!' * 100}\n", file=sys.stderr, flush=True)


@contextlib.contextmanager
def servers(
    env: dict[str, str], port: int, ceiling_port: int, data_dir: Path
) -> Iterator[tuple[httpx.Client, Path, bytes]]:
    """taskql and the ceiling, serving; a client; a scratch folder; the TaskPage response's bytes."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="http_load-")))
        # wrk asks for no compression: neither do we, so that the answers' lengths compare.
        client = stack.enter_context(
            httpx.Client(
                base_url=f"http://{HOST}:{port}", timeout=30, headers={"accept-encoding": "identity"}
            )
        )
        taskql_log = stack.enter_context((data_dir / "http_load-taskql.log").open("wb"))
        serve = [sys.executable, "-m", "taskql", "serve", "--host", HOST, "--port", str(port)]
        serve += ["--workers", "1"]
        print(f"starting taskql: {' '.join(serve[1:])} (ENVIRONMENT=production, LOG_LEVEL=WARNING)")
        stack.enter_context(running(serve, env=env, ready_url=f"http://{HOST}:{port}/readyz", log=taskql_log))
        reference = client.post(
            "/graphql",
            content=request_body({"first": FIRST}),
            headers={"authorization": f"Bearer {login(client)}", "content-type": "application/json"},
        )
        check_answer("the first TaskPage request", reference)
        (folder / "ceiling.json").write_bytes(reference.content)
        ceiling_log = stack.enter_context((data_dir / "http_load-ceiling.log").open("wb"))
        ceiling = [sys.executable, "-m", "bench.ceiling", "--body", str(folder / "ceiling.json")]
        ceiling += ["--host", HOST, "--port", str(ceiling_port)]
        print(f"starting the ceiling: {' '.join(ceiling[1:3])} on port {ceiling_port}")
        stack.enter_context(
            running(ceiling, env=env, ready_url=f"http://{HOST}:{ceiling_port}/", log=ceiling_log)
        )
        yield client, folder, reference.content
        print("stopping the servers")


def measure(args: argparse.Namespace, env: dict[str, str]) -> tuple[dict[str, Figures], list[str]]:
    warnings: list[str] = []
    figures: dict[str, Figures] = {}
    run_id = f"{secrets.token_hex(6)}-"  # no nonce repeats one of an earlier run, whose answers may be cached
    ceiling_port = args.port + 1
    with servers(env, args.port, ceiling_port, args.data_dir) as (client, folder, reference):
        for scenario in scenarios(args.port, ceiling_port, reference):
            token = login(client) if scenario.authorized else None  # fresh: tokens live 15 minutes
            response = probe(scenario, client, token, run_id)
            x_cache = response.headers.get("x-cache")
            print(f"{scenario.name}: answer checked (200, no errors, as expected); {args.duration} s of load")
            if warning := cache_note(scenario, x_cache):
                loud(warning)
                warnings.append(warning)
            wrk_args = scenario.wrk_args(folder, run_id)
            wrk = run_wrk(scenario, wrk_args, token, len(response.content), args.duration, args.connections)
            check_run(scenario, wrk)
            figures[scenario.name] = Figures.of(wrk, x_cache)
    return figures, warnings


def report(
    figures: dict[str, Figures], args: argparse.Namespace, warnings: list[str], logged: dict[str, int]
) -> None:
    ceiling = figures["ceiling"].requests_per_second
    print(f"\nTaskPage(first: {FIRST}) as an admin; {args.users} users, {args.tasks} tasks;", end=" ")
    print(f"wrk: 1 thread, {args.connections} connections, {args.duration} s per scenario")
    print(f"{'scenario':<12}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'of ceiling':>12}")
    for name, figure in figures.items():
        share = 100 * figure.requests_per_second / ceiling
        print(
            f"{name:<12}{figure.requests_per_second:>12.1f}{figure.p50_ms:>10.2f}{figure.p99_ms:>10.2f}"
            f"{share:>11.1f}%"
        )
    hit_ratio = figures["cache-hit"].requests_per_second / figures["uncached"].requests_per_second
    print(f"cache-hit / uncached: {hit_ratio:.2f}x")
    for warning in warnings:
        loud(warning)
    line = {
        "benchmark": "http_load",
        "query": f"TaskPage(first: {FIRST})",
        "users": args.users,
        "tasks": args.tasks,
        "duration_s": args.duration,
        "connections": args.connections,
        "scenarios": {
            name: {
                "requests_per_second": round(figure.requests_per_second, 1),
                "p50_ms": round(figure.p50_ms, 2),
                "p99_ms": round(figure.p99_ms, 2),
                "ceiling_percent": round(100 * figure.requests_per_second / ceiling, 2),
                "requests": figure.requests,
                "x_cache": figure.x_cache,
            }
            for name, figure in figures.items()
        },
        "cache_hit_over_uncached": round(hit_ratio, 3),
        "warnings": warnings,
        "server_log_lines": logged,
    }
    print(json.dumps(line))


def show_logs(data_dir: Path) -> dict[str, int]:
    """Summarize what the servers logged (warnings and errors only, so anything is worth a look): each
    distinct line that is not a traceback's detail, with its count. Returns the number of lines of each."""
    counts: dict[str, int] = {}
    for name in ("taskql", "ceiling"):
        path = data_dir / f"http_load-{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        counts[name] = len(lines)
        if not lines:
            print(f"{name} server: nothing logged at WARNING or above")
            continue
        print(f"{name} server logged {len(lines)} lines ({path}), among them:", file=sys.stderr)
        headlines = Counter(line for line in lines if line and not line[0].isspace())
        for line, count in headlines.most_common(10):
            print(f"  {count:>5} x {line[:150]}", file=sys.stderr)
        if any("ClientDisconnect" in line for line in headlines):
            print(f"  (ClientDisconnect: {DISCONNECT_HINT})", file=sys.stderr)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds of load per scenario.")
    parser.add_argument("--connections", type=int, default=16, help="Open connections (wrk -c).")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    parser.add_argument("--port", type=int, default=8099, help="taskql's port; the ceiling's is the next.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: on Debian or Ubuntu, `apt-get install -y wrk`")
    if args.duration < 1 or args.connections < 1:
        raise SystemExit("--duration and --connections must be at least 1")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    args.data_dir = args.data_dir.resolve()
    for port in (args.port, args.port + 1):
        refuse_busy_port(HOST, port)
    env = environment(args.data_dir, ENVIRONMENT="production", JWT_SECRET=secrets.token_urlsafe(48))
    prepare(env, args.data_dir, args.users, args.tasks)
    try:
        figures, warnings = measure(args, env)
    except Failed as failure:
        loud(str(failure))
        raise SystemExit(1) from None
    finally:
        logged = show_logs(args.data_dir)
    report(figures, args, warnings, logged)


if __name__ == "__main__":
    main()
