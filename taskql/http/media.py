"""GraphQL over HTTP's media types: which one a response is in (the client's ``Accept``), which request bodies
are understood (``Content-Type``), and the status code a GraphQL response gets in each.

- Responses: ``application/graphql-response+json`` when the client prefers it, ``application/json`` when it
  asks for that, for ``*/*`` or ``application/*``, or sends no ``Accept`` (the spec's rule for legacy
  clients, and what graphql-http's audit checks). The highest ``q`` wins; at equal ``q`` a named type beats
  a wildcard, then the one listed first. ``q=0`` and charsets other than UTF-8 exclude a type. Nothing
  acceptable: ``None``, which the view answers with 406.
- Requests: a POST body must be ``application/json``, in UTF-8 (the default when no charset is given).
- Status: with ``application/json`` a GraphQL response is 200 even when it holds only errors (a client
  cannot tell a 4xx of ours from a proxy's); with ``application/graphql-response+json`` a response without
  ``data`` (a request error: the document did not parse or validate, the operation could not be chosen, the
  variables did not coerce) is 4xx, and one with ``data`` is 200.

The parsers are cached by header value: a client sends the same headers on every request, so the express
lane (``taskql.cache.express``) pays a dictionary lookup for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import orjson

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
JSON: Final = "application/json"
CONTENT_TYPES: Final[Mapping[str, str]] = {
    GRAPHQL_RESPONSE_JSON: "application/graphql-response+json; charset=utf-8",
    JSON: "application/json; charset=utf-8",
}
# What each media range of an Accept header means here, and how specific it is (for ties).
_RANGES: Final[Mapping[str, tuple[str, int]]] = {
    GRAPHQL_RESPONSE_JSON: (GRAPHQL_RESPONSE_JSON, 2),
    JSON: (JSON, 2),
    "application/*": (JSON, 1),
    "*/*": (JSON, 0),
}
_UTF8: Final = frozenset(("utf-8", "utf8"))


def _media_and_params(value: str) -> tuple[str, dict[str, str]]:
    media, *params = value.split(";")
    parsed = {}
    for param in params:
        name, _, param_value = param.partition("=")
        parsed[name.strip().lower()] = param_value.strip().strip('"').lower()
    return media.strip().lower(), parsed


@lru_cache(maxsize=512)
def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header; None when the client accepts neither."""
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for index, element in enumerate(accept.split(",")):
        media, params = _media_and_params(element)
        meaning = _RANGES.get(media)
        if meaning is None or params.get("charset", "utf-8") not in _UTF8:
            continue
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            continue
        if not 0 < quality <= 1:
            continue
        rank = (quality, meaning[1], -index)
        if best is None or rank > best:
            best, chosen = rank, meaning[0]
    return chosen


@lru_cache(maxsize=512)
def is_json_body(content_type: str | None) -> bool:
    """Whether a POST's ``Content-Type`` is one this server reads: ``application/json``, UTF-8."""
    if content_type is None:
        return False
    media, params = _media_and_params(content_type)
    return media == JSON and params.get("charset", "utf-8") in _UTF8


def status_of(response: Any, media_type: str, explicit: int | None) -> int:
    """The status of a GraphQL response (a dict with ``data`` and/or ``errors``) in ``media_type``.

    ``explicit`` is a status chosen earlier: a refused persisted query's, or a 503 when PostgreSQL was
    unavailable (``taskql.http.unavailable``: clients retry it), which stands in either media type.
    Otherwise a
    response with ``data`` is 200 (the GraphQL over HTTP spec: MUST be 2xx, even when it is null)."""
    if explicit is not None and explicit >= 500:
        return explicit
    if not isinstance(response, dict) or "data" in response:
        return 200
    if media_type == JSON:
        return explicit or 200
    if explicit is not None and explicit >= 400:
        return explicit
    codes = {(error.get("extensions") or {}).get("code") for error in response.get("errors") or ()}
    return 500 if "INTERNAL_SERVER_ERROR" in codes else 400


def encode(answer: object) -> bytes:
    """An HTTP answer's bytes: orjson, several times faster than the json module on a page of tasks, and
    the same JSON (compact, UTF-8). What orjson refuses (an integer beyond 64 bits from a custom scalar)
    goes the json module's way, as Strawberry encodes it. (WebSocket messages keep Strawberry's encoder.)"""
    try:
        return orjson.dumps(answer)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(answer, separators=(",", ":")).encode()
