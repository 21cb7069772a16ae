"""What the cache keeps of an executed answer: never errors, partial results or writes; for how long; and
the HTTP caching headers of a GET's answer."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.responses import Response
from strawberry.types import ExecutionResult

from auth.viewer import Viewer
from core.cache_tags import Policy
from resolvers.context import Context
from taskql.cache.express import http_cache_headers
from taskql.cache.store import Probe, ResponseCache, etag_of
from taskql.http.compression import gzip_etag


@dataclass(frozen=True, slots=True)
class Keep:
    """An answer to keep once it is encoded (after the response is sent)."""

    cache: ResponseCache
    probe: Probe
    viewer: Viewer | None
    policy: Policy | None
    ttl: int
    method: str
    operation: str

    def attach(
        self,
        response: Response,
        body: bytes,
        *,
        encodings: bool = False,
        gzipped_sent: bool = False,
        gzipped: bytes | None = None,
    ) -> None:
        """Give ``response`` (whose answer is ``body``) its caching headers, and store it after it is sent:
        the entry is checked against versions read before the data, so storing late never makes it stale.
        ``encodings``: the answer is sent gzipped to the clients that accept it; ``gzipped_sent``: this
        response is (its ETag is then the gzip one's); ``gzipped``: ``body`` gzipped, when the request made it
        (else the store makes it, after the response is sent)."""
        if self.method == "GET" and self.policy is not None and self.policy.cacheable:
            etag = etag_of(body)
            headers = http_cache_headers(
                gzip_etag(etag) if gzipped_sent else etag,
                public=self.policy.public,
                max_age=self.policy.max_age,
                encodings=encodings,
            )
            for name, value in headers:
                response.headers[name.decode()] = value.decode()
        response.background = BackgroundTask(
            self.cache.store, self.probe, self.viewer, body, self.policy, self.ttl, self.operation, gzipped
        )


def keep(
    cache: ResponseCache,
    probe: Probe | None,
    context: Context,
    result: ExecutionResult,
    *,
    method: str,
    operation: str,
) -> Keep | None:
    """What to keep of this answer: nothing of errors, partial results or an operation that wrote."""
    if probe is None or result.errors or context.writes.changed:
        return None
    return Keep(cache, probe, context.who.viewer, context.caching.policy, _ttl(context), method, operation)


def _ttl(context: Context) -> int:
    """Seconds the answer may be kept: its policy's max-age, cut short where the data changes by itself."""
    policy = context.caching.policy
    if policy is None or not policy.cacheable:
        return 0
    ttl = policy.max_age
    if context.caching.valid_until is not None:
        ttl = min(ttl, int((context.caching.valid_until - context.now()).total_seconds()))
    return max(ttl, 0)
