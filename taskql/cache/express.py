"""The cache's fast path: an ASGI app in front of the GraphQL view that answers hits itself.

A hit costs a hash of the request, a check of the access token and one Redis round trip: nothing is parsed,
validated or executed, and no SQL runs. The key is the request exactly as sent (the JSON body of a POST,
the query string of a GET) with the viewer: the same bytes always mean the same document, variables and
extensions, and an answer is only ever stored after the view executed it without error, under the same
schema and persisted-query mode (both in the key). So a request the view would refuse (a mismatched APQ
hash, an ad-hoc query in trusted-only mode, a mutation) never finds an entry, and a hit is answered in the
media type and with the status the view would answer it with (``taskql.http.media``; 200, as only answers
without errors are stored), or left to the view when the client accepts neither. A miss goes on to the view,
carrying the probe (the versions read before any data) so that the view can store its answer and, when
Redis vouched for the session, skip the viewer's SQL. Not a write's: what a request does is not known here
(its bytes can spell a mutation without the keyword), so the session Redis vouches for goes on with every
request, and a mutation reads its viewer from PostgreSQL as it executes
(``schema.extensions.write_authorization``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from auth.tokens import AccessClaims, TokenConfig, bearer_token, decode_access_token
from core.errors import Unauthenticated
from taskql.cache.store import Hit, Probe, ResponseCache
from taskql.http import compression, request_ids
from taskql.http.limits import BODY
from taskql.http.media import CONTENT_TYPES, is_json_body, negotiate
from taskql.http.security import PREFLIGHT_HEADERS, SecurityPolicy, csrf_safe
from taskql.ops import access_log
from taskql.policy.rate_limits import RateLimits, subject_of
from taskql.state import StateKey


@dataclass(frozen=True, slots=True)
class Lane:
    """What the express lane works with, born in the lifespan (absent when RESPONSE_CACHE is off)."""

    cache: ResponseCache
    tokens: TokenConfig
    limits: RateLimits | None  # None when RATE_LIMITS is off


LANE = StateKey[Lane]("taskql.express_lane")
PROBE = StateKey[Probe]("taskql.cache_probe")  # a miss's: the versions read before the data, the viewer
LOOKED_UP = StateKey[bool]("taskql.cache_looked_up")
WANTED_HEADERS = frozenset(
    (
        b"content-type",
        b"authorization",
        b"if-none-match",
        b"accept",
        b"accept-encoding",
        b"origin",
        request_ids.HEADER,
        *PREFLIGHT_HEADERS,
    )
)
MAX_BODY_BYTES = 1 << 20  # larger bodies (MAX_BODY_BYTES, the setting, may allow them) skip the cache
PREFLIGHT_NAMES = tuple(name.decode() for name in PREFLIGHT_HEADERS)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in WANTED_HEADERS
    }


class CachedGraphQL:
    """In front of ``app``: answers hits, passes everything else on.

    It runs twice over: outermost (``express``), before any middleware, for the requests that need none of
    it (no ``Origin``: API clients, mobile apps, same-origin GETs); and in front of the view, for the rest
    (browsers' cross-origin requests, which the CORS middleware must see). The second skips what the first
    already looked up. What the security middleware (``taskql.http.security``) does for every other response,
    the express lane does for its hits: the same headers (``security``, built once), the same request id
    rule, and no answer to a request CSRF prevention refuses (it goes on, to be refused there).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        express: bool = False,
        path: str = "/graphql",
        security: SecurityPolicy | None = None,
    ) -> None:
        self.app = app
        self.express = express
        self.path = path
        self.csrf_prevention = security is not None and security.csrf_prevention
        # Behind the security middleware (not express), it adds these and the request id itself.
        self.extra_headers = list(security.headers) if security is not None and express else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._handles(scope):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.express and "origin" in headers:  # for the lane behind the CORS middleware
            await self.app(scope, receive, send)
            return
        LOOKED_UP.set(scope, True)
        lane = LANE.get(scope)
        if lane is None or scope["method"] not in {"GET", "POST"}:
            await self.app(scope, receive, send)
            return
        # (A POST is only looked up with a JSON Content-Type, which CSRF prevention lets through.)
        if (
            self.csrf_prevention
            and scope["method"] == "GET"
            and not csrf_safe(headers.get("content-type"), any(map(headers.get, PREFLIGHT_NAMES)))
        ):
            await self.app(scope, receive, send)  # refused there, with the same headers as the rest
            return
        body: bytes | None = b""
        if scope["method"] == "POST":
            # Read whole by taskql.http.limits.BodyLimit, in front of everything; large ones skip the cache.
            body = BODY.get(scope)
            if body is not None and len(body) > MAX_BODY_BYTES:
                body = None
        # A hit is answered in the media type the view would answer in; a client that accepts neither is
        # left to the view, which says so (406).
        media_type = negotiate(headers.get("accept"))
        try:
            found = (
                None if body is None or media_type is None else await self._lookup(lane, scope, body, headers)
            )
        except (ValueError, TypeError, UnicodeError, Unauthenticated):
            found = None  # the view answers it, with the right error
        if isinstance(found, Hit):
            access_log.cache_hit(found.operation, found.user_id)
            assert media_type is not None
            gzipped = found.gzipped if lane.cache.compression is not None else None  # COMPRESSION off
            await _send_hit(found, gzipped, scope, headers, send, media_type, self.extra_headers)
            return
        if found is not None:
            PROBE.set(scope, found)
        await self.app(scope, receive, send)

    def _handles(self, scope: Scope) -> bool:
        if not self.express:
            return not LOOKED_UP.get(scope)
        return bool(scope["path"] == self.path)

    async def _lookup(
        self, lane: Lane, scope: Scope, body: bytes, headers: Mapping[str, str]
    ) -> Hit | Probe | None:
        if scope["method"] == "POST":
            if not is_json_body(headers.get("content-type")):
                return None  # the view refuses it (415)
            request = body
        else:
            request = scope["query_string"]
        claims = _claims(lane.tokens, headers.get("authorization"))
        user_id = str(claims.user_id) if claims else ""
        limits = lane.limits
        subject = subject_of(user_id, scope["client"][0] if scope.get("client") else "") if limits else ""
        if limits is not None and limits.spent(subject):
            return None  # the view refuses it (RATE_LIMITED), without asking Redis
        key = lane.cache.entry_key(scope["method"], request, user_id)
        found = await lane.cache.lookup(key, claims)
        if limits is not None and isinstance(found, Hit):
            limits.charge_hit(subject)  # counted here, sent to Redis later with others: still one round trip
        return found


