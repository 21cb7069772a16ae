"""The cache's fast path: an ASGI app in front of the GraphQL view that answers hits itself.

A hit costs the JSON decoding of the request, a JWT check and one Redis round trip: nothing is parsed,
validated or executed, and no SQL runs. Anything it does not recognise (a batch, a form, a malformed body, an
invalid token, a persisted query the current mode refuses) goes to the view untouched, which answers it
with the proper error. A miss goes on too, carrying the probe (the versions read before any data) so that
the view can store its answer and, when Redis vouched for the session, skip the viewer's SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.tokens import AccessClaims, decode_access_token
from core.errors import Unauthenticated
from taskql.cache import Hit, Probe
from taskql.persisted import sha256_hex

if TYPE_CHECKING:
    from taskql.app import Resources

PROBE_STATE = "taskql.cache_probe"
MAX_BODY_BYTES = 1 << 20  # larger bodies skip the cache (and meet the view's own limits)
NOT_CACHED_PREFIXES = ("mutation", "subscription")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) and value else value


def _request_data(scope: Scope, body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    if scope["method"] == "POST":
        if not headers.get("content-type", "").startswith("application/json"):
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None
    if scope["method"] == "GET":
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        return {name: _json(value) if name in {"variables", "extensions"} else value
                for name, value in params.items()}  # fmt: skip
    return None


class CachedGraphQL:
    def __init__(self, view: ASGIApp) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resources: Resources | None = getattr(scope["app"].state, "resources", None)
        if scope["type"] != "http" or resources is None or resources.cache is None:
            await self.view(scope, receive, send)
            return
        body, receive = await _buffered(receive) if scope["method"] == "POST" else (b"", receive)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            found = await self._lookup(resources, scope, body, headers)
        except (ValueError, TypeError, UnicodeError, Unauthenticated):
            found = None  # the view answers it, with the right error
        if isinstance(found, Hit):
            await _send_hit(found, scope, headers, send)
            return
        if found is not None:
            scope.setdefault("state", {})[PROBE_STATE] = found
        await self.view(scope, receive, send)

    async def _lookup(
        self, resources: Resources, scope: Scope, body: bytes, headers: Mapping[str, str]
    ) -> Hit | Probe | None:
        if len(body) > MAX_BODY_BYTES or (data := _request_data(scope, body, headers)) is None:
            return None
        document_hash = _document_hash(resources, data)
        variables = data.get("variables") or {}
        operation_name = data.get("operationName")
        if (
            document_hash is None
            or not isinstance(variables, dict)
            or not isinstance(operation_name, (str, type(None)))
        ):
            return None
        claims = _claims(resources, headers.get("authorization"))
        canonical = json.dumps(variables, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = resources.cache.entry_key(  # type: ignore[union-attr]
            document_hash, operation_name, canonical, str(claims.user_id) if claims else ""
        )
        return await resources.cache.lookup(key, claims)  # type: ignore[union-attr]


def _document_hash(resources: Resources, data: Mapping[str, Any]) -> str | None:
    """The SHA-256 of the document the request names, if the current persisted-query mode accepts it."""
    persisted = resources.persisted
    query = data.get("query")
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        return None
    apq = extensions.get("persistedQuery")
    digest: str | None = None
    if isinstance(query, str):
        if query.lstrip().startswith(NOT_CACHED_PREFIXES):
            return None
        digest = sha256_hex(query)
        if isinstance(apq, dict) and apq.get("sha256Hash") != digest:
            return None  # a mismatched hash: refused by the view
    elif persisted.mode == "off":
        return None
    elif isinstance(document_id := data.get("documentId") or extensions.get("documentId"), str):
        digest = document_id.removeprefix("sha256:") if document_id.startswith("sha256:") else None
        if digest not in persisted.trusted:
            return None
    elif isinstance(apq, dict) and apq.get("version") == 1 and isinstance(apq.get("sha256Hash"), str):
        digest = apq["sha256Hash"]
    if digest is None or (persisted.mode == "trusted-only" and digest not in persisted.trusted):
        return None
    return digest


def _claims(resources: Resources, authorization: str | None) -> AccessClaims | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed authorization")  # the view explains it to the client
    return decode_access_token(resources.tokens, token.strip())


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body, and a ``receive`` that hands it to the view again."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def http_cache_headers(etag: str, *, public: bool, max_age: int) -> list[tuple[bytes, bytes]]:
    """GET responses: a private answer may be kept by the browser, which must revalidate it (the ETag makes
    that a 304); a public one may be kept by any cache for its max-age."""
    control = f"public, max-age={max_age}" if public else "private, no-cache"
    return [(b"cache-control", control.encode()), (b"etag", etag.encode()), (b"vary", b"authorization")]


async def _send_hit(hit: Hit, scope: Scope, headers: Mapping[str, str], send: Send) -> None:
    response_headers = [
        (b"content-type", b"application/json"),
        (b"x-cache", b"HIT"),
        (b"x-request-id", uuid.uuid4().hex.encode()),
    ]
    status, body = 200, hit.body
    if scope["method"] == "GET":
        response_headers += http_cache_headers(hit.etag, public=hit.public, max_age=hit.max_age)
        if hit.etag in headers.get("if-none-match", ""):
            status, body = 304, b""
    response_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
