"""A bug is masked for the client and logged once, in full, with the request id the client also gets;
a client's mistake is answered with its code and never logged with a traceback. Over HTTP and WebSocket.

The bugs are real ones, not mocks: a database whose ``tasks`` table lost a column (as after a deploy that
ran ahead of its migration), and a task event in Redis that no version of taskql wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.ids import encode_id
from core.settings import Settings
from taskql.app import create_app
from taskql.data import migrations as migrate
from taskql.http.security import SecurityMiddleware, SecurityPolicy
from taskql.outbox.relay import stream_key
from taskql.realtime.hub import encode_cursor
from tests.conftest import client_for, make_settings
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import free_port
from tests.services import Services
from tests.ws_client import Subscriber

MASKED = "Internal server error."
NO_TASK = encode_id("Task", uuid.UUID(int=0))


def alarms(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


def assert_masked(error: dict[str, Any]) -> str:
    """The error says nothing but that it happened, and where to look: its request id."""
    assert error["message"] == MASKED
    assert set(error["extensions"]) == {"code", "requestId"}
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    return str(error["extensions"]["requestId"])


def assert_logged_once(caplog: pytest.LogCaptureFixture, request_id: str, cause: str) -> None:
    """Exactly one record with a traceback, naming the request; and no other alarm."""
    [record] = alarms(caplog)
    assert record.exc_info is not None
    assert record.exc_info[2] is not None  # the traceback itself
    assert record.levelno == logging.ERROR
    assert request_id in record.getMessage()
    assert cause in f"{record.exc_info[0]} {record.exc_info[1]}"


# --- a database one column short ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def broken(database: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a throw-away database whose ``tasks`` table has no ``description`` column."""
    name = f"taskql_broken_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(database.dsn)
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(database.database_url).set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(migrate.upgrade, url)
        services = Services(url, database.redis_url, database.embedded)
        connection = await asyncpg.connect(services.dsn)
        try:
            # (with the search column computed from it)
            await connection.execute("ALTER TABLE tasks DROP COLUMN description CASCADE")
        finally:
            await connection.close()
        async with client_for(make_settings(services)) as client:
            yield client
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture
async def dave(broken: httpx.AsyncClient) -> Account:
    return await register(GraphQLClient(broken), name="Dave")


async def test_a_bug_reaches_the_client_masked_with_the_request_id_of_the_answer(
    broken: httpx.AsyncClient, dave: Account
) -> None:
    response = await GraphQLClient(broken).run("Tasks", {"first": 5}, token=dave.token)
    assert response.data is None
    [error] = response.errors
    assert assert_masked(error) == response.headers["x-request-id"]
    assert "description" not in json.dumps(response.body)  # not a word of the SQL error


