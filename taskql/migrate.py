"""Alembic, driven from Python: ``upgrade`` to head, and the current/head revisions for readiness."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from taskql.db import async_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "models" / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is alembic's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Migrate to ``revision``; True when a migration ran."""
    config = alembic_config(database_url)
    command.upgrade(config, revision)
    return bool(config.attributes.get("applied"))


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
