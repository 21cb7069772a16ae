"""What the benchmark commands share: the data set (seeded once per data folder), the environment of the
processes they start, starting and stopping a server process, and logging in as the benchmark's admin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("bench-admin@example.com", "bench admin passphrase")
LOGIN = "mutation($i: LoginInput!){ login(input: $i) { accessToken } }"


# One client drives thousands of requests per second from one address: budgets it cannot spend, so that the
# figures include what rate limiting costs (every charge still goes to Redis) but never its refusals.
BUDGETS = dict.fromkeys(
    (
        "RATE_LIMIT_POINTS",
        "RATE_LIMIT_ANONYMOUS_POINTS",
        "LOGIN_ATTEMPTS_PER_ACCOUNT",
        "LOGIN_ATTEMPTS_PER_IP",
        "REFRESH_ATTEMPTS_PER_ACCOUNT",
        "REFRESH_ATTEMPTS_PER_IP",
    ),
    "1000000000",
)


def environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without any taskql setting (so no DATABASE_URL or REDIS_URL: the embedded
    servers in ``data_dir``), with the access log off and ``overrides`` on top."""
    env = {key: value for key, value in os.environ.items() if key.lower() not in Settings.model_fields}
    env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT), **BUDGETS)
    # Thousands of subscribers from one address (or through one balancer): no bound per client address.
    env.update(MAX_CONNECTIONS_PER_CLIENT="0")
    env.update(overrides)
    # pgserver asks platformdirs for a runtime folder; without XDG_RUNTIME_DIR it warns and uses /tmp. That
    # harmless line would be the only one in a healthy server's log.
    warnings = [env.get("PYTHONWARNINGS", ""), "ignore:XDG_RUNTIME_DIR is not set"]
    env["PYTHONWARNINGS"] = ",".join(filter(None, warnings))
    return env


def taskql(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m taskql ARGS`` of the checkout at ``cwd`` (with ``env``'s PYTHONPATH pointing there)."""
    return subprocess.run(
        [sys.executable, "-m", "taskql", *args], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )


def prepare(env: dict[str, str], data_dir: Path, users: int, tasks: int, cwd: Path = ROOT) -> None:
    """Seed ``users`` and ``tasks`` and create the admin, unless this data folder already has them (with the
    code of the checkout at ``cwd``)."""
    marker = data_dir / f"seeded-{users}-{tasks}"
    if marker.exists():
        print(f"data set already seeded ({marker.name})")
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    taskql("seed", "--users", str(users), "--tasks", str(tasks), env=env, cwd=cwd)
    print(f"seed --users {users} --tasks {tasks}: {time.perf_counter() - started:.1f} s (including startup)")
    taskql("create-admin", "--email", ADMIN[0], "--password", ADMIN[1], env=env, cwd=cwd)
    marker.touch()


def refuse_busy_port(host: str, port: int) -> None:
    """Exit if something already listens on ``port``: the figures would be someone else's server's."""
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise SystemExit(f"port {port} on {host} is already in use: choose another one with --port")


T = TypeVar("T")


def measure_served(
    host: str,
    port: int,
    *,
    env: dict[str, str],
    log_path: Path,
    measure: Callable[[str, int], Coroutine[Any, Any, T]],
) -> T:
    """Serve taskql as production runs it (``python -m taskql serve``, one worker) and run ``measure(base
    URL, server pid)`` on uvloop when it is installed (as the server runs), then stop the server."""
    serve = [sys.executable, "-m", "taskql", "serve", "--host", host, "--port", str(port), "--workers", "1"]
    base = f"http://{host}:{port}"
    print(f"starting taskql: {' '.join(serve[1:])} (ENVIRONMENT=production, LOG_LEVEL=WARNING)")
    with log_path.open("wb") as log, running(serve, env=env, ready_url=f"{base}/readyz", log=log) as server:
        runner: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
        result = runner(measure(base, server.pid))
        print("stopping the server")
    return result


@contextlib.contextmanager
def running(
    command: Sequence[str],
    *,
    env: dict[str, str],
    ready_url: str,
    log: IO[bytes] | None = None,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (run in ``cwd``), from the moment ``ready_url`` answers 200 until it has been
    terminated and has exited (also when the block fails)."""
    server = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_ready(server, ready_url)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_ready(server: subprocess.Popen[bytes], url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if server.poll() is not None:
            raise SystemExit(f"{server.args!r} exited with status {server.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.2)


def login(client: httpx.Client) -> str:
    """An access token of the benchmark's admin."""
    response = client.post(
        "/graphql", json={"query": LOGIN, "variables": {"i": {"email": ADMIN[0], "password": ADMIN[1]}}}
    )
    payload = response.json()
    if response.status_code != 200 or "errors" in payload:
        raise SystemExit(f"login as {ADMIN[0]} failed ({response.status_code}): {payload}")
    return str(payload["data"]["login"]["accessToken"])
