"""The read pools: raw asyncpg, next to the SQLAlchemy engine that the writes use (``taskql.data.engine``)."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from core.errors import ServiceUnavailable
from core.reader import Reader
from core.settings import Settings
from taskql.data.engine import UNAVAILABLE_MESSAGE, Bounds, Outage, unavailable

PRIMARY = "primary"
REPLICA = "replica"
APPLICATION_NAMES = {PRIMARY: "taskql", REPLICA: "taskql-replica"}  # as pg_stat_activity shows them


def asyncpg_dsn(url: str) -> str:
    """asyncpg's own form of a ``postgresql://``, ``postgres://`` or ``postgresql+asyncpg://`` URL."""
    parsed = make_url(url)
    if parsed.drivername not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError(f"A PostgreSQL URL is needed, not {parsed.drivername!r}.")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class OutageFailures:
    """A read that failed because PostgreSQL cannot be reached is ``SERVICE_UNAVAILABLE`` (503, to try again),
    as the engine's are (``taskql.data.engine``), and the outage is logged once, when it begins and when
    it ends."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def translate(self, error: BaseException, *, dead: bool) -> BaseException | None:
        if not dead and not unavailable(error):
            return None  # a bug or a bad statement: the error as it is
        self.outage.began(error)
        return ServiceUnavailable(UNAVAILABLE_MESSAGE)

    def succeeded(self) -> None:
        if self.outage.since is not None:
            self.outage.ended()


async def _keep_session(connection: Any) -> None:
    """What a read connection needs when it goes back to the pool: nothing. Its statements are single reads
    in autocommit that change no session state (asyncpg still rolls back an open transaction first), so the
    default reset (``RESET ALL``, ``UNLISTEN *``, ... : one more round trip per read) is skipped."""


async def create_reader(settings: Settings, url: str, *, name: str, outage: Outage) -> Reader:
    """A pool sized like the engine's (``DB_POOL_SIZE`` + ``DB_MAX_OVERFLOW`` connections at most), with the
    same session settings and bounds (``taskql.data.engine.Bounds``), its outages reported as the engine's are
    (``outage``). Connections open on first
    use (none at startup: the server starts, and says it is not ready, while PostgreSQL is down) and close
    after five idle minutes."""
    bounds = Bounds.of(settings)
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=0,
        max_size=settings.db_pool_size + settings.db_max_overflow,
        max_inactive_connection_lifetime=300,
        timeout=bounds.connect,
        command_timeout=bounds.command,
        server_settings={**bounds.server_settings, "application_name": APPLICATION_NAMES[name]},
        reset=_keep_session,
    )
    # acquire: a free connection, or a new one (its connect included), within the bound.
    return Reader(pool, name, failures=OutageFailures(outage), acquire_timeout=bounds.acquire)
