"""Answers while PostgreSQL is unavailable: ``503 Service Unavailable`` with ``Retry-After``, and a GraphQL
error coded ``SERVICE_UNAVAILABLE``, so that clients (Apollo's RetryLink, urql's retryExchange, a load
balancer) know to try again rather than report a bug.

Two cases. The request failed before execution (the viewer's session is checked in PostgreSQL): the whole
answer is that error. Or a resolver failed: the answer is GraphQL's, with the error where it arose; it is
a 503 only when no data came back at all (a partial result is still a 200).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from strawberry.types import ExecutionResult

from core.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = "1"


def unavailable_response(error: ServiceUnavailable) -> JSONResponse:
    body = {"data": None, "errors": [{"message": error.message, "extensions": error.extensions}]}
    return JSONResponse(body, 503, headers={"Retry-After": RETRY_AFTER_SECONDS})


def mark_unavailable(result: ExecutionResult, sub_response: Response, *, wrote: bool) -> None:
    """A result with no data because PostgreSQL was unavailable is answered as a 503, unless an earlier
    mutation field of the document committed (a client retrying on 503 would apply it twice)."""
    if result.data is not None or not result.errors or wrote:
        return
    if any((error.extensions or {}).get("code") == ServiceUnavailable.code for error in result.errors):
        sub_response.status_code = 503
        sub_response.headers["Retry-After"] = RETRY_AFTER_SECONDS
