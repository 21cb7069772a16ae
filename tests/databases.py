"""A database of its own for a test (created and dropped here), for tests that need one at no revision at
all: never the one the rest of the suite shares."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from tests.services import Services


@contextlib.asynccontextmanager
async def scratch_database(services: Services, prefix: str = "taskql_scratch") -> AsyncIterator[str]:
    """A new, empty database on the suite's PostgreSQL; its URL (in the suite's URL form)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(services.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(services.database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def dsn_of(url: str) -> str:
    """``url`` in asyncpg's own form."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
