"""Reads on a raw asyncpg pool: one statement each, rows straight into records.

Each read is a single statement, so it runs in autocommit (no BEGIN/ROLLBACK around it), on a connection
taken from the pool for that statement only. asyncpg prepares each statement text once per connection and
keeps it, so a precompiled ``Sql`` costs one round trip (Bind/Execute) on a warm connection.

A pooled connection can be dead without the pool knowing: PostgreSQL was restarted, or a proxy dropped it.
asyncpg discards a connection it has seen close, but one whose end it has not noticed yet fails its next
statement. A read is safe to repeat, so a statement that failed that way is sent once more, on a fresh
connection. One dead connection usually means all of them are (a restart): the pool then replaces every
connection it holds as each is next taken, so the retry is on a new one, and the requests that follow do
not each find another dead connection. A second failure means PostgreSQL is going away; that, and a
connection that cannot be opened, is the app's to report (``Failures``: a 503, to try again).

A statement that times out (the pool's ``command_timeout``) is not sent again: the server may be frozen,
and a second wait would double the time the request takes to fail. Its connection is closed, not pooled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from core.sql import NO_VALUES, Sql

logger = logging.getLogger("taskql.reader")

# The connection is gone (or going): nothing was read, and the statement can go to another connection.
DEAD_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError, connection_failure (08*)
    asyncpg.exceptions.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.AdminShutdownError,  # 57P01: terminated by a shutdown or pg_terminate_backend()
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    # The server's farewell (an unsolicited FATAL, 57P01) arrived before the connection's end: asyncpg waits
    # for a ReadyForQuery that never comes and refuses new statements ("another operation is in progress").
    asyncpg.exceptions.InternalClientError,
    ConnectionError,  # the socket broke under the statement
)

Row = Sequence[Any]  # an asyncpg Record: indexable and sliceable like a tuple
# Told of every statement: the reader's name, the SQL text and its arguments (tests count statements).
Observer = Callable[[str, str, tuple[Any, ...]], None]


class Failures(Protocol):
    """What the app makes of a failed read (``taskql.data.readers``: PostgreSQL unavailable, 503)."""

    def translate(self, error: BaseException, *, dead: bool) -> BaseException | None:
        """The error to raise instead of ``error`` (None: ``error`` itself). ``dead``: it met a dead
        connection twice."""
        ...

    def succeeded(self) -> None:
        """A statement was answered (an outage, if there was one, is over)."""
        ...


class _DeadConnection(Exception):
    """A statement met a dead connection (the driver's error is the cause)."""


class Reader:
    """Read-only statements on one pool (the primary's, or a replica's)."""

    __slots__ = ("acquire_timeout", "failures", "name", "observers", "pool")

    def __init__(
        self, pool: Any, name: str, *, failures: Failures | None = None, acquire_timeout: float = 30.0
    ) -> None:
        self.pool = pool  # asyncpg.Pool
        self.name = name
        self.failures = failures
        # How long a read waits for a connection when all are busy (SQLAlchemy's pool_timeout, by default).
        self.acquire_timeout = acquire_timeout
        self.observers: list[Observer] = []

    async def fetch(self, sql: Sql, values: Mapping[str, Any] = NO_VALUES) -> list[Row]:
        rows: list[Row] = await self._run("fetch", sql, values)
        return rows

    async def fetchrow(self, sql: Sql, values: Mapping[str, Any] = NO_VALUES) -> Row | None:
        row: Row | None = await self._run("fetchrow", sql, values)
        return row

    async def fetchval(self, sql: Sql, values: Mapping[str, Any] = NO_VALUES) -> Any:
        return await self._run("fetchval", sql, values)

    async def _run(self, method: str, sql: Sql, values: Mapping[str, Any]) -> Any:
        args = sql.args(values)
        for observer in self.observers:
            observer(self.name, sql.text, args)
        try:
            result = await self._attempts(method, sql.text, args)
        except Exception as error:
            dead = isinstance(error, _DeadConnection)
            cause = error.__cause__ if dead and error.__cause__ is not None else error
            instead = self.failures.translate(cause, dead=dead) if self.failures is not None else None
            if instead is not None:
                raise instead from cause
            if dead:
                raise cause from None
            raise
        if self.failures is not None:
            self.failures.succeeded()
        return result

    async def _attempts(self, method: str, text: str, args: tuple[Any, ...]) -> Any:
        try:
            return await self._once(method, text, args)
        except _DeadConnection as dead:
            logger.warning(
                "%s: a pooled connection was dead (%s): reconnecting, reading again",
                self.name,
                type(dead.__cause__).__name__,
            )
            await self.pool.expire_connections()
        return await self._once(method, text, args)

    async def _once(self, method: str, text: str, args: tuple[Any, ...]) -> Any:
        # Taken apart from the statement: a connection that cannot be opened is not retried.
        connection = await self.pool.acquire(timeout=self.acquire_timeout)
        try:
            return await getattr(connection, method)(text, *args)
        except DEAD_CONNECTION as error:
            raise _DeadConnection from error
        except TimeoutError:
            # No answer within the pool's command_timeout: the connection is mid-statement, asyncpg's cancel
            # request in flight, and a release would wait for that cancel (as long again, from a server that
            # does not answer). Closed at once; the pool opens another when needed.
            connection.terminate()
            raise
        except asyncio.CancelledError:
            # The caller was cancelled mid-statement (graphql-core cancels a failed field's siblings). In the
            # middle of asyncpg's protocol (a Parse answered, a new enum's type introspection under way) the
            # connection could stay behind without its Sync, holding the statement's locks for good (seen:
            # a TRUNCATE waiting on it). Closed: the server ends the statement and frees its locks.
            connection.terminate()
            raise
        finally:
            await self.pool.release(connection)

    async def close(self, seconds: float = 2.0) -> None:
        """Close every connection gracefully once released; past ``seconds``, abruptly."""
        try:
            async with asyncio.timeout(seconds):
                await self.pool.close()
        except TimeoutError:
            logger.warning("%s: connections still busy at shutdown, terminated", self.name)
            self.pool.terminate()
