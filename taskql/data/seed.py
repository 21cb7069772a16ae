"""Bulk data for development and benchmarks: users and tasks through PostgreSQL's COPY."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from auth.passwords import HASHER
from models import Role, TaskPriority, TaskStatus

WORDS = [
    "write",
    "review",
    "deploy",
    "fix",
    "plan",
    "test",
    "design",
    "refactor",
    "document",
    "call",
    "email",
    "order",
    "buy",
    "clean",
    "prepare",
    "release",
    "migrate",
    "benchmark",
    "report",
    "invoice",
    "budget",
    "meeting",
    "garden",
    "kitchen",
    "backend",
    "frontend",
    "database",
    "cache",
    "schema",
    "query",
    "index",
    "server",
    "client",
    "mobile",
    "api",
    "onboarding",
    "security",
    "audit",
    "roadmap",
    "sprint",
]
TAGS = ("work", "home", "urgent", "later", "errand", "backend", "frontend", "ops", "finance", "health")
SEED_PASSWORD = "seeded-user-password"  # noqa: S105  (development data: documented in the README)
CHUNK = 10_000


@dataclass(frozen=True)
class SeedResult:
    users: int
    tasks: int
    email_pattern: str


def _user_rows(count: int, password_hash: str, now: datetime, run: str) -> list[tuple[object, ...]]:
    return [
        (
            uuid.uuid4(),
            f"user{i}.{run}@seed.taskql.dev",
            f"Seed User {i}",
            password_hash,
            Role.USER.value,
            True,
            now,
            now,
            now,  # verified: seeded addresses are nobody's, and REQUIRE_VERIFIED_EMAIL must not lock them out
        )
        for i in range(count)
    ]


def _task_row(rng: random.Random, owner_id: uuid.UUID, now: datetime) -> tuple[object, ...]:
    created = now - timedelta(minutes=rng.randrange(0, 525_600))
    status = rng.choice(list(TaskStatus))
    due = created + timedelta(days=rng.randrange(1, 60)) if rng.random() < 0.7 else None
    return (
        uuid.uuid4(),
        owner_id,
        " ".join(rng.choices(WORDS, k=rng.randrange(2, 6))).capitalize(),
        " ".join(rng.choices(WORDS, k=rng.randrange(5, 30))),
        status.value,
        rng.choice(list(TaskPriority)).value,
        due,
        rng.sample(TAGS, k=rng.randrange(0, 4)),
        created,
        created,
        created + timedelta(hours=rng.randrange(1, 200)) if status is TaskStatus.DONE else None,
    )


async def seed(
    dsn: str,
    users: int,
    tasks: int,
    *,
    progress: Callable[[str, int], None] = lambda _, __: None,
    seed: int = 1,
) -> SeedResult:
    """Insert ``users`` users (all with ``SEED_PASSWORD``) and ``tasks`` tasks spread over them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]  # seeding twice adds users instead of colliding on emails
    # One argon2 hash shared by all seeded users: hashing 1,000 passwords would take most of a minute.
    password_hash = HASHER.hash(SEED_PASSWORD)
    connection = await asyncpg.connect(dsn)
    try:
        user_rows = _user_rows(users, password_hash, now, run)
        await connection.copy_records_to_table(
            "users",
            records=user_rows,
            columns=[
                "id",
                "email",
                "name",
                "password_hash",
                "role",
                "is_active",
                "created_at",
                "updated_at",
                "email_verified_at",
            ],
        )
        progress("users", users)
        owner_ids = [row[0] for row in user_rows]
        columns = ["id", "owner_id", "title", "description", "status", "priority", "due_at", "tags",
                   "created_at", "updated_at", "completed_at"]  # fmt: skip
        for start in range(0, tasks, CHUNK):
            size = min(CHUNK, tasks - start)
            rows = [_task_row(rng, rng.choice(owner_ids), now) for _ in range(size)]  # type: ignore[arg-type]
            await connection.copy_records_to_table("tasks", records=rows, columns=columns)
            progress("tasks", size)
        # VACUUM sets the visibility map, so index-only scans (stats) need no heap fetches from the start.
        await connection.execute("VACUUM ANALYZE users")
        await connection.execute("VACUUM ANALYZE tasks")
    finally:
        await connection.close()
    return SeedResult(users=users, tasks=tasks, email_pattern=f"user<N>.{run}@seed.taskql.dev")
