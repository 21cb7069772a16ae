import asyncio
import time

import httpx
from asgi_lifespan import LifespanManager

from taskql.app import TaskqlApp, create_app
from taskql.data import migrations as migrate
from taskql.ops.health import CHECK_TIMEOUT_SECONDS
from tests.conftest import make_settings, served
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
    assert (
        body["checks"]["postgres"]["revision"]
        == body["checks"]["postgres"]["head"]
        == migrate.head_revision()
    )
    assert body["checks"]["redis"] == {"ok": True, "circuit": "closed"}


async def test_graphiql_is_served_to_browsers_in_development(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_probing_every_second_reads_the_migration_scripts_once_and_the_same_statements(
    http: httpx.AsyncClient, app: TaskqlApp
) -> None:
    migrate._scripts.cache_clear()
    with captured(app) as statements:
        answers = [await http.get("/readyz") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert migrate._scripts.cache_info().misses == 1
    assert len(statements) == 5 * len({sql for sql, _ in statements.executed})


async def test_probes_that_arrive_together_share_one_check(http: httpx.AsyncClient, app: TaskqlApp) -> None:
    with captured(app) as statements:
        answers = await asyncio.gather(*(http.get("/readyz") for _ in range(10)))
    assert {answer.json()["status"] for answer in answers} == {"ready"}
    assert len({sql for sql, _ in statements.executed}) == len(statements), "one check for all ten"


async def test_readyz_answers_within_its_bound_when_no_connection_is_free(database: Services) -> None:
    settings = make_settings(database, db_pool_size=1, db_max_overflow=0)
    application = create_app(settings)
    transport = httpx.ASGITransport(app=served(application))
    async with (
        LifespanManager(application),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        application.resources.engine.connect(),  # the pool's only connection, busy
    ):
        started = time.monotonic()
        response = await http.get("/readyz")
        took = time.monotonic() - started
    body = response.json()
    assert (response.status_code, body["status"]) == (503, "unavailable")
    assert body["checks"]["postgres"] == {"ok": False, "error": "TimeoutError", "pool_in_use": 1}
    assert took < CHECK_TIMEOUT_SECONDS + 0.7
