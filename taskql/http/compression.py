"""Compressed answers: query answers of ``COMPRESSION_MIN_BYTES`` or more, gzipped for clients that accept it.

What is compressed, and where:

- **Query answers only.** A mutation's answer is never compressed: ``login``, ``register`` and
  ``refreshToken`` return tokens, and an answer that holds a secret next to what the request put in it is
  what BREACH reads through compressed lengths. Query answers hold no token (taskql's credentials travel in
  the ``Authorization`` header, never in an answer or a cookie), and are the large ones.
- **Misses** are compressed by the view, once the answer is encoded (``taskql.view``); **hits** by nobody:
  the cache keeps the gzip bytes with the entry, made once when it is stored (``taskql.cache.store``), and the
  express lane sends whichever the client accepts (``taskql.cache.express``).
- Not Starlette's ``GZipMiddleware`` for these: hits are answered before any middleware, it would compress a
  miss's answer a second time for the cache, and it cannot tell a query's answer from a mutation's.
- Each representation has its own strong ETag (RFC 9110, 8.8.3): the gzip one is the identity one with
  ``-gzip`` inside the quotes. ``Vary: accept-encoding`` on every answer that could have been either.
- Never: answers below the threshold, WebSocket messages, ``/metrics``, GraphiQL's page (its large asset is
  stored gzipped already: ``taskql.http.graphiql``), refusals and errors before execution.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from core.settings import Settings

# zlib's level 1 (nginx's default too): on a 100-row page, 11.5 % of the size against level 6's 10.7 %,
# for a quarter of the CPU (README, "Compression"; bench.compression may change it to compare).
LEVEL = 1
GZIP_WINDOW: Final = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
VARY: Final = b"accept-encoding"
CONTENT_ENCODING: Final = (b"content-encoding", b"gzip")


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (RFC 9110, 12.5.3): named (or as ``x-gzip``), or
    by ``*``, with a ``q`` above 0. Absent: identity only (a client that says nothing gets what it can
    read)."""
    if not accept_encoding:
        return False
    named: float | None = None
    anything: float | None = None
    for element in accept_encoding.split(","):
        coding, _, params = element.partition(";")
        coding = coding.strip().lower()
        quality = _quality(params)
        if coding in ("gzip", "x-gzip"):
            named = quality
        elif coding == "*":
            anything = quality
    chosen = named if named is not None else anything
    return chosen is not None and chosen > 0


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WINDOW)
    return compressor.compress(body) + compressor.flush()


def gzip_with_tail(body: bytes, tail: bytes) -> tuple[bytes, bytes]:
    """``body`` (a JSON object) gzipped, and ``body`` with ``tail`` in place of its closing brace gzipped,
    for about the price of one: both streams share everything before that brace (the compressor's state is
    copied there)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WINDOW)
    head = compressor.compress(body[:-1])
    other = compressor.copy()
    whole = head + compressor.compress(body[-1:]) + compressor.flush()
    return whole, head + other.compress(tail) + other.flush()


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation of what ``etag`` (a quoted strong ETag) names."""
    return etag[:-1] + '-gzip"'


@dataclass(frozen=True, slots=True)
class Compression:
    """Born with the app when COMPRESSION is on; answers of ``min_bytes`` or more are compressed."""

    min_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Compression | None:
        return cls(settings.compression_min_bytes) if settings.compression else None

    def worth(self, body: bytes) -> bool:
        return len(body) >= self.min_bytes
