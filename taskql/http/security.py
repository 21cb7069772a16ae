"""What every HTTP response and request goes through: security headers, CSRF prevention, request ids, and
the last word on an exception nothing else caught.

**Headers.** Every response says ``X-Content-Type-Options: nosniff`` (a JSON answer is never run as a
script), ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy:
``default-src 'none'; frame-ancestors 'none'`` for JSON (nothing in it may load anything, nor be framed),
and, for the GraphiQL page (development), one that lets it run its own scripts and styles from
``/graphiql/`` and the inline script and style of the page, by hash, and talk to ``'self'`` only. In
production, ``Strict-Transport-Security`` too. All of it is built once, at startup.

**CSRF prevention**, as Apollo Server 4 does it (``preventCsrf``): a request a web page could make without a
CORS preflight (a GET, or a POST whose Content-Type is ``text/plain``, ``multipart/form-data``,
``application/x-www-form-urlencoded`` or absent) is refused (400, ``BAD_REQUEST``) unless it carries a
non-empty ``Apollo-Require-Preflight`` or ``X-Apollo-Operation-Name`` header, which no page can add
without a preflight that CORS then decides. Any other Content-Type (``application/json``, and one that
does not parse, which a browser would preflight too) passes. Apollo Client Web sends
``Content-Type: application/json`` even on its GETs (APQ), Apollo iOS and Kotlin send
``X-Apollo-Operation-Name``; other clients add ``Apollo-Require-Preflight: true`` to their GETs. The
response cache's express lane (``taskql.cache.express``) applies the same rule and the same headers to its
hits, which never reach this middleware.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from base64 import b64encode
from dataclasses import dataclass
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings
from schema.extensions.error_codes import MASKED_MESSAGE
from taskql.http import graphiql, request_ids

logger = logging.getLogger("taskql.errors")

Headers = tuple[tuple[bytes, bytes], ...]

# https://fetch.spec.whatwg.org/#cors-safelisted-request-header: what a page may send without a preflight.
SIMPLE_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
PREFLIGHT_HEADERS = (b"apollo-require-preflight", b"x-apollo-operation-name")
MIME_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HTTP_WHITESPACE = " \t\n\r"
CSRF_MESSAGE = (
    "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Send a "
    "'Content-Type' header other than application/x-www-form-urlencoded, multipart/form-data or text/plain "
    "(application/json), or a non-empty 'Apollo-Require-Preflight' or 'X-Apollo-Operation-Name' header."
)
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=63072000; includeSubDomains"  # two years, as hstspreload.org asks
INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _essence(content_type: str) -> str | None:
    """The MIME type's ``type/subtype``, lower case, as the WHATWG MIME sniffing standard parses it; None
    when it does not parse."""
    kind, slash, rest = content_type.strip(HTTP_WHITESPACE).partition("/")
    subtype = rest.partition(";")[0].rstrip(HTTP_WHITESPACE)
    if not slash or not MIME_TOKEN.fullmatch(kind) or not MIME_TOKEN.fullmatch(subtype):
        return None
    return f"{kind}/{subtype}".lower()


@lru_cache(maxsize=256)  # clients send a handful of distinct values; parsing one costs 2 µs
def _preflighted(content_type: str) -> bool:
    essence = _essence(content_type)
    return essence is None or essence not in SIMPLE_CONTENT_TYPES


def csrf_safe(content_type: str | None, marked: bool) -> bool:
    """Whether a request could not have been sent cross-site without a preflight: it has a preflight
    header (``marked``), or a Content-Type a page cannot send without one."""
    if marked:
        return True
    return content_type is not None and _preflighted(content_type)


CSP = b"content-security-policy"


def _hash_source(text: str) -> str:
    return "'sha256-" + b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_policy(html: str) -> str:
    """The GraphiQL page's CSP: its own assets, its inline script and style (by hash, not 'unsafe-inline'),
    the data: URIs of its icon and fonts, and requests to this server only."""
    inline = INLINE.findall(html)
    scripts = [_hash_source(body) for kind, body in inline if kind == "script"]
    styles = [_hash_source(body) for kind, body in inline if kind == "style"]
    return "; ".join(
        (
            "default-src 'none'",
            " ".join(("script-src 'self'", *scripts)),
            " ".join(("style-src 'self'", *styles)),
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    csrf_prevention: bool
    headers: Headers  # every response but the GraphiQL page
    page_headers: Headers  # the GraphiQL page

    @classmethod
    def of(cls, settings: Settings) -> SecurityPolicy:
        common: Headers = (
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        )
        if settings.environment == "production":
            common += ((b"strict-transport-security", HSTS),)
        page = page_policy(graphiql.page()).encode()
        return cls(
            csrf_prevention=settings.csrf_prevention_enabled,
            headers=(*common, (b"content-security-policy", JSON_POLICY.encode())),
            page_headers=(*common, (b"content-security-policy", page)),
        )


def _error_body(message: str, extensions: dict[str, str]) -> bytes:
    return json.dumps({"errors": [{"message": message, "extensions": extensions}]}).encode()


CSRF_REFUSAL = _error_body(CSRF_MESSAGE, {"code": "BAD_REQUEST"})


class SecurityMiddleware:
    """The outermost middleware (inside it: CORS, then the routes)."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy, path: str = "/graphql") -> None:
        self.app = app
        self.policy = policy
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        content_type: str | None = None
        marked = False
        sent_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name in PREFLIGHT_HEADERS and value:
                marked = True
            elif name == request_ids.HEADER:
                sent_id = value.decode("latin-1")
        request_id = request_ids.accepted(sent_id)
        request_ids.REQUEST_ID.set(scope, request_id)
        if scope["type"] == "websocket":  # browsers' sockets: the Origin allowlist (the GraphQL view's)
            await self.app(scope, receive, send)
            return
        id_header = (request_ids.HEADER, request_id.encode())
        if (
            self.policy.csrf_prevention
            and scope["path"] == self.path
            and scope["method"] != "OPTIONS"
            and not csrf_safe(content_type, marked)
        ):
            await _respond(send, 400, CSRF_REFUSAL, (*self.policy.headers, id_header))
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                html = any(
                    name == b"content-type" and value.startswith(b"text/html") for name, value in headers
                )
                added = self.policy.page_headers if html else self.policy.headers
                if any(name == CSP for name, _ in headers):  # a page with a policy of its own (taskql.pages)
                    added = tuple(header for header in added if header[0] != CSP)
                headers += added
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Logged here, once, with the request id; not raised on (the server would log it again, without
            # the id). The client learns only the id.
            logger.exception(
                "unexpected error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if not started:
                body = _error_body(MASKED_MESSAGE, {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})
                await _respond(send, 500, body, (*self.policy.headers, id_header))


async def _respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
