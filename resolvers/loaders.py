"""Per-request dataloaders: every read of a user, a task or an owner's stats by key is batched into one
statement per tick, whatever the size of the query."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from core import tracing
from models import TASK_COLUMNS, USER_COLUMNS, TaskRecord, UserRecord
from resolvers.reads import fetch
from resolvers.stats import TaskStatsData, load_stats_by_owner

Record = TypeVar("Record", TaskRecord, UserRecord)
Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
MAX_BATCH = 500


def _loader(
    engine: AsyncEngine,
    load: Callable[[AsyncEngine, Sequence[uuid.UUID]], Awaitable[list[Value]]],
    name: str,
) -> DataLoader[uuid.UUID, Value]:
    span_name = f"dataloader {name}"

    async def batch(keys: list[uuid.UUID]) -> list[Value]:
        with tracing.span(span_name, {"taskql.dataloader.batch_size": len(keys)}):
            return await load(engine, keys)

    return DataLoader(batch, max_batch_size=MAX_BATCH)


def _by_id(
    record: type[Record], columns: list[Any]
) -> Callable[[AsyncEngine, Sequence[uuid.UUID]], Awaitable[list[Record | None]]]:
    id_column = columns[0]
    # Built once, and one array parameter rather than IN with one per key: the SQL text is the same for any
    # number of keys, so the driver prepares it once per connection instead of once per batch size.
    statement = select(*columns).where(id_column == any_(bindparam("keys", type_=ARRAY(id_column.type))))

    async def load(engine: AsyncEngine, keys: Sequence[uuid.UUID]) -> list[Record | None]:
        found = {row[0]: record(*row) for row in await fetch(engine, statement, {"keys": list(keys)})}
        return [found.get(key) for key in keys]

    return load


# Made once (with their statements), not per request.
_load_users = _by_id(UserRecord, USER_COLUMNS)
_load_tasks = _by_id(TaskRecord, TASK_COLUMNS)


class Loaders:
    """Created per request (never shared: its cache holds what this viewer's request has read). Each loader
    is made when first used: a WebSocket's context (thousands of them idle per instance) may use none."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @functools.cached_property
    def users(self) -> DataLoader[uuid.UUID, UserRecord | None]:
        return _loader(self._engine, _load_users, "users")

    @functools.cached_property
    def tasks(self) -> DataLoader[uuid.UUID, TaskRecord | None]:
        return _loader(self._engine, _load_tasks, "tasks")

    @functools.cached_property
    def stats(self) -> DataLoader[uuid.UUID, TaskStatsData]:
        return _loader(self._engine, load_stats_by_owner, "stats")

    def forget_owner(self, owner_id: uuid.UUID) -> None:
        """After a write, drop what this request cached about an owner's tasks."""
        if "stats" in self.__dict__:
            self.stats.clear(owner_id)


async def prefetch(loader: DataLoader[Key, Value], keys: Iterable[Key]) -> None:
    """Load ``keys`` now, those not cached yet in one batch, so that the loads that follow find their
    values ready. Cheaper than ``load_many`` (no gather over one future per key); a failure stays with the
    loads of those keys, exactly as without the prefetch."""
    pending = [future for future in map(loader.load, dict.fromkeys(keys)) if not future.done()]
    if not pending:
        return
    try:
        await pending[-1]  # one batch answers them all (a larger set just completes a little later)
    except Exception:
        for future in pending:  # marked as retrieved here; each load still raises it
            if future.done() and not future.cancelled():
                future.exception()
