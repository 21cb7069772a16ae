"""Benchmark: account mails through the job queue, delivered by one worker process to a local SMTP server.

    python -m bench.mail_jobs [--jobs 1000] [--rate 50] [--seconds 10] [--concurrency 8] [--data-dir DIR]

1. Starts the embedded PostgreSQL in DATA_DIR (default .data/bench-mail) and migrates it; starts a real SMTP
   server (aiosmtpd) in this process that records when each message arrives, by its Message-ID.
2. Starts `python -m taskql worker` (JOBS_CONCURRENCY=CONCURRENCY, SMTP_URL=that server) as its own process.
3. Burst: enqueues JOBS mail jobs in one transaction (as a write would) and waits for every message:
   the delivery rate (mails/s from the COMMIT to the last arrival) and the worker's CPU per mail.
4. Stream: enqueues RATE jobs per second for SECONDS seconds, one transaction each, and reports the queue
   latency (enqueue COMMIT to arrival at the SMTP server) p50, p99 and max, below the worker's capacity.

Each mail is rendered from the templates (text and HTML) and sent over its own SMTP connection, as in
production. Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from bench.servers import ROOT, environment
from core.settings import Settings
from resolvers.jobs import MailJob, enqueue
from taskql.cli import services
from taskql.data import migrations
from taskql.data.engine import Outage, create_engine, create_sessionmaker


class Sink:
    """Keeps the arrival time of every message, by Message-ID."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.monotonic()
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                key = line.split(b"<", 1)[1].split(b"@", 1)[0].decode()
                with self.changed:
                    self.arrivals[key] = arrived
                    self.changed.notify_all()
                break
        return "250 OK"

    def wait_for(self, keys: set[str], timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: keys <= self.arrivals.keys(), timeout):
                missing = len(keys - self.arrivals.keys())
                raise SystemExit(f"{missing} mails did not arrive within {timeout} s")


@contextlib.contextmanager
def smtp_server(port: int) -> Iterator[Sink]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def enqueue_jobs(settings: Settings, jobs: list[MailJob]) -> float:
    """Enqueue ``jobs`` in one transaction; the moment it committed."""
    engine = create_engine(settings, Outage())
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            await enqueue(db, *jobs)
        return time.monotonic()
    finally:
        await engine.dispose()


async def stream(settings: Settings, user: uuid.UUID, rate: int, seconds: int) -> dict[str, float]:
    """Enqueue ``rate`` jobs a second, each in its own transaction; the COMMIT time of each, by id."""
    engine = create_engine(settings, Outage())
    committed: dict[str, float] = {}
    try:
        sessions = create_sessionmaker(engine)
        started = time.monotonic()
        for n in range(rate * seconds):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            job = mail(user)
            async with sessions() as db, db.begin():
                await enqueue(db, job)
            committed[job.message_id] = time.monotonic()
    finally:
        await engine.dispose()
    return committed


def mail(user: uuid.UUID) -> MailJob:
    return MailJob("password_changed", to="bench@example.com", user_id=str(user))


async def a_user(dsn: str) -> uuid.UUID:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("DELETE FROM users WHERE email = 'bench@example.com'")
        user = uuid.uuid4()
        await connection.execute(
            "INSERT INTO users (id, email, name, password_hash, is_active)"
            " VALUES ($1, $2, 'Bench', 'x', true)",
            user,
            "bench@example.com",
        )
        return user
    finally:
        await connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-mail")
    parser.add_argument("--smtp-port", type=int, default=8125)
    options = parser.parse_args()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    settings = services.resolve(Settings(data_dir=options.data_dir, _env_file=None))
    try:
        migrations.upgrade(settings.database_url or "")
        run(settings, options)
    finally:
        services.stop_embedded()


def run(settings: Settings, options: argparse.Namespace) -> None:
    assert settings.database_url
    assert settings.redis_url
    dsn = settings.database_url
    user = asyncio.run(a_user(dsn))
    env = environment(
        options.data_dir,
        DATABASE_URL=dsn,
        REDIS_URL=settings.redis_url,
        JWT_SECRET=settings.secret,
        SMTP_URL=f"smtp://127.0.0.1:{options.smtp_port}",
        JOBS_CONCURRENCY=str(options.concurrency),
    )
    with smtp_server(options.smtp_port) as sink:
        worker = subprocess.Popen([sys.executable, "-m", "taskql", "worker"], env=env, cwd=ROOT)
        try:
            warm = [mail(user) for _ in range(20)]  # the worker is up and its templates loaded
            asyncio.run(enqueue_jobs(settings, warm))
            sink.wait_for({job.message_id for job in warm}, 60)

            jobs = [mail(user) for _ in range(options.jobs)]
            cpu_before = cpu_seconds(worker.pid)
            committed = asyncio.run(enqueue_jobs(settings, jobs))
            sink.wait_for({job.message_id for job in jobs}, 600)
            last = max(sink.arrivals[job.message_id] for job in jobs)
            burst_seconds = last - committed
            cpu_per_mail_ms = (cpu_seconds(worker.pid) - cpu_before) / options.jobs * 1000

            times = asyncio.run(stream(settings, user, options.rate, options.seconds))
            sink.wait_for(set(times), 120)
            latencies = [(sink.arrivals[key] - at) * 1000 for key, at in times.items()]
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    figures = {
        "jobs": options.jobs,
        "concurrency": options.concurrency,
        "burst_mails_per_second": round(options.jobs / burst_seconds, 1),
        "burst_seconds": round(burst_seconds, 2),
        "worker_cpu_ms_per_mail": round(cpu_per_mail_ms, 2),
        "stream_rate": options.rate,
        "stream_latency_ms_p50": round(statistics.median(latencies), 1),
        "stream_latency_ms_p99": round(percentile(latencies, 0.99), 1),
        "stream_latency_ms_max": round(max(latencies), 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(
        f"burst: {options.jobs} mails in {burst_seconds:.2f} s = "
        f"{figures['burst_mails_per_second']} mails/s, "
        f"worker CPU {cpu_per_mail_ms:.2f} ms/mail; stream {options.rate}/s: latency p50 "
        f"{figures['stream_latency_ms_p50']} ms, p99 {figures['stream_latency_ms_p99']} ms, max "
        f"{figures['stream_latency_ms_max']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
