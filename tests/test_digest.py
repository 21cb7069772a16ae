"""The daily digest at 08:00 in each user's own time zone, with the clock set by the test: who is told when,
what it lists, once a day, and nothing when there is nothing to tell."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from core.settings import Settings
from taskql.data.engine import Outage, create_engine, create_sessionmaker
from taskql.jobs.digest import Digests
from tests.services import Services
from tests.test_jobs import a_user, jobs_left

# Monday 6 January 2031 (winter: Paris is UTC+1, New York UTC-5, Kathmandu UTC+5:45).
PARIS_EIGHT = datetime(2031, 1, 6, 7, 5, tzinfo=UTC)
NEW_YORK_EIGHT = datetime(2031, 1, 6, 13, 5, tzinfo=UTC)
KATHMANDU_EIGHT = datetime(2031, 1, 6, 2, 20, tzinfo=UTC)


@pytest.fixture
async def digests(settings: Settings) -> AsyncIterator[Digests]:
    engine = create_engine(settings, Outage())
    try:
        yield Digests(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def a_digest_reader(
    dsn: str, email: str, timezone: str, channels: tuple[str, ...] = ("IN_APP", "EMAIL")
) -> asyncpg.Record:
    user = await a_user(dsn, email)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO notification_settings (user_id, daily_digest, timezone, channels)"
            " VALUES ($1, true, $2, $3)",
            user, timezone, list(channels),
        )  # fmt: skip
        return user
    finally:
        await connection.close()


async def tasks_of(dsn: str, owner: object, *due: tuple[str, datetime, str]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "INSERT INTO tasks (id, owner_id, title, status, due_at)"
            " VALUES (gen_random_uuid(), $1, $2, $4, $3)",
            [(owner, title, at, status) for title, at, status in due],
        )
    finally:
        await connection.close()


async def inbox(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(
            await connection.fetch(
                "SELECT u.email, n.kind::text, n.title, n.body"
                " FROM notifications n JOIN users u ON u.id = n.user_id ORDER BY u.email"
            )
        )
    finally:
        await connection.close()


async def test_each_user_is_digested_at_eight_in_their_own_time_zone(
    database: Services, digests: Digests
) -> None:
    paris = await a_digest_reader(database.dsn, "paris@example.com", "Europe/Paris")
    new_york = await a_digest_reader(database.dsn, "ny@example.com", "America/New_York")
    for owner, now in ((paris, PARIS_EIGHT), (new_york, NEW_YORK_EIGHT)):
        await tasks_of(
            database.dsn, owner,
            ("late", now - timedelta(days=2), "TODO"),
            ("today", now + timedelta(hours=3), "IN_PROGRESS"),
            ("finished", now - timedelta(days=1), "DONE"),
            ("next week", now + timedelta(days=7), "TODO"),
        )  # fmt: skip

    assert await digests.run(PARIS_EIGHT) == 1  # 08:05 in Paris, 02:05 in New York
    (entry,) = await inbox(database.dsn)
    assert entry["email"] == "paris@example.com"
    assert entry["kind"] == "TASK_OVERDUE_DIGEST"
    assert entry["title"] == "Your tasks: 1 overdue and 1 due today"
    assert entry["body"] == "Overdue: late\nDue today: today"
    assert await jobs_left(database.dsn) == {"queued": 1}  # its mail

    assert await digests.run(PARIS_EIGHT + timedelta(minutes=5)) == 0  # the same morning again: once
    assert await digests.run(NEW_YORK_EIGHT) == 1  # 08:05 in New York, 14:05 in Paris
    assert [row["email"] for row in await inbox(database.dsn)] == ["ny@example.com", "paris@example.com"]
    assert await digests.run(NEW_YORK_EIGHT + timedelta(minutes=15)) == 0  # 08:20: past the quarter


async def test_a_zone_offset_by_three_quarters_is_digested_at_its_own_eight(
    database: Services, digests: Digests
) -> None:
    kathmandu = await a_digest_reader(database.dsn, "ktm@example.com", "Asia/Kathmandu", ("IN_APP",))
    await tasks_of(database.dsn, kathmandu, ("today", KATHMANDU_EIGHT + timedelta(hours=1), "TODO"))
    assert await digests.run(KATHMANDU_EIGHT - timedelta(minutes=15)) == 0  # 07:50 there
    assert await digests.run(KATHMANDU_EIGHT) == 1  # 08:05 there
    assert await jobs_left(database.dsn) == {}  # in-app only: no mail


async def test_nothing_to_tell_is_not_told(database: Services, digests: Digests) -> None:
    idle = await a_digest_reader(database.dsn, "idle@example.com", "Europe/Paris")
    await tasks_of(database.dsn, idle, ("done", PARIS_EIGHT - timedelta(days=1), "DONE"),
                   ("later", PARIS_EIGHT + timedelta(days=2), "TODO"))  # fmt: skip
    assert await digests.run(PARIS_EIGHT) == 0
    assert await inbox(database.dsn) == []
    assert await jobs_left(database.dsn) == {}


async def test_a_task_of_a_project_its_owner_left_is_not_in_their_digest(
    database: Services, digests: Digests
) -> None:
    leaver = await a_digest_reader(database.dsn, "leaver@example.com", "Europe/Paris", ("IN_APP",))
    connection = await asyncpg.connect(database.dsn)
    try:
        stayed = await connection.fetchval(
            "INSERT INTO projects (id, name) VALUES (gen_random_uuid(), 'stayed') RETURNING id"
        )
        left = await connection.fetchval(
            "INSERT INTO projects (id, name) VALUES (gen_random_uuid(), 'left') RETURNING id"
        )
        for project, title in ((stayed, "still mine"), (left, "not mine to see")):
            await connection.execute(
                "INSERT INTO tasks (id, owner_id, title, due_at, project_id)"
                " VALUES (gen_random_uuid(), $1, $2, $3, $4)",
                leaver, title, PARIS_EIGHT - timedelta(days=1), project,
            )  # fmt: skip
        # A member of the first project only: they left the second one, whose task they still own.
        await connection.execute(
            "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'OWNER')", stayed, leaver
        )
    finally:
        await connection.close()
    assert await digests.run(PARIS_EIGHT) == 1
    (entry,) = await inbox(database.dsn)
    assert entry["title"] == "Your tasks: 1 overdue"
    assert entry["body"] == "Overdue: still mine"
