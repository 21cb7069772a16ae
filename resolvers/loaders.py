"""Per-request dataloaders: every read of a user, a task or an owner's stats by key is batched into one
statement per tick, whatever the size of the query."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from core import tracing
from core.reader import Reader
from core.sql import compile_sql
from models import (
    PROJECT_COLUMNS,
    PROJECT_ROLE,
    TASK_COLUMNS,
    USER_COLUMNS,
    ProjectMember,
    ProjectRecord,
    ProjectRole,
    TaskRecord,
    UserRecord,
)
from resolvers.stats import TaskStatsData, load_stats_by_owner, load_stats_by_project

Record = TypeVar("Record", TaskRecord, UserRecord, ProjectRecord)
Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
MAX_BATCH = 500


class ReadsFrom(Protocol):
    """Where a request's reads go now (``resolvers.context.Reads``: the primary, or a replica)."""

    reader: Reader


class PrimedCache(dict[Any, "asyncio.Future[Any]"]):
    """A loader's cache (aiodataloader's ``cache_map``: a key's future) that also holds values primed in
    bulk (``prime_all``), each made into a future only when a load asks for it. A page primes every row
    for the sake of a later load of it in the same request, which rarely comes: a resolved future per row
    was work for nothing (about 1.4 % of a page of 50 tasks, in process). Priming never replaces what is
    there, as ``DataLoader.prime``; clearing a key (``DataLoader.clear``, ``clear_all``) drops its primed
    value too. ``prime_all`` takes the dict it is given."""

    __slots__ = ("primed",)

    def __init__(self) -> None:
        super().__init__()
        self.primed: dict[Any, Any] = {}

    def prime_all(self, values: dict[Any, Any]) -> None:
        # What is here already wins: a primed value here, and a future (``get`` looks at those first).
        values.update(self.primed)
        self.primed = values

    def get(self, key: Any, default: Any = None) -> Any:
        future = super().get(key)
        if future is None and key in self.primed:
            future = asyncio.get_running_loop().create_future()
            future.set_result(self.primed.pop(key))
            self[key] = future
        return default if future is None else future

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self.primed

    def pop(self, key: Any, *default: Any) -> Any:
        self.primed.pop(key, None)
        return super().pop(key, *default)

    def clear(self) -> None:
        self.primed.clear()
        super().clear()


def _loader(
    source: ReadsFrom,
    load: Callable[[Reader, Sequence[uuid.UUID]], Awaitable[list[Value]]],
    name: str,
    cache: PrimedCache | None = None,
) -> DataLoader[uuid.UUID, Value]:
    span_name = f"dataloader {name}"

    async def batch(keys: list[uuid.UUID]) -> list[Value]:
        with tracing.span(span_name, {"taskql.dataloader.batch_size": len(keys)}):
            # The reader is read at dispatch: a mutation moves its reads to the primary.
            return await load(source.reader, keys)

    return DataLoader(batch, max_batch_size=MAX_BATCH, cache_map=cache)


def _by_id(
    record: type[Record], columns: list[Any]
) -> Callable[[Reader, Sequence[uuid.UUID]], Awaitable[list[Record | None]]]:
    id_column = columns[0]
    # Compiled once, and one array parameter rather than IN with one per key: the SQL text is the same for
    # any number of keys, so asyncpg prepares it once per connection instead of once per batch size.
    sql = compile_sql(
        select(*columns).where(id_column == any_(bindparam("keys", type_=ARRAY(id_column.type))))
    )
    from_row = record.from_row

    async def load(reader: Reader, keys: Sequence[uuid.UUID]) -> list[Record | None]:
        found = {row[0]: from_row(row) for row in await reader.fetch(sql, {"keys": keys})}
        return [found.get(key) for key in keys]

    return load


# Made once (with their statements), not per request.
_load_users = _by_id(UserRecord, USER_COLUMNS)
_load_tasks = _by_id(TaskRecord, TASK_COLUMNS)
_load_projects = _by_id(ProjectRecord, PROJECT_COLUMNS)

_MEMBER = ProjectMember.__table__.c  # type: ignore[attr-defined]
_ROLES_SQL = compile_sql(
    select(_MEMBER.user_id, _MEMBER.project_id, _MEMBER.role).where(
        _MEMBER.user_id == any_(bindparam("keys", type_=ARRAY(_MEMBER.user_id.type)))
    )
)
_SHARED = ProjectMember.__table__.alias("shared")  # type: ignore[attr-defined]
# Each user who shares a project with the viewer, with the viewer's highest role among the projects shared.
_CO_MEMBERS_SQL = compile_sql(
    select(_MEMBER.user_id, _SHARED.c.user_id, _MEMBER.role)
    .join_from(ProjectMember.__table__, _SHARED, _SHARED.c.project_id == _MEMBER.project_id)  # type: ignore[attr-defined]
    .where(_MEMBER.user_id == any_(bindparam("keys", type_=ARRAY(_MEMBER.user_id.type))))
)

