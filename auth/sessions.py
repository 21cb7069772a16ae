"""Login sessions: start one, rotate its refresh token, revoke it, and load the viewer of an access token.

A session is a refresh-token family. Every refresh consumes its token and issues the next; presenting a
consumed token again means it leaked, so the whole session (family) is revoked.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, Text, bindparam, cast, func, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import (
    TokenConfig,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from auth.viewer import Viewer
from core.errors import Unauthenticated
from core.reader import Reader
from core.sql import compile_sql
from models import (
    PROJECT_ROLE,
    USER_COLUMNS,
    AuthSession,
    ProjectMember,
    ProjectRole,
    RefreshToken,
    User,
    UserRecord,
)


class RefreshTokenReused(Unauthenticated):
    """A consumed refresh token came back: its session is revoked (already committed when raised)."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(
            "This refresh token was already used: the session is revoked. Log in again.",
            reason="REFRESH_TOKEN_REUSED",
        )
        self.session_id = session_id


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime
    user: User


async def start_session(
    db: AsyncSession, config: TokenConfig, user: User, now: datetime, user_agent: str | None = None
) -> TokenPair:
    """Open a session for ``user`` inside the caller's transaction."""
    session = AuthSession(user_id=user.id, created_at=now, last_used_at=now, user_agent=user_agent)
    db.add(session)
    await db.flush()
    return await _issue_pair(db, config, user, session.id, now)


async def _issue_pair(
    db: AsyncSession, config: TokenConfig, user: User, session_id: uuid.UUID, now: datetime
) -> TokenPair:
    refresh = new_refresh_token()
    db.add(
        RefreshToken(
            session_id=session_id,
            token_hash=hash_refresh_token(refresh),
            created_at=now,
            expires_at=now + config.refresh_ttl,
        )
    )
    access, expires_at = issue_access_token(config, user.id, session_id, now)
    return TokenPair(access_token=access, refresh_token=refresh, expires_at=expires_at, user=user)


async def rotate(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    config: TokenConfig,
    token: str,
    now: datetime,
    before_rotation: Callable[[uuid.UUID], Awaitable[None]] | None = None,
    on_revoke: Callable[[AsyncSession, uuid.UUID], Awaitable[None]] | None = None,
) -> TokenPair:
    """Exchange a refresh token for a new pair. Reuse of a consumed token revokes its session.
    ``before_rotation`` is given the user of a token about to be consumed; what it raises leaves the token
    unconsumed (the per-account attempt limit). ``on_revoke`` runs in the revoking transaction (the write
    log records what the revocation implies). ``transaction`` opens it (``Context.transaction``)."""
    reused = False
    async with transaction() as db:
        # FOR UPDATE serializes concurrent refreshes of one token: the second waits, then sees it consumed.
        row = (
            await db.exec(
                select(RefreshToken, AuthSession, User)
                .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
                .join(User, col(User.id) == col(AuthSession.user_id))
                .where(RefreshToken.token_hash == hash_refresh_token(token))
                .with_for_update(of=RefreshToken)
            )
        ).first()
        if row is None:
            raise Unauthenticated("The refresh token is invalid.", reason="REFRESH_TOKEN_INVALID")
        refresh, session, user = row
        if not user.is_active:
            raise Unauthenticated("This account is deactivated.", reason="ACCOUNT_DEACTIVATED")
        if session.revoked_at is not None:
            raise Unauthenticated("This session has ended: log in again.", reason="SESSION_REVOKED")
        if refresh.used_at is not None:
            session.revoked_at = now
            reused = True
            if on_revoke is not None:
                await on_revoke(db, session.id)
        elif refresh.expires_at <= now:
            raise Unauthenticated(
                "The refresh token has expired: log in again.", reason="REFRESH_TOKEN_EXPIRED"
            )
        elif not user.is_active:
            raise Unauthenticated("This account is deactivated.", reason="ACCOUNT_DEACTIVATED")
        else:
            if before_rotation is not None:
                await before_rotation(user.id)
            refresh.used_at = now
            session.last_used_at = now
            pair = await _issue_pair(db, config, user, session.id, now)
    if reused:  # raised only after the revocation is committed
        raise RefreshTokenReused(session.id)
    return pair


