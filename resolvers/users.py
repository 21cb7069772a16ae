"""Users: register, log in, refresh, log out, read, list (admins), and change role or activation (admins)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Text, bindparam, func, or_
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth import sessions as auth_sessions
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.sessions import TokenPair
from core import cache_tags
from core.errors import BadUserInput, EmailNotVerified, NotFound, Unauthenticated
from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import USER_COLUMNS, Role, User, UserRecord
from resolvers import jobs, webhooks
from resolvers.inputs import Credentials, Registration, UserSearch, validate
from resolvers.jobs import MailJob
from resolvers.pagination import (
    LIMIT,
    Listing,
    PageRequest,
    SortKey,
    from_iso,
    iso,
    keyset,
    make_page,
    page_clauses,
)
from resolvers.visibility import visible_user

if TYPE_CHECKING:
    from resolvers.context import Context

USER_ORDER = SortKey(
    "USER_CREATED_AT", col(User.created_at), lambda user: user.created_at, from_json=from_iso, to_json=iso
)
INVALID_CREDENTIALS = "Invalid email or password."


MAX_TOKEN_LENGTH = 512


async def create_user(
    db: AsyncSession, registration: Registration, password_hash: str, role: Role = Role.USER
) -> User:
    """Insert a user inside the caller's transaction; a taken email is ``BAD_USER_INPUT``. The password is
    hashed before the transaction opens: argon2 must not hold a pooled connection."""
    user = User(email=registration.email, name=registration.name, password_hash=password_hash, role=role)
    try:
        async with db.begin_nested():
            db.add(user)
    except IntegrityError:
        raise BadUserInput(
            "input.email: an account with this email already exists.", field="input.email"
        ) from None
    return user


async def register(ctx: Context, *, values: Mapping[str, Any]) -> TokenPair:
    registration = validate(Registration, values, argument="input")
    password_hash = await hash_password(registration.password)
    if ctx.tokens.require_verified_email:
        return await _register_unverified(ctx, registration, password_hash)
    async with ctx.transaction() as db:
        user = await create_user(db, registration, password_hash)
        pair = await auth_sessions.start_session(db, ctx.tokens, user, ctx.now(), ctx.origin.user_agent)
        await ctx.record(db, cache_tags.user_changed(user.id))
        await jobs.enqueue(db, MailJob("verify_email", to=user.email, user_id=str(user.id)))
    return pair


async def _register_unverified(ctx: Context, registration: Registration, password_hash: str) -> TokenPair:
    """REQUIRE_VERIFIED_EMAIL: no session until the address is verified, and the same answer whether or not
    it has an account (its owner is mailed instead): register must not tell who has an account."""
    async with ctx.transaction() as db:
        try:
            user = await create_user(db, registration, password_hash)
        except BadUserInput:
            await jobs.enqueue(db, MailJob("address_in_use", to=registration.email))
        else:
            await ctx.record(db, cache_tags.user_changed(user.id))
            await jobs.enqueue(db, MailJob("verify_email", to=user.email, user_id=str(user.id)))
    raise EmailNotVerified(
        f"We sent a mail to {registration.email}: follow its link to verify the address, then log in.",
        email=registration.email,
    )


async def login(ctx: Context, *, values: Mapping[str, Any]) -> TokenPair:
    credentials = validate(Credentials, values, argument="input")
    budget = ctx.hooks.budget
    if budget is not None:  # every attempt counts (each aliased login of a document too), before any work
        await budget.attempt("login", client=ctx.origin.client, account=credentials.email)
    async with ctx.writes.sessions() as db:
        user = (await db.exec(select(User).where(func.lower(col(User.email)) == credentials.email))).first()
    # Verified outside any transaction. Unknown emails verify a dummy hash: the answer and its timing do
    # not tell whether an account exists.
    if not await verify_password(user.password_hash if user else None, credentials.password):
        raise Unauthenticated(INVALID_CREDENTIALS, reason="INVALID_CREDENTIALS")
    assert user is not None
    if not user.is_active:
        raise Unauthenticated("This account is deactivated.", reason="ACCOUNT_DEACTIVATED")
    verified_hash = user.password_hash
    new_hash = await hash_password(credentials.password) if needs_rehash(verified_hash) else None
    async with ctx.transaction() as db:
        # Read again, locked against a concurrent deactivation (which locks the row FOR UPDATE): the account
        # must still be active, with the password just verified, when its session is opened.
        current = await db.get(User, user.id, with_for_update={"read": True})
        if current is None or current.password_hash != verified_hash:
            raise Unauthenticated(INVALID_CREDENTIALS, reason="INVALID_CREDENTIALS")
        if not current.is_active:
            raise Unauthenticated("This account is deactivated.", reason="ACCOUNT_DEACTIVATED")
        unverified = ctx.tokens.require_verified_email and current.email_verified_at is None
        if not unverified:
            if new_hash is not None:
                current.password_hash = new_hash
            return await auth_sessions.start_session(
                db, ctx.tokens, current, ctx.now(), ctx.origin.user_agent
            )
    # The password was right: a new link goes to the address (counted like every mail asked for).
    if budget is not None:
        await budget.attempt("account_mail", client=ctx.origin.client, account=str(current.id))
    async with ctx.transaction() as db:
        await jobs.enqueue(db, MailJob("verify_email", to=current.email, user_id=str(current.id)))
    raise EmailNotVerified(
        "Verify your address first: we sent a new link to it. Follow it, then log in.", email=current.email
    )


async def refresh(ctx: Context, *, token: str) -> TokenPair:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("The refresh token is invalid.", reason="REFRESH_TOKEN_INVALID")
    budget = ctx.hooks.budget
    if budget is not None:
        await budget.attempt("refresh", client=ctx.origin.client)

    async def per_account(user_id: uuid.UUID) -> None:
        if budget is not None:
            await budget.attempt("refresh", account=str(user_id))

    async def revoked(db: AsyncSession, session_id: uuid.UUID) -> None:
        await ctx.record(db, [cache_tags.session(session_id)])

    return await auth_sessions.rotate(ctx.transaction, ctx.tokens, token, ctx.now(), per_account, revoked)


async def logout(ctx: Context, *, refresh_token: str | None, everywhere: bool) -> bool:
    """End the session of ``refresh_token`` (or of the access token); with ``everywhere``, every session of
    the viewer, which then needs the account's own access token."""
    now = ctx.now()
    viewer = ctx.require_viewer() if everywhere or refresh_token is None else ctx.who.viewer
    async with ctx.transaction() as db:
        if refresh_token is not None:
            session = None
            if len(refresh_token) <= MAX_TOKEN_LENGTH:
                session = await auth_sessions.live_session_of(db, refresh_token, now)
            if session is None or (viewer is not None and session.user_id != viewer.user_id):
                raise Unauthenticated("The refresh token is invalid.", reason="REFRESH_TOKEN_INVALID")
            session_id = session.id
        else:
            assert viewer is not None
            session_id = viewer.session_id
        if everywhere:
            assert viewer is not None
            await auth_sessions.revoke_all_sessions(db, viewer.user_id, now)
        else:
            await auth_sessions.revoke_session(db, session_id, now)
        # Every session of a user depends on the user's tag, so bumping it ends them all at once.
        tag = cache_tags.user(viewer.user_id) if everywhere and viewer else cache_tags.session(session_id)
        await ctx.record(db, [tag])
    return True


