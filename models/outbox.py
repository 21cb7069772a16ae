"""The outbox: what each committed write implies outside PostgreSQL, written in the write's own transaction.

A row holds the write's side effects (``effects``: the cache tags it changed, the task events it tells, and
which of its tags end sessions or change rights), so that they are published even if the process dies after
COMMIT or Redis is away: the request publishes its rows at once, and a relay publishes whatever is still
unpublished (``taskql.outbox``). ``position`` is the row's place among the published task events (the
Redis stream id it was given, milliseconds and sequence): the durable cursor of ``taskEvents``, from which a
subscriber resumes even when Redis no longer holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Table, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from models.columns import timestamp_column, utcnow


class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's scan: what is still unpublished, in id order.
        Index("outbox_unpublished_idx", "id", postgresql_where=text("published_at IS NULL")),
        # Resuming subscribers and pruning: events by position.
        Index(
            "outbox_position_idx",
            "position_ms",
            "position_seq",
            postgresql_where=text("position_ms IS NOT NULL"),
        ),
        Index("outbox_published_at_idx", "published_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # {"tags": [...], "control": [...], "events": {audience: payload}} (see resolvers.writes)
    effects: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    published_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
    position_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    position_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]


async def append(db: AsyncSession, effects: dict[str, Any]) -> int:
    """Insert one row in the caller's transaction; its id."""
    result = await db.exec(insert(OUTBOX).values(effects=effects).returning(OUTBOX.c.id))
    return int(result.scalar_one())
