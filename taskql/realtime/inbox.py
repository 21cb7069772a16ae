"""The live inbox's wake-ups: one LISTEN connection per process, whatever the number of subscribers.

- **Told**: ``notify()`` (``resolvers.notifications``) sends the user's id on ``taskql_inbox`` in its
  transaction, which PostgreSQL delivers at COMMIT only. The listening connection rings the doorbells of
  that user's subscribers here; each reads its ``seq > last`` on the primary (``resolvers.inbox``).
  PostgreSQL, not the message, says what is new: a message lost or told twice costs a wait or a read.
- **Lost connection** (PostgreSQL restarted, the backend terminated, the network cut): reconnect with a
  backoff (``RETRY_SECONDS``, doubling up to ``RETRY_MAX_SECONDS``), then ring every doorbell: what
  committed meanwhile was told to no one.
- **Anything else** (a message lost some other way, a connection that died without a word): every
  ``INBOX_RECHECK_SECONDS``, one statement reads the last number of every user subscribed here, and the
  doorbells of those whose number moved ring; the listening connection must answer a ping then, or it is
  replaced. So a notification reaches a live subscriber within that period, whatever was lost.
- **No seam**: a subscriber's doorbell is hung before it reads where to start; a ring in between makes it
  read again. Numbers only grow, and each reader keeps its own last one: nothing twice, nothing skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from core.errors import BadUserInput, ServiceUnavailable
from core.reader import Reader
from resolvers.inbox import PAGE, last_numbers, latest_seq, notifications_after
from resolvers.notifications import INBOX_CHANNEL, NotificationRecord
from taskql.realtime.hub import UNREACHABLE

logger = logging.getLogger("taskql.realtime.inbox")

APPLICATION_NAME = "taskql-inbox"  # the listening connection, as pg_stat_activity shows it
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
STOP_SECONDS = 1.0
T = TypeVar("T")
# What a subscriber waits out: PostgreSQL not answering (the read pool says SERVICE_UNAVAILABLE).
WAITED_OUT: tuple[type[BaseException], ...] = (ServiceUnavailable, *UNREACHABLE)


@dataclass(eq=False, slots=True)
class Doorbell:
    """One subscriber's wake-up: a ring while it reads is kept for its next wait. (A future only while it
    waits: thousands of them idle per instance.)"""

    rung: bool = False
    waiter: asyncio.Future[None] | None = None

    def ring(self) -> None:
        self.rung = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Until it rings; at once if it rang since the last wait."""
        while not self.rung:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        self.rung = False


@dataclass
class Inbox:
    dsn: str  # asyncpg's form of the primary's URL
    reader: Reader  # the primary's read pool
    recheck_seconds: float
    connect_timeout: float
    server_settings: dict[str, str] = field(default_factory=dict)
    _doorbells: defaultdict[uuid.UUID, set[Doorbell]] = field(default_factory=lambda: defaultdict(set))
    _known: dict[uuid.UUID, int] = field(default_factory=dict)  # each user's last number, at the recheck
    _connection: Any = None  # the listening asyncpg.Connection, while there is one
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # Listening --------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="taskql-inbox-listener"),
            asyncio.create_task(self._recheck(), name="taskql-inbox-recheck"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
            if pending:
                logger.warning("the inbox listener did not stop within %.0f s", STOP_SECONDS)
        if self._connection is not None:
            self._connection.terminate()

    async def _listen(self) -> None:
        """One connection doing LISTEN for the whole process, replaced when it ends."""
        delay = RETRY_SECONDS
        while True:
            try:
                connection = await asyncpg.connect(
                    self.dsn,
                    timeout=self.connect_timeout,
                    server_settings={**self.server_settings, "application_name": APPLICATION_NAME},
                )
            except (*UNREACHABLE, asyncpg.PostgresError) as error:
                logger.warning("inbox listener cannot connect (%s); retrying", type(error).__name__)
            else:
                try:
                    await self._listen_on(connection)
                    logger.warning("inbox listener lost its connection; reconnecting")
                    delay = RETRY_SECONDS
                except (*UNREACHABLE, asyncpg.PostgresError) as error:
                    logger.warning("inbox listener failed (%s); reconnecting", type(error).__name__)
                finally:
                    self._connection = None
                    connection.terminate()
            await asyncio.sleep(delay)
            delay = min(2 * delay, RETRY_MAX_SECONDS)

    async def _listen_on(self, connection: Any) -> None:
        """Listen on ``connection`` until it ends."""
        ended = asyncio.Event()
        connection.add_termination_listener(lambda _connection: ended.set())
        await connection.add_listener(INBOX_CHANNEL, self._told)
        self._connection = connection
        self._everyone()  # committed while no one listened: read again
        await ended.wait()

    def _told(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            logger.warning("inbox listener: not a user id on %s: %r", INBOX_CHANNEL, payload[:100])
            return
        self._ring(user_id)

    def _ring(self, user_id: uuid.UUID) -> None:
        for bell in self._doorbells.get(user_id, ()):
            bell.ring()

    def _everyone(self) -> None:
        for bells in self._doorbells.values():
            for bell in bells:
                bell.ring()

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                await self.recheck_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # PostgreSQL away: the next period, or the reconnection, catches up
                logger.warning("inbox not rechecked (%s)", type(error).__name__)

    async def recheck_once(self) -> None:
        """Ring for every user here whose last number moved since the last recheck (or who is new), and make
        sure the listening connection still answers."""
        connection = self._connection
        if connection is not None:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await connection.fetchval("SELECT 1")
            except (*UNREACHABLE, asyncpg.PostgresError):
                logger.warning("inbox listener's connection does not answer; replacing it")
                connection.terminate()  # its end rings every doorbell, once replaced
        users = list(self._doorbells)
        numbers = await last_numbers(self.reader, users) if users else {}
        for user_id in users:
            number = numbers.get(user_id, 0)
            if self._known.get(user_id) != number:
                self._known[user_id] = number
                self._ring(user_id)
        for user_id in self._known.keys() - set(users):
            del self._known[user_id]

    # Subscribing ------------------------------------------------------------------------------------

    async def stream(self, user_id: uuid.UUID, after: int | None) -> AsyncIterator[NotificationRecord]:
        """The user's notifications numbered after ``after`` (None: from now on), then each new one, once
        and in order. A cursor ahead of the user's inbox (another user's) is BAD_USER_INPUT."""
        bell = Doorbell()
        self._doorbells[user_id].add(bell)  # first: whatever commits from now on rings it
        try:
            latest = await self._patiently(functools.partial(latest_seq, self.reader, user_id))
            if after is not None and after > latest:
                raise BadUserInput(
                    "after: none of your notifications has this cursor: pass the `cursor` of a "
                    "notification you received.",
                    field="after",
                )
            last = latest if after is None else after
            read = after is not None  # without a cursor, nothing to read until something commits
            while True:
                if not read:
                    await bell.wait()
                page = await self._patiently(
                    functools.partial(notifications_after, self.reader, user_id, last)
                )
                for record in page:
                    last = record.seq
                    yield record
                read = len(page) == PAGE  # a full page: there may be more at once
        finally:
            bells = self._doorbells.get(user_id)
            if bells is not None:
                bells.discard(bell)
                if not bells:
                    del self._doorbells[user_id]

    @staticmethod
    async def _patiently(read: Callable[[], Awaitable[T]]) -> T:
        """``read()`` once PostgreSQL answers: a subscriber waits out an outage, it never fails for one."""
        while True:
            try:
                return await read()
            except WAITED_OUT:
                await asyncio.sleep(RETRY_SECONDS)
