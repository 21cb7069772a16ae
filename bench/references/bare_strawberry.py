"""Bare Strawberry: what a competent developer writes with the same libraries for taskql's five read
documents (``TaskPage``, ``TasksWithOwners``, ``TaskStats``, ``Task``, ``Node``): Strawberry with its
parser and validation caches, asyncpg, per-request aiodataloaders for owners and their stats, the types
and fields of taskql's SDL that these documents use, and the same SQL (``bench.references.sql``).

What taskql does and this skips: the session check (the viewer's role is read, ``bench.references.viewer``),
the @auth directive machinery (a resolver checks the viewer itself), the response cache, rate and cost
limits, persisted queries, the access log, tracing and metrics, taskql's error codes and messages.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import asyncpg
import strawberry
from aiodataloader import DataLoader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types.scalar import ScalarDefinition

from bench.references import serving
from bench.references.encoding import decode_id, decode_task_cursor, encode_id, task_cursor
from bench.references.serving import ReferenceSettings
from bench.references.sql import (
    GLOBAL_STATS_SQL,
    PAGE_SQL,
    STATS_ARGS,
    STATS_BY_OWNER_SQL,
    TASKS_SQL,
    USERS_SQL,
)
from bench.references.viewer import Refused, Viewer, viewer_of


@strawberry.enum
class TaskStatus(Enum):
    TODO = "TODO"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


@strawberry.enum
class TaskPriority(Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


def _serialize(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


DATETIME: ScalarDefinition = strawberry.scalar(
    name="DateTime", serialize=_serialize, parse_value=datetime.fromisoformat
)


@dataclass
class Context:
    pool: asyncpg.Pool
    viewer: Viewer | None
    users: DataLoader[uuid.UUID, Row | None]
    stats: DataLoader[uuid.UUID, TaskStats]

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise PermissionError("You must be logged in.")
        return self.viewer


Row = Sequence[Any]
Info = strawberry.Info[Context, None]


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class StatusCount:
    status: TaskStatus
    count: int


@strawberry.type
class PriorityCount:
    priority: TaskPriority
    count: int


@strawberry.type
class TaskStats:
    total: int
    by_status: list[StatusCount]
    by_priority: list[PriorityCount]
    overdue: int
    completion_rate: float

    @classmethod
    def from_row(cls, row: Row | None) -> TaskStats:
        """From one row of the statistics statement (None: an owner without tasks)."""
        counts = row if row is not None else (0,) * 8
        by_status = dict(zip(TaskStatus, counts[:3], strict=True))
        by_priority = dict(zip(TaskPriority, counts[3:7], strict=True))
        overdue = counts[7]
        total = sum(by_status.values())
        return cls(
            total=total,
            by_status=[StatusCount(status=s, count=n) for s, n in by_status.items()],
            by_priority=[PriorityCount(priority=p, count=n) for p, n in by_priority.items()],
            overdue=overdue,
            completion_rate=by_status[TaskStatus.DONE] / total if total else 0.0,
        )


@strawberry.type
class User(Node):
    email: str
    name: str
    key: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def task_stats(self, info: Info) -> TaskStats:
        return await info.context.stats.load(self.key)

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(id=strawberry.ID(encode_id("User", row[0])), email=row[1], name=row[2], key=row[0])


@strawberry.type
class Task(Node):
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    owner_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def owner(self, info: Info) -> User:
        row = await info.context.users.load(self.owner_id)
        assert row is not None, "a task's owner exists (foreign key)"
        return User.from_row(row)

    @classmethod
    def from_row(cls, row: Row) -> Task:
        return cls(
            id=strawberry.ID(encode_id("Task", row[0])),
            title=row[2],
            description=row[3],
            status=TaskStatus(row[4]),
            priority=TaskPriority(row[5]),
            due_at=row[6],
            tags=row[7],
            created_at=row[8],
            updated_at=row[9],
            completed_at=row[10],
            owner_id=row[1],
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class TaskEdge:
    cursor: str
    node: Task


@strawberry.type
class TaskConnection:
    edges: list[TaskEdge]
    page_info: PageInfo


def _key(global_id: str, type_name: str) -> uuid.UUID | None:
    decoded = decode_id(global_id)
    if decoded is None:
        raise ValueError(f"{global_id!r} is not a valid ID.")
    return decoded[1] if decoded[0] == type_name else None


async def _task(context: Context, key: uuid.UUID | None) -> Task | None:
    viewer = context.require_viewer()
    rows = await context.pool.fetch(TASKS_SQL, [key]) if key is not None else []
    return Task.from_row(rows[0]) if rows and viewer.can_see_owner(rows[0][1]) else None


@strawberry.type
class Query:
    @strawberry.field
    async def tasks(self, info: Info, first: int | None = None, after: str | None = None) -> TaskConnection:
        viewer = info.context.require_viewer()
        size = 20 if first is None else first
        if not 1 <= size <= 100:
            raise ValueError("first must be between 1 and 100.")
        args: list[Any] = [] if viewer.is_admin else [viewer.user_id]
        if after is not None:
            position = decode_task_cursor(after)
            if position is None:
                raise ValueError("after is not a cursor of this list.")
            args.extend(position)
        rows = await info.context.pool.fetch(PAGE_SQL[viewer.is_admin, after is not None], *args, size + 1)
        edges = [TaskEdge(cursor=task_cursor(row[8], row[0]), node=Task.from_row(row)) for row in rows[:size]]
        end = edges[-1].cursor if edges else None
        return TaskConnection(edges=edges, page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=end))

    @strawberry.field
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        return await _task(info.context, _key(id, "Task"))

    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        decoded = decode_id(id)
        if decoded is None:
            raise ValueError(f"{id!r} is not a valid ID.")
        type_name, key = decoded
        if type_name == "Task":
            return await _task(info.context, key)
        viewer = info.context.require_viewer()
        if type_name != "User" or not viewer.can_see_owner(key):
            return None
        row = await info.context.users.load(key)
        return User.from_row(row) if row is not None else None

    @strawberry.field
    async def task_stats(self, info: Info, owner_id: strawberry.ID | None = None) -> TaskStats:
        viewer = info.context.require_viewer()
        if owner_id is None and viewer.is_admin:
            return TaskStats.from_row(await info.context.pool.fetchrow(GLOBAL_STATS_SQL, *STATS_ARGS))
        owner = viewer.user_id if owner_id is None else _key(owner_id, "User")
        if owner is None or not viewer.can_see_owner(owner) or await info.context.users.load(owner) is None:
            raise LookupError(f"No User with id {owner_id!r}.")
        return await info.context.stats.load(owner)


def _loaders(
    pool: asyncpg.Pool,
) -> tuple[DataLoader[uuid.UUID, Row | None], DataLoader[uuid.UUID, TaskStats]]:
    async def users(keys: list[uuid.UUID]) -> list[Row | None]:
        found = {row[0]: row for row in await pool.fetch(USERS_SQL, keys)}
        return [found.get(key) for key in keys]

    async def stats(keys: list[uuid.UUID]) -> list[TaskStats]:
        rows = {row[-1]: row for row in await pool.fetch(STATS_BY_OWNER_SQL, *STATS_ARGS, keys)}
        return [TaskStats.from_row(rows.get(key)) for key in keys]

    return DataLoader(users), DataLoader(stats)


class BareGraphQL(GraphQL[Context, None]):
    def __init__(
        self, schema: strawberry.Schema, settings: ReferenceSettings, pools: list[asyncpg.Pool]
    ) -> None:
        super().__init__(schema, graphql_ide=None)
        self.settings, self.pools = settings, pools

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        pool = self.pools[0]
        try:
            viewer: Viewer | None = await viewer_of(
                pool, self.settings.tokens, request.headers.get("authorization")
            )
        except Refused:
            viewer = None
        users, stats = _loaders(pool)
        return Context(pool, viewer, users, stats)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        types=[Task, User],
        extensions=[ParserCache, ValidationCache],
        config=StrawberryConfig(scalar_map={datetime: DATETIME}),
    )


def create_app(settings: ReferenceSettings) -> Starlette:
    pools: list[asyncpg.Pool] = []
    graphql = BareGraphQL(build_schema(), settings, pools)

    async def ready(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pools.append(await serving.create_pool(settings))
        try:
            yield
        finally:
            await pools.pop().close()

    return Starlette(routes=[Route("/graphql", graphql), Route("/readyz", ready)], lifespan=lifespan)


if __name__ == "__main__":
    serving.main("bare_strawberry", create_app)
