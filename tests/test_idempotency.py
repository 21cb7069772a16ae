"""Safe retries: a mutation POSTed with an ``Idempotency-Key`` runs once, and its retries (same viewer, key
and request) get its first answer, on any instance, until the key expires. Checked through the HTTP endpoint,
counting the rows PostgreSQL holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from core.settings import Settings
from taskql.app import TaskqlApp
from tests.conftest import client_for, make_settings, served
from tests.factories import PASSWORD, Account, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import TEST_SECRET, TaskqlProcess, environment
from tests.services import Services

CREATE = operation("CreateTask")
DEADLINE_SECONDS = 20


async def send(
    http: httpx.AsyncClient,
    key: str | None,
    variables: dict[str, Any],
    *,
    document: str = CREATE,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if key is not None:
        sent["idempotency-key"] = f'"{key}"'
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return await http.post("/graphql", json={"query": document, "variables": variables}, headers=sent)


def task(title: str) -> dict[str, Any]:
    return {"input": {"title": title}}


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


async def tasks_titled(dsn: str, title: str) -> int:
    return int(await fetchval(dsn, "SELECT count(*) FROM tasks WHERE title = $1", title))


def code_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


@contextlib.asynccontextmanager
async def owner_locked(dsn: str, account: Account) -> AsyncIterator[None]:
    """The account's row locked FOR UPDATE: a task it creates waits (the foreign key's check) until the
    block ends."""
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM users WHERE id = (SELECT id FROM users WHERE email = $1) "
                                     "FOR UPDATE", account.email)  # fmt: skip
            yield
    finally:
        await connection.close()


async def until_a_statement_waits_for_a_lock(dsn: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while await fetchval(dsn, "SELECT count(*) FROM pg_locks WHERE NOT granted") == 0:
        assert time.monotonic() < deadline, "the mutation never reached the locked row"
        await asyncio.sleep(0.02)


async def test_a_retried_mutation_gets_the_first_answer_and_writes_once(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    first = await send(http, "retry-1", task("Pay rent"), token=alice.token)
    retry = await send(http, "retry-1", task("Pay rent"), token=alice.token)
    assert first.status_code == retry.status_code == 200
    assert first.json()["data"]["createTask"]["title"] == "Pay rent"
    assert retry.content == first.content
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await tasks_titled(database.dsn, "Pay rent") == 1


async def test_a_mutation_without_a_key_runs_each_time(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    for _ in range(2):
        assert (await send(http, None, task("Water plants"), token=alice.token)).status_code == 200
    assert await tasks_titled(database.dsn, "Water plants") == 2


async def test_the_same_key_with_other_variables_is_refused_and_writes_nothing(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    await send(http, "reused", task("First"), token=alice.token)
    other = await send(http, "reused", task("Second"), token=alice.token)
    assert other.status_code == 422
    assert code_of(other) == "BAD_REQUEST"
    assert other.json()["errors"][0]["extensions"]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    assert await tasks_titled(database.dsn, "Second") == 0


async def test_a_retry_while_the_first_request_runs_is_told_to_wait_then_gets_its_answer(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    async with owner_locked(database.dsn, alice):
        first = asyncio.create_task(send(http, "slow", task("Slow"), token=alice.token))
        await until_a_statement_waits_for_a_lock(database.dsn)
        meanwhile = await send(http, "slow", task("Slow"), token=alice.token)
    assert meanwhile.status_code == 409
    assert code_of(meanwhile) == "IDEMPOTENCY_KEY_IN_USE"
    assert meanwhile.headers["retry-after"] == "1"
    answered = await first
    assert answered.status_code == 200
    after = await send(http, "slow", task("Slow"), token=alice.token)
    assert after.content == answered.content
    assert await tasks_titled(database.dsn, "Slow") == 1


async def test_duplicates_sent_at_once_write_once(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    responses = await asyncio.gather(
        *(send(http, "burst", task("Burst"), token=alice.token) for _ in range(4))
    )
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses, statuses
    assert len({response.content for response in responses if response.status_code == 200}) == 1
    assert await tasks_titled(database.dsn, "Burst") == 1


async def test_the_same_key_from_two_users_is_two_keys(
    http: httpx.AsyncClient, alice: Account, bob: Account, database: Services
) -> None:
    for_alice = await send(http, "shared", task("Mine"), token=alice.token)
    for_bob = await send(http, "shared", task("Mine"), token=bob.token)
    assert for_alice.json()["data"]["createTask"]["owner"]["id"] == alice.id
    assert for_bob.json()["data"]["createTask"]["owner"]["id"] == bob.id
    assert "idempotent-replayed" not in for_bob.headers
    assert await tasks_titled(database.dsn, "Mine") == 2


async def test_a_login_retried_gets_the_same_tokens_and_only_from_the_same_client_address(
    app: TaskqlApp, http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    login = {"input": {"email": alice.email, "password": PASSWORD}}
    first = await send(http, "login-1", login, document=operation("Login"))
    retry = await send(http, "login-1", login, document=operation("Login"))
    assert retry.json()["data"]["login"]["refreshToken"] == first.json()["data"]["login"]["refreshToken"]
    transport = httpx.ASGITransport(app=served(app), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as elsewhere:
        other = await send(elsewhere, "login-1", login, document=operation("Login"))
    assert other.status_code == 200
    assert "idempotent-replayed" not in other.headers
    assert other.json()["data"]["login"]["refreshToken"] != first.json()["data"]["login"]["refreshToken"]
    sessions = "SELECT count(*) FROM auth_sessions JOIN users u ON u.id = user_id WHERE u.email = $1"
    assert await fetchval(database.dsn, sessions, alice.email) == 3  # register's, and two logins


async def test_a_stored_answer_does_not_show_its_tokens_in_the_table(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    login = {"input": {"email": alice.email, "password": PASSWORD}}
    answer = (await send(http, "sealed", login, document=operation("Login"))).json()["data"]["login"]
    body = await fetchval(database.dsn, "SELECT body FROM idempotency_keys WHERE key = 'sealed'")
    assert body
    assert answer["refreshToken"].encode() not in body
    assert answer["accessToken"].encode() not in body


async def test_a_retry_on_another_instance_gets_the_first_answer(
    settings: Settings, database: Services
) -> None:
    async with client_for(settings) as one, client_for(settings) as two:
        account = await register(GraphQLClient(one))
        first = await send(one, "everywhere", task("Shared"), token=account.token)
        retry = await send(two, "everywhere", task("Shared"), token=account.token)
    assert retry.status_code == 200
    assert retry.content == first.content
    assert await tasks_titled(database.dsn, "Shared") == 1


async def test_a_key_past_its_ttl_may_be_used_again(database: Services) -> None:
    async with client_for(make_settings(database, idempotency_ttl_seconds=1)) as http:
        account = await register(GraphQLClient(http))
        await send(http, "expiring", task("Before"), token=account.token)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (later := await send(http, "expiring", task("After"), token=account.token)).status_code == 422:
            assert time.monotonic() < deadline, "the key never expired"
            await asyncio.sleep(0.1)
    assert later.status_code == 200
    assert later.json()["data"]["createTask"]["title"] == "After"
    assert await fetchval(database.dsn, "SELECT count(*) FROM idempotency_keys WHERE key = 'expiring'") == 1


async def test_an_answer_that_says_retry_later_leaves_the_key_free(database: Services) -> None:
    async with client_for(make_settings(database, rate_limit_points=11)) as http:  # one CreateTask
        account = await register(GraphQLClient(http))
        assert (await send(http, None, task("Spends the window"), token=account.token)).json()["data"]
        refused = await send(http, "too-soon", task("Later"), token=account.token)
    assert refused.status_code == 429
    assert code_of(refused) == "RATE_LIMITED"
    assert await fetchval(database.dsn, "SELECT count(*) FROM idempotency_keys") == 0


@pytest.mark.parametrize(
    "headers",
    [
        [("idempotency-key", '"unterminated')],
        [("idempotency-key", '"' + "k" * 256 + '"')],
        [("idempotency-key", '""')],
        [("idempotency-key", "two words")],
        [("idempotency-key", '"key";param=1')],
        [("idempotency-key", '"a"'), ("idempotency-key", '"b"')],
    ],
    ids=["unterminated", "too-long", "empty", "not-a-string", "parameters", "two-headers"],
)
async def test_a_malformed_key_is_refused_and_nothing_runs(
    http: httpx.AsyncClient, alice: Account, database: Services, headers: list[tuple[str, str]]
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": CREATE, "variables": task("Malformed")},
        headers=[("authorization", f"Bearer {alice.token}"), *headers],
    )
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"
    assert await tasks_titled(database.dsn, "Malformed") == 0


async def test_a_bare_key_is_the_same_key_as_the_quoted_one(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    first = await send(http, "8e03978e-40d5-43e8-bc93-6894a57f9324", task("Bare"), token=alice.token)
    bare = {"idempotency-key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}
    retry = await send(http, None, task("Bare"), token=alice.token, headers=bare)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert await tasks_titled(database.dsn, "Bare") == 1


async def test_a_query_with_a_key_just_runs(
    http: httpx.AsyncClient, alice: Account, database: Services
) -> None:
    response = await send(http, "query-key", {}, document=operation("Me"), token=alice.token)
    assert response.json()["data"]["me"]["id"] == alice.id
    assert await fetchval(database.dsn, "SELECT count(*) FROM idempotency_keys") == 0


@pytest.fixture
def killable(database: Services, tmp_path: Path) -> Iterator[TaskqlProcess]:
    env = environment(
        DATABASE_URL=database.database_url,
        REDIS_URL=database.redis_url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
    )
    server = TaskqlProcess(env, tmp_path)
    server.start()
    yield server
    server.kill()


async def test_a_key_left_by_a_killed_instance_is_taken_over_after_the_lock(
    killable: TaskqlProcess, database: Services
) -> None:
    async with httpx.AsyncClient(base_url=killable.url, timeout=DEADLINE_SECONDS) as http:
        account = await register(GraphQLClient(http))
        async with owner_locked(database.dsn, account):
            cut_off = asyncio.create_task(send(http, "orphan", task("Orphan"), token=account.token))
            await until_a_statement_waits_for_a_lock(database.dsn)
            killable.kill()  # mid-mutation: its transaction never commits
            with pytest.raises(httpx.TransportError):
                await cut_off
    survivor = make_settings(database, jwt_secret=SecretStr(TEST_SECRET), idempotency_lock_seconds=1)
    async with client_for(survivor) as http:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (retry := await send(http, "orphan", task("Orphan"), token=account.token)).status_code == 409:
            assert time.monotonic() < deadline, "the abandoned key was never taken over"
            await asyncio.sleep(0.1)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers
    assert await tasks_titled(database.dsn, "Orphan") == 1
