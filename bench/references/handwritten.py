"""The hand-written limit: taskql's five read documents (``TaskPage``, ``TasksWithOwners``, ``TaskStats``,
``Task``, ``Node``) answered by Starlette, asyncpg and orjson, with no GraphQL: the same SQL statements
taskql sends (their text copied from what ``core.sql`` compiles), the same response bytes (IDs and cursors
encoded as ``core.ids`` and ``resolvers.pagination`` encode them, keys in the documents' order).

A request is the POST body a client sends taskql (``{"query": ..., "variables": ...}``); the document is
picked by its exact text, or by ``operationName`` when the text is that document's. What taskql does and
this skips:

- the session check (``auth.sessions.load_viewer``: user and session in one statement); this reads only the
  viewer's role (``bench.references.viewer``), which decides what the viewer sees;
- GraphQL itself: parsing, validation, any document but these five, any variables but theirs;
- the response cache, rate limits and cost limits, the access log, tracing, metrics, persisted queries;
- errors as taskql words them: a task the viewer may not see is still ``NOT_FOUND``, but the message,
  ``locations`` and ``path`` differ, and other failures are a bare 400.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.references import documents, serving
from bench.references.encoding import decode_id, decode_task_cursor, encode_id, task_cursor
from bench.references.serving import ReferenceSettings
from bench.references.sql import (
    GLOBAL_STATS_SQL,
    PAGE_SQL,
    PRIORITIES,
    STATS_ARGS,
    STATS_BY_OWNER_SQL,
    STATUSES,
    TASKS_SQL,
    USERS_SQL,
)
from bench.references.viewer import Refused, Viewer, viewer_of

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

Row = Sequence[Any]
Variables = dict[str, Any]


class Failed(Exception):
    """The operation fails as a GraphQL error with ``code`` (its field answers null)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code, self.field = code, field


def _page_size(first: object, *, required: bool) -> int:
    if first is None and not required:
        return DEFAULT_PAGE_SIZE
    if type(first) is not int or not 1 <= first <= MAX_PAGE_SIZE:
        raise Failed("BAD_USER_INPUT", f"first must be between 1 and {MAX_PAGE_SIZE}, not {first}.", "tasks")
    return first


async def _task_rows(pool: asyncpg.Pool, viewer: Viewer, first: int, after: object) -> tuple[list[Row], bool]:
    """A page of the tasks the viewer sees, newest first, and whether more follow."""
    args: list[Any] = [] if viewer.is_admin else [viewer.user_id]
    if after is not None:
        position = decode_task_cursor(after) if isinstance(after, str) else None
        if position is None:
            raise Failed("BAD_USER_INPUT", "after is not a cursor of this list in this order.", "tasks")
        args.extend(position)
    rows = await pool.fetch(PAGE_SQL[viewer.is_admin, after is not None], *args, first + 1)
    return rows[:first], len(rows) > first


async def _users(pool: asyncpg.Pool, keys: list[uuid.UUID]) -> dict[uuid.UUID, Row]:
    return {row[0]: row for row in await pool.fetch(USERS_SQL, keys)} if keys else {}


async def task_page(pool: asyncpg.Pool, viewer: Viewer, variables: Variables) -> Any:
    first = _page_size(variables.get("first"), required=True)
    rows, more = await _task_rows(pool, viewer, first, variables.get("after"))
    owners = await _users(pool, list(dict.fromkeys(row[1] for row in rows)))
    owner_of = {key: {"id": encode_id("User", key), "name": owner[2]} for key, owner in owners.items()}
    edges = [
        {
            "cursor": task_cursor(row[8], row[0]),
            "node": {
                "id": encode_id("Task", row[0]),
                "title": row[2],
                "status": row[4],
                "priority": row[5],
                "dueAt": row[6],
                "tags": row[7],
                "owner": owner_of[row[1]],
            },
        }
        for row in rows
    ]
    end = edges[-1]["cursor"] if edges else None
    return {"tasks": {"edges": edges, "pageInfo": {"hasNextPage": more, "endCursor": end}}}


async def tasks_with_owners(pool: asyncpg.Pool, viewer: Viewer, variables: Variables) -> Any:
    first = _page_size(variables.get("first"), required=False)
    rows, _ = await _task_rows(pool, viewer, first, None)
    keys = list(dict.fromkeys(row[1] for row in rows))
    owners = await _users(pool, keys)
    totals = dict.fromkeys(keys, 0)
    if keys:
        for stats in await pool.fetch(STATS_BY_OWNER_SQL, *STATS_ARGS, keys):
            totals[stats[-1]] = stats[0] + stats[1] + stats[2]
    owner_of = {key: {"name": owners[key][2], "taskStats": {"total": totals[key]}} for key in keys}
    edges = [
        {"node": {"id": encode_id("Task", row[0]), "title": row[2], "owner": owner_of[row[1]]}}
        for row in rows
    ]
    return {"tasks": {"edges": edges}}


def _key_of(global_id: object, type_name: str, field: str) -> uuid.UUID:
    decoded = decode_id(global_id) if isinstance(global_id, str) else None
    if decoded is None:
        raise Failed("BAD_USER_INPUT", f"{global_id!r} is not a valid ID.", field)
    if decoded[0] != type_name:
        raise Failed("NOT_FOUND", f"No {type_name} with id {global_id!r}.", field)
    return decoded[1]


