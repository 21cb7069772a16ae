"""ENVIRONMENT=production: the schema keeps itself to itself, browsers cannot forge requests, every response
carries the security headers (cache hits included), and weak settings stop the server before it starts."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from core.settings import Settings
from taskql.http.security import JSON_POLICY
from tests.conftest import client_for, make_settings
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import environment, taskql
from tests.services import Services

ORIGIN = "https://app.example.com"
SCHEMA_QUERY = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "Task") { fields { name } } }'
ME = operation("Me")
CSRF = "Cross-Site Request Forgery"
PREFLIGHTED = {"apollo-require-preflight": "true"}
SECRET = secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
async def production(database: Services) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database, environment="production", cors_origins=[ORIGIN])
    async with client_for(settings) as client:
        yield client


@pytest.fixture
def prod_gql(production: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(production)


@pytest.fixture
async def carol(prod_gql: GraphQLClient) -> Account:
    return await register(prod_gql, email="carol@example.com", name="Carol")


def bearer(account: Account) -> dict[str, str]:
    return {"authorization": f"Bearer {account.token}"}


# --- introspection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [SCHEMA_QUERY, TYPE_QUERY])
async def test_introspection_is_refused_in_production_with_its_own_code(
    prod_gql: GraphQLClient, document: str
) -> None:
    response = await prod_gql.query(document)
    assert (response.status, response.data, response.codes) == (200, None, ["INTROSPECTION_DISABLED"])
    assert "graphql/schema.graphql" in response.errors[0]["message"]


async def test_introspection_hidden_in_a_fragment_is_refused_too(prod_gql: GraphQLClient) -> None:
    response = await prod_gql.query("query { ...F } fragment F on Query { __schema { types { name } } }")
    assert response.codes == ["INTROSPECTION_DISABLED"]


async def test_typename_still_answers_in_production(prod_gql: GraphQLClient) -> None:
    assert (await prod_gql.query("{ __typename }")).ok() == {"__typename": "Query"}


async def test_introspection_answers_in_development(gql: GraphQLClient) -> None:
    assert (await gql.query(SCHEMA_QUERY)).ok() == {"__schema": {"queryType": {"name": "Query"}}}


def test_the_introspection_setting_overrides_the_environment() -> None:
    assert Settings(environment="production", jwt_secret=SECRET, introspection=True).introspection_enabled
    assert not Settings(introspection=False).introspection_enabled


# --- suggestions ------------------------------------------------------------------------------------------

FILTERED = "query Q($f: TaskFilter) { tasks(first: 1, filter: $f) { totalCount } }"
SUGGESTING: dict[str, tuple[str, dict[str, Any] | None]] = {
    "an unknown field": ("{ me { emial } }", None),
    "an unknown argument": ("{ tasks(frist: 1) { totalCount } }", None),
    "an unknown type": ("query Q($f: TaskFiltre) { tasks(first: 1, filter: $f) { totalCount } }", None),
    "an unknown enum value": ("{ tasks(first: 1, filter: {status: [DON]}) { totalCount } }", None),
    "an unknown input field": ("{ tasks(first: 1, filter: {statuss: [DONE]}) { totalCount } }", None),
    "an unknown enum value in a variable": (FILTERED, {"f": {"status": ["DON"]}}),
    "an unknown input field in a variable": (FILTERED, {"f": {"statuss": ["DONE"]}}),
}


@pytest.mark.parametrize("case", SUGGESTING)
async def test_errors_suggest_names_in_development_and_never_in_production(
    gql: GraphQLClient, prod_gql: GraphQLClient, case: str
) -> None:
    document, variables = SUGGESTING[case]
    development = await gql.query(document, variables)
    production = await prod_gql.query(document, variables)
    assert any("Did you mean" in error["message"] for error in development.errors), development.body
    assert production.errors, production.body
    assert not any("Did you mean" in error["message"] for error in production.errors), production.body
    assert production.codes == development.codes


# --- CSRF prevention --------------------------------------------------------------------------------------


def refused_as_csrf(response: httpx.Response) -> bool:
    if response.status_code != 400 or CSRF not in response.text:
        return False
    [error] = response.json()["errors"]
    return bool(error["extensions"]["code"] == "BAD_REQUEST")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "TEXT/Plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ],
)
async def test_a_post_a_page_could_send_without_a_preflight_is_refused(
    production: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await production.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert refused_as_csrf(response), response.text


async def test_a_get_without_a_preflight_header_is_refused(production: httpx.AsyncClient) -> None:
    response = await production.get("/graphql", params={"query": "{ __typename }"})
    assert refused_as_csrf(response), response.text
    response = await production.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"apollo-require-preflight": ""}
    )
    assert refused_as_csrf(response), "an empty header is no header"


@pytest.mark.parametrize(
    "headers",
    [
        {"apollo-require-preflight": "true"},
        {"x-apollo-operation-name": "Typename"},
        {"content-type": "application/json"},  # what Apollo Client sends on its GETs
    ],
)
async def test_a_get_with_a_preflight_header_or_a_json_content_type_is_answered(
    production: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await production.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


async def test_a_json_post_is_answered(prod_gql: GraphQLClient) -> None:
    assert (await prod_gql.query("{ __typename }")).ok() == {"__typename": "Query"}


async def test_a_text_plain_post_with_a_preflight_header_gets_past_the_csrf_check(
    production: httpx.AsyncClient,
) -> None:
    response = await production.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={"content-type": "text/plain", **PREFLIGHTED},
    )
    assert not refused_as_csrf(response), response.text


async def test_a_cross_site_form_cannot_register_an_account(
    production: httpx.AsyncClient, prod_gql: GraphQLClient
) -> None:
    credentials = {"email": "mallory@example.com", "password": "a long enough passphrase"}
    body = json.dumps({"query": operation("Register"), "variables": {"input": {**credentials, "name": "M"}}})
    # What <form enctype="text/plain"> on another site can post: refused, and nothing is written.
    forged = await production.post("/graphql", content=body, headers={"content-type": "text/plain"})
    assert refused_as_csrf(forged), forged.text
    assert (await prod_gql.run("Login", {"input": credentials})).codes == ["UNAUTHENTICATED"]
    # The same body from a client that can send JSON registers the account.
    sent = await production.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert sent.json()["data"]["register"]["user"]["email"] == credentials["email"]


async def test_a_cache_hit_is_not_served_to_a_request_csrf_prevention_refuses(
    production: httpx.AsyncClient, carol: Account
) -> None:
    params = {"query": ME}
    miss = await production.get("/graphql", params=params, headers={**bearer(carol), **PREFLIGHTED})
    hit = await production.get("/graphql", params=params, headers={**bearer(carol), **PREFLIGHTED})
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    forged = await production.get("/graphql", params=params, headers=bearer(carol))
    assert refused_as_csrf(forged), forged.text
    assert "x-cache" not in forged.headers


async def test_a_cors_preflight_is_not_refused(production: httpx.AsyncClient) -> None:
    response = await production.options(
        "/graphql",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "GET",
            "access-control-request-headers": "apollo-require-preflight",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "apollo-require-preflight" in response.headers["access-control-allow-headers"].lower()


async def test_development_answers_a_plain_get_by_default(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": "{ __typename }"})
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


# --- security headers -------------------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": JSON_POLICY,
}


def assert_security_headers(response: httpx.Response, *, production: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], (name, response.headers)
    hsts = response.headers.get_list("strict-transport-security")
    assert hsts == (["max-age=63072000; includeSubDomains"] if production else []), response.headers
    assert len(response.headers.get_list("x-request-id")) == 1, response.headers


async def test_a_graphql_answer_carries_the_security_headers(prod_gql: GraphQLClient) -> None:
    response = await prod_gql.http.post("/graphql", json={"query": "{ __typename }"})
    assert_security_headers(response)


async def test_a_cache_hit_from_the_express_lane_carries_the_same_headers(
    production: httpx.AsyncClient, carol: Account
) -> None:
    for _ in range(2):
        response = await production.post("/graphql", json={"query": ME}, headers=bearer(carol))
    assert response.headers["x-cache"] == "HIT"
    assert_security_headers(response)


async def test_a_cross_origin_cache_hit_carries_them_too(
    production: httpx.AsyncClient, carol: Account
) -> None:
    # With an Origin the request skips the express lane: CORS must see it, and the hit is served after it.
    headers = {**bearer(carol), "origin": ORIGIN}
    for _ in range(2):
        response = await production.post("/graphql", json={"query": ME}, headers=headers)
    assert (response.headers["x-cache"], response.headers["access-control-allow-origin"]) == ("HIT", ORIGIN)
    assert_security_headers(response)


async def test_a_get_cache_hit_and_its_304_carry_them(production: httpx.AsyncClient, carol: Account) -> None:
    headers = {**bearer(carol), **PREFLIGHTED}
    for _ in range(2):
        hit = await production.get("/graphql", params={"query": ME}, headers=headers)
    assert hit.headers["x-cache"] == "HIT"
    assert_security_headers(hit)
    revalidated = await production.get(
        "/graphql", params={"query": ME}, headers={**headers, "if-none-match": hit.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert_security_headers(revalidated)


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("GET", "/healthz", None),
        ("GET", "/nowhere", None),
        ("POST", "/graphql", b"{not json"),
        ("GET", "/graphql", None),  # refused by CSRF prevention
        ("OPTIONS", "/graphql", None),  # a preflight CORS answers itself
    ],
)
async def test_every_other_response_carries_them(
    production: httpx.AsyncClient, method: str, path: str, content: bytes | None
) -> None:
    headers = {"content-type": "application/json"} if content else {}
    if method == "OPTIONS":
        headers = {"origin": ORIGIN, "access-control-request-method": "POST"}
    response = await production.request(method, path, content=content, headers=headers)
    assert_security_headers(response)


async def test_development_sends_no_hsts(http: httpx.AsyncClient) -> None:
    assert_security_headers(await http.post("/graphql", json={"query": "{ __typename }"}), production=False)


async def test_the_graphiql_page_may_run_its_own_assets_only(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    [policy] = page.headers.get_list("content-security-policy")
    directives = dict(directive.split(" ", 1) for directive in policy.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"].startswith("'self' 'sha256-")
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"


# --- request ids ------------------------------------------------------------------------------------------


async def test_a_well_formed_request_id_is_kept_on_answers_and_cache_hits(
    production: httpx.AsyncClient, carol: Account
) -> None:
    for number in range(2):
        request_id = f"req-{number}-{secrets.token_hex(8)}"
        response = await production.post(
            "/graphql", json={"query": ME}, headers={**bearer(carol), "x-request-id": request_id}
        )
        assert response.headers["x-request-id"] == request_id
    assert response.headers["x-cache"] == "HIT"


@pytest.mark.parametrize("sent", ["x" * 129, "two words", 'quo"te', "semi;colon", ""])
async def test_a_malformed_request_id_is_replaced(prod_gql: GraphQLClient, sent: str) -> None:
    response = await prod_gql.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": sent}
    )
    assert response.headers["x-request-id"] not in (sent, "")


async def test_requests_without_an_id_each_get_their_own(prod_gql: GraphQLClient) -> None:
    ids = {(await prod_gql.query("{ __typename }")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


# --- weak settings ----------------------------------------------------------------------------------------


def production_settings(**values: Any) -> Settings:
    return Settings(environment="production", jwt_secret=SECRET, **values)


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("database_url", "postgresql://postgres:postgres@db:5432/taskql"),
        ("database_url", "postgresql+asyncpg://taskql:changeme@db/taskql"),
        ("database_url", "postgresql://app:Password@db/taskql"),
        ("database_read_url", "postgresql://taskql:changeme@replica/taskql"),
        ("redis_url", "redis://:changethis@redis:6379/0"),
        ("redis_url", "redis://default:secret@redis:6379/0"),
    ],
)
def test_production_refuses_a_placeholder_password(setting: str, url: str) -> None:
    with pytest.raises(
        ValidationError, match=f"{setting.upper()}: its password is .* placeholder"
    ) as refused:
        production_settings(**{setting: url})
    assert SECRET not in str(refused.value)


def test_development_only_warns_about_a_placeholder_password(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="taskql.settings"):
        Settings(database_url="postgresql://postgres:postgres@localhost/taskql")
    assert "DATABASE_URL: its password is 'postgres'" in caplog.text


def test_a_password_equal_to_the_user_name_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="taskql.settings"):
        production_settings(database_url="postgresql://taskql:taskql@postgres:5432/taskql")
    assert "DATABASE_URL: its password is the user name" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://taskql:Xk3v9-qL2z_8RmWq@db/taskql",
        "postgresql://postgres@127.0.0.1:5432/test",  # no password: peer or trust authentication
        "postgresql://postgres:@/taskql?host=/run/postgresql",
    ],
)
def test_a_real_password_or_none_is_accepted(url: str) -> None:
    assert production_settings(database_url=url).database_url == url


@pytest.mark.parametrize("origin", ["*", "null"])
def test_production_refuses_a_cors_allowlist_open_to_every_site(origin: str) -> None:
    with pytest.raises(ValidationError, match="lets any website read"):
        production_settings(cors_origins=[ORIGIN, origin])
    assert Settings(cors_origins=[origin]).cors_origins == [origin]  # development: your own risk


@pytest.mark.parametrize(
    "origin", ["https://app.example.com/", "app.example.com", "https://app.example.com/x"]
)
def test_a_cors_entry_that_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(cors_origins=[origin])


def test_the_defaults_of_each_environment() -> None:
    development, production = Settings(), production_settings()
    assert (development.introspection_enabled, development.csrf_prevention_enabled) == (True, False)
    assert (production.introspection_enabled, production.csrf_prevention_enabled) == (False, True)


def test_serve_stops_before_starting_with_a_placeholder_database_password(tmp_path: Path) -> None:
    env = environment(
        ENVIRONMENT="production",
        JWT_SECRET=SECRET,
        DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:1/taskql",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    result = taskql("serve", "--port", "1", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "DATABASE_URL: its password is 'postgres', a well-known placeholder" in output
    assert SECRET not in output
