"""A controllable clock for what the job queue runs later: time moves on for the queue when every waiting
job's moment (pgqueuer's ``execute_after``, compared with PostgreSQL's ``now()``) moves back by as much.
Jobs then run exactly as they would once that much time had passed: a reminder enqueued for a moment runs
when the clock reaches it, not a minute before."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg


class QueueClock:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.passed = timedelta(0)

    async def advance(self, delta: timedelta) -> None:
        """Let ``delta`` pass for the queue, then wait until every job due by then ran."""
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute(
                "UPDATE pgqueuer SET execute_after = execute_after - $1::interval WHERE status = 'queued'",
                delta,
            )
            # pgqueuer's trigger on its table tells the workers (as an enqueue does).
        finally:
            await connection.close()
        self.passed += delta
        await self.settled()

    async def settled(self, timeout: float = 30) -> None:
        """Until no job is due or running: what the clock's time calls for is done."""
        async with asyncio.timeout(timeout):
            while await self.busy():  # noqa: ASYNC110 (a condition in PostgreSQL, polled)
                await asyncio.sleep(0.05)

    async def busy(self) -> int:
        connection = await asyncpg.connect(self.dsn)
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM pgqueuer WHERE status = 'picked'"
                    " OR (status = 'queued' AND execute_after <= now())"
                )
            )
        finally:
            await connection.close()

    async def moments(self, entrypoint: str) -> list[datetime]:
        """When each waiting job of ``entrypoint`` runs, on this clock."""
        connection = await asyncpg.connect(self.dsn)
        try:
            rows = await connection.fetch(
                "SELECT execute_after FROM pgqueuer WHERE status = 'queued' AND entrypoint = $1 ORDER BY 1",
                entrypoint,
            )
        finally:
            await connection.close()
        return [row[0] + self.passed for row in rows]