async def live_session_of(db: AsyncSession, token: str, now: datetime) -> AuthSession | None:
    """The session of a refresh token that could still be used: unused, unexpired, session not revoked.
    A consumed or expired token identifies nothing (a leaked old token must not log anyone out)."""
    return (
        await db.exec(
            select(AuthSession)
            .join(RefreshToken, col(RefreshToken.session_id) == col(AuthSession.id))
            .where(
                RefreshToken.token_hash == hash_refresh_token(token),
                col(RefreshToken.used_at).is_(None),
                col(RefreshToken.expires_at) > now,
                col(AuthSession.revoked_at).is_(None),
            )
        )
    ).first()


async def revoke_session(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await db.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )


async def revoke_all_sessions(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await db.exec(
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )


# SQLModel's table classes carry their Core table untyped.
_USERS: Table = User.__table__  # type: ignore[attr-defined]
_SESSIONS: Table = AuthSession.__table__  # type: ignore[attr-defined]
_MEMBERS: Table = ProjectMember.__table__  # type: ignore[attr-defined]


def _memberships(column: Any) -> Any:
    """One array of the user's memberships' ``column`` (project ids, or roles in the same order)."""
    return (
        select_columns(func.array_agg(aggregate_order_by(column, _MEMBERS.c.project_id)))
        .where(_MEMBERS.c.user_id == _USERS.c.id)
        .scalar_subquery()
    )


# Compiled once, as it runs on every request not vouched for by the cache: the user's read columns (never
# the password hash), whether the session is revoked, and the user's projects and roles in them (the
# request's reads need them; here they cost no round trip of their own), in one statement.
_VIEWER_QUERY = compile_sql(
    select_columns(
        *USER_COLUMNS,
        _SESSIONS.c.revoked_at,
        _memberships(_MEMBERS.c.project_id),
        _memberships(cast(_MEMBERS.c.role, Text)),
    )
    .join_from(_USERS, _SESSIONS, _SESSIONS.c.user_id == _USERS.c.id)
    .where(_USERS.c.id == bindparam("user_id"), _SESSIONS.c.id == bindparam("session_id"))
)


@dataclass(frozen=True, slots=True)
class LoadedViewer:
    """A viewer read from PostgreSQL: who, their account, and their project roles as of this read (for this
    request alone: a long-lived context reads roles afresh)."""

    viewer: Viewer
    user: UserRecord
    roles: dict[uuid.UUID, ProjectRole]


class SessionOf(Protocol):
    """Whose session: a verified access token's claims, or a viewer read before (to read it again)."""

    @property
    def user_id(self) -> uuid.UUID: ...

    @property
    def session_id(self) -> uuid.UUID: ...


async def load_viewer(primary: Reader, claims: SessionOf) -> LoadedViewer:
    """The viewer of a verified access token, checked against the database (one statement): a revoked
    session, a deactivated account or a changed role take effect on the very next request. Always read on
    the primary: a replica a moment behind would let a token work after its logout."""
    row = await primary.fetchrow(_VIEWER_QUERY, {"user_id": claims.user_id, "session_id": claims.session_id})
    if row is None:
        raise Unauthenticated("This session has ended: log in again.", reason="SESSION_REVOKED")
    user, (revoked_at, projects, roles) = UserRecord.from_row(row[:-3]), row[-3:]
    if not user.is_active:  # said first: deactivation also revokes, but this is the reason to show
        raise Unauthenticated("This account is deactivated.", reason="ACCOUNT_DEACTIVATED")
    if revoked_at is not None:
        raise Unauthenticated("This session has ended: log in again.", reason="SESSION_REVOKED")
    viewer = Viewer(user_id=user.id, session_id=claims.session_id, role=user.role)
    held = dict(zip(projects or (), (PROJECT_ROLE[role] for role in roles or ()), strict=True))
    return LoadedViewer(viewer, user, held)
