"""Alembic, driven from Python: ``upgrade`` to head, and where a database stands against this code's head
(for ``serve`` and readiness)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from taskql.data.engine import async_url

MIGRATIONS = Path(__file__).resolve().parents[2] / "models" / "migrations"
# head: what this code needs. behind: an older revision this code knows, or none (run `migrate`).
# ahead: a revision this code does not know, written by a newer release during a rolling deploy; that
# release's migrations keep the schema usable by the one before (expand, then contract later).
SchemaState = Literal["head", "behind", "ahead"]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is alembic's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> int:
    """Migrate to ``revision``; how many migrations ran (0: it was there already). Concurrent calls, from
    any number of processes, wait for each other (an advisory lock, see models/migrations/env.py)."""
    config = alembic_config(database_url)
    command.upgrade(config, revision)
    return int(config.attributes.get("applied", 0))


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str | None:
    return _scripts().get_current_head()


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def state_of(revision: str | None) -> SchemaState:
    if revision is not None and revision == head_revision():
        return "head"
    if revision is None or revision in known_revisions():
        return "behind"
    return "ahead"


async def revision_of(connection: AsyncConnection) -> str | None:
    """The database's revision; None when it was never migrated."""
    table = (await connection.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
    if table is None:
        return None
    return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def current_revision(database_url: str) -> str | None:
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as connection:
            return await revision_of(connection)
    finally:
        await engine.dispose()


def database_state(database_url: str) -> tuple[str | None, SchemaState]:
    revision = asyncio.run(current_revision(database_url))
    return revision, state_of(revision)
