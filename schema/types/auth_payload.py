"""What logging in (``register``, ``login``, ``refreshToken``) answers: the session's tokens and its user."""

from __future__ import annotations

from datetime import datetime

import strawberry

from auth.sessions import TokenPair
from models import UserRecord
from schema.types.user import User


@strawberry.type(description="Tokens for a session, and its user.")
class AuthPayload:
    access_token: str = strawberry.field(description="JWT for 'Authorization: Bearer <token>'; short-lived.")
    refresh_token: str = strawberry.field(
        description="Opaque token for refreshToken; single use: every refresh returns a new one."
    )
    expires_at: datetime = strawberry.field(description="When the access token expires.")
    user: User = strawberry.field(
        description="The logged-in user. Fields that need a viewer (tasks, taskStats) answer UNAUTHENTICATED "
        "here, as this request carried no access token: query them with the new one."
    )

    @classmethod
    def from_pair(cls, pair: TokenPair) -> AuthPayload:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_at=pair.expires_at,
            user=User.from_model(UserRecord.of(pair.user), trusted=True),
        )
