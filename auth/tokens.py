"""JWT access tokens (HS256, short-lived) and opaque refresh tokens (stored as SHA-256)."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from core.errors import Unauthenticated
from core.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid"]
NOT_YET_VALID_MESSAGE = (
    "The access token is not valid yet: it was issued by a server whose clock is ahead of this one's. "
    "Refresh it; if this persists, the servers' clocks disagree by more than JWT_LEEWAY_SECONDS."
)


@dataclass(frozen=True, slots=True)
class TokenConfig:
    secret: str
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    # How far apart the clocks of the instances that issue and verify tokens may be (JWT_LEEWAY_SECONDS):
    # without it, a token issued by an instance a second ahead is refused by the others for that second.
    leeway: timedelta = timedelta(0)
    # REQUIRE_VERIFIED_EMAIL: no session for an account whose address is not verified.
    require_verified_email: bool = False

    @classmethod
    def of(cls, settings: Settings) -> TokenConfig:
        return cls(
            secret=settings.secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
            leeway=timedelta(seconds=settings.jwt_leeway_seconds),
            require_verified_email=settings.require_verified_email,
        )


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


def bearer_token(authorization: str | None, *, bare: bool = False) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None without one. The one parser of that
    header: the express lane, the view and WebSockets all use it. ``bare``: a token without the scheme is
    taken too (a WebSocket's ``connection_init`` payload, where clients send either)."""
    if not authorization or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if bare and not token:
        return scheme
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the access token as 'Authorization: Bearer <token>'.", reason="TOKEN_INVALID"
        )
    return token.strip()


def decode_access_token(config: TokenConfig, token: str) -> AccessClaims:
    """Verify signature, algorithm (pinned: ``none`` and RS/HS confusion are refused), times (with the
    clock skew ``config.leeway`` allows), issuer and audience. Any failure is ``UNAUTHENTICATED``; the reason
    is kept vague on purpose, except where the client has something to do: refresh an expired token, or a
    token issued by an instance whose clock is ahead of this one's by more than the leeway."""
    try:
        claims, times = _verified(config, token)
        # What depends on the clock is checked on every call, as PyJWT does: a token verified a minute
        # ago may have expired since.
        _check_times(times, time.time(), config.leeway.total_seconds())
        return claims
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The access token has expired: refresh it.", reason="TOKEN_EXPIRED") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated(NOT_YET_VALID_MESSAGE, reason="TOKEN_NOT_YET_VALID") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, OverflowError, OSError):
        # OverflowError and OSError: an expiry no datetime can hold (datetime.fromtimestamp).
        raise Unauthenticated("The access token is invalid.", reason="TOKEN_INVALID") from None


@functools.lru_cache(maxsize=4096)
def _verified(config: TokenConfig, token: str) -> tuple[AccessClaims, dict[str, int]]:
    """A token's claims, once its signature and claims verified (a client sends the same token for up to
    15 minutes: this spares the HMAC and two JSON parses on every request). Failures raise and are not
    cached."""
    payload: dict[str, Any] = jwt.decode(
        token,
        config.secret,
        algorithms=[ALGORITHM],
        audience=config.audience,
        issuer=config.issuer,
        leeway=config.leeway,
        options={"require": REQUIRED_CLAIMS},
    )
    claims = AccessClaims(
        user_id=_key(payload["sub"]),
        session_id=_key(payload["sid"]),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),  # OverflowError beyond year 9999
    )
    # PyJWT has checked these are integers; the time checks are redone on each use.
    return claims, {name: int(payload[name]) for name in ("iat", "nbf", "exp") if name in payload}


def _key(value: object) -> uuid.UUID:
    # uuid.UUID() of a non-string raises AttributeError or TypeError: a claim must be the text of a UUID.
    if not isinstance(value, str):
        raise jwt.InvalidTokenError("a key claim is not a string")
    return uuid.UUID(value)


def _check_times(times: dict[str, int], now: float, leeway: float) -> None:
    """PyJWT's clock checks, with the same leeway: issued and valid from no later than ``now + leeway``,
    expiring after ``now - leeway`` (the issuing instance's clock may be behind or ahead of ours)."""
    if times["iat"] > now + leeway:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in times and times["nbf"] > now + leeway:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    if times["exp"] <= now - leeway:
        raise jwt.ExpiredSignatureError("Signature has expired")


def accepted_until(config: TokenConfig, claims: AccessClaims) -> float:
    """The moment (a POSIX timestamp, on this instance's clock) after which ``decode_access_token`` refuses
    the token: its expiry plus the leeway."""
    return claims.expires_at.timestamp() + config.leeway.total_seconds()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # Refresh tokens carry 256 random bits: a fast hash is enough, a slow one would add nothing.
    return hashlib.sha256(token.encode()).hexdigest()
