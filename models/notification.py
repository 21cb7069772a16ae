"""What a user is told (the in-app inbox), and how they want to be told."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from models.columns import enum_column, timestamp_column, utcnow
from models.enums import NotificationKind

DEFAULT_CHANNELS = ["EMAIL", "IN_APP"]
DEFAULT_REMIND_BEFORE_MINUTES = 60


class NotificationSettings(SQLModel, table=True):
    """A user's choices; a user without a row has the defaults."""

    __tablename__ = "notification_settings"

    user_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    remind_before_minutes: int = Field(
        default=DEFAULT_REMIND_BEFORE_MINUTES, sa_column_kwargs={"server_default": text("60")}
    )
    channels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS),
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{EMAIL,IN_APP}'::text[]")),
    )
    daily_digest: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": text("'UTC'")})
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # The number of the user's last notification: taking the next one locks this row, so a user's
    # notifications are numbered in the order their transactions commit (the live inbox's cursor).
    last_notification_seq: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class Notification(SQLModel, table=True):
    """One entry of a user's inbox. ``dedupe_key`` names what it is about (a task's reminder for one due
    date, a day's digest): a job that runs twice (its worker died) inserts it once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key", name="notifications_user_id_dedupe_key_key"),
        Index("notifications_user_id_created_at_idx", "user_id", "created_at", "id"),
        Index("notifications_unread_idx", "user_id", postgresql_where=text("read_at IS NULL")),
        Index("notifications_user_id_seq_key", "user_id", "seq", unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    kind: NotificationKind = Field(
        sa_column=enum_column(NotificationKind, "notification_kind", NotificationKind.TASK_DUE_SOON)
    )
    title: str = Field(max_length=300)
    body: str = Field(sa_column=Column(Text, nullable=False))
    task_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True)
    )
    dedupe_key: str = Field(max_length=200)
    # 1, 2, 3, ... per user, in commit order (see NotificationSettings.last_notification_seq).
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    read_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