async def task_stats(pool: asyncpg.Pool, viewer: Viewer, variables: Variables) -> Any:
    owner_id = variables.get("ownerId")
    if owner_id is None and viewer.is_admin:
        rows = await pool.fetch(GLOBAL_STATS_SQL, *STATS_ARGS)
    else:
        owner = viewer.user_id
        if owner_id is not None:
            owner = _key_of(owner_id, "User", "taskStats")
            if not viewer.can_see_owner(owner) or not await _users(pool, [owner]):
                raise Failed("NOT_FOUND", f"No User with id {owner_id!r}.", "taskStats")
        rows = await pool.fetch(STATS_BY_OWNER_SQL, *STATS_ARGS, [owner])
    row = rows[0] if rows else (0,) * 8
    by_status = dict(zip(STATUSES, row[:3], strict=True))
    by_priority = dict(zip(PRIORITIES, row[3:7], strict=True))
    overdue = row[7]
    total = sum(by_status.values())
    return {
        "taskStats": {
            "total": total,
            "byStatus": [{"status": status, "count": count} for status, count in by_status.items()],
            "byPriority": [{"priority": priority, "count": count} for priority, count in by_priority.items()],
            "overdue": overdue,
            "completionRate": by_status["DONE"] / total if total else 0.0,
        }
    }


async def _visible_task(
    pool: asyncpg.Pool, viewer: Viewer, key: uuid.UUID, global_id: str, field: str
) -> Row:
    rows = await pool.fetch(TASKS_SQL, [key])
    if not rows or not viewer.can_see_owner(rows[0][1]):
        raise Failed("NOT_FOUND", f"No Task with id {global_id!r}.", field)
    row: Row = rows[0]
    return row


async def task(pool: asyncpg.Pool, viewer: Viewer, variables: Variables) -> Any:
    global_id = variables.get("id")
    row = await _visible_task(pool, viewer, _key_of(global_id, "Task", "task"), str(global_id), "task")
    owner = (await _users(pool, [row[1]]))[row[1]]
    return {
        "task": {
            "id": encode_id("Task", row[0]),
            "title": row[2],
            "description": row[3],
            "status": row[4],
            "priority": row[5],
            "dueAt": row[6],
            "tags": row[7],
            "createdAt": row[8],
            "updatedAt": row[9],
            "completedAt": row[10],
            "owner": {"id": encode_id("User", owner[0]), "name": owner[2]},
        }
    }


async def node(pool: asyncpg.Pool, viewer: Viewer, variables: Variables) -> Any:
    global_id = variables.get("id")
    decoded = decode_id(global_id) if isinstance(global_id, str) else None
    if decoded is None:
        raise Failed("BAD_USER_INPUT", f"{global_id!r} is not a valid ID.", "node")
    type_name, key = decoded
    if type_name == "Task":
        row = await _visible_task(pool, viewer, key, str(global_id), "node")
        owner = (await _users(pool, [row[1]]))[row[1]]
        return {
            "node": {
                "id": encode_id("Task", key),
                "title": row[2],
                "owner": {"id": encode_id("User", owner[0])},
            }
        }
    user = (await _users(pool, [key])).get(key) if type_name == "User" and viewer.can_see_owner(key) else None
    if user is None:
        raise Failed("NOT_FOUND", f"No {type_name} with id {global_id!r}.", "node")
    return {"node": {"id": encode_id("User", key), "email": user[1]}}


Handler = Callable[[asyncpg.Pool, Viewer, Variables], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {
    "TaskPage": task_page,
    "TasksWithOwners": tasks_with_owners,
    "TaskStats": task_stats,
    "Task": task,
    "Node": node,
}
NULLABLE = {"Task": "task", "Node": "node"}  # the documents whose root field is nullable


def _json(answer: object, status: int = 200) -> Response:
    # OPT_UTC_Z: a UTC timestamp ends in "Z", as taskql's DateTime writes it.
    return Response(orjson.dumps(answer, option=orjson.OPT_UTC_Z), status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"errors": [{"message": message}]}, status)


def create_app(settings: ReferenceSettings) -> Starlette:
    texts = documents.by_text()
    pools: list[asyncpg.Pool] = []

    async def graphql(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error("The body is not JSON.", 400)
        name = documents.operation_of(body, texts)
        if name is None:
            return _error(f"Only the documents {', '.join(documents.NAMES)} are served here.", 400)
        pool = pools[0]
        try:
            viewer = await viewer_of(pool, settings.tokens, request.headers.get("authorization"))
        except Refused as refused:
            return _error(f"Unauthenticated: {refused}", 401)
        variables = body.get("variables") or {}
        try:
            return _json({"data": await HANDLERS[name](pool, viewer, variables)})
        except Failed as failed:
            error = {"message": str(failed), "path": [failed.field], "extensions": {"code": failed.code}}
            return _json({"data": {NULLABLE[name]: None} if name in NULLABLE else None, "errors": [error]})

    async def ready(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pools.append(await serving.create_pool(settings))
        try:
            yield
        finally:
            await pools.pop().close()

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/readyz", ready)], lifespan=lifespan
    )


if __name__ == "__main__":
    serving.main("handwritten", create_app)
