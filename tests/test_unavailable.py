"""PostgreSQL unavailable: a 503 a client may retry, unless retrying would repeat a write."""

from __future__ import annotations

from starlette.responses import Response
from strawberry.types import ExecutionResult

from core.errors import ServiceUnavailable
from graphql import GraphQLError
from taskql.http.unavailable import mark_unavailable


def unavailable_result() -> ExecutionResult:
    error = GraphQLError("PostgreSQL is unavailable.", extensions={"code": ServiceUnavailable.code})
    return ExecutionResult(data=None, errors=[error])


def test_a_failed_read_with_no_data_is_a_503_with_retry_after() -> None:
    response = Response()
    mark_unavailable(unavailable_result(), response, wrote=False)
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")


def test_a_document_whose_earlier_mutation_committed_is_not_a_503_a_client_would_retry() -> None:
    response = Response()
    response.status_code = 200
    mark_unavailable(unavailable_result(), response, wrote=True)
    assert response.status_code == 200
    assert "retry-after" not in response.headers
