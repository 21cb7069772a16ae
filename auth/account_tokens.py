"""Tokens mailed to an address (verify it, reset the password, download an export): 256 random bits, stored as
their SHA-256, single use, expiring, and bound to the address they were sent to.

Issued by the worker when it sends the mail (the value never rests in PostgreSQL, not even in the job's
payload). Using one uses every other token of its purpose for that account too: the newest mail does not
leave older links working.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import hash_refresh_token
from core.errors import BadUserInput
from models import AccountToken, TokenPurpose, User

LIFETIMES = {
    TokenPurpose.VERIFY_EMAIL: timedelta(hours=24),
    TokenPurpose.RESET_PASSWORD: timedelta(minutes=30),
    TokenPurpose.DATA_EXPORT: timedelta(hours=24),
}
MAX_TOKEN_LENGTH = 128
# One answer for a token that is unknown, used, expired, or for an address the account no longer has: the
# holder learns nothing but that this link no longer works.
INVALID = {
    TokenPurpose.VERIFY_EMAIL: "This verification link is invalid, used or expired: ask for a new one.",
    TokenPurpose.RESET_PASSWORD: "This password reset link is invalid, used or expired: ask for a new one.",
    TokenPurpose.DATA_EXPORT: "This export link is invalid, used or expired: ask for a new export.",
}


async def issue(
    db: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose, email: str, now: datetime
) -> tuple[str, datetime]:
    """A new token for ``user_id`` bound to ``email``, in the caller's transaction; its value and expiry."""
    value = secrets.token_urlsafe(32)
    expires_at = now + LIFETIMES[purpose]
    db.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_refresh_token(value),
            email=email,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await db.flush()
    return value, expires_at


async def use(
    db: AsyncSession, value: str, purpose: TokenPurpose, now: datetime, *, field: str = "token"
) -> tuple[AccountToken, User]:
    """Spend a token (and its purpose's other tokens for the account) in the caller's transaction: the token
    and its user, locked. Unknown, used, expired, or bound to an address that is neither the account's nor
    its pending one: ``BAD_USER_INPUT`` with ``reason`` ``TOKEN_INVALID``, nothing changed."""
    invalid = BadUserInput(f"{field}: {INVALID[purpose]}", field=field, reason="TOKEN_INVALID")
    if not value or len(value) > MAX_TOKEN_LENGTH:
        raise invalid
    row = (
        await db.exec(
            select(AccountToken, User)
            .join(User, col(User.id) == col(AccountToken.user_id))
            .where(AccountToken.token_hash == hash_refresh_token(value), AccountToken.purpose == purpose)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise invalid
    token, user = row
    bound = token.email == user.email or purpose is TokenPurpose.VERIFY_EMAIL
    if token.used_at is not None or token.expires_at <= now or not user.is_active or not bound:
        raise invalid
    await db.exec(
        update(AccountToken)
        .where(
            col(AccountToken.user_id) == user.id,
            col(AccountToken.purpose) == purpose,
            col(AccountToken.used_at).is_(None),
        )
        .values(used_at=now)
    )
    return token, user
