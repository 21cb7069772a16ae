"""Login sessions and their refresh tokens. A session is a refresh-token family."""

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from models.columns import timestamp_column, utcnow


class AuthSession(SQLModel, table=True):
    """One login. Revoking it ends its refresh tokens and its access tokens (they carry its id)."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("auth_sessions_user_id_idx", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # Moved on every refresh (access tokens are checked without a write): how recently it was in use.
    last_used_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    user_agent: str | None = Field(default=None, max_length=300)
    revoked_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored as the SHA-256 of its value. Each one may be used once."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("refresh_tokens_session_id_idx", "session_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False)
    )
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column(default_now=False))
    used_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
