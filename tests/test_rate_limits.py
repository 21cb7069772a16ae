"""Budgets in Redis, shared by every instance: points per viewer (per client IP without a token) charged
from each operation's cost, cache hits at a flat cost, and login/refresh attempts per account and per IP.
Login and refresh fail closed when Redis is unreachable; everything else keeps working."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from core.settings import Settings
from taskql.app import TaskqlApp, create_app
from taskql.policy.rate_limits import HIT_FLUSH_SECONDS
from tests.conftest import served
from tests.factories import PASSWORD, Account, create_task, register
from tests.fault_servers import RedisProcess
from tests.graphql_client import GraphQLClient, Response
from tests.processes import free_port
from tests.sql import captured

WINDOW = 3600
# tasks 1 + 10 * owner 1
PAGE = "query Page($n: Int = 10) { tasks(first: $n) { edges { node { title owner { id } } } } }"
PAGE_COST = 11
LOGIN = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }"


@pytest.fixture(autouse=True)
async def fresh_window() -> None:
    """Windows are aligned to the clock: never start a test in the last seconds of one."""
    left = WINDOW - time.time() % WINDOW
    if left < 15:
        await asyncio.sleep(left + 0.1)


@contextlib.asynccontextmanager
async def instance(settings: Settings, **overrides: Any) -> AsyncIterator[TaskqlApp]:
    """A taskql instance of its own (its own lifespan), on the tests' PostgreSQL and Redis. Without the
    response cache unless asked: a repeated query would be a cache hit, charged at its flat cost."""
    values: dict[str, Any] = {"rate_limit_window_seconds": WINDOW, "response_cache": False, **overrides}
    application = create_app(settings.model_copy(update=values))
    async with LifespanManager(application):
        yield application


@contextlib.asynccontextmanager
async def client(app: TaskqlApp, ip: str = "203.0.113.7") -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=served(app), client=(ip, 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
        yield GraphQLClient(http)


async def budget(gql: GraphQLClient, token: str | None = None) -> dict[str, Any]:
    return dict((await gql.run("RateLimit", token=token)).ok()["rateLimit"])


def login(gql: GraphQLClient, email: str, password: str = PASSWORD) -> Any:
    return gql.query(LOGIN, {"input": {"email": email, "password": password}})


async def test_rate_limit_tells_the_budget_without_spending_it(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with instance(settings, rate_limit_points=1000) as app, client(app) as gql:
        first = await budget(gql, alice.token)
        second = await budget(gql, alice.token)
    assert first == second
    assert (first["cost"], first["limit"], first["used"], first["remaining"]) == (0, 1000, 0, 1000)
    reset_at = datetime.fromisoformat(first["resetAt"]).timestamp()
    assert reset_at % WINDOW == 0
    assert 0 < reset_at - time.time() <= WINDOW


async def test_each_operation_spends_its_cost_and_says_so(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with instance(settings, rate_limit_points=1000) as app, client(app) as gql:
        page = await gql.query(PAGE, token=alice.token)
        page.ok()
        assert page.body["extensions"]["cost"] == {
            "requested": PAGE_COST,
            "limit": 1000,
            "remaining": 1000 - PAGE_COST,
            "resetAt": (await budget(gql, alice.token))["resetAt"],
        }
        assert page.headers["ratelimit-limit"] == "1000"
        assert page.headers["ratelimit-remaining"] == str(1000 - PAGE_COST)
        assert 0 < int(page.headers["ratelimit-reset"]) <= WINDOW
        # Asked together with other fields, rateLimit reports this operation's charge.
        both = await gql.query("{ rateLimit { cost used remaining } me { id } }", token=alice.token)
        assert both.ok()["rateLimit"] == {"cost": 1, "used": PAGE_COST + 1, "remaining": 1000 - PAGE_COST - 1}
        assert (await budget(gql, alice.token))["remaining"] == 1000 - PAGE_COST - 1


async def test_a_spent_budget_is_refused_before_any_resolver_runs_with_retry_after(
    settings: Settings, gql: GraphQLClient, alice: Account
) -> None:
    await create_task(gql, alice)  # through the tests' own app: another budget
    points = 2 * PAGE_COST + 5
    async with instance(settings, rate_limit_points=points) as app, client(app) as limited:
        with captured(app) as allowed:  # the control: an operation that runs reads tasks
            (await limited.query(PAGE, token=alice.token)).ok()
        assert allowed.matching("FROM tasks")
        (await limited.query(PAGE, token=alice.token)).ok()
        with captured(app) as statements:
            refused = await limited.query(PAGE, token=alice.token)
        # What is left (5) still pays for a cheaper operation.
        (await limited.query(PAGE, {"n": 4}, token=alice.token)).ok()
        assert (await budget(limited, alice.token))["remaining"] == 0
    assert refused.status == 429
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.data is None
    retry_after = refused.errors[0]["extensions"]["retryAfter"]
    assert 0 < retry_after <= WINDOW
    assert refused.headers["retry-after"] == str(retry_after)
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-limit"] == str(points)
    assert not statements.matching("FROM tasks")


async def test_charges_still_count_after_redis_forgot_its_scripts(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with instance(settings, rate_limit_points=1000) as app, client(app) as gql:
        (await gql.query(PAGE, token=alice.token)).ok()
        await app.resources.redis.script_flush()  # as after a restart
        (await gql.query(PAGE, token=alice.token)).ok()
        assert (await budget(gql, alice.token))["used"] == 2 * PAGE_COST


async def test_an_operation_costing_more_than_a_whole_window_is_too_complex_not_rate_limited(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with instance(settings, rate_limit_points=10) as app, client(app) as gql:
        response = await gql.query(PAGE, token=alice.token)
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    assert response.errors[0]["extensions"]["maxCost"] == 10


async def test_two_instances_share_one_budget(settings: Settings, database: Any, alice: Account) -> None:
    limits = {"rate_limit_points": 3 * PAGE_COST}
    async with (
        instance(settings, **limits) as one,
        instance(settings, **limits) as two,
        client(one) as first,
        client(two) as second,
    ):
        (await first.query(PAGE, token=alice.token)).ok()
        (await second.query(PAGE, token=alice.token)).ok()
        (await first.query(PAGE, token=alice.token)).ok()
        assert (await second.query(PAGE, token=alice.token)).codes == ["RATE_LIMITED"]
        assert (await budget(first, alice.token))["used"] == 3 * PAGE_COST


async def test_each_viewer_has_a_budget_of_their_own(
    settings: Settings, database: Any, alice: Account, bob: Account
) -> None:
    async with instance(settings, rate_limit_points=PAGE_COST) as app, client(app) as gql:
        (await gql.query(PAGE, token=alice.token)).ok()
        assert (await gql.query(PAGE, token=alice.token)).codes == ["RATE_LIMITED"]
        (await gql.query(PAGE, token=bob.token)).ok()


async def test_anonymous_callers_are_charged_per_client_ip(settings: Settings, database: Any) -> None:
    async with (
        instance(settings, rate_limit_anonymous_points=3) as app,
        client(app, "198.51.100.1") as first,
        client(app, "198.51.100.2") as second,
    ):
        for _ in range(3):
            (await first.run("Me")).ok()
        assert (await first.run("Me")).codes == ["RATE_LIMITED"]
        assert (await second.run("Me")).ok() == {"me": None}
        assert (await budget(second))["limit"] == 3


async def test_cache_hits_are_charged_a_flat_cost_after_they_are_answered(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with (
        instance(settings, rate_limit_points=1000, rate_limit_cached_cost=2, response_cache=True) as app,
        client(app) as gql,
    ):
        await create_task(gql, alice)
        spent = (await budget(gql, alice.token))["used"]
        assert (await gql.query(PAGE, token=alice.token)).headers["x-cache"] == "MISS"
        for _ in range(3):
            assert (await gql.query(PAGE, token=alice.token)).headers["x-cache"] == "HIT"
        await asyncio.sleep(HIT_FLUSH_SECONDS * 3)
        assert (await budget(gql, alice.token))["used"] == spent + PAGE_COST + 3 * 2


async def test_a_spent_budget_refuses_cache_hits_too(
    settings: Settings, database: Any, alice: Account
) -> None:
    limits = {"rate_limit_points": PAGE_COST + 2, "response_cache": True}
    async with instance(settings, **limits) as app, client(app) as gql:
        assert (await gql.query(PAGE, token=alice.token)).headers["x-cache"] == "MISS"
        for _ in range(2):
            assert (await gql.query(PAGE, token=alice.token)).headers["x-cache"] == "HIT"
        await asyncio.sleep(HIT_FLUSH_SECONDS * 3)  # the hits' charges reach Redis: the budget is spent
        refused = await gql.query(PAGE, token=alice.token)
    assert refused.status == 429
    assert refused.codes == ["RATE_LIMITED"]
    assert "x-cache" not in refused.headers or refused.headers["x-cache"] != "HIT"


async def test_login_attempts_are_limited_per_account_whatever_the_password(
    settings: Settings, database: Any, alice: Account, bob: Account
) -> None:
    async with instance(settings, login_attempts_per_account=3) as app, client(app) as gql:
        for _ in range(3):
            assert (await login(gql, alice.email, "wrong password!")).codes == ["UNAUTHENTICATED"]
        refused: Response = await login(gql, alice.email.upper())  # the right one, in another case
        (await login(gql, bob.email)).ok()
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["scope"] == "ACCOUNT"
    assert 0 < refused.errors[0]["extensions"]["retryAfter"] <= 300
    # A field's error (GraphQL over HTTP: 200, even with data null), with the header all the same.
    assert refused.status == 200
    assert refused.headers["retry-after"] == str(refused.errors[0]["extensions"]["retryAfter"])


async def test_login_attempts_are_limited_per_ip_whatever_the_account(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with (
        instance(settings, login_attempts_per_ip=3) as app,
        client(app, "198.51.100.9") as gql,
        client(app, "198.51.100.10") as elsewhere,
    ):
        for number in range(3):
            await login(gql, f"nobody{number}@example.com")
        refused = await login(gql, alice.email)
        (await login(elsewhere, alice.email)).ok()
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["scope"] == "IP"


async def test_aliased_logins_in_one_document_count_one_attempt_each(
    settings: Settings, database: Any, alice: Account
) -> None:
    def aliased(count: int) -> str:
        fields = " ".join(
            f'a{n}: login(input: {{email: "{alice.email}", password: "{PASSWORD}"}}) {{ accessToken }}'
            for n in range(count)
        )
        return "mutation { " + fields + " }"

    async with instance(settings, login_attempts_per_account=3) as app, client(app) as gql:
        assert len((await gql.query(aliased(3))).ok()) == 3
        assert (await login(gql, alice.email)).codes == ["RATE_LIMITED"]
        carol = await register(gql, email="carol@example.com")
        response = await gql.query(aliased(4).replace(alice.email, carol.email))
    assert response.codes == ["RATE_LIMITED"]
    assert response.errors[0]["path"] == ["a3"]  # the fourth: three were counted before it


async def test_refreshes_are_limited_per_account_and_a_refused_one_keeps_its_token(
    settings: Settings, database: Any, alice: Account
) -> None:
    async with instance(settings, refresh_attempts_per_account=2) as app, client(app) as gql:
        token = alice.refresh_token
        for _ in range(2):
            token = (await gql.run("RefreshToken", {"token": token})).ok()["refreshToken"]["refreshToken"]
        refused = await gql.run("RefreshToken", {"token": token})
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["scope"] == "ACCOUNT"
    async with instance(settings) as app, client(app) as gql:  # later (here: a higher limit)
        (await gql.run("RefreshToken", {"token": token})).ok()  # not consumed by the refusal


async def test_refreshes_are_limited_per_ip(settings: Settings, database: Any) -> None:
    async with instance(settings, refresh_attempts_per_ip=2) as app, client(app) as gql:
        for _ in range(2):
            assert (await gql.run("RefreshToken", {"token": "not-a-token"})).codes == ["UNAUTHENTICATED"]
        refused = await gql.run("RefreshToken", {"token": "not-a-token"})
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["scope"] == "IP"


@pytest.fixture
async def no_redis(settings: Settings, database: Any) -> AsyncIterator[GraphQLClient]:
    """An instance whose Redis is a closed port."""
    async with (
        instance(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0") as app,
        client(app) as gql,
    ):
        yield gql


async def test_login_fails_closed_when_redis_is_unreachable(no_redis: GraphQLClient, alice: Account) -> None:
    started = time.monotonic()
    refused = await login(no_redis, alice.email)
    assert time.monotonic() - started < 1.5
    assert refused.codes == ["SERVICE_UNAVAILABLE"]
    extensions = refused.errors[0]["extensions"]
    assert extensions["reason"] == "RATE_LIMITER_UNAVAILABLE"
    assert extensions["retryAfter"] >= 1
    assert refused.status == 503
    assert refused.headers["retry-after"] == str(extensions["retryAfter"])
    assert "accessToken" not in str(refused.body)
    refresh = await no_redis.run("RefreshToken", {"token": alice.refresh_token})
    assert refresh.codes == ["SERVICE_UNAVAILABLE"]


async def test_a_frozen_redis_refuses_logins_after_a_bounded_delay_then_at_once(
    settings: Settings, database: Any, alice: Account, tmp_path: Path
) -> None:
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    try:
        async with instance(settings, redis_url=server.url) as app, client(app) as gql:
            (await gql.run("Me", token=alice.token)).ok()  # Redis answers
            server.signal(signal.SIGSTOP)
            delays = []
            for _ in range(3):
                started = time.monotonic()
                assert (await login(gql, alice.email)).codes == ["SERVICE_UNAVAILABLE"]
                delays.append(time.monotonic() - started)
    finally:
        server.close()
    assert delays[0] < 1.5  # one socket timeout (0.5 s), then the circuit is open
    assert max(delays[1:]) < 0.5  # without waiting: the circuit answers


async def test_reads_and_writes_keep_working_uncounted_when_redis_is_unreachable(
    no_redis: GraphQLClient, alice: Account
) -> None:
    (await no_redis.run("CreateTask", {"input": {"title": "written without Redis"}}, token=alice.token)).ok()
    page = await no_redis.query(PAGE, token=alice.token)
    assert [edge["node"]["title"] for edge in page.ok()["tasks"]["edges"]] == ["written without Redis"]
    assert page.body["extensions"]["cost"] == {"requested": PAGE_COST}
    assert "ratelimit-remaining" not in page.headers
    assert (await no_redis.run("RateLimit", token=alice.token)).codes == ["SERVICE_UNAVAILABLE"]


def refusals_counted(limit: str) -> float:
    return REGISTRY.get_sample_value("taskql_rate_limited_total", {"limit": limit}) or 0.0


async def test_refusals_are_counted_in_the_metrics_by_limit(
    settings: Settings, database: Any, alice: Account
) -> None:
    points, logins = refusals_counted("points"), refusals_counted("login_per_account")
    limited = instance(settings, rate_limit_points=PAGE_COST, login_attempts_per_account=1)
    async with limited as app, client(app) as gql:
        (await gql.query(PAGE, token=alice.token)).ok()
        assert (await gql.query(PAGE, token=alice.token)).codes == ["RATE_LIMITED"]
        assert (await login(gql, alice.email, "wrong password!")).codes == ["UNAUTHENTICATED"]
        assert (await login(gql, alice.email)).codes == ["RATE_LIMITED"]
    assert refusals_counted("points") == points + 1
    assert refusals_counted("login_per_account") == logins + 1