async def test_a_bug_is_logged_once_with_its_traceback_and_the_request_id(
    broken: httpx.AsyncClient, dave: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await GraphQLClient(broken).run("Tasks", {"first": 5}, token=dave.token)
    assert_logged_once(caplog, assert_masked(response.errors[0]), "description")


async def test_the_clients_own_request_id_is_in_the_answer_and_the_log(
    broken: httpx.AsyncClient, dave: Account, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = f"client-{uuid.uuid4()}"
    with caplog.at_level(logging.INFO):
        answer = await broken.post(
            "/graphql",
            json={"query": operation("Tasks"), "variables": {"first": 5}},
            headers={"authorization": f"Bearer {dave.token}", "x-request-id": request_id},
        )
    assert answer.headers["x-request-id"] == request_id
    assert assert_masked(answer.json()["errors"][0]) == request_id
    assert_logged_once(caplog, request_id, "description")


async def test_a_failing_mutation_is_masked_logged_once_and_writes_nothing(
    broken: httpx.AsyncClient, dave: Account, caplog: pytest.LogCaptureFixture
) -> None:
    gql = GraphQLClient(broken)
    with caplog.at_level(logging.INFO):
        response = await gql.run("CreateTask", {"input": {"title": "Never stored"}}, token=dave.token)
    assert_logged_once(caplog, assert_masked(response.errors[0]), "description")
    assert (await gql.query("{ me { taskStats { total } } }", token=dave.token)).ok() == {
        "me": {"taskStats": {"total": 0}}
    }


async def test_only_the_broken_field_is_masked_the_rest_of_the_answer_stands(
    broken: httpx.AsyncClient, dave: Account
) -> None:
    response = await GraphQLClient(broken).query(
        "query Q($id: ID!) { me { name } task(id: $id) { title } }", {"id": NO_TASK}, token=dave.token
    )
    [error] = response.errors
    assert_masked(error)
    assert error["path"] == ["task"]
    assert response.data == {"me": {"name": "Dave"}, "task": None}


# --- client mistakes --------------------------------------------------------------------------------------


async def test_client_mistakes_are_answered_with_their_code_and_never_logged_with_a_traceback(
    gql: GraphQLClient, http: httpx.AsyncClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    unknown_hash = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    mistakes: list[tuple[str, Any]] = [
        ("GRAPHQL_PARSE_FAILED", gql.query("{ tasks { ")),
        ("GRAPHQL_VALIDATION_FAILED", gql.query("{ me { password } }")),
        ("BAD_USER_INPUT", gql.run("CreateTask", {"input": {"title": ""}}, token=alice.token)),
        ("BAD_USER_INPUT", gql.run("Tasks", {"first": "many"}, token=alice.token)),
        ("UNAUTHENTICATED", gql.run("Tasks", {"first": 1}, token="not-a-token")),
        ("UNAUTHENTICATED", gql.run("Tasks", {"first": 1})),
        ("FORBIDDEN", gql.run("Users", token=alice.token)),
        ("NOT_FOUND", gql.run("Task", {"id": NO_TASK}, token=alice.token)),
        ("PERSISTED_QUERY_NOT_FOUND", http.post("/graphql", json={"extensions": unknown_hash})),
    ]  # fmt: skip
    with caplog.at_level(logging.INFO):
        for code, request in mistakes:
            answered = await request
            body = answered.body if hasattr(answered, "body") else answered.json()
            assert code in json.dumps(body), (code, body)
        for status, response in [
            (
                400,
                await http.post("/graphql", content=b"{nope", headers={"content-type": "application/json"}),
            ),
            (405, await http.get("/graphql", params={"query": "mutation { logout { ok } }"})),
        ]:
            assert response.status_code == status, response.text
    assert alarms(caplog) == []


# --- WebSocket --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn in this process (so that caplog sees its log); its ws:// URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def ws_url(settings: Settings, database: Services) -> AsyncIterator[str]:
    async with serving(settings) as url:
        yield url


SUBSCRIPTION = "subscription Events($after: String) { taskEvents(after: $after) { cursor task { title } } }"


async def corrupt_event_after_a_real_one(database: Services, gql: GraphQLClient, account: Account) -> str:
    """A task event no taskql wrote, in the account's stream after a real one; the real one's cursor."""
    await create_task(gql, account, title="Real")
    redis = Redis.from_url(database.redis_url, decode_responses=True)
    try:
        # The account's own stream: the only one but the admins' (the database starts empty).
        keys = [str(key) async for key in redis.scan_iter(match=stream_key("*"))]
        [key] = [key for key in keys if key != stream_key("*")]
        [(real, _)] = await redis.xrange(key) or []
        await redis.xadd(key, {"e": "{not an event"})
    finally:
        await redis.aclose()
    milliseconds, _, sequence = str(real).partition("-")
    return encode_cursor((int(milliseconds), int(sequence)))


async def errors_of(subscriber: Subscriber, operation_id: str) -> list[dict[str, Any]]:
    """The errors of the operation's first answer: a ``next`` (from execution) or an ``error`` (before)."""
    while True:
        message = await subscriber.receive()
        if message.get("id") == operation_id and message["type"] in ("next", "error"):
            payload = message["payload"]
            return list(payload["errors"] if message["type"] == "next" else payload)


async def test_a_subscription_fed_bad_data_is_masked_and_logged_once_with_the_request_id(
    ws_url: str, database: Services, gql: GraphQLClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    after = await corrupt_event_after_a_real_one(database, gql, alice)
    subscriber = await Subscriber.open(ws_url, {"authorization": f"Bearer {alice.token}"})
    try:
        with caplog.at_level(logging.INFO):
            [error] = await errors_of(
                subscriber, await subscriber.subscribe({"after": after}, query=SUBSCRIPTION)
            )
    finally:
        await subscriber.close()
    assert "not an event" not in json.dumps(error)
    assert_logged_once(caplog, assert_masked(error), "JSONDecodeError")


async def test_subscription_mistakes_are_answered_with_their_code_and_not_logged(
    ws_url: str, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber = await Subscriber.open(ws_url, {"authorization": f"Bearer {alice.token}"})
    try:
        with caplog.at_level(logging.INFO):
            cursor = await errors_of(
                subscriber, await subscriber.subscribe({"after": "x"}, query=SUBSCRIPTION)
            )
            invalid = await errors_of(
                subscriber, await subscriber.subscribe(query="subscription { taskEvents { colour } }")
            )
    finally:
        await subscriber.close()
    assert [error["extensions"]["code"] for error in cursor + invalid] == [
        "BAD_USER_INPUT",
        "GRAPHQL_VALIDATION_FAILED",
    ]
    assert alarms(caplog) == []


# --- outside GraphQL --------------------------------------------------------------------------------------


async def test_an_exception_no_handler_caught_is_masked_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_route(request: Request) -> Response:
        raise RuntimeError("password=hunter2")

    # Where the app has it: the outermost of its own middleware (inside Starlette's error middleware).
    policy = SecurityPolicy.of(Settings())
    app = Starlette(
        routes=[Route("/boom", broken_route)], middleware=[Middleware(SecurityMiddleware, policy=policy)]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as client:
        with caplog.at_level(logging.INFO):
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    [error] = response.json()["errors"]
    request_id = assert_masked(error)
    assert request_id == response.headers["x-request-id"]
    assert "hunter2" not in response.text
    assert_logged_once(caplog, request_id, "hunter2")
