"""A server's life as a deployment sees it, with real ``python -m taskql`` processes: workers, graceful
shutdown on SIGTERM (in-flight requests finish, sockets close with 1001, within SHUTDOWN_TIMEOUT_SECONDS),
and migrations as a step of their own that any number of replicas may run at once.

The in-flight request is a real slow one: a POST whose body the client is still sending when SIGTERM
arrives (as from a slow mobile client); nothing in the server is slowed down for the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from taskql.data.migrations import head_revision, known_revisions
from taskql.outbox.relay import LIVE_CHANNEL
from tests.conftest import client_for, make_settings
from tests.databases import dsn_of, scratch_database
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import ROOT, TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services
from tests.ws_client import Subscriber


def migration_lock_key() -> int:
    """The key models/migrations/env.py locks (read from there, so the test follows it)."""
    match = re.search(
        r"MIGRATION_LOCK_KEY = (0x[0-9A-Fa-f]+)", (ROOT / "models/migrations/env.py").read_text()
    )
    assert match, "models/migrations/env.py defines MIGRATION_LOCK_KEY"
    return int(match.group(1), 16)


LOCK_KEY = migration_lock_key()


@dataclass
class SlowRequest:
    """``POST /graphql`` whose body arrives in two parts: in flight from its headers to its last byte."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    rest: bytes

    @classmethod
    async def start(cls, port: int, payload: dict[str, Any], token: str) -> SlowRequest:
        body = json.dumps(payload).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:16])
        await writer.drain()
        await asyncio.sleep(1)  # the client is slow (the server has the headers: the request has begun)
        return cls(reader, writer, body[16:])

    async def finish(self) -> tuple[int, bytes]:
        """Send the rest of the body; the status and body of the answer (read until the server closes)."""
        self.writer.write(self.rest)
        await self.writer.drain()
        return await self.answer()

    async def answer(self) -> tuple[int, bytes]:
        raw = await asyncio.wait_for(self.reader.read(), 30)
        self.writer.close()
        if not raw:
            return 0, b""  # closed without an answer
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), body


def create_task_payload(title: str) -> dict[str, Any]:
    return {"query": operation("CreateTask"), "variables": {"input": {"title": title}}}


async def account_on(port: int) -> Account:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return await register(GraphQLClient(http))


async def refuses_connections(port: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.1)
    return False


async def until(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    """Whether ``check`` comes true within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def exit_code(process: subprocess.Popen[str], within: float = 40) -> int | None:
    async def exited() -> bool:
        return process.poll() is not None

    await until(exited, within)
    return process.poll()


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under ``parent`` (spawned: ``multiprocessing.spawn`` in their command)."""
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(entry) == parent and b"spawn_main" in _read(entry / "cmdline"):
            workers.append(int(entry.name))
    return workers


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parent(entry: Path) -> int:
    stat = _read(entry / "stat").decode(errors="replace")
    return int(stat.rsplit(")", 1)[1].split()[1]) if ")" in stat else -1


def start_migrate(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskql", "migrate"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def task_titles(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        return [row["title"] for row in await connection.fetch("SELECT title FROM tasks")]
    finally:
        await connection.close()


@pytest.fixture
def env(database: Services) -> dict[str, str]:
    return environment(
        DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET
    )


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], folder: Path, *options: str) -> AsyncIterator[tuple[int, Any]]:
    port = free_port()
    process = start_server(env, folder, port, *options)
    try:
        await asyncio.to_thread(wait_ready, process, port)
        yield port, process
    finally:
        stop(process)


async def test_on_sigterm_a_request_still_arriving_finishes_while_sockets_close_and_new_ones_are_refused(
    env: dict[str, str], database: Services, tmp_path: Path
) -> None:
    async with serving(env, tmp_path) as (port, process):
        account = await account_on(port)
        subscriber = await Subscriber.open(
            f"ws://127.0.0.1:{port}/graphql", {"authorization": f"Bearer {account.token}"}
        )
        await subscriber.subscribe()
        request = await SlowRequest.start(port, create_task_payload("written during shutdown"), account.token)
        process.send_signal(signal.SIGTERM)

        assert (await subscriber.closed()).code == 1001
        assert await refuses_connections(port)
        status, body = await request.finish()
        assert status == 200, body
        assert json.loads(body)["data"]["createTask"]["title"] == "written during shutdown"
        assert await exit_code(process) == 0
    assert await task_titles(database.dsn) == ["written during shutdown"]


