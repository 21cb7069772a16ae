"""APQ with the real ``@apollo/client`` from npm: its persisted-query link, unmodified, against a live
server in production mode, over POST and over GET (``useGETForHashedQueries``).

``tests/js/apollo_apq.mjs`` runs four fresh clients one after the other (see its header) and prints every
HTTP request their links made, with the answers and each client's result; these tests read that record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import delete_redis_keys
from tests.factories import PASSWORD
from tests.graphql_client import operation
from tests.node import JS, needs_node, node_with_packages
from tests.processes import TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services

TASK_TITLE = "Read the persisted-query docs"
GRAPHQL_RESPONSE = "application/graphql-response+json; charset=utf-8"

pytestmark = needs_node


@dataclass(frozen=True)
class Exchange:
    """What the Apollo clients sent and got, the account they used, and the server's log."""

    runs: dict[str, dict[str, Any]]
    email: str
    server_log: str

    def requests(self, run: str) -> list[dict[str, Any]]:
        return list(self.runs[run]["requests"])

    def result(self, run: str) -> dict[str, Any]:
        return dict(self.runs[run]["result"])

    def explain(self, run: str) -> str:
        """The run's record and the server's log, for a failure message."""
        return f"{json.dumps(self.runs[run], indent=2)}\n--- server log ---\n{self.server_log}"


def register_with_a_task(url: str, email: str) -> str:
    """A new account, made through the API, with one task; its access token."""
    variables = {"input": {"email": email, "password": PASSWORD, "name": "Apollo"}}
    registered = httpx.post(url, json={"query": operation("Register"), "variables": variables}).json()
    token = str(registered["data"]["register"]["accessToken"])
    created = httpx.post(
        url,
        json={"query": operation("CreateTask"), "variables": {"input": {"title": TASK_TITLE}}},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    assert "errors" not in created, created
    return token


def run_apollo_clients(services: Services, folder: Path) -> Exchange:
    node = node_with_packages()
    # Served as in production: CSRF prevention on, which Apollo Client's GETs must pass as they are.
    env = environment(
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        JWT_SECRET=TEST_SECRET,
        ENVIRONMENT="production",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    email = f"apollo-{uuid.uuid4().hex[:12]}@example.com"
    server = start_server(env, folder, port)
    try:
        wait_ready(server, port)
        token = register_with_a_task(url, email)
        script = subprocess.run(
            [node, "apollo_apq.mjs"],
            cwd=JS,
            env={**env, "TASKQL_URL": url, "TASKQL_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server_log = stop(server)
    assert script.returncode == 0, f"{script.stdout}{script.stderr}\n--- server log ---\n{server_log}"
    record = json.loads(script.stdout)
    return Exchange({run["name"]: run for run in record["runs"]}, email, server_log)


@pytest.fixture(scope="module")
async def exchange(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    # This runs before the per-test cleanup does: start from no stored documents, so the first clients
    # must register theirs.
    await delete_redis_keys(database)
    return await asyncio.to_thread(run_apollo_clients, database, tmp_path_factory.mktemp("apollo"))


def sent(requests: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
    """Each request as (method, carried the query text, carried a persisted-query hash)."""
    return [
        (
            request["method"],
            request["hasQuery"] or request["urlHasQuery"],
            request["persistedQuery"] is not None,
        )
        for request in requests
    ]


def error_codes(request: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in request["body"].get("errors", [])]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_first_apollo_client_sends_the_hash_alone_then_the_query_when_the_server_does_not_know_it(
    exchange: Exchange,
) -> None:
    requests = exchange.requests("post-first")
    assert sent(requests) == [("POST", False, True), ("POST", True, True)], exchange.explain("post-first")
    miss, registration = requests
    # Apollo Client 4 accepts application/graphql-response+json first, where a response without data must
    # be a 4xx (GraphQL over HTTP); the link reads its errors all the same.
    assert (miss["status"], miss["contentType"]) == (400, GRAPHQL_RESPONSE)
    assert error_codes(miss) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert miss["body"]["errors"][0]["message"] == "PersistedQueryNotFound"
    digest = miss["persistedQuery"]["sha256Hash"]
    assert registration["persistedQuery"] == {"version": 1, "sha256Hash": digest}
    assert sha256(registration["query"]) == digest  # the link hashes exactly the text it sends
    result = exchange.result("post-first")
    assert result["error"] is None, result
    me = result["data"]["me"]
    assert (me["__typename"], me["email"], me["name"], me["role"]) == (
        "User",
        exchange.email,
        "Apollo",
        "USER",
    )


def test_a_second_fresh_apollo_client_is_answered_from_the_hash_alone(exchange: Exchange) -> None:
    requests = exchange.requests("post-second")
    assert sent(requests) == [("POST", False, True)], exchange.explain("post-second")
    (by_hash,) = requests
    assert by_hash["persistedQuery"] == exchange.requests("post-first")[0]["persistedQuery"]
    assert (by_hash["status"], "errors" in by_hash["body"]) == (200, False)
    assert exchange.result("post-second") == exchange.result("post-first")


def test_with_get_for_hashed_queries_the_hash_goes_over_get_and_the_query_falls_back_to_post(
    exchange: Exchange,
) -> None:
    requests = exchange.requests("get-first")
    assert sent(requests) == [("GET", False, True), ("POST", True, True)], exchange.explain("get-first")
    miss, registration = requests
    assert (miss["operationName"], miss["variables"]) == ("TaskPage", {"first": 10})
    assert (miss["status"], miss["contentType"], error_codes(miss)) == (
        400,
        GRAPHQL_RESPONSE,
        ["PERSISTED_QUERY_NOT_FOUND"],
    )
    assert sha256(registration["query"]) == miss["persistedQuery"]["sha256Hash"]
    result = exchange.result("get-first")
    assert result["error"] is None, result
    edges = result["data"]["tasks"]["edges"]
    assert [(edge["node"]["title"], edge["node"]["owner"]["name"]) for edge in edges] == [
        (TASK_TITLE, "Apollo")
    ]


def test_with_get_for_hashed_queries_a_fresh_client_reads_a_known_document_with_one_get(
    exchange: Exchange,
) -> None:
    requests = exchange.requests("get-second")
    assert sent(requests) == [("GET", False, True)], exchange.explain("get-second")
    (by_hash,) = requests
    assert by_hash["persistedQuery"] == exchange.requests("get-first")[0]["persistedQuery"]
    assert (by_hash["status"], "errors" in by_hash["body"]) == (200, False)
    assert exchange.result("get-second") == exchange.result("get-first")


def test_apollo_clients_gets_pass_csrf_prevention_by_the_json_content_type_they_send(
    exchange: Exchange,
) -> None:
    # Apollo Client sends Content-Type: application/json on a GET too, which no page can send cross-site
    # without a preflight: CSRF prevention lets it through with no header configured.
    gets = [request for run in ("get-first", "get-second") for request in exchange.requests(run)]
    gets = [request for request in gets if request["method"] == "GET"]
    assert len(gets) == 2, exchange.explain("get-first")
    for request in gets:
        assert request["headers"]["content-type"] == "application/json", request["headers"]
        # Not refused (CSRF prevention's refusal is a 400 BAD_REQUEST): the miss asks for the document (a 400
        # in graphql-response+json, which Apollo Client accepts first), the hit answers.
        assert (request["status"], error_codes(request)) in [(400, ["PERSISTED_QUERY_NOT_FOUND"]), (200, [])]
