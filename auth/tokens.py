"""JWT access tokens (HS256, short-lived) and opaque refresh tokens (stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from core.errors import Unauthenticated

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid"]


@dataclass(frozen=True, slots=True)
class TokenConfig:
    secret: str
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


def issue_access_token(
    config: TokenConfig, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> tuple[str, datetime]:
    expires_at = now + config.access_ttl
    claims = {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(claims, config.secret, algorithm=ALGORITHM), expires_at.replace(microsecond=0)


def decode_access_token(config: TokenConfig, token: str) -> AccessClaims:
    """Verify signature, algorithm (pinned: ``none`` and RS/HS confusion are refused), expiry, issuer and
    audience. Any failure is ``UNAUTHENTICATED``; the reason is kept vague on purpose."""
    try:
        claims = jwt.decode(
            token,
            config.secret,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The access token has expired: refresh it.", reason="TOKEN_EXPIRED") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise Unauthenticated("The access token is invalid.", reason="TOKEN_INVALID") from None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # Refresh tokens carry 256 random bits: a fast hash is enough, a slow one would add nothing.
    return hashlib.sha256(token.encode()).hexdigest()