async def test_workers_each_run_their_own_lifespan_and_drain_on_sigterm(
    env: dict[str, str], database: Services, tmp_path: Path
) -> None:
    redis = Redis.from_url(database.redis_url)

    async def listeners() -> int:
        return int(dict(await redis.pubsub_numsub(LIVE_CHANNEL))[LIVE_CHANNEL.encode()])

    try:
        before = await listeners()
        async with serving(env, tmp_path, "--workers", "3") as (port, process):
            assert len(worker_pids(process.pid)) == 3

            async def all_listening() -> bool:
                return await listeners() >= before + 3

            await until(all_listening, 30)
            assert await listeners() == before + 3  # each worker's lifespan started its own event listener

            account = await account_on(port)
            request = await SlowRequest.start(port, create_task_payload("drained by a worker"), account.token)
            process.send_signal(signal.SIGTERM)
            status, body = await request.finish()
            assert status == 200, body
            assert await exit_code(process) == 0
        assert await listeners() == before  # and each one's shutdown stopped it
    finally:
        await redis.aclose()
    assert await task_titles(database.dsn) == ["drained by a worker"]


async def test_a_request_that_outlasts_shutdown_timeout_seconds_is_cut_and_the_server_exits(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with serving({**env, "SHUTDOWN_TIMEOUT_SECONDS": "1"}, tmp_path) as (port, process):
        account = await account_on(port)
        request = await SlowRequest.start(port, create_task_payload("never finished"), account.token)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert await exit_code(process, within=15) == 0
        waited = time.monotonic() - started
        status, _ = await request.answer()
    assert 1 <= waited < 10, waited  # the drain time, not the default 20 s
    assert status != 200


async def test_production_serve_does_not_migrate_and_is_unready_until_the_migrate_step_runs(
    database: Services, tmp_path: Path
) -> None:
    async with scratch_database(database) as url:
        env = environment(
            DATABASE_URL=url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET, ENVIRONMENT="production"
        )
        port = free_port()
        process = start_server(env, tmp_path, port)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

                async def alive() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/healthz")).status_code == 200
                    return False

                assert await until(alive, 60)
                unready = await http.get("/readyz")
                assert unready.status_code == 503
                assert unready.json()["checks"]["postgres"]["schema"] == "behind"

                migrate = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "taskql", "migrate"],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert migrate.returncode == 0, migrate.stderr
                ready = await http.get("/readyz")
                assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        finally:
            output = stop(process)
    assert f"needs {head_revision()}: run `python -m taskql migrate`" in output, output


async def test_two_migrate_runs_at_once_on_a_fresh_database_both_succeed_one_after_the_other(
    database: Services, tmp_path: Path
) -> None:
    async with scratch_database(database) as url:
        env = environment(DATABASE_URL=url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET)
        holder = await asyncpg.connect(dsn_of(url))
        try:
            # Holding the migration lock makes both runs reach it before either may go on: they then race
            # for it the moment it is released, as two replicas starting together would.
            await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            runs = [start_migrate(env, tmp_path) for _ in range(2)]

            async def both_waiting() -> bool:
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                return bool(waiting == 2)

            assert await until(both_waiting, 60), "both migrate runs wait for the lock"
            await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
            outputs = [await asyncio.to_thread(run.communicate, timeout=120) for run in runs]
            revision = await holder.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await holder.close()
    assert [run.returncode for run in runs] == [0, 0], outputs
    texts = sorted(out for out, _ in outputs)
    assert sum(f"applied {len(known_revisions())} migrations" in text for text in texts) == 1, texts
    assert sum("nothing to apply" in text for text in texts) == 1, texts
    assert revision == head_revision()


async def test_readiness_accepts_a_newer_schema_and_refuses_an_older_one(database: Services) -> None:
    async with scratch_database(database) as url:
        settings = make_settings(database, database_url=url)
        async with client_for(settings) as http:
            behind = await http.get("/readyz")
            assert (behind.status_code, behind.json()["checks"]["postgres"]["schema"]) == (503, "behind")
            connection = await asyncpg.connect(dsn_of(url))
            try:  # a release after this one has migrated (its revision unknown here): still serving
                await connection.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
                await connection.execute("INSERT INTO alembic_version VALUES ('a_newer_revision')")
            finally:
                await connection.close()
            ahead = await http.get("/readyz")
            assert (ahead.status_code, ahead.json()["checks"]["postgres"]["schema"]) == (200, "ahead")
