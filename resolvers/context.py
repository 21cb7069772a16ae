"""The per-request context every resolver receives."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
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
from core.reader import Reader
from models import Role
from resolvers.events import EventDraft, EventSource
from resolvers.loaders import Loaders
from resolvers.writes import Written, record


@dataclass
class Context:
    primary: Reader  # reads on the primary: raw asyncpg, rows into records
    sessions: async_sessionmaker[AsyncSession]  # writes: ORM sessions, one transaction each
    tokens: TokenConfig
    viewer: Viewer | None = None
    # Why a presented token was refused; raised where a viewer is required (so a client refreshes).
    auth_error: Unauthenticated | None = None
    # Whether ``viewer`` was read from PostgreSQL for this request. One the response cache vouched for is
    # not: a mutation reads it again before anything is written (schema.extensions.write_authorization).
    viewer_from_database: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # What this request's committed writes implied (their outbox rows): published after commit, before the
    # response; and the cache tags (core.cache_tags) they changed.
    written: list[Written] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    # A read whose answer changes with time alone (overdue counts) says until when it holds.
    valid_until: datetime | None = None
    # The operation's @cacheControl policy, set before execution (None: a mutation, not cacheable).
    cache_policy: Policy | None = None
    # Where subscriptions read events from (the app's), and a WebSocket's connection_init payload.
    event_source: EventSource | None = None
    connection_params: dict[str, Any] | None = None
    connection: Any = None  # the WebSocket, for operations sent over one
    # The client's address (the rate limits of anonymous callers and of login attempts), its budget (the
    # app's rate limits; None: unlimited), and what this operation was charged before it ran.
    client: str = ""
    budget: Budget | None = None
    charge: Charge | None = None
    # Run after the operation, before its answer: the app publishes ``written`` (cache, events, sockets).
    after_writes: Callable[[Context], Awaitable[None]] | None = None
    # Where this operation's reads go, decided by the app before it executes (``route_reads``, with whether
    # the operation writes): the primary, or a replica when nothing the answer depends on was just written.
    route_reads: Callable[[Context, bool], Awaitable[None]] | None = None
    reader: Reader = field(init=False)
    loaders: Loaders = field(init=False)
    pinned: bool = False  # reads stay on the primary from now on (a write, or its reads, happened)
    _uncommitted: list[Written] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.reader = self.primary
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

    def require_viewer(self, role: Role = Role.USER) -> Viewer:
        return require_role(self.viewer, role, self.auth_error)

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

    async def record(self, db: AsyncSession, tags: Iterable[str], events: Sequence[EventDraft] = ()) -> None:
        """The one call each write makes, in its transaction, before it ends: the cache tags it changed and
        the events it tells (one per audience; they share one cursor), kept in the outbox with the data."""
        self._uncommitted.append(await record(db, tags, events, self.now()))

    def committed(self) -> None:
        """The transaction of what was recorded has committed: publish it after the operation. (For a
        transaction not opened by ``transaction``.)"""
        for written in self._uncommitted:
            self.written.append(written)
            self.changed.update(written.tags)
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        """The transaction of what was recorded did not commit (or may not have: the relay publishes it if it
        did): nothing of it is published by this request."""
        self._uncommitted.clear()

    def holds_until(self, moment: datetime) -> None:
        """This request's answer may change by itself at ``moment``: a cached copy must not outlive it."""
        if self.valid_until is None or moment < self.valid_until:
            self.valid_until = moment

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
