"""Webhooks: a user's endpoints, and each event's delivery to one of them."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from models.columns import timestamp_column, utcnow


class Webhook(SQLModel, table=True):
    """An endpoint. Its signing secret is not stored: it is derived from the server's secret and
    ``secret_salt`` (``taskql.webhooks.secrets``), so a copy of the database alone signs nothing. After a
    rotation, the previous salt signs too until ``rotated_at`` + a day, so receivers can switch over."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("webhooks_owner_id_created_at_idx", "owner_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    url: str = Field(max_length=2048)
    events: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = Field(default=True)
    secret_salt: str = Field(max_length=64)
    previous_secret_salt: str | None = Field(default=None, max_length=64)
    rotated_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
    consecutive_failures: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    disabled_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint, and how its delivery went: every attempt updates the row. ``message_id``
    is the ``webhook-id`` a receiver sees, the same at every attempt (and for one event, at every endpoint);
    ``seq`` orders an endpoint's deliveries as their writes committed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "message_id", name="webhook_deliveries_webhook_id_message_id_key"),
        # The pump: an endpoint's undelivered events, in order.
        Index(
            "webhook_deliveries_undelivered_idx",
            "webhook_id",
            "seq",
            postgresql_where=text("status IN ('pending', 'retrying')"),
        ),
        # The log: newest first.
        Index("webhook_deliveries_webhook_id_seq_idx", "webhook_id", "seq"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), nullable=False))
    webhook_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False)
    )
    message_id: uuid.UUID
    event_type: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempt: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    response_status: int | None = None
    duration_ms: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    attempted_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
