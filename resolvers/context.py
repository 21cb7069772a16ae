"""The per-request context every resolver receives, made of small typed parts.

Resolvers use its verbs: ``require_viewer``, ``loaders`` and ``reader`` for reads, ``transaction`` and
``record`` for writes, ``now``. Its parts are what the app and the schema's extensions fill in and read:
``who`` asks, the ``origin`` of the request, where its ``reads`` go, its ``writes``, what the response cache
needs (``caching``), what the operation costs (``points``), and the app's ``hooks``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import TokenConfig
from auth.viewer import Viewer, require_role
from core.budget import Budget, Charge
from core.cache_tags import Policy
from core.errors import Unauthenticated
from core.hooks import AfterWrites, RouteReads
from core.reader import Reader
from models import Role
from resolvers.events import EventDraft, EventSource
from resolvers.inbox import InboxSource
from resolvers.loaders import Loaders
from resolvers.webhooks import WebhookSender, events_of_write, fan_out
from resolvers.writes import Written, record


@dataclass(slots=True)
class Who:
    """Who asks: the viewer the request's token names, or why the token it presented was refused."""

    viewer: Viewer | None = None
    # Why a presented token was refused; raised where a viewer is required (so a client refreshes).
    auth_error: Unauthenticated | None = None
    # Whether ``viewer`` was read from PostgreSQL for this request. One the response cache vouched for is
    # not: a mutation reads it again before anything is written (schema.extensions.write_authorization).
    from_database: bool = False

    def require(self, role: Role = Role.USER) -> Viewer:
        return require_role(self.viewer, role, self.auth_error)


@dataclass(slots=True)
class Origin:
    """Where the operation comes from: the request's id (in logs and masked errors), the client's address
    (the rate limits of anonymous callers and of login attempts), and the WebSocket of operations sent over
    one."""

    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client: str = ""
    user_agent: str | None = None  # kept with the sessions it logs in (``sessions``)
    connection: Any = None


class Reads:
    """Where the operation's reads go (the primary, or a replica until something pins them to the primary),
    and the per-request loaders that batch them."""

    __slots__ = ("loaders", "pinned", "primary", "reader")

    def __init__(self, primary: Reader) -> None:
        self.primary = primary  # raw asyncpg, rows into records
        self.reader = primary
        self.pinned = False  # reads stay on the primary from now on (a write, or its reads, happened)
        self.loaders = Loaders(self)

    def read_from(self, reader: Reader) -> None:
        """Send the reads that follow to ``reader``; never away from the primary once pinned there."""
        if not self.pinned:
            self.reader = reader

    def read_primary(self) -> None:
        """The reads that follow must see every committed write (this operation's own, or the one an event
        follows): the primary, for the rest of this context's life."""
        self.reader = self.primary
        self.pinned = True

    def fresh_loaders(self) -> None:
        """Forget what was loaded (a long-lived context, before each event it delivers)."""
        self.loaders = Loaders(self)


class WriteLog:
    """The operation's writes: ORM sessions, a transaction each, and what each recorded (its outbox row),
    published once committed, after the operation and before its answer (the app's ``after_writes``)."""

    __slots__ = ("_uncommitted", "changed", "sessions", "written")

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.written: list[Written] = []  # what committed writes recorded, in order
        self.changed: set[str] = set()  # the cache tags (core.cache_tags) they changed
        self._uncommitted: list[Written] = []

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write's transaction; what it ``record``s counts once it has committed."""
        try:
            async with self.sessions() as db, db.begin():
                yield db
        except BaseException:
            self.rolled_back()
            raise
        self.committed()

    async def record(
        self, db: AsyncSession, tags: Iterable[str], events: Sequence[EventDraft], at: datetime
    ) -> None:
        self._uncommitted.append(await record(db, tags, events, at))

    def committed(self) -> None:
        """The transaction of what was recorded has committed: publish it after the operation."""
        for written in self._uncommitted:
            self.written.append(written)
            self.changed.update(written.tags)
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        """The transaction of what was recorded did not commit (or may not have: the relay publishes it if it
        did): nothing of it is published by this request."""
        self._uncommitted.clear()


@dataclass(slots=True)
class Caching:
    """What the response cache needs to know of the answer."""

    # The operation's @cacheControl policy, set before execution (None: a mutation, not cacheable).
    policy: Policy | None = None
    # A read whose answer changes with time alone (overdue counts) says until when it holds.
    valid_until: datetime | None = None

    def holds_until(self, moment: datetime) -> None:
        """The answer may change by itself at ``moment``: a cached copy must not outlive it."""
        if self.valid_until is None or moment < self.valid_until:
            self.valid_until = moment


@dataclass(slots=True)
class Points:
    """What the operation costs, estimated before it ran (``schema.analysis.cost``), and what its client's
    budget was charged for it."""

    cost: int | None = None  # None: not estimated (nothing executed: the document or its variables refused)
    charge: Charge | None = None  # None: nothing charged (rate limits off, or an operation costing 0)


@dataclass(slots=True)
class Hooks:
    """What the app plugs in; nothing here imports it. None: not plugged in (a replica-less app has no
    read routing, rate limits off leave no budget, a plain HTTP request has no event source)."""

    after_writes: AfterWrites[Context] | None = None
    route_reads: RouteReads[Context] | None = None
    budget: Budget | None = None
    event_source: EventSource | None = None  # where subscriptions read events from
    inbox_source: InboxSource | None = None  # where notificationEvents reads the inbox from
    webhooks: WebhookSender | None = None  # checks webhook URLs, sends testWebhook's and retries


class Context:
    """One request's (or one WebSocket's) context: see the module's docstring."""

    __slots__ = (
        "caching",
        "connection_params",
        "hooks",
        "origin",
        "points",
        "reads",
        "tokens",
        "who",
        "writes",
    )

    def __init__(
        self,
        primary: Reader,
        sessions: async_sessionmaker[AsyncSession],
        tokens: TokenConfig,
        *,
        viewer: Viewer | None = None,
        auth_error: Unauthenticated | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.who = Who(viewer, auth_error)
        self.origin = Origin()
        self.reads = Reads(primary)
        self.writes = WriteLog(sessions)
        self.tokens = tokens
        self.caching = Caching()
        self.points = Points()
        self.hooks = hooks or Hooks()
        # A WebSocket's connection_init payload. Here, by this name, because Strawberry's WebSocket handlers
        # set it on a context that has it (taskql.realtime.sockets reads the token in it, once).
        self.connection_params: dict[str, Any] | None = None

    @property
    def loaders(self) -> Loaders:
        return self.reads.loaders

    @property
    def reader(self) -> Reader:
        return self.reads.reader

    def require_viewer(self, role: Role = Role.USER) -> Viewer:
        return self.who.require(role)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """One write's transaction: how a resolver writes (``record`` says what the write implies)."""
        return self.writes.transaction()

    async def record(self, db: AsyncSession, tags: Iterable[str], events: Sequence[EventDraft] = ()) -> None:
        """The one call each write makes, in its transaction, before it ends: the cache tags it changed and
        the events it tells (one per audience; they share one cursor), kept in the outbox with the data, and
        sent to the webhooks subscribed to them."""
        at = self.now()
        await self.writes.record(db, tags, events, at)
        if events:
            await fan_out(db, events_of_write(events, at))

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
