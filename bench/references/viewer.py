"""Who asks: an access token verified as taskql verifies it (``auth.tokens``: HS256, the same secret,
issuer, audience and required claims), and the viewer's role read from the database.

What taskql does and this skips: the session check (a revoked session or a deactivated account still
passes here until the token expires), the clock leeway, and errors with taskql's codes and messages."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid"]
ROLE_SQL = "SELECT role FROM users WHERE id = $1"


class Refused(Exception):
    """No viewer: no token, an invalid one, or a user who no longer exists."""


@dataclass(frozen=True, slots=True)
class TokenCheck:
    secret: str
    issuer: str = "taskql"
    audience: str = "taskql"


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: uuid.UUID
    is_admin: bool

    def can_see_owner(self, owner_id: uuid.UUID) -> bool:
        return self.is_admin or owner_id == self.user_id


@functools.lru_cache(maxsize=4096)
def _verified(check: TokenCheck, token: str) -> tuple[uuid.UUID, int]:
    # Cached as taskql caches it (auth.tokens._verified): the HMAC and the JSON once per token.
    claims: dict[str, Any] = jwt.decode(
        token,
        check.secret,
        algorithms=[ALGORITHM],
        audience=check.audience,
        issuer=check.issuer,
        options={"require": REQUIRED_CLAIMS},
    )
    return uuid.UUID(claims["sub"]), int(claims["exp"])


def user_of(check: TokenCheck, authorization: str | None) -> uuid.UUID:
    """The user of an ``Authorization: Bearer <token>`` value, its token verified."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused("send 'Authorization: Bearer <token>'")
    try:
        user_id, expires = _verified(check, token.strip())
    except (jwt.InvalidTokenError, ValueError) as error:
        raise Refused(f"invalid token: {error}") from None
    if expires <= time.time():
        raise Refused("the token has expired")
    return user_id


async def viewer_of(pool: asyncpg.Pool, check: TokenCheck, authorization: str | None) -> Viewer:
    """The viewer: its token verified, its role read (one statement: the role decides what it sees)."""
    user_id = user_of(check, authorization)
    role = await pool.fetchval(ROLE_SQL, user_id)
    if role is None:
        raise Refused("no such user")
    return Viewer(user_id, role == "ADMIN")
