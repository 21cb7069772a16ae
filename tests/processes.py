"""Run taskql as a user does: ``python -m taskql ...`` in a child process."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = secrets.token_urlsafe(48)  # one random JWT secret for every server a test starts


def environment(**values: str | None) -> dict[str, str]:
    """The current environment without taskql's settings, plus ``values`` (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}}
    env["PYTHONPATH"] = str(ROOT)
    # Servers the suite starts run no job worker (it would take the jobs of tests that run their own), but
    # where a test asks for one (JOBS_EMBEDDED_WORKER=None: the default, on).
    env["JOBS_EMBEDDED_WORKER"] = "false"
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def taskql(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskql", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], cwd: Path, port: int, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskql", "serve", "--port", str(port), *options],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"taskql exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"taskql did not become ready on port {port} within {timeout} s")


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


@contextlib.contextmanager
def servers_on(
    database_url: str, redis_url: str, folder: Path, count: int = 1, **settings: str
) -> Iterator[list[str]]:
    """``count`` taskql processes on one PostgreSQL and Redis, ready; their base URLs. Stopped after, and
    none may have logged a traceback."""
    env = environment(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
        **settings,
    )
    ports = [free_port() for _ in range(count)]
    processes = [start_server(env, folder, port) for port in ports]
    try:
        for process, port in zip(processes, ports, strict=True):
            wait_ready(process, port)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        outputs = [stop(process) for process in processes]
    for output in outputs:
        assert "Traceback" not in output, output


class TaskqlProcess:
    """One ``taskql serve`` that a test may kill and start again, on the same port. Its output goes to a
    file, not a pipe: a pipe nobody reads fills up (64 kB of log) and then blocks the server's logging,
    and with it every request."""

    def __init__(
        self,
        env: dict[str, str],
        folder: Path,
        name: str = "taskql",
        *options: str,
        open_files: tuple[int, int] | None = None,
    ) -> None:
        """``options`` go to ``serve``; ``open_files``: the (soft, hard) RLIMIT_NOFILE it starts with."""
        self.env, self.folder, self.options, self.open_files = env, folder, options, open_files
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "taskql", "serve", "--port", str(self.port), *self.options],
                env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, text=True,
                preexec_fn=self._limit_open_files if self.open_files else None,
            )  # fmt: skip
        try:
            wait_ready(self.process, self.port)
        except (RuntimeError, TimeoutError) as error:
            self.kill()
            raise RuntimeError(f"{error}; its output:\n{self.output()}") from error

    def _limit_open_files(self) -> None:  # in the child, before it runs Python
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as in a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""
