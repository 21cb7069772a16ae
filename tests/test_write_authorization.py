"""Writes are authorised by PostgreSQL, always: session state cached in Redis never lets a mutation through.

Each test first makes Redis vouch for a session (a query stores "this session is live, with this role"),
then changes the session in PostgreSQL without invalidating anything: exactly what a crash between a
logout's (or a demotion's) COMMIT and its cache invalidation leaves behind, or a Redis restored from an old
snapshot. Whatever the mutation's spelling, PostgreSQL decides, and the tables show nothing was written.
Queries served meanwhile are another matter, not asserted here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from taskql.app import TaskqlApp
from taskql.cache.store import VIEWER_PREFIX
from tests.factories import Account, promote_to_admin, register
from tests.graphql_client import GraphQLClient, operation
from tests.services import Services
from tests.sql import captured

MY_TASKS = "query MyTitles { tasks(first: 50) { edges { node { id title } } } }"


@dataclass(frozen=True)
class Write:
    name: str  # a trusted operation, in graphql/queries and the manifest
    batch: str  # the same write, as a document of two mutation fields


CREATE_TASK = Write(
    "CreateTask",
    "mutation Batch($input: CreateTaskInput!) {"
    " first: createTask(input: $input) { id } second: createTask(input: $input) { id } }",
)
SET_USER_ACTIVE = Write(
    "SetUserActive",
    "mutation Batch($userId: ID!, $active: Boolean!) {"
    " first: setUserRole(userId: $userId, role: USER) { id }"
    " second: setUserActive(userId: $userId, active: $active) { id } }",
)

Send = Callable[[httpx.AsyncClient, Write, dict[str, Any], str], Awaitable[httpx.Response]]


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


async def post(http: httpx.AsyncClient, body: bytes, token: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await http.post("/graphql", content=body, headers=headers)


def escaped(payload: dict[str, Any]) -> bytes:
    """The JSON body, every ``mutation`` written ``\\u006dutation``: the same request, without the bytes."""
    body = json.dumps(payload).replace("mutation", "\\u006dutation").encode()
    assert b"mutation" not in body
    assert json.loads(body) == payload
    return body


async def keyword_escaped(
    http: httpx.AsyncClient, write: Write, variables: dict[str, Any], token: str
) -> Any:
    return await post(http, escaped({"query": operation(write.name), "variables": variables}), token)


async def trusted_document_id(
    http: httpx.AsyncClient, write: Write, variables: dict[str, Any], token: str
) -> Any:
    body = {"documentId": f"sha256:{sha(operation(write.name))}", "variables": variables}
    return await post(http, json.dumps(body).encode(), token)


async def apq_hash(http: httpx.AsyncClient, write: Write, variables: dict[str, Any], token: str) -> Any:
    """A document outside the manifest, registered in Redis (anonymously: that run writes nothing), then
    sent by its hash alone."""
    document = operation(write.name) + "# sent by its hash\n"
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha(document)}}
    registering = {"query": document, "variables": variables, "extensions": persisted}
    registered = await post(http, json.dumps(registering).encode(), None)
    assert [error["extensions"]["code"] for error in registered.json()["errors"]] == ["UNAUTHENTICATED"]
    body = {"extensions": persisted, "variables": variables}
    return await post(http, json.dumps(body).encode(), token)


async def chosen_by_operation_name(
    http: httpx.AsyncClient, write: Write, variables: dict[str, Any], token: str
) -> Any:
    """A query first, then the mutation: ``operationName`` picks the second."""
    document = "query Peek { __typename }\n" + operation(write.name)
    body = {"query": document, "operationName": write.name, "variables": variables}
    return await post(http, json.dumps(body).encode(), token)


async def batch_of_fields(
    http: httpx.AsyncClient, write: Write, variables: dict[str, Any], token: str
) -> Any:
    return await post(http, escaped({"query": write.batch, "variables": variables}), token)


SPELLINGS: list[Send] = [
    keyword_escaped,
    trusted_document_id,
    apq_hash,
    chosen_by_operation_name,
    batch_of_fields,
]
spellings = pytest.mark.parametrize("send", SPELLINGS, ids=lambda send: send.__name__)


async def redis_vouches_for(gql: GraphQLClient, services: Services, account: Account, role: str) -> None:
    """A cacheable query stores the session's state in Redis; from then on a query needs no session SQL."""
    (await gql.query(MY_TASKS, token=account.token)).ok()
    connection = await asyncpg.connect(services.dsn)
    try:
        session_id = await connection.fetchval(
            "SELECT s.id FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1",
            account.email,
        )
    finally:
        await connection.close()
    redis = Redis.from_url(services.redis_url)
    try:
        assert await redis.hget(f"{VIEWER_PREFIX}{session_id}", "r") == role.encode()
    finally:
        await redis.aclose()


