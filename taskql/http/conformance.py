"""The GraphQL-over-HTTP rules the view applies around Strawberry's.

- Admission, before the viewer is looked up or the body read: GET and POST only (405, ``Allow: GET,
  POST``); an ``Accept`` that allows one of our media types (406); a POST body in ``application/json``
  (415). GraphiQL's page (a browser's GET for ``text/html``) is let through as it is.
- Operation types: a mutation over GET is 405 with ``Allow: POST`` (GET is safe: it must not write); a
  subscription over HTTP is a request error (``schema.build.TaskqlSchema.execute``: served over WebSocket).
- An operation that cannot be chosen (an unknown ``operationName``, several operations and no name, none
  at all) is a request error, ``OPERATION_RESOLUTION_FAILURE``, as Apollo names it.
- A request error's response has no ``data`` entry (the GraphQL spec: nothing was executed), which is
  what makes it a 400 with ``application/graphql-response+json`` (``taskql.http.media.status_of``).
"""

from __future__ import annotations

from typing import Any, NoReturn

from starlette.requests import Request
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from graphql import GraphQLError
from taskql.http.media import GRAPHQL_RESPONSE_JSON, JSON, is_json_body, negotiate
from taskql.http.refusals import RequestRefused
from taskql.state import StateKey

MEDIA_TYPE = StateKey[str]("taskql.media_type")  # the answer's: the client's Accept
ALLOWED_METHODS = ("GET", "POST")
# What each method may run. Strawberry's own table allows subscriptions over GET and POST for its
# multipart and SSE transports, which taskql does not serve.
OPERATIONS_BY_METHOD = {"GET": {OperationType.QUERY}, "POST": {OperationType.QUERY, OperationType.MUTATION}}


def admit(request: Request, *, renders_ide: bool) -> str:
    """The media type to answer in, once the request is one this endpoint serves; refusals raise."""
    if request.method not in ALLOWED_METHODS:
        raise RequestRefused(
            405,
            "GraphQL is served over GET (queries) and POST.",
            headers={"allow": ", ".join(ALLOWED_METHODS)},
        )
    if renders_ide:
        return JSON
    media_type = negotiate(request.headers.get("accept"))
    if media_type is None:
        raise RequestRefused(
            406, f"The response can only be {GRAPHQL_RESPONSE_JSON} or {JSON}: accept one of them."
        )
    if request.method == "POST" and not is_json_body(request.headers.get("content-type")):
        raise RequestRefused(
            415,
            f"Send the request as {JSON} (UTF-8), with a Content-Type header that says so.",
            headers={"accept-post": f"{JSON}; charset=utf-8"},
        )
    return media_type


def request_error(message: str, code: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])


def refused_operation(error: InvalidOperationTypeError, method: str) -> NoReturn:
    """An operation type ``method`` does not run: a mutation over GET (subscriptions never get here: the
    schema answers them as a request error over any method)."""
    if error.operation_type is OperationType.MUTATION:
        raise RequestRefused(405, "Mutations are only accepted over POST.", headers={"allow": "POST"})
    raise RequestRefused(400, error.as_http_error_reason(method))


def operation_not_chosen(operation_name: str | None) -> ExecutionResult:
    """Strawberry could not choose the operation: a name the document does not hold, or no operation at all
    (several operations without a name are refused by ``schema.extensions.single_operation``)."""
    message = (
        "The document holds no operation to run."
        if operation_name is None
        else f'Unknown operation named "{operation_name}".'
    )
    return request_error(message, "OPERATION_RESOLUTION_FAILURE")


def response_of(result: ExecutionResult, processed: GraphQLHTTPResponse) -> GraphQLHTTPResponse:
    """``processed`` without ``data`` when ``result`` is a request error: errors only, none at a field's path
    (field errors always have one)."""
    errors: list[Any] = result.errors or []
    if result.data is None and errors and all(error.path is None for error in errors):
        processed.pop("data", None)
    return processed