def _claims(tokens: TokenConfig, authorization: str | None) -> AccessClaims | None:
    token = bearer_token(authorization)  # Unauthenticated: the view explains it to the client
    return decode_access_token(tokens, token) if token is not None else None


def http_cache_headers(
    etag: str, *, public: bool, max_age: int, encodings: bool = False
) -> list[tuple[bytes, bytes]]:
    """GET responses: a private answer may be kept by the browser, which must revalidate it (the ETag makes
    that a 304); a public one may be kept by any cache for its max-age. ``encodings``: the answer is sent
    gzipped to the clients that accept it (``taskql.http.compression``), so it varies with that too."""
    control = f"public, max-age={max_age}" if public else "private, no-cache"
    vary = b"authorization, accept-encoding" if encodings else b"authorization"
    return [(b"cache-control", control.encode()), (b"etag", etag.encode()), (b"vary", vary)]


_CONTENT_TYPES = {media_type: value.encode() for media_type, value in CONTENT_TYPES.items()}


async def _send_hit(
    hit: Hit,
    gzipped: bytes | None,
    scope: Scope,
    headers: Mapping[str, str],
    send: Send,
    media_type: str,
    extra: list[tuple[bytes, bytes]] | None,
) -> None:
    # Only answers without errors are stored: 200 in either media type.
    response_headers = [(b"content-type", _CONTENT_TYPES[media_type]), (b"x-cache", b"HIT")]
    if extra is not None:
        response_headers.append(
            (request_ids.HEADER, request_ids.accepted(headers.get("x-request-id")).encode())
        )
        response_headers += extra
    # The entry keeps a gzip copy of a large answer, made once when it was stored: a hit never compresses.
    status, body, etag = 200, hit.body, hit.etag
    encoded = gzipped is not None and compression.accepts_gzip(headers.get("accept-encoding"))
    if encoded:
        body, etag = gzipped or b"", compression.gzip_etag(etag)
    if scope["method"] == "GET":
        response_headers += http_cache_headers(
            etag, public=hit.public, max_age=hit.max_age, encodings=gzipped is not None
        )
        if etag in headers.get("if-none-match", ""):
            status, body = 304, b""
    elif gzipped is not None:
        response_headers.append((b"vary", compression.VARY))
    if encoded and status == 200:
        response_headers.append(compression.CONTENT_ENCODING)
    response_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
