"""Per-request dataloaders: every read of a user, a task or an owner's stats by key is batched into one
statement per tick, whatever the size of the query."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Task, User
from resolvers.stats import TaskStatsData, load_stats_by_owner

Row = TypeVar("Row", bound=SQLModel)
Value = TypeVar("Value")


def _loader(
    sessions: async_sessionmaker[AsyncSession],
    fetch: Callable[[AsyncSession, Sequence[uuid.UUID]], Awaitable[list[Value]]],
) -> DataLoader[uuid.UUID, Value]:
    async def batch(keys: list[uuid.UUID]) -> list[Value]:
        async with sessions() as db:
            return await fetch(db, keys)

    return DataLoader(batch, max_batch_size=500)


def _by_id(model: type[Row]) -> Callable[[AsyncSession, Sequence[uuid.UUID]], Awaitable[list[Row | None]]]:
    async def fetch(db: AsyncSession, keys: Sequence[uuid.UUID]) -> list[Row | None]:
        primary_key = model.__table__.c.id  # type: ignore[attr-defined]
        rows = {row.id: row for row in (await db.exec(select(model).where(primary_key.in_(keys)))).all()}  # type: ignore[attr-defined]
        return [rows.get(key) for key in keys]

    return fetch


class Loaders:
    """Created per request (never shared: its cache holds what this viewer's request has read)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.users: DataLoader[uuid.UUID, User | None] = _loader(sessions, _by_id(User))
        self.tasks: DataLoader[uuid.UUID, Task | None] = _loader(sessions, _by_id(Task))
        self.stats: DataLoader[uuid.UUID, TaskStatsData] = _loader(sessions, load_stats_by_owner)

    def forget_owner(self, owner_id: uuid.UUID) -> None:
        """After a write, drop what this request cached about an owner's tasks."""
        self.stats.clear(owner_id)
