"""The job worker under faults: jobs are enqueued with their write or not at all, a worker killed in the
middle of a job leaves it to another, two workers never run one job, failures are retried and then held for
an admin, SIGTERM drains; and the periodic cleanup removes what expired, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core.settings import Settings
from resolvers.jobs import Job, MailJob, enqueue
from taskql.data.engine import Outage, create_engine, create_sessionmaker
from taskql.jobs.cleanup import clean_up
from taskql.jobs.worker import running
from taskql.ops import metrics
from tests.conftest import make_settings, served
from tests.factories import promote_to_admin, register
from tests.graphql_client import GraphQLClient
from tests.mailbox import parsed, smtp_server
from tests.processes import ROOT, TEST_SECRET, environment
from tests.services import Services


@dataclass
class Gate:
    """An SMTP server whose answers the test controls: it can hold a message (the worker is then in the
    middle of its job) or refuse it for a while (451), and records what it accepted."""

    loop: asyncio.AbstractEventLoop
    held: threading.Event = field(default_factory=threading.Event)  # set: messages wait at DATA
    released: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)  # set: a message is waiting at DATA
    refusing: bool = False
    delay: float = 0.0  # how long each message takes to be accepted
    accepted: list[EmailMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.held.is_set():
            self.opened.set()
            await asyncio.to_thread(self.released.wait)
        if self.refusing:
            return "451 4.3.0 try again later"
        await asyncio.sleep(self.delay)
        self.accepted.append(parsed(envelope.content))
        self.loop.call_soon_threadsafe(self.arrived.set)
        return "250 OK"

    async def count(self, expected: int, timeout: float = 60) -> list[EmailMessage]:
        async with asyncio.timeout(timeout):
            while len(self.accepted) < expected:
                self.arrived.clear()
                if len(self.accepted) < expected:
                    await self.arrived.wait()
        return self.accepted


@contextlib.contextmanager
def gate_server(loop: asyncio.AbstractEventLoop) -> Iterator[tuple[Gate, str]]:
    gate = Gate(loop)
    try:
        with smtp_server(gate) as url:
            yield gate, url
    finally:
        gate.released.set()  # a message held at DATA must not keep the server from stopping


@pytest.fixture
async def gate() -> AsyncIterator[tuple[Gate, str]]:
    with gate_server(asyncio.get_running_loop()) as found:
        yield found


async def a_user(dsn: str, email: str = "jo@example.com") -> uuid.UUID:
    connection = await asyncpg.connect(dsn)
    try:
        user_id = uuid.uuid4()
        await connection.execute(
            "INSERT INTO users (id, email, name, password_hash, is_active) VALUES ($1, $2, 'Jo', 'x', true)",
            user_id,
            email,
        )
        return user_id
    finally:
        await connection.close()


async def enqueued(settings: Settings, *jobs: Job, commit: bool = True) -> None:
    engine = create_engine(settings, Outage())
    try:
        async with create_sessionmaker(engine)() as db:
            transaction = await db.begin()
            await enqueue(db, *jobs)
            await (transaction.commit() if commit else transaction.rollback())
    finally:
        await engine.dispose()


async def jobs_left(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT status::text, count(*) FROM pgqueuer GROUP BY 1")
        return {row[0]: row[1] for row in rows}
    finally:
        await connection.close()


async def until_no_jobs(dsn: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while await jobs_left(dsn):  # noqa: ASYNC110 (a condition in PostgreSQL, polled)
            await asyncio.sleep(0.05)


class WorkerProcess:
    """``python -m taskql worker`` as an operator runs it; its log in a file."""

    def __init__(self, services: Services, smtp_url: str, folder: Path, name: str, **settings: str) -> None:
        self.log = folder / f"{name}.log"
        env = environment(
            DATABASE_URL=services.database_url,
            REDIS_URL=services.redis_url,
            JWT_SECRET=TEST_SECRET,
            SMTP_URL=smtp_url,
            LOG_LEVEL="INFO",
            **settings,
        )
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "taskql", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log
            )

    def output(self) -> str:
        return self.log.read_text()

    async def started(self, timeout: float = 60) -> None:
        """Until the worker says it runs (its log: a condition polled, the worker is another process)."""
        async with asyncio.timeout(timeout):
            while "job worker started" not in self.output():
                assert self.process.poll() is None, self.output()
                await asyncio.sleep(0.05)

    def done_jobs(self) -> list[int]:
        return [int(number) for number in re.findall(r"job (\d+) \(mail:[a-z_]+\) done", self.output())]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


def mail_for(user_id: uuid.UUID, email: str = "jo@example.com") -> MailJob:
    return MailJob("password_changed", to=email, user_id=str(user_id))


async def test_a_job_is_enqueued_with_its_write_and_not_at_all_when_the_write_rolls_back(
    database: Services, settings: Settings
) -> None:
    user = await a_user(database.dsn)
    await enqueued(settings, mail_for(user), commit=False)
    assert await jobs_left(database.dsn) == {}
    await enqueued(settings, mail_for(user), mail_for(user))
    assert await jobs_left(database.dsn) == {"queued": 2}


async def test_a_job_whose_worker_is_killed_midway_runs_again_on_another_and_completes(
    database: Services, settings: Settings, gate: tuple[Gate, str], tmp_path: Path
) -> None:
    server, url = gate
    user = await a_user(database.dsn)
    job = mail_for(user)
    await enqueued(settings, job)
    server.held.set()
    first = WorkerProcess(database, url, tmp_path, "first", JOBS_HEARTBEAT_SECONDS="2")
    try:
        assert await asyncio.to_thread(server.opened.wait, 60), "the first worker never reached the server"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    finally:
        first.stop()
    server.held.clear()
    server.released.set()  # the killed worker's connection is gone: its message was never accepted
    assert server.accepted == []
    assert await jobs_left(database.dsn) == {"picked": 1}

    second = WorkerProcess(database, url, tmp_path, "second", JOBS_HEARTBEAT_SECONDS="2")
    try:
        (mail,) = await server.count(1)
        await until_no_jobs(database.dsn)
    finally:
        assert second.stop() == 0
    assert mail["Message-ID"].startswith(f"<{job.message_id}@")
    assert mail["To"] == "jo@example.com"
    assert "Traceback" not in second.output()


async def test_two_workers_share_the_jobs_and_never_run_one_twice(
    database: Services, settings: Settings, gate: tuple[Gate, str], tmp_path: Path
) -> None:
    server, url = gate
    user = await a_user(database.dsn)
    jobs = [mail_for(user) for _ in range(60)]
    server.delay = 0.05  # one worker alone holds 4 at a time: the other is sure to take some
    workers = [WorkerProcess(database, url, tmp_path, f"worker{n}", JOBS_CONCURRENCY="4") for n in (1, 2)]
    try:
        for worker in workers:
            await worker.started()
        await enqueued(settings, *jobs)
        delivered = await server.count(len(jobs))
        await until_no_jobs(database.dsn)
    finally:
        for worker in workers:
            assert worker.stop() == 0
    message_ids = sorted(mail["Message-ID"] for mail in delivered)
    assert len(message_ids) == len(set(message_ids)) == len(jobs)  # each once
    first, second = (set(worker.done_jobs()) for worker in workers)
    assert first, "both workers took jobs"
    assert second, "both workers took jobs"
    assert not first & second  # no job ran on both
    assert len(first | second) == len(jobs)


async def test_a_failing_job_is_retried_then_held_and_an_admin_sees_and_retries_it(
    database: Services, gate: tuple[Gate, str]
) -> None:
    server, url = gate
    server.refusing = True
    settings = make_settings(
        database,
        smtp_url=url,
        jobs_max_attempts=3,
        jobs_backoff_initial_seconds=0.05,
        jobs_backoff_max_seconds=0.2,
    )
    user = await a_user(database.dsn)
    async with running(settings) as worker:
        await enqueued(settings, mail_for(user))
        async with asyncio.timeout(60):
            while await jobs_left(database.dsn) != {"failed": 1}:  # noqa: ASYNC110 (polled in PostgreSQL)
                await asyncio.sleep(0.05)
        assert server.accepted == []
        await worker.sample_once()
        scraped = metrics.render().decode()
        assert 'taskql_jobs_total{kind="mail:password_changed",outcome="retry"} 2.0' in scraped
        assert 'taskql_jobs_total{kind="mail:password_changed",outcome="failed"} 1.0' in scraped
        assert 'taskql_job_queue_depth{status="failed"} 1.0' in scraped
        assert 'taskql_job_duration_seconds_count{kind="mail:password_changed"} 3.0' in scraped

        import httpx
        from asgi_lifespan import LifespanManager

        from taskql.app import create_app

        application = create_app(make_settings(database))
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=served(application))
            async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
                gql = GraphQLClient(http)
                admin = await register(gql, email="ops@example.com")
                await promote_to_admin(database.dsn, admin)
                (held,) = (await gql.run("FailedJobs", token=admin.token)).ok()["failedJobs"]
                assert held["kind"] == "mail:password_changed"
                assert held["attempts"] >= 2
                assert "451" in held["error"]
                server.refusing = False
                assert (await gql.run("RetryJob", {"id": held["id"]}, token=admin.token)).ok() == {
                    "retryJob": True
                }
                (mail,) = [m for m in await server.count(1) if m["To"] == "jo@example.com"]
                assert mail["X-Taskql-Mail"] == "password_changed"
                again = await gql.run("RetryJob", {"id": held["id"]}, token=admin.token)
                assert again.codes == ["NOT_FOUND"]


async def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    database: Services, settings: Settings, gate: tuple[Gate, str], tmp_path: Path
) -> None:
    server, url = gate
    user = await a_user(database.dsn)
    await enqueued(settings, mail_for(user))
    server.held.set()
    worker = WorkerProcess(database, url, tmp_path, "draining", JOBS_DRAIN_SECONDS="30")
    try:
        assert await asyncio.to_thread(server.opened.wait, 60)
        worker.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the signal has been handled: the worker is draining, not gone
        assert worker.process.poll() is None
        server.held.clear()
        server.released.set()
        assert await asyncio.to_thread(worker.process.wait, 30) == 0
    finally:
        worker.stop()
    assert len(server.accepted) == 1
    assert await jobs_left(database.dsn) == {}
    assert "job worker draining" in worker.output()


async def test_cleanup_removes_what_expired_and_keeps_what_is_still_of_use(database: Services) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        user = await a_user(database.dsn)
        live_session, ended_session = uuid.uuid4(), uuid.uuid4()
        await connection.execute(
            "INSERT INTO auth_sessions (id, user_id, created_at, revoked_at) VALUES"
            " ($1, $3, now() - interval '3 days', NULL),"
            " ($2, $3, now() - interval '3 days', now() - interval '2 days')",
            live_session, ended_session, user,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at) VALUES"
            " ($1, $3, 'old', now() - interval '2 days'), ($2, $3, 'new', now() + interval '1 day')",
            uuid.uuid4(), uuid.uuid4(), live_session,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO account_tokens (id, user_id, purpose, token_hash, email, expires_at, used_at) VALUES"
            " ($1, $3, 'reset_password', 'a', 'jo@example.com', now() - interval '2 days', NULL),"
            " ($2, $3, 'verify_email', 'b', 'jo@example.com', now() + interval '1 day', NULL)",
            uuid.uuid4(), uuid.uuid4(), user,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO outbox (effects, published_at) VALUES ('{}', now() - interval '30 days'),"
            " ('{}', now()), ('{}', NULL)"
        )
        pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=2)
        try:
            removed = await clean_up(pool, outbox_retention_seconds=7 * 86_400)
        finally:
            await pool.close()
        assert removed["refresh_tokens"] == 1
        assert removed["auth_sessions"] == 1
        assert removed["account_tokens"] == 1
        assert removed["outbox"] == 1
        assert await connection.fetchval("SELECT array_agg(id) FROM auth_sessions") == [live_session]
        assert await connection.fetchval("SELECT array_agg(token_hash) FROM refresh_tokens") == ["new"]
        assert await connection.fetchval("SELECT array_agg(token_hash) FROM account_tokens") == ["b"]
        assert await connection.fetchval("SELECT count(*) FROM outbox") == 2
    finally:
        await connection.close()
