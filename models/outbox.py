"""The outbox: what each committed write implies outside PostgreSQL, written in the write's own transaction.

A row holds the write's side effects (``effects``: the cache tags it changed, the task events it tells, and
which of its tags end sessions or change rights), so that they are published even if the process dies after
COMMIT or Redis is away: the request publishes its rows at once, and a relay publishes whatever is still
unpublished (``taskql.outbox.relay``). ``position`` is the row's place among the published task events (the
Redis stream id it was given, milliseconds and sequence): the durable cursor of ``taskEvents``, from which a
subscriber resumes even when Redis no longer holds it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, Table, bindparam, text
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
BACKLOG_LIMIT = 100  # older unpublished rows a write publishes before its own; past that, the relay does

# The row, and the rows before it that are still unpublished (in id order, at most BACKLOG_LIMIT + 1): a
# write's events must not overtake those of writes committed before it whose publication is pending (Redis
# was away, their process died). Read in the same statement: no round trip more.
_APPEND = text(
    """
WITH added AS (INSERT INTO outbox (effects) VALUES (CAST(:effects AS jsonb)) RETURNING id)
SELECT added.id, (
  SELECT coalesce(json_agg(json_build_array(older.id, older.effects) ORDER BY older.id), '[]')
  FROM (SELECT id, effects FROM outbox WHERE published_at IS NULL AND id < added.id
        ORDER BY id LIMIT :limit) AS older
) FROM added
"""
).bindparams(bindparam("effects"), bindparam("limit", value=BACKLOG_LIMIT + 1))


async def append(db: AsyncSession, effects: dict[str, Any]) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
    """Insert one row in the caller's transaction; its id, and the older rows still unpublished (id,
    effects), oldest first."""
    connection = await db.connection()  # the session's transaction
    result = await connection.execute(_APPEND, {"effects": orjson.dumps(effects).decode()})
    row_id, older = result.one()
    pending = json.loads(older) if isinstance(older, str) else older
    return int(row_id), [(int(older_id), dict(older_effects)) for older_id, older_effects in pending]
