"""Single-use tokens mailed to an address: verify it, reset the password, download a data export."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from models.columns import enum_column, timestamp_column, utcnow


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
    DATA_EXPORT = "data_export"


class AccountToken(SQLModel, table=True):
    """Stored as the SHA-256 of its value (which exists only in the mail), bound to the address it was sent
    to: a verification of an address the account no longer has, or a reset mailed to an old address, fails."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        Index("account_tokens_user_id_purpose_idx", "user_id", "purpose"),
        Index("account_tokens_expires_at_idx", "expires_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    purpose: TokenPurpose = Field(
        sa_column=enum_column(TokenPurpose, "token_purpose", TokenPurpose.VERIFY_EMAIL)
    )
    token_hash: str = Field(max_length=64, unique=True)
    email: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column(default_now=False))
    used_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