async def me(ctx: Context) -> UserRecord | None:
    viewer, error = ctx.who.viewer, ctx.who.auth_error
    if viewer is None:
        if error is not None:
            raise error
        return None
    return await ctx.loaders.users.load(viewer.user_id)


async def get_user(ctx: Context, *, user_id: uuid.UUID) -> UserRecord:
    return await visible_user(ctx, ctx.require_viewer(), user_id)


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


# Each filter with a parameter of the same name: the SQL text depends only on which are present.
_PREFIX = bindparam("search", type_=Text())
USER_FILTERS: dict[str, Any] = {
    "role": col(User.role) == bindparam("role", type_=User.__table__.c.role.type),  # type: ignore[attr-defined]
    "is_active": col(User.is_active) == bindparam("is_active", type_=Boolean()),
    "search": or_(func.lower(col(User.email)).like(_PREFIX), func.lower(col(User.name)).like(_PREFIX)),
}


@functools.cache  # bounded: 2^3 filter sets x 2 directions x 2
def _page_sql(filters: tuple[str, ...], walk_descending: bool, cursor: bool) -> Sql:
    where, order_by = page_clauses(USER_ORDER, col(User.id), walk_descending=walk_descending, cursor=cursor)
    statement = (
        select_columns(*USER_COLUMNS)
        .where(*(USER_FILTERS[name] for name in filters), *where)
        .order_by(*order_by)
        .limit(LIMIT)
    )
    return compile_sql(statement, constants=False)


@functools.cache
def _count_sql(filters: tuple[str, ...]) -> Sql:
    statement = (
        select_columns(func.count()).select_from(User).where(*(USER_FILTERS[name] for name in filters))
    )
    return compile_sql(statement, constants=False)


async def list_users(ctx: Context, *, page: PageRequest, filters: Mapping[str, Any]) -> Listing[UserRecord]:
    ctx.require_viewer(Role.ADMIN)
    criteria = validate(UserSearch, filters, argument="filter")
    values: dict[str, Any] = {}
    if criteria.role is not None:
        values["role"] = criteria.role
    if criteria.is_active is not None:
        values["is_active"] = criteria.is_active
    if criteria.search is not None:
        values["search"] = _like_prefix(criteria.search)
    window = keyset(USER_ORDER, page, descending=False)
    present = tuple(name for name in USER_FILTERS if name in values)
    sql = _page_sql(present, window.walk_descending, window.cursor is not None)
    rows = [UserRecord.from_row(row) for row in await ctx.reader.fetch(sql, {**values, **window.params()})]
    ctx.loaders.prime_users(rows)
    count = _count_sql(present)
    return Listing(make_page(rows, USER_ORDER, page, window), lambda: ctx.reader.fetchval(count, values))


async def _change_user(ctx: Context, user_id: uuid.UUID, field: str, **changes: Any) -> UserRecord:
    viewer = ctx.require_viewer(Role.ADMIN)
    if user_id == viewer.user_id:
        raise BadUserInput(f"{field}: admins cannot change their own role or activation.", field=field)
    async with ctx.transaction() as db:
        user = await db.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound.for_id("User", encode_id("User", user_id))
        for name, value in changes.items():
            setattr(user, name, value)
        user.updated_at = ctx.now()
        db.add(user)
        if not user.is_active:
            # Deactivation ends every session: reactivating later must not revive stolen tokens.
            await auth_sessions.revoke_all_sessions(db, user_id, user.updated_at)
        elif changes.get("is_active"):  # what its webhooks held back while it was deactivated goes now
            await webhooks.resume_owner(db, user_id)
        await ctx.record(db, cache_tags.user_changed(user_id))
    record = UserRecord.of(user)
    ctx.loaders.users.clear(user_id).prime(user_id, record)
    return record


async def set_user_role(ctx: Context, *, user_id: uuid.UUID, role: Role) -> UserRecord:
    return await _change_user(ctx, user_id, "userId", role=role)


async def set_user_active(ctx: Context, *, user_id: uuid.UUID, active: bool) -> UserRecord:
    return await _change_user(ctx, user_id, "userId", is_active=active)
