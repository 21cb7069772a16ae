"""Instances whose clocks differ by a few seconds accept each other's fresh access tokens
(``JWT_LEEWAY_SECONDS``); a token issued further in the future is refused with a reason of its own.

Tokens are issued as an instance with a clock ahead issues them: by ``issue_access_token`` with that
instance's ``now``, and, end to end, by a real ``taskql serve`` whose clock libfaketime moves ahead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from auth.tokens import TokenConfig, issue_access_token
from core.settings import Settings
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient, Response
from tests.processes import TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services

AHEAD = timedelta(seconds=1.5)  # measured between two instances in taskql#13
LIBFAKETIME = next(
    iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))),
    Path("/usr/lib/faketime/libfaketime.so.1"),
)


def issued_by_a_clock_ahead(settings: Settings, account: Account, ahead: timedelta) -> str:
    """``account``'s access token (same user, same session) as an instance whose clock is ``ahead`` of this
    one's issues it: the same function and settings, its ``now``."""
    claims = jwt.decode(account.token, options={"verify_signature": False})
    now = datetime.now(UTC) + ahead
    token, _ = issue_access_token(
        TokenConfig.of(settings), uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), now
    )
    return token


def reason(response: Response) -> str | None:
    return response.errors[0]["extensions"].get("reason") if response.errors else None


async def test_a_token_issued_by_an_instance_whose_clock_is_1_5_s_ahead_is_accepted_at_once(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    token = issued_by_a_clock_ahead(settings, alice, AHEAD)
    assert (await gql.run("Me", token=token)).ok()["me"]["id"] == alice.id


async def test_a_token_issued_60_s_in_the_future_is_refused_as_not_yet_valid_with_advice(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    response = await gql.run("Me", token=issued_by_a_clock_ahead(settings, alice, timedelta(seconds=60)))
    assert response.data is None or response.data.get("me") is None
    assert [error["extensions"] for error in response.errors] == [
        {"code": "UNAUTHENTICATED", "reason": "TOKEN_NOT_YET_VALID"}
    ]
    message = response.errors[0]["message"]
    assert "Refresh it" in message
    assert "JWT_LEEWAY_SECONDS" in message  # what to check on the servers


async def test_a_token_expired_within_the_leeway_is_accepted_and_refused_as_expired_beyond_it(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    """The issuing instance's clock may be behind ours as well: its tokens then expire early on ours."""
    lifetime = timedelta(seconds=settings.access_token_ttl_seconds)
    leeway = timedelta(seconds=settings.jwt_leeway_seconds)
    inside = issued_by_a_clock_ahead(settings, alice, -lifetime - leeway + timedelta(seconds=5))
    assert (await gql.run("Me", token=inside)).ok()["me"]["id"] == alice.id
    beyond = issued_by_a_clock_ahead(settings, alice, -lifetime - leeway - timedelta(seconds=1))
    assert reason(await gql.run("Me", token=beyond)) == "TOKEN_EXPIRED"


@pytest.fixture
def instances(database: Services, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Three real servers on one PostgreSQL and Redis: ``ahead``, whose clock runs 1.5 s ahead
    (libfaketime); ``server``, with the default leeway; ``strict``, with none (the clocks as they were
    before, to show the skew is real)."""
    if not LIBFAKETIME.exists():
        # CI installs it (.ci/run) and must run this test; elsewhere it is only skipped.
        assert not os.environ.get("CI"), "libfaketime is required in CI: apt-get install faketime"
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    base = environment(
        DATABASE_URL=database.database_url,
        REDIS_URL=database.redis_url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="WARNING",
    )
    clock_ahead = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"+{AHEAD.total_seconds()}",
        "DONT_FAKE_MONOTONIC": "1",  # timers and timeouts run as usual; only the wall clock is ahead
    }
    envs = {"ahead": {**base, **clock_ahead}, "server": base, "strict": {**base, "JWT_LEEWAY_SECONDS": "0"}}
    ports = {name: free_port() for name in envs}
    processes = {name: start_server(env, tmp_path, ports[name]) for name, env in envs.items()}
    try:
        for name, process in processes.items():
            wait_ready(process, ports[name])
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        outputs = [stop(process) for process in processes.values()]
    for output in outputs:
        assert "Traceback" not in output, output


async def test_tokens_from_a_real_server_whose_clock_is_1_5_s_ahead_work_on_another_at_once(
    instances: dict[str, str],
) -> None:
    async with (
        httpx.AsyncClient(base_url=instances["ahead"], timeout=30) as ahead_http,
        httpx.AsyncClient(base_url=instances["server"], timeout=30) as server_http,
        httpx.AsyncClient(base_url=instances["strict"], timeout=30) as strict_http,
    ):
        ahead, server, strict = (GraphQLClient(http) for http in (ahead_http, server_http, strict_http))
        account = await register(ahead)
        assert (await server.run("Me", token=account.token)).ok()["me"]["id"] == account.id
        for _ in range(3):  # a refresh on one instance, then at once a request to the other
            refreshed = (await ahead.run("RefreshToken", {"token": account.refresh_token})).ok()
            account.token, account.refresh_token = (
                refreshed["refreshToken"]["accessToken"],
                refreshed["refreshToken"]["refreshToken"],
            )
            assert (await server.run("Me", token=account.token)).ok()["me"]["id"] == account.id
        # Without a leeway, the fresh token is refused (the skew is real), and says why.
        refreshed = (await ahead.run("RefreshToken", {"token": account.refresh_token})).ok()
        assert reason(await strict.run("Me", token=refreshed["refreshToken"]["accessToken"])) == (
            "TOKEN_NOT_YET_VALID"
        )
