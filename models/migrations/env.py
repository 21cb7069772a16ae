"""Alembic environment: async engine, one transaction, and an advisory lock so replicas never race."""

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from models.job_queue import compared_with_models

# Any constant shared by every taskql process: the key of the migration lock.
MIGRATION_LOCK_KEY = 0x7461736B716C  # "taskql"


def _applied(*_: object, **__: object) -> None:
    """Count what ran: taskql drops its response cache after a migration that changed something."""
    context.config.attributes["applied"] = context.config.attributes.get("applied", 0) + 1


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        compare_type=True,
        include_object=compared_with_models,
        transaction_per_migration=False,
        on_version_apply=_applied,
    )
    with context.begin_transaction():
        # Taken inside the migration transaction, before alembic reads the current revision: a second
        # process waits here, then finds the schema at head and does nothing.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by taskql.data.migrations"
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported: run `python -m taskql migrate`.")
asyncio.run(run_async())
