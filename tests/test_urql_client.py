"""APQ and trusted documents with the real ``@urql/core`` client and ``@urql/exchange-persisted``'s
persistedExchange, unmodified, in front of its fetchExchange, against a live server in production mode,
over POST and over GET.

``tests/js/urql_persisted.mjs`` runs fresh clients one after the other (see its header) and prints every HTTP
request their fetchExchange made, with the answers and each client's result; these tests read that record.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import delete_redis_keys
from tests.graphql_client import operation
from tests.node import needs_node
from tests.processes import ROOT
from tests.recorded_clients import (
    GRAPHQL_RESPONSE,
    TASK_TITLE,
    ClientRuns,
    error_codes,
    run_clients,
    sent,
    sha256,
)
from tests.services import Services

NAME = "Urql"
MANIFEST_IDS = {
    entry["name"]: entry["id"]
    for entry in json.loads((ROOT / "graphql" / "manifest.json").read_text())["operations"]
}

pytestmark = needs_node


@pytest.fixture(scope="module")
async def runs(database: Services, tmp_path_factory: pytest.TempPathFactory) -> ClientRuns:
    # This runs before the per-test cleanup does: start from no stored documents, so the first clients
    # must register theirs.
    await delete_redis_keys(database)
    folder = tmp_path_factory.mktemp("urql")
    return await asyncio.to_thread(run_clients, "urql_persisted.mjs", database, folder, NAME)


@pytest.fixture(scope="module")
async def trusted_only(database: Services, tmp_path_factory: pytest.TempPathFactory) -> ClientRuns:
    """The runs ``trusted`` and ``get-first`` against a server that executes the manifest's documents only."""
    folder = tmp_path_factory.mktemp("urql-trusted-only")
    return await asyncio.to_thread(
        run_clients,
        "urql_persisted.mjs",
        database,
        folder,
        NAME,
        "trusted",
        "get-first",
        PERSISTED_QUERIES="trusted-only",
    )


def titles_and_owners(result: dict[str, Any]) -> list[tuple[str, str]]:
    assert result["error"] is None, result
    edges = result["data"]["tasks"]["edges"]
    return [(edge["node"]["title"], edge["node"]["owner"]["name"]) for edge in edges]


def test_a_first_urql_client_sends_the_hash_alone_then_the_query_when_the_server_does_not_know_it(
    runs: ClientRuns,
) -> None:
    requests = runs.requests("post-first")
    assert sent(requests) == [("POST", False, True), ("POST", True, True)], runs.explain("post-first")
    miss, registration = requests
    assert (miss["status"], miss["contentType"]) == (400, GRAPHQL_RESPONSE)
    assert error_codes(miss) == ["PERSISTED_QUERY_NOT_FOUND"]
    # persistedExchange retries on this message, not on the code.
    assert miss["body"]["errors"][0]["message"] == "PersistedQueryNotFound"
    digest = miss["persistedQuery"]["sha256Hash"]
    # urql marks its retry with "miss": true, which the server ignores.
    assert registration["persistedQuery"] == {"version": 1, "sha256Hash": digest, "miss": True}
    assert sha256(registration["query"]) == digest  # the exchange hashes exactly the text it sends
    assert (registration["status"], "errors" in registration["body"]) == (200, False)
    result = runs.result("post-first")
    assert result["error"] is None, result
    me = result["data"]["me"]
    assert (me["email"], me["name"], me["role"], me["isActive"]) == (runs.email, NAME, "USER", True)


def test_a_second_fresh_urql_client_is_answered_from_the_hash_alone(runs: ClientRuns) -> None:
    runs.check_answered_from_the_hash_alone("post-second", after="post-first", method="POST")


def test_with_its_defaults_urql_sends_the_hash_over_get_which_csrf_prevention_refuses_without_a_header(
    runs: ClientRuns,
) -> None:
    # persistedExchange 5 prefers GET for hashed queries, and urql sends no Content-Type on a GET: a page
    # could send that cross-site, so production refuses it until the client adds Apollo-Require-Preflight.
    requests = runs.requests("defaults")
    assert sent(requests) == [("GET", False, True)], runs.explain("defaults")
    (refused,) = requests
    assert "content-type" not in refused["headers"], refused["headers"]
    assert (refused["status"], error_codes(refused)) == (400, ["BAD_REQUEST"])
    result = runs.result("defaults")
    assert result["data"] is None
    assert "Cross-Site Request Forgery" in result["error"], result


