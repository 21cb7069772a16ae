"""The command line, run as a user runs it."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from taskql.app import create_app
from tests.conftest import make_settings, served
from tests.graphql_client import GraphQLClient
from tests.processes import ROOT, TEST_SECRET, environment, taskql
from tests.services import Services


@pytest.fixture
def env(database: Services) -> dict[str, str]:
    return environment(
        DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET
    )


def test_export_schema_check_passes_on_the_committed_sdl(tmp_path: Path) -> None:
    result = taskql("export-schema", "--check", env=environment(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_export_schema_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "schema.graphql"
    stale.write_text((ROOT / "graphql" / "schema.graphql").read_text().replace("Short title", "Old title"))
    result = taskql("export-schema", "--check", "--output", str(stale), env=environment(), cwd=tmp_path)
    assert result.returncode == 1
    assert "out of date" in result.stderr


def test_migrate_twice_is_harmless(env: dict[str, str], tmp_path: Path) -> None:
    assert taskql("migrate", env=env, cwd=tmp_path).returncode == 0
    second = taskql("migrate", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr


async def test_create_admin_makes_an_admin_who_can_log_in(
    env: dict[str, str], tmp_path: Path, database: Services
) -> None:
    password = "an admin passphrase"
    result = taskql(
        "create-admin",
        "--email",
        "Root@Example.com",
        "--name",
        "Root",
        "--password",
        password,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "created admin: root@example.com" in result.stderr
    # Verified by the operator who made it: it logs in where unverified addresses may not.
    settings = make_settings(database, jwt_secret=TEST_SECRET, require_verified_email=True)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=served(app)), base_url="http://t") as http,
    ):
        gql = GraphQLClient(http)
        login = (await gql.run("Login", {"input": {"email": "root@example.com", "password": password}})).ok()[
            "login"
        ]
        assert login["user"]["role"] == "ADMIN"
        assert (await gql.run("Users", {"first": 5}, token=login["accessToken"])).ok()["users"][
            "totalCount"
        ] == 1


def test_create_admin_promotes_an_existing_account_and_refuses_a_weak_password(
    env: dict[str, str], tmp_path: Path
) -> None:
    weak = taskql("create-admin", "--email", "a@example.com", "--password", "short", env=env, cwd=tmp_path)
    assert weak.returncode == 2
    assert "admin.password" in weak.stderr
    strong = ["--email", "a@example.com", "--password", "a strong passphrase"]
    assert taskql("create-admin", *strong, env=env, cwd=tmp_path).returncode == 0
    again = taskql("create-admin", *strong, env=env, cwd=tmp_path)
    assert "promoted to admin" in again.stderr


async def test_seed_inserts_the_requested_users_and_tasks(
    env: dict[str, str], tmp_path: Path, database: Services
) -> None:
    result = taskql("seed", "--users", "7", "--tasks", "1234", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    connection = await asyncpg.connect(database.dsn)
    try:
        users = await connection.fetchval("SELECT count(*) FROM users")
        tasks = await connection.fetchval("SELECT count(*) FROM tasks")
        owners = await connection.fetchval("SELECT count(DISTINCT owner_id) FROM tasks")
    finally:
        await connection.close()
    assert (users, tasks, owners) == (7, 1234, 7)
