"""Idempotency keys: what became of the mutations sent with an ``Idempotency-Key``
(taskql.policy.idempotency)."""

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, SmallInteger, Text
from sqlmodel import Field, SQLModel

from models.columns import timestamp_column, utcnow


class IdempotencyKey(SQLModel, table=True):
    """One key of one viewer: claimed by the request that runs the mutation, then its answer.

    A row without ``completed_at`` is a request still running, or one whose instance died before it
    answered (``claimed_at`` tells them apart, see taskql.policy.idempotency). ``body`` is the answer
    sealed with
    a key derived from the request itself and the server's secret: the table alone reveals none of it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idempotency_keys_created_at_idx", "created_at"),)

    # "user:<id>" or "client:<address>": a key is only ever looked up in its viewer's scope.
    viewer_key: str = Field(sa_column=Column(Text, primary_key=True))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    request_hash: str = Field(max_length=64)  # HMAC-SHA256 (hex) of the request's document and variables
    claim: uuid.UUID  # the request that holds the key: only it stores the outcome
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    claimed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    completed_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
    status: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))
    content_type: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
