"""Every error carries extensions.code; client mistakes are not logged as failures; bugs are masked."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from resolvers import tasks
from tests.factories import Account
from tests.graphql_client import GraphQLClient


async def test_a_syntax_error_is_graphql_parse_failed(gql: GraphQLClient) -> None:
    response = await gql.query("{ tasks { ")
    assert response.codes == ["GRAPHQL_PARSE_FAILED"]


async def test_an_unknown_field_is_graphql_validation_failed(gql: GraphQLClient) -> None:
    response = await gql.query("{ me { password } }")
    assert response.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "password" in response.errors[0]["message"]


async def test_a_missing_required_variable_is_bad_user_input(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.run("Task", {}, token=alice.token)
    assert response.codes == ["BAD_USER_INPUT"]


async def test_client_mistakes_are_not_logged_with_a_traceback(
    gql: GraphQLClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await gql.query("{ tasks { ")
        await gql.run("CreateTask", {"input": {"title": ""}}, token=alice.token)
        await gql.run("Task", {"id": "nope"}, token=alice.token)
        await gql.run("Users", token=alice.token)
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


async def test_an_unexpected_exception_is_masked_for_the_client_and_logged_in_full(
    gql: GraphQLClient, alice: Account, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection string postgres://admin:hunter2@db/secret")

    monkeypatch.setattr(tasks, "list_tasks", broken)
    with caplog.at_level(logging.ERROR, logger="taskql.errors"):
        response = await gql.run("Tasks", {"first": 1}, token=alice.token)
    error = response.errors[0]
    assert error["message"] == "Internal server error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "hunter2" not in str(response.body)
    request_id = error["extensions"]["requestId"]
    assert response.headers["x-request-id"] == request_id
    [record] = [record for record in caplog.records if record.name == "taskql.errors"]
    assert request_id in record.getMessage()
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])


async def test_every_error_of_a_mixed_request_has_a_code(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.query(
        '{ a: task(id: "bad") { id } b: node(id: "Zm9v") { id } c: me { id } }', token=alice.token
    )
    assert sorted(response.codes) == ["BAD_USER_INPUT", "BAD_USER_INPUT"]
    assert response.data == {"a": None, "b": None, "c": {"id": alice.id}}


async def test_document_mistakes_about_variables_are_validation_failures(
    gql: GraphQLClient, alice: Account
) -> None:
    for document in (
        "query Q($x: Int) { me { id } }",  # never used
        "query Q { task(id: $y) { id } }",  # not defined
        "query Q($x: String) { task(id: $x) { id } }",  # used where ID! is expected
    ):
        response = await gql.query(document, token=alice.token)
        assert response.codes == ["GRAPHQL_VALIDATION_FAILED"], (document, response.body)


async def test_literal_values_of_the_wrong_type_are_bad_user_input(
    gql: GraphQLClient, alice: Account
) -> None:
    for document in (
        '{ tasks(first: "a") { totalCount } }',
        "mutation { createTask(input: {title: 42}) { id } }",
        "mutation { createTask(input: {}) { id } }",
        'mutation { createTask(input: {title: "t", colour: RED}) { id } }',
    ):
        response = await gql.query(document, token=alice.token)
        assert response.codes == ["BAD_USER_INPUT"], (document, response.body)


@pytest.mark.parametrize(
    "body", [b'{"query": "{ me { id } }", "x": "\xff"}', b"1", b'"query"', b"null", b"[" * 5000 + b"]" * 5000]
)
async def test_a_malformed_json_body_is_a_400_not_a_500(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


async def test_a_subscription_sent_over_http_is_refused_as_a_client_mistake_not_logged(
    gql: GraphQLClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for token in (alice.token, None):
            response = await gql.query("subscription { taskEvents { cursor } }", token=token)
            assert response.data is None
            assert response.codes == ["BAD_REQUEST"]
            assert "WebSocket" in response.errors[0]["message"]
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


async def test_a_mutation_over_get_is_still_refused_with_405_and_a_query_over_get_answered(
    http: httpx.AsyncClient, alice: Account
) -> None:
    headers = {"authorization": f"Bearer {alice.token}"}
    refused = await http.get("/graphql", params={"query": "mutation { logout }"}, headers=headers)
    assert refused.status_code == 405
    answered = await http.get("/graphql", params={"query": "{ me { email } }"}, headers=headers)
    assert answered.json()["data"] == {"me": {"email": alice.email}}