async def in_database(services: Services, statement: str, *args: object) -> Any:
    """Straight to PostgreSQL, no cache tag bumped: the state a crash after COMMIT leaves."""
    connection = await asyncpg.connect(services.dsn)
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


async def revoke_sessions(services: Services, account: Account) -> None:
    await in_database(
        services,
        "UPDATE auth_sessions SET revoked_at = now() FROM users"
        " WHERE users.id = auth_sessions.user_id AND users.email = $1",
        account.email,
    )


async def task_titles(services: Services) -> list[str]:
    return sorted(row["title"] for row in await in_database(services, "SELECT title FROM tasks"))


async def user_state(services: Services, account: Account) -> tuple[str, bool]:
    rows = await in_database(services, "SELECT role, is_active FROM users WHERE email = $1", account.email)
    return rows[0]["role"], rows[0]["is_active"]


def refusals(response: httpx.Response) -> set[tuple[str, str | None]]:
    errors = response.json().get("errors") or []
    return {(error["extensions"]["code"], error["extensions"].get("reason")) for error in errors}


@pytest.fixture
async def other_admin(gql: GraphQLClient, services: Services) -> Account:
    account = await register(gql, email="other-admin@example.com", name="Other Admin")
    await promote_to_admin(services.dsn, account)
    return account


@spellings
async def test_a_logged_out_token_creates_no_task_however_the_mutation_is_spelled(
    http: httpx.AsyncClient, gql: GraphQLClient, services: Services, alice: Account, send: Send
) -> None:
    await redis_vouches_for(gql, services, alice, "USER")
    await revoke_sessions(services, alice)
    response = await send(http, CREATE_TASK, {"input": {"title": "ghost"}}, alice.token)
    assert refusals(response) == {("UNAUTHENTICATED", "SESSION_REVOKED")}
    assert await task_titles(services) == []


@spellings
async def test_a_demoted_admin_cannot_deactivate_another_admin_however_the_mutation_is_spelled(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    services: Services,
    admin: Account,
    other_admin: Account,
    send: Send,
) -> None:
    await redis_vouches_for(gql, services, admin, "ADMIN")
    await in_database(services, "UPDATE users SET role = 'USER' WHERE email = $1", admin.email)
    response = await send(http, SET_USER_ACTIVE, {"userId": other_admin.id, "active": False}, admin.token)
    assert refusals(response) == {("FORBIDDEN", None)}
    assert await user_state(services, other_admin) == ("ADMIN", True)
    live = await in_database(
        services,
        "SELECT s.id FROM auth_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE u.email = $1 AND s.revoked_at IS NULL",
        other_admin.email,
    )
    assert len(live) == 1  # a deactivation would have ended it


@spellings
async def test_a_live_session_creates_tasks_however_the_mutation_is_spelled(
    http: httpx.AsyncClient, gql: GraphQLClient, services: Services, alice: Account, send: Send
) -> None:
    await redis_vouches_for(gql, services, alice, "USER")
    response = await send(http, CREATE_TASK, {"input": {"title": "real"}}, alice.token)
    assert not response.json().get("errors"), response.json()
    written = ["real", "real"] if send is batch_of_fields else ["real"]
    assert await task_titles(services) == written


@spellings
async def test_a_live_admin_deactivates_a_user_however_the_mutation_is_spelled(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    services: Services,
    admin: Account,
    bob: Account,
    send: Send,
) -> None:
    await redis_vouches_for(gql, services, admin, "ADMIN")
    response = await send(http, SET_USER_ACTIVE, {"userId": bob.id, "active": False}, admin.token)
    assert not response.json().get("errors"), response.json()
    assert await user_state(services, bob) == ("USER", False)


async def test_a_mutation_reads_a_session_redis_vouches_for_from_postgresql_once(
    app: TaskqlApp, http: httpx.AsyncClient, gql: GraphQLClient, services: Services, alice: Account
) -> None:
    await redis_vouches_for(gql, services, alice, "USER")
    with captured(app) as statements:
        response = await keyword_escaped(http, CREATE_TASK, {"input": {"title": "counted"}}, alice.token)
    assert not response.json().get("errors"), response.json()
    assert len(statements.matching("auth_sessions")) == 1, statements.executed