Roles = dict[uuid.UUID, ProjectRole]  # project id -> role


async def _load_roles(reader: Reader, user_ids: Sequence[uuid.UUID]) -> list[Roles]:
    found: dict[uuid.UUID, Roles] = {user_id: {} for user_id in user_ids}
    for user_id, project_id, role in await reader.fetch(_ROLES_SQL, {"keys": user_ids}):
        found[user_id][project_id] = PROJECT_ROLE[role]
    return [found[user_id] for user_id in user_ids]


async def _load_co_members(reader: Reader, user_ids: Sequence[uuid.UUID]) -> list[Roles]:
    """Per user: everyone sharing a project with them -> the user's own highest role in the projects shared
    (OWNER: the user owns a project the other is in)."""
    found: dict[uuid.UUID, Roles] = {user_id: {} for user_id in user_ids}
    for user_id, other, role in await reader.fetch(_CO_MEMBERS_SQL, {"keys": user_ids}):
        shared, mine = found[user_id], PROJECT_ROLE[role]
        if other == user_id:
            continue
        if other not in shared or mine.at_least(shared[other]):
            shared[other] = mine
    return [found[user_id] for user_id in user_ids]


class Loaders:
    """Created per request (never shared: its cache holds what this viewer's request has read). Each loader
    is made when first used: a WebSocket's context (thousands of them idle per instance) may use none."""

    def __init__(self, source: ReadsFrom) -> None:
        self._source = source

    @functools.cached_property
    def _user_cache(self) -> PrimedCache:
        return PrimedCache()

    @functools.cached_property
    def _task_cache(self) -> PrimedCache:
        return PrimedCache()

    @functools.cached_property
    def users(self) -> DataLoader[uuid.UUID, UserRecord | None]:
        return _loader(self._source, _load_users, "users", self._user_cache)

    @functools.cached_property
    def tasks(self) -> DataLoader[uuid.UUID, TaskRecord | None]:
        return _loader(self._source, _load_tasks, "tasks", self._task_cache)

    def prime_users(self, users: Iterable[UserRecord]) -> None:
        """What ``users.prime`` would do for each, without a future each (see ``PrimedCache``)."""
        self._user_cache.prime_all({user.id: user for user in users})

    def prime_tasks(self, tasks: Iterable[TaskRecord]) -> None:
        """What ``tasks.prime`` would do for each, without a future each (see ``PrimedCache``)."""
        self._task_cache.prime_all({task.id: task for task in tasks})

    @functools.cached_property
    def projects(self) -> DataLoader[uuid.UUID, ProjectRecord | None]:
        return _loader(self._source, _load_projects, "projects")

    @functools.cached_property
    def roles(self) -> DataLoader[uuid.UUID, Roles]:
        """A user's projects and role in each (read once per request: a removal counts at once)."""
        return _loader(self._source, _load_roles, "roles")

    @functools.cached_property
    def co_members(self) -> DataLoader[uuid.UUID, Roles]:
        return _loader(self._source, _load_co_members, "co_members")

    @functools.cached_property
    def project_stats(self) -> DataLoader[uuid.UUID, TaskStatsData]:
        return _loader(self._source, load_stats_by_project, "project_stats")

    @functools.cached_property
    def stats(self) -> DataLoader[uuid.UUID, TaskStatsData]:
        return _loader(self._source, load_stats_by_owner, "stats")

    def forget_owner(self, owner_id: uuid.UUID) -> None:
        """After a write, drop what this request cached about an owner's tasks."""
        if "stats" in self.__dict__:
            self.stats.clear(owner_id)

    def forget_project(self, project_id: uuid.UUID | None) -> None:
        """After a write, drop what this request cached about a project and its tasks."""
        if project_id is None:
            return
        if "project_stats" in self.__dict__:
            self.project_stats.clear(project_id)
        if "projects" in self.__dict__:
            self.projects.clear(project_id)

    def prime_viewer(self, user: UserRecord, roles: Roles) -> None:
        """The viewer's account and project roles, read with their session by this request."""
        self.users.prime(user.id, user)
        self.roles.prime(user.id, roles)

    def forget_memberships(self) -> None:
        """After a membership changed: read the roles again."""
        for name in ("roles", "co_members"):
            self.__dict__.pop(name, None)


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
