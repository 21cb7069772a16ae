"""The PostgreSQL engine and session factory (SQLAlchemy async over asyncpg).

When PostgreSQL goes away (a restart, a failover, a crash), requests must neither hang nor log tracebacks
for what is not a bug: every error that means "PostgreSQL cannot be reached" is turned into
``ServiceUnavailable`` (``SERVICE_UNAVAILABLE``, 503) here, in the engine, the one place all SQL goes
through. And once PostgreSQL is back, no request may fail on a connection that died while it sat in the
pool: see ``_discard_closed``.

Nor may a request wait without end on a PostgreSQL that does not answer (a frozen host: its kernel accepts
connections, nothing replies). Every wait on it is bounded by ``DB_STATEMENT_TIMEOUT_SECONDS``
(``Bounds``): a statement (PostgreSQL cancels it itself at that time; the client gives up half a second
later, when the server cannot), a new connection's startup, a free connection of a full pool. A connection
whose statement timed out is dropped, never pooled again: it is mid-statement, a cancel request in flight.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ServiceUnavailable
from core.settings import Settings

logger = logging.getLogger("taskql.data.engine")
UNAVAILABLE_MESSAGE = "The database is unavailable: try again in a moment."
# SQLSTATEs that say the server cannot serve this connection now, not that the request is wrong: class 08
# (connection exception), admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
# And query_canceled: PostgreSQL's statement_timeout (DB_STATEMENT_TIMEOUT_SECONDS) ran out.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "57014"})
# How much longer than PostgreSQL's statement_timeout the client waits for an answer (``Bounds``).
CLIENT_GRACE_SECONDS = 0.5


def async_url(url: str) -> str:
    """Accept the usual ``postgresql://`` / ``postgres://`` URLs and select the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+asyncpg"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}.")


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long each wait on PostgreSQL may last, from ``DB_STATEMENT_TIMEOUT_SECONDS``, for both pools."""

    # PostgreSQL's statement_timeout: a server that answers cancels a slow statement itself.
    statement: float
    # asyncpg's command_timeout: the client stops waiting for an answer (and the connection is dropped).
    command: float
    # TCP and the startup exchange (a frozen server accepts TCP, and never answers the startup).
    connect: float
    # A free connection of a full pool (the engine's: its connect included, see ``BoundedPool``).
    acquire: float

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        seconds = settings.db_statement_timeout_seconds
        # The server's own timeout goes first: the statement is cancelled cleanly, its connection stays
        # usable. The client's is for a server that cannot answer at all.
        return cls(
            statement=seconds, command=seconds + CLIENT_GRACE_SECONDS, connect=seconds, acquire=seconds
        )

    @property
    def server_settings(self) -> dict[str, str]:
        return {"statement_timeout": str(max(1, round(self.statement * 1000)))}


def create_engine(settings: Settings, outage: Outage | None = None) -> AsyncEngine:
    """``outage`` is shared with the read pools (``taskql.data.readers``): one outage, logged once."""
    assert settings.database_url, "the database URL is resolved before the engine is made"
    bounds = Bounds.of(settings)
    engine = create_async_engine(
        async_url(settings.database_url),
        poolclass=BoundedPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=bounds.acquire,
        # No ping before each checkout: with asyncpg it costs three round trips (a third of a page's SQL
        # time). A connection the server closed is recognised without any (``_discard_closed``).
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "server_settings": {**bounds.server_settings, "application_name": "taskql"},
            "timeout": bounds.connect,
            "command_timeout": bounds.command,
        },
    )
    watch(engine, outage or Outage())
    return engine


# When the current checkout of a connection from the engine's pool must be done by (``time.monotonic``).
_checkout_deadline: ContextVar[float | None] = ContextVar("taskql_checkout_deadline", default=None)


class BoundedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's pool for asyncio, where getting a connection takes ``pool_timeout`` at most in all: the
    wait for a free one and, if it must be opened, its connect (``connect`` shortens its timeout to what is
    left). Without that, a request that waited for the slot of a connection that timed out would wait as
    long again to open a new one on a frozen server. A timeout is ``ServiceUnavailable``: retry in a moment.
    """

    def _do_get(self) -> ConnectionPoolEntry:
        _checkout_deadline.set(time.monotonic() + self._timeout)
        try:
            return super()._do_get()
        except PoolTimeout as error:
            raise ServiceUnavailable(UNAVAILABLE_MESSAGE) from error


def _connect_timeout(cparams: dict[str, Any]) -> dict[str, Any]:
    """``cparams`` with a connect timeout no later than the current checkout's deadline."""
    deadline = _checkout_deadline.get()
    left = cparams["timeout"] if deadline is None else deadline - time.monotonic()
    if left >= cparams["timeout"]:
        return cparams
    return {**cparams, "timeout": max(left, 0.01)}


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
            connection = dialect.loaded_dbapi.connect(*cargs, **_connect_timeout(cparams))
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
            if isinstance(context.original_exception, TimeoutError):
                _drop(context)
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


def _drop(context: ExceptionContext) -> None:
    """The statement got no answer in time: its connection is mid-statement, with asyncpg's cancel request
    in flight, and is not to be used again. SQLAlchemy invalidates it (``is_disconnect``); it is closed here
    at once (SQLAlchemy would first try a graceful close, waiting up to 2 s more on a frozen server)."""
    context.is_disconnect = True
    pooled = context.connection.connection if context.connection is not None else None
    if pooled is not None and pooled.driver_connection is not None:
        pooled.driver_connection.terminate()


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means PostgreSQL cannot be reached (rather than that the request is wrong)."""
    if isinstance(error, (OSError, TimeoutError)):  # refused, no such socket, unreachable, timed out
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES)
