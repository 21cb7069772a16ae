"""The references of issue 15 (``bench.references``) answer what taskql answers: the hand-written one the
same bytes, bare Strawberry the same data, for an admin (every task) and a user (their own)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.references import bare_strawberry, check, handwritten
from bench.references.serving import ReferenceSettings, uvicorn_config
from bench.references.viewer import TokenCheck
from core.settings import Settings
from core.sql import compile_sql
from models import TASK_COLUMNS, USER_COLUMNS
from tests.factories import Account, create_task
from tests.graphql_client import GraphQLClient
from tests.services import Services

Factory = Callable[[ReferenceSettings], ASGIApp]


@contextlib.asynccontextmanager
async def served(
    factory: Factory, settings: Settings, database: Services
) -> AsyncIterator[httpx.AsyncClient]:
    """A reference served by uvicorn in this process, as its command serves it, and a client to it. The
    socket listens before the server starts: requests wait in its backlog, no polling for readiness."""
    assert settings.jwt_secret is not None
    reference = ReferenceSettings(database.dsn, TokenCheck(settings.jwt_secret.get_secret_value()))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(factory(reference), "127.0.0.1", port))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def seed(gql: GraphQLClient, alice: Account, bob: Account) -> None:
    """A small world: tasks of every status and priority, some overdue, some without a due date, tags."""
    statuses, priorities = ("TODO", "IN_PROGRESS", "DONE"), ("LOW", "MEDIUM", "HIGH", "URGENT")
    for number in range(14):
        due = None if number % 3 == 0 else f"20{20 + number * 2}-0{1 + number % 9}-1{number % 10}T08:30:00Z"
        fields = {"status": statuses[number % 3], "priority": priorities[number % 4], "dueAt": due}
        await create_task(gql, alice, title=f"alice {number} «é»", tags=[f"t{number % 4}", "x"], **fields)
    for number in range(5):
        await create_task(gql, bob, title=f"bob {number}", description="d" * number or None)


@pytest.fixture
async def world(gql: GraphQLClient, alice: Account, bob: Account, admin: Account) -> dict[str, Account]:
    await seed(gql, alice, bob)
    return {"admin": admin, "user": alice}


@pytest.mark.parametrize("viewer", ["admin", "user"])
async def test_the_handwritten_reference_answers_taskqls_bytes(
    viewer: str, world: dict[str, Account], http: httpx.AsyncClient, settings: Settings, database: Services
) -> None:
    async with served(handwritten.create_app, settings, database) as reference:
        compared = await check.check(http, reference, world[viewer].token, exact=True)
    assert [case.document for case in compared] == [
        "TaskPage", "TaskPage", "TaskPage", "TasksWithOwners", "TaskStats", "TaskStats",
        "Task", "Node", "Node",
    ]  # fmt: skip


def reordering(app: ASGIApp) -> ASGIApp:
    """``app`` with the keys of its answers' ``tasks`` reversed: the same JSON, other bytes."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        async def reordered(message: Message) -> None:
            if message["type"] == "http.response.body":
                parsed = orjson.loads(message["body"])
                parsed["data"]["tasks"] = dict(reversed(parsed["data"]["tasks"].items()))
                message = {**message, "body": orjson.dumps(parsed)}
            elif message["type"] == "http.response.start":
                message = {**message, "headers": [h for h in message["headers"] if h[0] != b"content-length"]}
            await send(message)

        await app(scope, receive, reordered)

    return serve


async def test_a_reference_answering_other_bytes_fails_the_exact_check_and_passes_the_data_check(
    world: dict[str, Account], http: httpx.AsyncClient, settings: Settings, database: Services
) -> None:
    def broken(reference: ReferenceSettings) -> ASGIApp:
        return reordering(handwritten.create_app(reference))

    token = world["admin"].token
    case = check.Case("TaskPage", {"first": 50})
    async with served(broken, settings, database) as reference:
        expected, actual = await check._post(http, case, token), await check._post(reference, case, token)
    with pytest.raises(check.Mismatch, match="other bytes"):
        check.compare(case, expected, actual, exact=True)
    check.compare(case, expected, actual, exact=False)


def test_the_references_send_the_statements_taskql_compiles() -> None:
    from bench.references import sql
    from resolvers import stats
    from resolvers.tasks import TaskOrderField, _page_sql, _Shape

    for (admin, after), text in sql.PAGE_SQL.items():
        filters = () if admin else ("personal",)
        assert text == _page_sql(_Shape(filters, TaskOrderField.CREATED_AT, True, after)).text
    assert stats.GLOBAL_STATS.text == sql.GLOBAL_STATS_SQL
    assert stats.STATS_BY_OWNER.text == sql.STATS_BY_OWNER_SQL
    for text, columns in ((sql.USERS_SQL, USER_COLUMNS), (sql.TASKS_SQL, TASK_COLUMNS)):
        key = columns[0]  # as resolvers.loaders._by_id compiles it
        by_keys = select(*columns).where(key == any_(bindparam("keys", type_=ARRAY(key.type))))
        assert text == compile_sql(by_keys).text


@pytest.mark.parametrize("viewer", ["admin", "user"])
async def test_bare_strawberry_answers_taskqls_data(
    viewer: str, world: dict[str, Account], http: httpx.AsyncClient, settings: Settings, database: Services
) -> None:
    async with served(bare_strawberry.create_app, settings, database) as reference:
        compared = await check.check(http, reference, world[viewer].token, exact=False)
    assert len(compared) == 9
