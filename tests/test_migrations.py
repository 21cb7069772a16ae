"""The migrations build exactly the schema the models declare, and go down as cleanly as they go up.

Run in a database of their own (created and dropped here), never in the one the rest of the suite uses:
dropping enum types under live connections would break their cached type ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables)
from models.job_queue import compared_with_models
from taskql.data import migrations as migrate
from taskql.data.engine import async_url
from tests import databases
from tests.services import Services


@pytest.fixture
async def scratch_database(database: Services) -> AsyncIterator[str]:
    async with databases.scratch_database(database, "taskql_migrations") as url:
        yield url


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": compared_with_models,
        },
    )
    return list(compare_metadata(context, SQLModel.metadata))


async def schema_objects(url: str) -> set[str]:
    connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        rows = await connection.fetch(
            """SELECT relname AS name FROM pg_class JOIN pg_namespace n ON n.oid = relnamespace
               WHERE nspname = 'public' AND relkind IN ('r', 'i', 'S')
               UNION SELECT typname FROM pg_type JOIN pg_namespace n ON n.oid = typnamespace
               WHERE nspname = 'public' AND typtype = 'e'"""
        )
    finally:
        await connection.close()
    return {row["name"] for row in rows}


async def test_upgrade_matches_the_models_and_downgrade_removes_everything(scratch_database: str) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_database)
    engine = create_async_engine(async_url(scratch_database))
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()
    assert {
        "users",
        "tasks",
        "task_priority",
        "tasks_search_idx",
        "tasks_owner_due_at_idx",
        "account_tokens",
        "pgqueuer",
        "pgqueuer_status",
    } <= await schema_objects(scratch_database)
    await asyncio.to_thread(migrate.downgrade, scratch_database, "base")
    assert await schema_objects(scratch_database) == {"alembic_version", "alembic_version_pkc"}
    await asyncio.to_thread(migrate.upgrade, scratch_database)  # and up again, from nothing
    assert "tasks" in await schema_objects(scratch_database)


async def test_0006_numbers_each_users_notifications_in_the_order_they_were_made(
    scratch_database: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_database, "0005")
    dsn = make_url(scratch_database).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """
            INSERT INTO users (id, email, name, password_hash, is_active, created_at, updated_at) VALUES
              ('00000000-0000-4000-8000-00000000000a', 'a@example.com', 'A', 'x', true, now(), now()),
              ('00000000-0000-4000-8000-00000000000b', 'b@example.com', 'B', 'x', true, now(), now()),
              ('00000000-0000-4000-8000-00000000000c', 'c@example.com', 'C', 'x', true, now(), now());
            -- b has settings of their own; c has settings and no notification
            INSERT INTO notification_settings (user_id, daily_digest) VALUES
              ('00000000-0000-4000-8000-00000000000b', true), ('00000000-0000-4000-8000-00000000000c', true);
            INSERT INTO notifications (id, user_id, title, body, dedupe_key, created_at) VALUES
              (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 'a3', '', 'a3', '2026-01-03'),
              (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 'a1', '', 'a1', '2026-01-01'),
              (gen_random_uuid(), '00000000-0000-4000-8000-00000000000b', 'b1', '', 'b1', '2026-01-02'),
              (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 'a2', '', 'a2', '2026-01-02');
            """
        )
        await asyncio.to_thread(migrate.upgrade, scratch_database, "0006")
        numbered = await connection.fetch("SELECT title, seq FROM notifications ORDER BY title")
        assert [(row["title"], row["seq"]) for row in numbered] == [
            ("a1", 1),
            ("a2", 2),
            ("a3", 3),
            ("b1", 1),
        ]
        settings = await connection.fetch(
            "SELECT u.name, s.daily_digest, s.last_notification_seq"
            " FROM notification_settings s JOIN users u ON u.id = s.user_id ORDER BY u.name"
        )
        assert [tuple(row) for row in settings] == [("A", False, 3), ("B", True, 1), ("C", True, 0)]
        await asyncio.to_thread(migrate.downgrade, scratch_database, "0005")
        columns = await connection.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE column_name IN ('seq', 'last_notification_seq')"
        )
        assert columns == 0
        assert await connection.fetchval("SELECT count(*) FROM notifications") == 4
    finally:
        await connection.close()
