from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from core.settings import Settings
from taskql.app import TaskqlApp, create_app
from taskql.data import migrations as migrate
from tests.factories import Account, promote_to_admin, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient
from tests.processes import free_port
from tests.services import Services, check_reachable, locate

TABLES = (
    "idempotency_keys, account_tokens, refresh_tokens, auth_sessions, tasks, projects, users, outbox, "
    "pgqueuer, pgqueuer_log, pgqueuer_statistics, pgqueuer_schedules"
)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Services:
    return locate(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="session")
async def database(services: Services) -> AsyncIterator[Services]:
    """The schema at head for the session; taken down to base afterwards so the database is left clean."""
    await check_reachable(services)
    await asyncio.to_thread(migrate.upgrade, services.database_url)
    yield services
    await delete_redis_keys(services)
    await asyncio.to_thread(migrate.downgrade, services.database_url, "base")
    connection = await asyncpg.connect(services.dsn)
    try:  # alembic keeps its (now empty) version table: the database is left as we found it
        await connection.execute("DROP TABLE IF EXISTS alembic_version")
    finally:
        await connection.close()


def make_settings(services: Services, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": services.database_url,
        "redis_url": services.redis_url,
        "jwt_secret": SecretStr(secrets.token_urlsafe(48)),
        "environment": "development",
        "data_dir": Path("/nonexistent-data-dir"),
        # A worker in every app the suite starts would take the jobs of the tests that run one of their own.
        "jobs_embedded_worker": False,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def served(app: TaskqlApp) -> ASGIApp:
    """``app`` as a server runs it once its lifespan has: every request's state starts as a copy of what the
    lifespan yielded (asgi-lifespan's ``LifespanManager`` runs the lifespan; httpx's transport copies
    nothing)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = app.resources.state()
        await app(scope, receive, send)

    return serve


@pytest.fixture(scope="session")
def settings(database: Services) -> Settings:
    return make_settings(database)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[TaskqlApp]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@contextlib.asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to a separately configured app (its own lifespan)."""
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=served(application))
        async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as client:
            yield client


async def delete_redis_keys(services: Services) -> None:
    """Remove everything taskql keeps in Redis (all its keys start with ``taskql:``)."""
    redis = Redis.from_url(services.redis_url)
    try:
        async for key in redis.scan_iter(match="taskql:*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> None:
    """Every test that touches the servers starts from empty tables and no taskql keys in Redis."""
    if "database" not in request.fixturenames:
        return
    services: Services = request.getfixturevalue("database")
    connection = await asyncpg.connect(services.dsn)
    try:
        await connection.execute(f"TRUNCATE {TABLES} CASCADE")
    finally:
        await connection.close()
    await delete_redis_keys(services)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of the test's own (``tests.fault_servers``), which it may kill, freeze and restart."""
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    yield server
    server.close()


@pytest.fixture
async def http(app: TaskqlApp, database: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=served(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@pytest.fixture
async def alice(gql: GraphQLClient) -> Account:
    return await register(gql, email="alice@example.com", name="Alice")


@pytest.fixture
async def bob(gql: GraphQLClient) -> Account:
    return await register(gql, email="bob@example.com", name="Bob")


@pytest.fixture
async def admin(gql: GraphQLClient, database: Services) -> Account:
    account = await register(gql, email="admin@example.com", name="Admin")
    await promote_to_admin(database.dsn, account)
    return account
