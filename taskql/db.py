"""The PostgreSQL engine and session factory (SQLAlchemy async over asyncpg).

When PostgreSQL goes away (a restart, a failover, a crash), requests must neither hang nor log tracebacks
for what is not a bug: every error that means "PostgreSQL cannot be reached" is turned into
``ServiceUnavailable`` (``SERVICE_UNAVAILABLE``, 503) here, in the engine, the one place all SQL goes
through. And once PostgreSQL is back, no request may fail on a connection that died while it sat in the
pool: see ``_discard_closed``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ServiceUnavailable
from core.settings import Settings

logger = logging.getLogger("taskql.db")
UNAVAILABLE_MESSAGE = "The database is unavailable: try again in a moment."
# SQLSTATEs that say the server cannot serve this connection now, not that the request is wrong: class 08
# (connection exception), admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def async_url(url: str) -> str:
    """Accept the usual ``postgresql://`` / ``postgres://`` URLs and select the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+asyncpg"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}.")


def create_engine(settings: Settings, outage: Outage | None = None) -> AsyncEngine:
    """``outage`` is shared with the read pools (``taskql.readers``): one outage, logged once."""
    assert settings.database_url, "the database URL is resolved before the engine is made"
    engine = create_async_engine(
        async_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No ping before each checkout: with asyncpg it costs three round trips (a third of a page's SQL
        # time). A connection the server closed is recognised without any (``_discard_closed``).
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "taskql",
            },
            "timeout": 10,
        },
    )
    watch(engine, outage or Outage())
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class Outage:
    """Logs once when PostgreSQL stops answering and once when it is back, not once per request."""

    def __init__(self) -> None:
        self.since: float | None = None

    def began(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            logger.warning(
                "PostgreSQL unavailable (%s: %s): requests answer SERVICE_UNAVAILABLE",
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )

    def ended(self) -> None:
        if self.since is not None:
            logger.warning("PostgreSQL is back after %.1f s", time.monotonic() - self.since)
            self.since = None


def watch(engine: AsyncEngine, outage: Outage) -> None:
    def connect(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> Any:
        # What SQLAlchemy does itself (``dialect.connect``), so that a refused or timed-out connection
        # (raised as OSError / TimeoutError, outside SQLAlchemy's error handling) is recognised too.
        try:
            connection = dialect.loaded_dbapi.connect(*cargs, **cparams)
        except Exception as error:
            if not unavailable(error):
                raise
            outage.began(error)
            raise ServiceUnavailable(UNAVAILABLE_MESSAGE) from error
        outage.ended()
        return connection

    def handle_error(context: ExceptionContext) -> None:
        # A connection lost in use (SQLAlchemy still invalidates it, and the pool's older connections).
        if context.is_disconnect or unavailable(context.original_exception):
            outage.began(context.original_exception)
            raise ServiceUnavailable(UNAVAILABLE_MESSAGE) from context.original_exception

    event.listen(engine.sync_engine, "do_connect", connect)
    event.listen(engine.sync_engine, "handle_error", handle_error)
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)


def _discard_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """A pooled connection the server closed (PostgreSQL restarted, or an idle timeout) is replaced before
    use, at no cost: asyncpg noticed the closed socket while the connection sat idle, so this asks no round
    trip (unlike ``pool_pre_ping``). SQLAlchemy then connects anew; if that fails, the request gets
    ``ServiceUnavailable`` from ``connect``."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("PostgreSQL closed this connection while it was idle in the pool")


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means PostgreSQL cannot be reached (rather than that the request is wrong)."""
    if isinstance(error, (OSError, TimeoutError)):  # refused, no such socket, unreachable, timed out
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES)
