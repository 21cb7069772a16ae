"""The /graphql endpoint speaks GraphQL over HTTP as the spec has it, and bounds what a client can send.

graphql-http's own server audit runs against a live server; the rest checks each rule through the app (and,
where the bytes on the wire matter, a chunked or stalled body, through a live server and a raw socket).
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench import hostile_inputs
from bench.hostile_inputs import Target, chunked, exchange, request_head, stalled
from core.settings import Settings
from taskql.http.params import MAX_JSON_DEPTH
from tests.conftest import client_for
from tests.factories import Account
from tests.graphql_client import GraphQLClient
from tests.node import JS, needs_node, node_with_packages
from tests.processes import servers_on
from tests.services import Services

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
CONTENT_TYPES = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: f"{JSON}; charset=utf-8"}
ME = "query Me { me { id } }"
MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default


@pytest.fixture(autouse=True)
def no_error_is_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A client's mistake is never the server's error: nothing at ERROR, no traceback."""
    with caplog.at_level(logging.INFO):
        yield
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def live(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A taskql process (development profile, a short idle timeout); its /graphql. ``servers_on`` fails the
    test run if it logged a traceback."""
    folder = tmp_path_factory.mktemp("live")
    with servers_on(database.database_url, database.redis_url, folder, BODY_IDLE_TIMEOUT_SECONDS="1") as urls:
        yield f"{urls[0]}/graphql"


def target(url: str) -> Target:
    parsed = httpx.URL(url)
    return Target(parsed.host, parsed.port or 80, parsed.path, token="")


async def post(
    http: httpx.AsyncClient,
    payload: object,
    *,
    accept: str | None = JSON,
    token: str | None = None,
    content_type: str | None = JSON,
) -> httpx.Response:
    """POST ``payload`` (JSON, or the bytes given); ``None`` leaves a header out."""
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = http.build_request("POST", "/graphql", content=content)
    for name, value in (("accept", accept), ("content-type", content_type)):
        if value is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = value
    if token:
        request.headers["authorization"] = f"Bearer {token}"
    return await http.send(request)


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def only_content_type(response: httpx.Response) -> str:
    (value,) = response.headers.get_list("content-type")
    return value


# graphql-http's audit


@needs_node
def test_graphql_http_s_server_audit_finds_nothing_to_report(live: str) -> None:
    node = node_with_packages()
    run = subprocess.run(
        [node, "graphql_http_audit.mjs", live], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    failures = [result for result in report["results"] if result["status"] != "ok"]
    assert len(report["results"]) >= 60, report  # the audit ran in full (61 checks in graphql-http 1.23.1)
    assert not failures, json.dumps(failures, indent=2)


# Content negotiation


@pytest.mark.parametrize(
    "accept",
    [
        GRAPHQL_RESPONSE,
        "application/graphql-response+json; charset=utf-8, application/json; charset=utf-8",  # the spec's
        "application/graphql-response+json,application/json;q=0.9",  # Apollo Client 4's
        "application/json;q=0.9, application/graphql-response+json",
        "*/*, application/graphql-response+json",  # a named type beats a wildcard of the same quality
    ],
)
async def test_a_client_that_prefers_graphql_response_json_gets_it(
    http: httpx.AsyncClient, accept: str
) -> None:
    response = await post(http, {"query": "{ __typename }"}, accept=accept)
    assert (response.status_code, only_content_type(response)) == (200, CONTENT_TYPES[GRAPHQL_RESPONSE])
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "accept",
    [
        None,
        JSON,
        "*/*",
        "application/*",
        "text/html,application/xhtml+xml,*/*;q=0.8",  # a browser's
        "application/graphql-response+json;q=0.5, application/json",
        "application/json, application/graphql-response+json",  # equal quality: the first listed
    ],
)
async def test_a_client_that_asks_for_json_or_anything_or_nothing_gets_application_json(
    http: httpx.AsyncClient, accept: str | None
) -> None:
    response = await post(http, {"query": "{ __typename }"}, accept=accept)
    assert (response.status_code, only_content_type(response)) == (200, CONTENT_TYPES[JSON])


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "text/csv, image/png",
        "application/json;q=0",
        "application/json; charset=latin-1",
        "application/xml",
    ],
)
async def test_a_client_that_accepts_neither_media_type_gets_406(
    http: httpx.AsyncClient, accept: str
) -> None:
    response = await post(http, {"query": "{ __typename }"}, accept=accept)
    assert (response.status_code, codes(response)) == (406, ["NOT_ACCEPTABLE"])
    assert GRAPHQL_RESPONSE in response.json()["errors"][0]["message"]


# Status codes


REQUEST_ERRORS: dict[str, tuple[dict[str, Any], str]] = {
    "a document that does not parse": ({"query": "{ me { id "}, "GRAPHQL_PARSE_FAILED"),
    "a document that does not validate": ({"query": "{ nosuchfield }"}, "GRAPHQL_VALIDATION_FAILED"),
    "a document too deep": (
        {
            "query": "{ me { "
            + "tasks(first: 1) { edges { node { owner { " * 4
            + "id"
            + " } } } }" * 4
            + " } }"
        },
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "variables that do not coerce": (
        {"query": "query($n: Int!) { tasks(first: $n) { totalCount } }", "variables": {"n": "ten"}},
        "BAD_USER_INPUT",
    ),
    "a required variable left out": (
        {"query": "query($n: Int!) { tasks(first: $n) { totalCount } }"},
        "BAD_USER_INPUT",
    ),
    "an unknown operationName": ({"query": ME, "operationName": "Other"}, "OPERATION_RESOLUTION_FAILURE"),
    "two operations and no operationName": (
        {"query": ME + " query Two { __typename }"},
        "OPERATION_RESOLUTION_FAILURE",
    ),
    "a document without an operation": (
        {"query": "fragment F on User { id }"},
        "OPERATION_RESOLUTION_FAILURE",
    ),
    "a subscription over POST": ({"query": "subscription { taskEvents { cursor } }"}, "BAD_REQUEST"),
    "an unknown persisted query": (
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "1" * 64}}},
        "PERSISTED_QUERY_NOT_FOUND",
    ),
}


@pytest.mark.parametrize(("payload", "code"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
async def test_a_request_error_is_200_in_application_json_and_400_in_graphql_response_json_without_data(
    http: httpx.AsyncClient, alice: Account, payload: dict[str, Any], code: str
) -> None:
    as_json = await post(http, payload, accept=JSON, token=alice.token)
    as_graphql_response = await post(http, payload, accept=GRAPHQL_RESPONSE, token=alice.token)
    assert (as_json.status_code, codes(as_json)) == (200, [code])
    assert (as_graphql_response.status_code, codes(as_graphql_response)) == (400, [code])
    assert only_content_type(as_graphql_response) == CONTENT_TYPES[GRAPHQL_RESPONSE]
    assert "data" not in as_json.json()  # nothing was executed: the GraphQL spec leaves data out
    assert "data" not in as_graphql_response.json()


async def test_two_operations_run_when_the_operation_name_chooses_one(
    http: httpx.AsyncClient, alice: Account
) -> None:
    payload = {"query": ME + " query Two { __typename }", "operationName": "Two"}
    response = await post(http, payload, accept=GRAPHQL_RESPONSE, token=alice.token)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_field_error_is_a_200_with_data_in_either_media_type(
    http: httpx.AsyncClient, alice: Account, accept: str
) -> None:
    document = '{ me { id } task(id: "VGFzazpub3RoaW5n") { id } }'
    response = await post(http, {"query": document}, accept=accept, token=alice.token)
    assert response.status_code == 200
    assert response.json()["data"] == {"me": {"id": alice.id}, "task": None}
    assert [error["path"] for error in response.json()["errors"]] == [["task"]]


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_field_error_that_nulls_the_whole_data_is_still_a_200(
    http: httpx.AsyncClient, alice: Account, accept: str
) -> None:
    response = await post(
        http, {"query": "{ tasks(first: 1000) { totalCount } }"}, accept=accept, token=alice.token
    )
    assert (response.status_code, codes(response)) == (200, ["BAD_USER_INPUT"])
    assert response.json()["data"] is None  # executed: a field error, whose data entry stays


# Methods


async def test_a_mutation_over_get_is_405_allowing_post_and_writes_nothing(
    http: httpx.AsyncClient, gql: GraphQLClient, alice: Account
) -> None:
    mutation = 'mutation { createTask(input: {title: "over GET"}) { id } }'
    for accept in (JSON, GRAPHQL_RESPONSE):
        response = await http.get(
            "/graphql",
            params={"query": mutation},
            headers={"authorization": f"Bearer {alice.token}", "accept": accept},
        )
        assert (response.status_code, response.headers["allow"]) == (405, "POST")
        assert codes(response) == ["METHOD_NOT_ALLOWED"]
        assert only_content_type(response) == CONTENT_TYPES[accept]
    tasks = await gql.query("{ tasks(first: 10) { totalCount } }", token=alice.token)
    assert tasks.ok() == {"tasks": {"totalCount": 0}}


async def test_a_query_over_get_is_answered(http: httpx.AsyncClient, alice: Account) -> None:
    response = await http.get(
        "/graphql",
        params={"query": ME, "operationName": "", "variables": ""},  # empty parameters are left out ones
        headers={"authorization": f"Bearer {alice.token}", "accept": GRAPHQL_RESPONSE},
    )
    assert (response.status_code, response.json()["data"]) == (200, {"me": {"id": alice.id}})


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_methods_other_than_get_and_post_are_405(http: httpx.AsyncClient, method: str) -> None:
    response = await http.request(method, "/graphql", json={"query": ME})
    assert (response.status_code, response.headers["allow"], codes(response)) == (
        405,
        "GET, POST",
        ["METHOD_NOT_ALLOWED"],
    )


# Request content type


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
    ],
)
async def test_a_post_body_that_is_not_utf8_json_is_415(
    http: httpx.AsyncClient, content_type: str | None
) -> None:
    response = await post(http, {"query": "{ __typename }"}, content_type=content_type)
    assert (response.status_code, codes(response)) == (415, ["UNSUPPORTED_MEDIA_TYPE"])
    assert response.headers["accept-post"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'application/json; charset="UTF-8"', "Application/JSON"],
)
async def test_json_with_a_utf8_charset_or_in_capitals_is_read(
    http: httpx.AsyncClient, content_type: str
) -> None:
    response = await post(http, {"query": "{ __typename }"}, content_type=content_type)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


# Malformed requests


def nested(depth: int) -> object:
    """A JSON value ``depth`` levels deep (a string is not a level)."""
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


MALFORMED: dict[str, tuple[bytes, str]] = {
    "an empty body": (b"", "not valid JSON"),
    "JSON cut short": (b'{"query": ', "not valid JSON"),
    "invalid UTF-8": (b'{"query": "{ me { id } }", "x": "\xff"}', "not valid UTF-8"),
    "UTF-16": ('{"query": "{ me { id } }"}'.encode("utf-16"), "not valid UTF-8"),
    "a raw NUL byte": (b'{"query": "{ me { id } }\x00"}', "not valid JSON"),
    "NaN": (b'{"query": "{ me { id } }", "variables": {"n": NaN}}', "NaN is not JSON"),
    "an integer of 5,000 digits": (
        b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}",
        "not valid JSON",
    ),
    "a lone surrogate escape": (b'{"query": "{ me { id } } # \\ud800"}', "lone UTF-16 surrogate"),
    "arrays nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, f"deeper than {MAX_JSON_DEPTH} levels"),
    "objects nested one level too deep": (
        json.dumps({"query": ME, "variables": nested(MAX_JSON_DEPTH)}).encode(),
        f"`variables` nest deeper than {MAX_JSON_DEPTH} levels",
    ),
    "extensions nested one level too deep": (
        json.dumps({"query": ME, "extensions": nested(MAX_JSON_DEPTH)}).encode(),
        f"`extensions` nest deeper than {MAX_JSON_DEPTH} levels",
    ),
    "extensions over the size limit": (
        json.dumps({"query": ME, "extensions": {"x": "x" * 70_000}}).encode(),
        "`extensions` take 70008 bytes as JSON",
    ),
    "a lone surrogate escape in variables": (
        b'{"query": "{ __typename }", "variables": {"\\ud800": 1}}',
        "lone UTF-16 surrogate",
    ),
    "a JSON array (a batch)": (b'[{"query": "{ __typename }"}]', "Batched requests"),
    "a JSON string": (b'"{ __typename }"', "must be a JSON object"),
    "null": (b"null", "must be a JSON object"),
    "no query": (b'{"variables": {}}', "No GraphQL document"),
    "an empty query": (b'{"query": ""}', "No GraphQL document"),
    "a misspelt query": (b'{"qeury": "{ __typename }"}', "No GraphQL document"),
    "a query that is a number": (b'{"query": 1}', "`query` must be a string"),
    "a query that is an object": (b'{"query": {"me": "id"}}', "`query` must be a string"),
    "variables that are a list": (
        b'{"query": "{ __typename }", "variables": [7]}',
        "`variables` must be an object",
    ),
    "variables that are a string": (
        b'{"query": "{ __typename }", "variables": "{}"}',
        "`variables` must be an object",
    ),
    "an operationName that is a number": (
        b'{"query": "{ __typename }", "operationName": 0}',
        "`operationName` must",
    ),
    "an operationName that is false": (
        b'{"query": "{ __typename }", "operationName": false}',
        "`operationName` must",
    ),
    "extensions that are a list": (b'{"query": "{ __typename }", "extensions": []}', "`extensions` must"),
}


@pytest.mark.parametrize(("body", "message"), MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_request_that_is_not_well_formed_is_400_bad_request_saying_what_is_wrong(
    http: httpx.AsyncClient, body: bytes, message: str, accept: str
) -> None:
    response = await post(http, body, accept=accept)
    assert (response.status_code, codes(response)) == (400, ["BAD_REQUEST"])
    assert only_content_type(response) == CONTENT_TYPES[accept]
    assert message in response.json()["errors"][0]["message"]


async def test_json_nested_as_deep_as_the_limit_is_read(http: httpx.AsyncClient) -> None:
    # Variables the operation does not declare are ignored: only the nesting is on trial here.
    # The body is level 1, its variables level 2.
    body = json.dumps({"query": "{ __typename }", "variables": nested(MAX_JSON_DEPTH - 1)}).encode()
    response = await post(http, body)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


async def test_an_escaped_surrogate_pair_is_text_and_read(http: httpx.AsyncClient) -> None:
    body = b'{"query": "{ __typename } # \\ud83c\\udfc3"}'  # U+1F3C3, as Python's json.dumps writes it
    response = await post(http, body)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


async def test_variables_over_the_limit_are_refused_and_those_under_it_are_read(
    settings: Settings, alice: Account
) -> None:
    document = 'mutation($d: String) { createTask(input: {title: "t", description: $d}) { description } }'
    async with client_for(settings.model_copy(update={"max_variables_bytes": 2048})) as http:
        small = await post(http, {"query": document, "variables": {"d": "é" * 1000}}, token=alice.token)
        assert small.json()["data"] == {"createTask": {"description": "é" * 1000}}
        large = await post(http, {"query": document, "variables": {"d": "é" * 1100}}, token=alice.token)
        assert (large.status_code, codes(large)) == (400, ["BAD_REQUEST"])
        assert "`variables` take 2208 bytes as JSON, more than the 2048 allowed" in large.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"query": "{ __typename }", "variables": "[1]"}, "`variables` must be an object"),
        ({"query": "{ __typename }", "variables": "{"}, "The `variables` parameter is not valid JSON"),
        ({"query": "{ __typename }", "extensions": "NaN"}, "NaN is not JSON"),
        ({"variables": "{}"}, "No GraphQL document"),
    ],
)
async def test_get_parameters_follow_the_same_rules(
    http: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await http.get("/graphql", params=params, headers={"accept": GRAPHQL_RESPONSE})
    assert (response.status_code, codes(response)) == (400, ["BAD_REQUEST"])
    assert message in response.json()["errors"][0]["message"]


# The express lane (response cache hits)


async def test_a_cache_hit_is_answered_in_the_media_type_the_client_accepts(
    http: httpx.AsyncClient, alice: Account
) -> None:
    payload = {"query": "{ tasks(first: 5) { totalCount } }"}
    first = await post(http, payload, token=alice.token)
    assert first.headers["x-cache"] == "MISS"
    for accept in (GRAPHQL_RESPONSE, JSON, None):
        hit = await post(http, payload, accept=accept, token=alice.token)
        assert (hit.headers["x-cache"], hit.status_code) == ("HIT", 200)
        assert only_content_type(hit) == CONTENT_TYPES[accept or JSON]
        assert hit.json() == {"data": first.json()["data"]}  # without the miss's own cost report
    refused = await post(http, payload, accept="text/csv", token=alice.token)
    assert (refused.status_code, codes(refused)) == (406, ["NOT_ACCEPTABLE"])
    other_type = await post(http, payload, content_type="text/plain", token=alice.token)
    assert (other_type.status_code, codes(other_type)) == (415, ["UNSUPPORTED_MEDIA_TYPE"])


async def test_a_get_cache_hit_is_answered_in_the_media_type_the_client_accepts(
    http: httpx.AsyncClient, alice: Account
) -> None:
    params = {"query": "{ tasks(first: 5) { totalCount } }"}
    headers = {"authorization": f"Bearer {alice.token}"}
    assert (await http.get("/graphql", params=params, headers=headers)).headers["x-cache"] == "MISS"
    hit = await http.get("/graphql", params=params, headers={**headers, "accept": GRAPHQL_RESPONSE})
    assert (hit.headers["x-cache"], only_content_type(hit)) == ("HIT", CONTENT_TYPES[GRAPHQL_RESPONSE])


async def test_a_browser_s_cross_origin_requests_are_negotiated_alike(
    settings: Settings, alice: Account
) -> None:
    origin = "https://app.example.com"
    async with client_for(settings.model_copy(update={"cors_origins": [origin]})) as http:
        preflight = await http.options(
            "/graphql",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (200, origin)
        payload = {"query": "{ tasks(first: 5) { totalCount } }"}
        headers = {"origin": origin, "accept": GRAPHQL_RESPONSE, "authorization": f"Bearer {alice.token}"}
        for expected in ("MISS", "HIT"):  # a hit found after the CORS middleware, not by the express lane
            response = await http.post("/graphql", json=payload, headers=headers)
            assert (response.headers["x-cache"], only_content_type(response)) == (
                expected,
                CONTENT_TYPES[GRAPHQL_RESPONSE],
            )
            assert response.headers["access-control-allow-origin"] == origin
        refused = await http.post("/graphql", json={"query": "{"}, headers=headers)
        assert (refused.status_code, refused.headers["access-control-allow-origin"]) == (400, origin)


# The body limit


async def test_a_body_over_the_limit_is_413_with_the_headers_of_every_other_answer(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": JSON, "accept": GRAPHQL_RESPONSE, "x-request-id": "trace-413"},
    )
    assert (response.status_code, codes(response)) == (413, ["PAYLOAD_TOO_LARGE"])
    assert only_content_type(response) == CONTENT_TYPES[GRAPHQL_RESPONSE]
    # Refused in front of the security middleware, with what it adds all the same.
    assert (response.headers["x-request-id"], response.headers["x-content-type-options"]) == (
        "trace-413",
        "nosniff",
    )
    assert response.headers["connection"] == "close"  # the rest of the body is never read


async def test_a_body_at_the_limit_is_read(http: httpx.AsyncClient) -> None:
    body = json.dumps({"query": "{ __typename }"}).encode()
    response = await post(http, body + b" " * (MAX_BODY_BYTES - len(body)))
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


# The body limit, on the wire


def test_a_body_declared_over_the_limit_is_413_before_a_byte_of_it_is_read(live: str) -> None:
    head = request_head(target(live), accept=GRAPHQL_RESPONSE, length=MAX_BODY_BYTES + 1)
    answer = exchange(target(live), head, b"", timeout=5)  # the body is never sent
    assert (answer.status, answer.code) == (413, "PAYLOAD_TOO_LARGE")
    assert answer.content_type == CONTENT_TYPES[GRAPHQL_RESPONSE]


def test_a_chunked_body_over_the_limit_is_413(live: str) -> None:
    body = json.dumps({"query": "{ __typename }" + " " * (2 * MAX_BODY_BYTES)}).encode()
    answer = exchange(target(live), request_head(target(live), chunked=True), chunked(body, 4096), timeout=5)
    assert (answer.status, answer.code) == (413, "PAYLOAD_TOO_LARGE")
    assert f"larger than {MAX_BODY_BYTES} bytes" in answer.body.decode()


def test_a_chunked_body_under_the_limit_is_read(live: str) -> None:
    body = json.dumps({"query": "{ __typename }" + " " * (MAX_BODY_BYTES // 2)}).encode()
    answer = exchange(target(live), request_head(target(live), chunked=True), chunked(body, 4096), timeout=5)
    assert (answer.status, json.loads(answer.body)) == (200, {"data": {"__typename": "Query"}})


def test_a_content_length_that_understates_the_body_lets_through_only_what_it_says(live: str) -> None:
    body = json.dumps({"query": "{ __typename }"}).encode()
    head = request_head(target(live), length=len(body) - 2)  # the rest, and more, follows
    answer = exchange(target(live), head, body + b" " * (2 * MAX_BODY_BYTES), timeout=5)
    assert (answer.status, answer.code) == (400, "BAD_REQUEST")
    assert "not valid JSON" in answer.body.decode()
    assert httpx.post(live, json={"query": "{ __typename }"}).json() == {"data": {"__typename": "Query"}}


def test_a_body_that_stops_arriving_is_408(live: str) -> None:
    head = request_head(target(live), length=100)
    answer = exchange(target(live), head, stalled(b'{"query": '), timeout=10)
    assert (answer.status, answer.code) == (408, "REQUEST_TIMEOUT")


def test_no_hostile_input_gets_a_5xx_or_an_answer_without_a_code(live: str) -> None:
    """``python -m bench.hostile_inputs``'s table, against the live server: it raises on a 5xx, an answer
    without ``extensions.code``, no answer, or a request error not 200/400 by media type."""
    lines = hostile_inputs.run(live)
    assert len(lines) == 2 + len(hostile_inputs.CASES)


def test_answers_are_compact_utf8_json_and_what_orjson_refuses_goes_the_json_modules_way() -> None:
    from taskql.http.media import encode

    expected = '{"data":{"title":"café ✓","n":1}}'.encode()
    assert encode({"data": {"title": "café ✓", "n": 1}}) == expected
    assert encode({"n": 2**70}) == b'{"n":1180591620717411303424}'  # beyond 64 bits
