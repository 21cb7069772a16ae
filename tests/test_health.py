import asyncio
import time

import asyncpg
import httpx
from starlette.applications import Starlette

from taskql.health import CHECK_TIMEOUT_SECONDS, known_revisions
from tests.conftest import client_for, make_settings
from tests.services import Services
from tests.sql import captured


async def test_healthz_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_reports_postgres_at_head_and_redis(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["postgres"]["revision"] == body["checks"]["postgres"]["head"] == "0001"
    assert body["checks"]["redis"] == {"ok": True, "circuit": "closed"}


async def test_graphiql_is_served_to_browsers_in_development(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def _set_revision(dsn: str, revision: str | None) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("DELETE FROM alembic_version")
        if revision is not None:
            await connection.execute("INSERT INTO alembic_version (version_num) VALUES ($1)", revision)
    finally:
        await connection.close()


async def test_readyz_is_unavailable_while_migrations_are_not_applied(
    http: httpx.AsyncClient, database: Services
) -> None:
    await _set_revision(database.dsn, None)
    try:
        response = await http.get("/readyz")
    finally:
        await _set_revision(database.dsn, "0001")
    body = response.json()
    assert (response.status_code, body["status"]) == (503, "unavailable")
    assert body["checks"]["postgres"]["migrations"] == "behind"
    assert (await http.get("/readyz")).json()["status"] == "ready"


async def test_readyz_stays_ready_when_a_newer_release_has_migrated_past_this_code(
    http: httpx.AsyncClient, database: Services
) -> None:
    # A rolling deploy: the new release migrated; the old instances must keep serving until replaced.
    await _set_revision(database.dsn, "9999_from_a_newer_release")
    try:
        response = await http.get("/readyz")
    finally:
        await _set_revision(database.dsn, "0001")
    body = response.json()
    assert (response.status_code, body["status"]) == (200, "ready")
    assert body["checks"]["postgres"]["migrations"] == "ahead"


async def test_probing_every_second_reads_the_migration_scripts_once_and_sends_one_statement(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    known_revisions.cache_clear()
    with captured(app) as statements:
        answers = [await http.get("/readyz") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert known_revisions.cache_info().misses == 1
    assert [sql for sql, _ in statements.executed] == ["SELECT version_num FROM alembic_version"] * 5


async def test_probes_that_arrive_together_share_one_check(http: httpx.AsyncClient, app: Starlette) -> None:
    with captured(app) as statements:
        answers = await asyncio.gather(*(http.get("/readyz") for _ in range(10)))
    assert {answer.json()["status"] for answer in answers} == {"ready"}
    assert len(statements) == 1


async def test_readyz_answers_within_its_bound_when_no_connection_is_free(database: Services) -> None:
    settings = make_settings(database, db_pool_size=1, db_max_overflow=0)
    async with client_for(settings) as http:
        engine = http._transport.app.state.resources.engine  # type: ignore[attr-defined]
        async with engine.connect():  # the pool's only connection, busy
            started = time.monotonic()
            response = await http.get("/readyz")
            took = time.monotonic() - started
    body = response.json()
    assert (response.status_code, body["status"]) == (503, "unavailable")
    assert body["checks"]["postgres"] == {"ok": False, "error": "TimeoutError", "pool_in_use": 1}
    assert took < CHECK_TIMEOUT_SECONDS + 0.7
