"""The per-request context every resolver receives."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import TokenConfig
from auth.viewer import Viewer, require_role
from core.cache_tags import Policy
from core.errors import Unauthenticated
from models import Role
from resolvers.events import EventDraft, EventSource
from resolvers.loaders import Loaders


@dataclass
class Context:
    engine: AsyncEngine  # reads: plain connections, rows into records
    sessions: async_sessionmaker[AsyncSession]  # writes: ORM sessions, one transaction each
    tokens: TokenConfig
    loaders: Loaders
    viewer: Viewer | None = None
    # Why a presented token was refused; raised where a viewer is required (so a client refreshes).
    auth_error: Unauthenticated | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Cache tags (core.cache_tags) this request's writes changed: bumped after commit, before the response.
    changed: set[str] = field(default_factory=set)
    # A read whose answer changes with time alone (overdue counts) says until when it holds.
    valid_until: datetime | None = None
    # The operation's @cacheControl policy, set before execution (None: a mutation, not cacheable).
    cache_policy: Policy | None = None
    # What this request's writes tell subscribers: published after commit, with the cache bumps.
    events: list[list[EventDraft]] = field(default_factory=list)  # one list per write
    # Where subscriptions read events from (the app's), and a WebSocket's connection_init payload.
    event_source: EventSource | None = None
    connection_params: dict[str, Any] | None = None
    connection: Any = None  # the WebSocket, for operations sent over one
    # Run after the operation, before its answer: the app's cache invalidation and event publishing.
    after_writes: Callable[[Context], Awaitable[None]] | None = None

    @classmethod
    def create(
        cls,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        tokens: TokenConfig,
        *,
        viewer: Viewer | None = None,
        auth_error: Unauthenticated | None = None,
    ) -> Context:
        return cls(engine, sessions, tokens, Loaders(engine), viewer=viewer, auth_error=auth_error)

    def require_viewer(self, role: Role = Role.USER) -> Viewer:
        return require_role(self.viewer, role, self.auth_error)

    def invalidate(self, *tags: str) -> None:
        self.changed.update(tags)

    def tell(self, drafts: list[EventDraft]) -> None:
        """One write's events (they share one cursor)."""
        self.events.append(drafts)

    def holds_until(self, moment: datetime) -> None:
        """This request's answer may change by itself at ``moment``: a cached copy must not outlive it."""
        if self.valid_until is None or moment < self.valid_until:
            self.valid_until = moment

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
