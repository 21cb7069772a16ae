"""APQ with the real ``@apollo/client`` from npm: its persisted-query link, unmodified, against a live
server in production mode, over POST and over GET (``useGETForHashedQueries``).

``tests/js/apollo_apq.mjs`` runs four fresh clients one after the other (see its header) and prints every
HTTP request their links made, with the answers and each client's result; these tests read that record.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import delete_redis_keys
from tests.node import needs_node
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

pytestmark = needs_node


@pytest.fixture(scope="module")
async def exchange(database: Services, tmp_path_factory: pytest.TempPathFactory) -> ClientRuns:
    # This runs before the per-test cleanup does: start from no stored documents, so the first clients
    # must register theirs.
    await delete_redis_keys(database)
    # Served as in production: CSRF prevention on, which Apollo Client's GETs must pass as they are.
    folder = tmp_path_factory.mktemp("apollo")
    return await asyncio.to_thread(run_clients, "apollo_apq.mjs", database, folder, "Apollo")


def test_a_first_apollo_client_sends_the_hash_alone_then_the_query_when_the_server_does_not_know_it(
    exchange: ClientRuns,
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


def test_a_second_fresh_apollo_client_is_answered_from_the_hash_alone(exchange: ClientRuns) -> None:
    exchange.check_answered_from_the_hash_alone("post-second", after="post-first", method="POST")


def test_with_get_for_hashed_queries_the_hash_goes_over_get_and_the_query_falls_back_to_post(
    exchange: ClientRuns,
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
    exchange: ClientRuns,
) -> None:
    exchange.check_answered_from_the_hash_alone("get-second", after="get-first", method="GET")


def test_apollo_clients_gets_pass_csrf_prevention_by_the_json_content_type_they_send(
    exchange: ClientRuns,
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
