"""PostgreSQL frozen (SIGSTOP: a stalled host, a paused VM, hung storage): its kernel still accepts
connections and nothing answers. Requests that need it answer 503 ``SERVICE_UNAVAILABLE`` with
``Retry-After`` within ``DB_STATEMENT_TIMEOUT_SECONDS``, whether they were waiting for a statement, for a
connection of a full pool or for a new connection's startup; a WebSocket ``connection_init`` is closed 1013.
Once it thaws, taskql serves again by itself.

The test runs its own PostgreSQL (tests.fault_servers) to freeze, and a real ``taskql serve``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.factories import PASSWORD, Account, register
from tests.fault_servers import PostgresProcess, taskql_on
from tests.graphql_client import GraphQLClient, operation
from tests.processes import TaskqlProcess
from tests.ws_client import Closed, Subscriber

TIMEOUT = 2.0  # DB_STATEMENT_TIMEOUT_SECONDS, short to keep the suite fast (the default is 5)
SLACK = 1.5  # a loaded machine, the HTTP round trip, argon2 before a registration's INSERT
RECOVERY_SECONDS = 5.0  # after the thaw, how soon every kind of request succeeds again
POOL = 2  # DB_POOL_SIZE, no overflow: more requests than connections, so some wait for one
INTERNALS = ("sqlalchemy", "asyncpg", "postgres", "sql", "traceback", "connection", "timeout")
_nonces = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("postgres-freeze")


@pytest.fixture(scope="module")
def postgres(folder: Path) -> Iterator[PostgresProcess]:
    server = PostgresProcess(folder)
    yield server
    server.close()


@pytest.fixture(scope="module")
def taskql(folder: Path, postgres: PostgresProcess) -> Iterator[TaskqlProcess]:
    settings = {
        "DB_STATEMENT_TIMEOUT_SECONDS": str(TIMEOUT),
        "DB_POOL_SIZE": str(POOL),
        "DB_MAX_OVERFLOW": "0",
    }
    with taskql_on(postgres, folder, **settings) as server:
        yield server


@pytest.fixture
async def gql(taskql: TaskqlProcess) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=taskql.url, timeout=60) as http:
        yield GraphQLClient(http)


@dataclass
class Answer:
    what: str
    took: float
    status: int
    body: dict[str, Any]
    retry_after: str | None

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.body.get("errors") or []]

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.codes

    @property
    def unavailable_properly(self) -> bool:
        """503, Retry-After, every error SERVICE_UNAVAILABLE, and nothing said about what failed inside."""
        messages = " ".join(error.get("message", "") for error in self.body.get("errors") or []).lower()
        return (
            self.status == 503
            and self.retry_after is not None
            and self.body.get("data") is None
            and set(self.codes) == {"SERVICE_UNAVAILABLE"}
            and not any(word in messages for word in INTERNALS)
        )


async def send(gql: GraphQLClient, what: str, user: Account) -> Answer:
    """One request of kind ``what``: ``mutation`` (CreateTask), ``read`` (an uncached TaskPage: its
    undeclared variable makes it a cache miss every time), ``register`` (a write that checks no session
    first, so it goes straight to the write pool)."""
    nonce = next(_nonces)
    token: str | None = user.token
    variables: dict[str, Any]
    if what == "mutation":
        document, variables = operation("CreateTask"), {"input": {"title": f"frozen {nonce}"}}
    elif what == "read":
        document, variables = operation("TaskPage"), {"first": 5, "nonce": nonce}
    else:
        registration = {"email": f"frozen{nonce}@example.com", "password": PASSWORD, "name": "F"}
        document, variables, token = operation("Register"), {"input": registration}, None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    began = time.monotonic()
    response = await gql.http.post(
        "/graphql", json={"query": document, "variables": variables}, headers=headers
    )
    took = time.monotonic() - began
    return Answer(what, took, response.status_code, response.json(), response.headers.get("retry-after"))


async def burst(gql: GraphQLClient, user: Account) -> list[Answer]:
    """Mutations, uncached reads and registrations at once: more of each than a pool holds."""
    kinds = ["mutation", "read", "register"] * (POOL + 1)
    return list(await asyncio.gather(*(send(gql, what, user) for what in kinds)))


async def test_requests_to_a_frozen_postgresql_answer_503_within_the_statement_timeout_and_recover_after(
    gql: GraphQLClient, postgres: PostgresProcess, taskql: TaskqlProcess
) -> None:
    user = await register(gql)
    warm = await burst(gql, user)  # both pools hold connections now
    assert [(a.what, a.body) for a in warm if not a.ok] == []
    ws_url = taskql.url.replace("http", "ws") + "/graphql"

    postgres.freeze()
    try:
        # On pooled connections: the statements hang until their timeout.
        pooled = await burst(gql, user)
        # On new connections (the timed-out ones were dropped): the startup hangs, and so does the
        # WebSocket's session check.
        began = time.monotonic()
        fresh, refused, ready = await asyncio.gather(
            burst(gql, user),
            refusal(Subscriber.open(ws_url, {"authorization": f"Bearer {user.token}"})),
            gql.http.get("/readyz"),
        )
        ws_took = time.monotonic() - began
    finally:
        postgres.thaw()
    thawed = time.monotonic()

    for answers in (pooled, fresh):
        assert [(a.what, a.status, a.body) for a in answers if not a.unavailable_properly] == []
        assert {a.what for a in answers} == {"mutation", "read", "register"}
        assert max(a.took for a in answers) < TIMEOUT + SLACK, [(a.what, round(a.took, 2)) for a in answers]
    assert refused is not None
    assert refused.code == 1013
    assert ws_took < TIMEOUT + SLACK
    assert ready.status_code == 503  # a load balancer takes the instance out meanwhile

    # Back without a restart of taskql: every kind of request succeeds again, within a bound.
    while failed := [(a.what, a.body) for a in await burst(gql, user) if not a.ok]:
        assert time.monotonic() - thawed < RECOVERY_SECONDS, failed
        await asyncio.sleep(0.1)
    subscriber = await Subscriber.open(ws_url, {"authorization": f"Bearer {user.token}"})
    await subscriber.socket.close()
    log = taskql.output()
    assert "Traceback" not in log, log
    assert "PostgreSQL unavailable" in log
    assert "PostgreSQL is back" in log


async def refusal(opening: Any) -> Closed | None:
    """How the server closed a socket it refused (None: it accepted it)."""
    try:
        subscriber = await opening
    except Closed as closed:
        return closed
    await subscriber.socket.close()
    return None


async def test_statements_postgresql_cancels_at_the_statement_timeout_answer_503_and_the_next_succeed(
    gql: GraphQLClient, postgres: PostgresProcess
) -> None:
    """PostgreSQL answers, slowly (here: the tasks table locked by another session): it cancels the
    statement itself at DB_STATEMENT_TIMEOUT_SECONDS, and that is a 503 to retry too, not a bug."""
    user = await register(gql)
    locker = await asyncpg.connect(postgres.url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            answers = await asyncio.gather(send(gql, "mutation", user), send(gql, "read", user))
    finally:
        await locker.close()
    assert [(a.what, a.status, a.body) for a in answers if not a.unavailable_properly] == []
    assert max(a.took for a in answers) < TIMEOUT + SLACK, [(a.what, round(a.took, 2)) for a in answers]
    assert all(answer.ok for answer in await burst(gql, user))
