"""Benchmark: 10,000 reminders falling due in the same minute, run by one worker process into the inbox.

    python -m bench.reminders [--reminders 10000] [--concurrency 8] [--lead 20] [--data-dir DIR]

1. Starts the embedded PostgreSQL in DATA_DIR (default .data/bench-reminders) and migrates it.
2. Makes one user (in-app reminders only: no mail), REMINDERS tasks due at `moment + 1 minute` with a
   1-minute reminder, and enqueues their reminder jobs (as createTask does, in batches of 500 per
   transaction), all due at `moment`, LEAD seconds from now.
3. Starts `python -m taskql worker` (JOBS_CONCURRENCY) before the moment and waits until every reminder is in
   the inbox: how long after the moment the last one arrived, and the p50/p99 delay of each, from the
   notifications' own creation times (PostgreSQL's clock, as the moment).

Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.mail_jobs import percentile
from bench.servers import ROOT, environment
from core.settings import Settings
from resolvers.jobs import ReminderJob, enqueue
from taskql.cli import services
from taskql.data import migrations
from taskql.data.engine import Outage, create_engine, create_sessionmaker

BATCH = 500


async def prepare(settings: Settings, count: int, lead: float) -> datetime:
    """The user, the tasks and their reminder jobs; the moment they fall due."""
    assert settings.database_url
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(
            "DELETE FROM users WHERE email = 'reminded@example.com'; DELETE FROM pgqueuer"
        )
        user = uuid.uuid4()
        await connection.execute(
            "INSERT INTO users (id, email, name, password_hash, is_active)"
            " VALUES ($1, 'reminded@example.com', 'Reminded', 'x', true)",
            user,
        )
        await connection.execute(
            "INSERT INTO notification_settings (user_id, remind_before_minutes, channels)"
            " VALUES ($1, 1, '{IN_APP}')",
            user,
        )
        now: datetime = await connection.fetchval("SELECT now()")
        moment = now + timedelta(seconds=lead)
        due_at = moment + timedelta(minutes=1)
        ids = [uuid.uuid4() for _ in range(count)]
        await connection.copy_records_to_table(
            "tasks",
            records=[(task_id, user, f"task {n}", due_at) for n, task_id in enumerate(ids)],
            columns=["id", "owner_id", "title", "due_at"],
        )
        stored = await connection.fetchval("SELECT due_at FROM tasks WHERE id = $1", ids[0])
    finally:
        await connection.close()
    engine = create_engine(settings, Outage())
    try:
        sessions = create_sessionmaker(engine)
        for start in range(0, count, BATCH):
            jobs = [
                ReminderJob(str(task_id), stored.isoformat(), 1) for task_id in ids[start : start + BATCH]
            ]
            async with sessions() as db, db.begin():
                await enqueue(db, *jobs, after=moment - datetime.now(UTC))
    finally:
        await engine.dispose()
    return moment


async def delays(dsn: str, count: int, moment: datetime, within: float) -> list[float]:
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await connection.fetchval("SELECT count(*) FROM notifications") >= count:
                rows = await connection.fetch("SELECT created_at FROM notifications")
                return [(row["created_at"] - moment).total_seconds() for row in rows]
            await asyncio.sleep(0.2)
        raise SystemExit(f"not every reminder reached the inbox within {within} s of the moment")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lead", type=float, default=20.0, help="seconds from the enqueue to the moment")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-reminders")
    options = parser.parse_args()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    settings = services.resolve(Settings(data_dir=options.data_dir, _env_file=None))
    try:
        assert settings.database_url
        assert settings.redis_url
        migrations.upgrade(settings.database_url)
        moment = asyncio.run(prepare(settings, options.reminders, options.lead))
        env = environment(
            options.data_dir,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            JWT_SECRET=settings.secret,
            JOBS_CONCURRENCY=str(options.concurrency),
        )
        worker = subprocess.Popen([sys.executable, "-m", "taskql", "worker"], env=env, cwd=ROOT)
        try:
            found = asyncio.run(delays(settings.database_url, options.reminders, moment, options.lead + 300))
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    finally:
        services.stop_embedded()
    figures = {
        "reminders": options.reminders,
        "concurrency": options.concurrency,
        "last_seconds_after_the_moment": round(max(found), 2),
        "p50_seconds": round(statistics.median(found), 2),
        "p99_seconds": round(percentile(found, 0.99), 2),
        "first_seconds": round(min(found), 3),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    last = figures["last_seconds_after_the_moment"]
    print(
        f"{options.reminders} reminders due at one moment: all in the inbox {last} s after it (p50 "
        f"{figures['p50_seconds']} s, p99 {figures['p99_seconds']} s; first {figures['first_seconds']} s)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
