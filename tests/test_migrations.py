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
