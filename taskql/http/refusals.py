"""Requests refused before anything executes: not a well-formed GraphQL-over-HTTP request, too large, a method
or media type this endpoint does not serve.

Each is answered as a GraphQL response, ``{"errors": [{"message", "extensions": {"code"}}]}``, in the media
type the client accepts, with its 4xx status and a stable code (Apollo's ``BAD_REQUEST`` for a malformed
request; one named after the status otherwise). Strawberry's own ``HTTPException`` (plain text) is
answered the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from cross_web import HTTPException
from starlette.responses import Response
from starlette.types import Send
from strawberry.types import ExecutionResult

from graphql import GraphQLError
from taskql.http.media import CONTENT_TYPES, JSON
from taskql.ops import access_log

CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class RequestRefused(HTTPException):
    """A refusal with its status, message (safe to show, says how to fix it), code and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(status, message)
        self.code = code or CODES.get(status, "BAD_REQUEST")
        self.headers = dict(headers or {})
        self.reason_code = reason  # extensions.reason: which refusal of its code, for a client to act on


def body_of(message: str, code: str, reason: str | None = None) -> bytes:
    """The answer's body; its code goes into the request's access log line and metrics too."""
    extensions = {"code": code} if reason is None else {"code": code, "reason": reason}
    access_log.note_result(ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)]))
    error = {"message": message, "extensions": extensions}
    return json.dumps({"errors": [error]}, separators=(",", ":")).encode()


def refusal_response(error: HTTPException, media_type: str = JSON) -> Response:
    code = error.code if isinstance(error, RequestRefused) else CODES.get(error.status_code, "BAD_REQUEST")
    headers = error.headers if isinstance(error, RequestRefused) else {}
    reason = error.reason_code if isinstance(error, RequestRefused) else None
    return Response(
        body_of(error.reason, code, reason),
        status_code=error.status_code,
        headers=headers,
        media_type=CONTENT_TYPES[media_type],
    )


async def send_refusal(
    send: Send,
    error: RequestRefused,
    media_type: str = JSON,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """The same answer, sent straight over ASGI (by middleware in front of Starlette), with ``extra``
    headers."""
    body = body_of(error.reason, error.code, error.reason_code)
    headers = [
        (b"content-type", CONTENT_TYPES[media_type].encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers.items()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