def test_with_get_for_persisted_queries_the_hash_and_then_the_query_both_go_over_get(
    runs: ClientRuns,
) -> None:
    requests = runs.requests("get-first")
    assert sent(requests) == [("GET", False, True), ("GET", True, True)], runs.explain("get-first")
    miss, registration = requests
    assert (miss["operationName"], miss["variables"]) == ("TaskPage", {"first": 10})
    assert (miss["status"], miss["contentType"], error_codes(miss)) == (
        400,
        GRAPHQL_RESPONSE,
        ["PERSISTED_QUERY_NOT_FOUND"],
    )
    assert sha256(registration["query"]) == miss["persistedQuery"]["sha256Hash"]
    assert (registration["status"], "errors" in registration["body"]) == (200, False)
    assert titles_and_owners(runs.result("get-first")) == [(TASK_TITLE, NAME)]


def test_with_get_for_persisted_queries_a_fresh_urql_client_reads_a_known_document_with_one_get(
    runs: ClientRuns,
) -> None:
    runs.check_answered_from_the_hash_alone("get-second", after="get-first", method="GET")


def test_urqls_gets_pass_csrf_prevention_by_the_apollo_require_preflight_header_they_are_given(
    runs: ClientRuns,
) -> None:
    gets = [request for run in ("get-first", "get-second", "trusted") for request in runs.requests(run)]
    assert [request["method"] for request in gets] == ["GET"] * 4, runs.explain("get-first")
    for request in gets:
        assert "content-type" not in request["headers"], request["headers"]
        assert request["headers"]["apollo-require-preflight"] == "true", request["headers"]
        # Not refused (CSRF prevention's refusal is a 400 BAD_REQUEST): the miss asks for the document, the
        # others answer.
        assert (request["status"], error_codes(request)) in [(400, ["PERSISTED_QUERY_NOT_FOUND"]), (200, [])]


def test_a_trusted_document_is_read_by_its_manifest_id_and_its_text_is_never_sent(runs: ClientRuns) -> None:
    requests = runs.requests("trusted")
    assert sent(requests) == [("GET", False, True)], runs.explain("trusted")
    (by_id,) = requests
    assert by_id["persistedQuery"] == {"version": 1, "sha256Hash": MANIFEST_IDS["TaskPage"]}
    assert (by_id["status"], "errors" in by_id["body"]) == (200, False)
    assert titles_and_owners(runs.result("trusted")) == [(TASK_TITLE, NAME)]


def test_urql_hashes_its_own_printing_of_a_document_which_is_not_the_manifests_text(
    runs: ClientRuns,
) -> None:
    # Why the trusted run passes generateHash: the id urql computes is not the manifest's.
    registration = runs.requests("get-first")[1]
    assert registration["query"] != operation("TaskPage")
    assert registration["persistedQuery"]["sha256Hash"] != MANIFEST_IDS["TaskPage"]


def test_a_trusted_only_server_answers_urql_by_the_manifest_id(trusted_only: ClientRuns) -> None:
    requests = trusted_only.requests("trusted")
    assert sent(requests) == [("GET", False, True)], trusted_only.explain("trusted")
    assert requests[0]["persistedQuery"]["sha256Hash"] == MANIFEST_IDS["TaskPage"]
    assert titles_and_owners(trusted_only.result("trusted")) == [(TASK_TITLE, NAME)]


def test_a_trusted_only_server_refuses_the_document_urql_sends_after_a_miss_on_its_own_hash(
    trusted_only: ClientRuns,
) -> None:
    requests = trusted_only.requests("get-first")
    assert sent(requests) == [("GET", False, True), ("GET", True, True)], trusted_only.explain("get-first")
    assert [(request["status"], error_codes(request)) for request in requests] == [
        (400, ["PERSISTED_QUERY_NOT_FOUND"]),
        (400, ["PERSISTED_QUERY_NOT_ALLOWED"]),
    ]
    result = trusted_only.result("get-first")
    assert (result["data"], result["error"]) == (None, "[GraphQL] Only trusted documents are accepted."), (
        result
    )
