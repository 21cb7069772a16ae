"""The delivery of one webhook: signed the Standard Webhooks way, sent to an address checked at this very
delivery, bounded in time and in what is read back. Failures are results (`Attempt`), not exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import math
import ssl
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from taskql.webhooks.ssrf import DEFAULT_PORTS, Resolver, UnsafeUrl, check_url, resolve_public

CONNECT_TIMEOUT = 3.0  # seconds
TOTAL_TIMEOUT = 10.0  # seconds, for the whole attempt: resolution, connection, request and answer
MAX_BODY = 1024  # bytes of the answer kept; the rest is never read
USER_AGENT = "taskql-webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool  # a 2xx answer, read to its end or to the MAX_BODY cut
    status: int | None  # None when there was no answer (refused URL, connection error, timeout)
    duration_ms: int
    body: str  # the first MAX_BODY bytes of the answer, invalid UTF-8 replaced
    error: str | None  # short text safe to show the webhook's owner; None when ok


@dataclass(slots=True)
class _Answer:
    """What came back so far: kept when the attempt fails half-way."""

    status: int | None = None
    body: bytearray = field(default_factory=bytearray)


async def deliver(
    url: str,
    payload: bytes,
    *,
    secret: str | Sequence[str],
    message_id: str,
    timestamp: datetime,
    production: bool,
    allow_private: bool,
    resolver: Resolver | None = None,
    total_timeout: float = TOTAL_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> Attempt:
    """POST `payload` to `url` once. The URL is checked and its host resolved and judged at every
    delivery (a name can be re-pointed at a private address after it was registered: DNS rebinding),
    and the connection goes to one of the addresses judged, never to a fresh resolution.
    `ssl_context` replaces the public certificate authorities (tests). Network and HTTP failures are
    returned, never raised; a malformed `secret` raises (a programming error)."""
    headers = signed_headers(payload, secret=secret, message_id=message_id, timestamp=timestamp)
    answer = _Answer()
    started = time.monotonic()
    error: str | None
    try:
        async with asyncio.timeout(total_timeout):
            await _post(
                url,
                payload,
                headers,
                answer,
                production=production,
                allow_private=allow_private,
                resolver=resolver,
                read_timeout=total_timeout,
                ssl_context=ssl_context or _public_authorities(),
            )
        error = _status_error(answer.status)
    except UnsafeUrl as refusal:
        error = f"refused: {refusal}"
    except TimeoutError:
        error = "timeout"
    except httpx.TransportError as failure:
        error = _describe(failure)
    return Attempt(
        ok=error is None,
        status=answer.status,
        duration_ms=round((time.monotonic() - started) * 1000),
        body=answer.body.decode("utf-8", errors="replace"),
        error=error,
    )


def signed_headers(
    payload: bytes, *, secret: str | Sequence[str], message_id: str, timestamp: datetime
) -> dict[str, str]:
    """The headers of one attempt: signed with each of `secret` (several while a rotated secret's
    predecessor is still honoured: the Standard Webhooks header lists one signature per secret)."""
    if timestamp.tzinfo is None:  # standardwebhooks reads a naive timestamp as UTC: so does the header
        timestamp = timestamp.replace(tzinfo=UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",  # the body is read raw, and a compressed one would not be cut at 1 kB
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": " ".join(
            Webhook(one).sign(message_id, timestamp, payload)
            for one in ([secret] if isinstance(secret, str) else secret)
        ),
    }


async def _post(
    url: str,
    payload: bytes,
    headers: dict[str, str],
    answer: _Answer,
    *,
    production: bool,
    allow_private: bool,
    resolver: Resolver | None,
    read_timeout: float,
    ssl_context: ssl.SSLContext,
) -> None:
    target = httpx.URL(check_url(url, production=production, allow_private=allow_private))
    host = target.raw_host.decode("ascii")
    port = target.port or DEFAULT_PORTS[target.scheme]
    addresses = await resolve_public(host, port, allow_private=allow_private, resolver=resolver)
    client = httpx.AsyncClient(
        transport=_PinnedTransport(_PinnedBackend(host, port, addresses), ssl_context),
        trust_env=False,  # no proxy, no certificate authorities from the environment
        follow_redirects=False,  # a redirect would lead to an address nobody checked
        timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
    )
    async with client, client.stream("POST", target, content=payload, headers=headers) as response:
        answer.status = response.status_code
        # aiter_raw is an async generator (typed as an iterator): closed here, not whenever it is collected.
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with contextlib.aclosing(raw) as chunks:
            async for chunk in chunks:
                answer.body += chunk[: MAX_BODY - len(answer.body)]
                if len(answer.body) >= MAX_BODY:
                    break  # leaving the stream closes the connection: the rest is never read


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses `resolve_public` judged, not to what the host name resolves to now.
    TLS is unaffected: httpcore passes the URL's host name to `start_tls` itself, so SNI and the
    certificate check use the name, as does the Host header. (`timeout` is httpcore's parameter, hence
    the noqa.) Unix sockets are left to the base class, which refuses them."""

    def __init__(self, host: str, port: int, addresses: Sequence[str]) -> None:
        self._host = host
        self._port = port
        self._addresses = addresses
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host, port) != (self._host, self._port):  # only the checked origin, whatever asks
            raise httpcore.ConnectError(f"{host}:{port} is not the checked origin")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self._addresses:  # in the resolver's order, as a client would
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # resolve_public returns one address at least
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx 0.28 takes no network backend: its pool is replaced by one built the same way, with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=1, network_backend=backend
        )


@functools.cache
def _public_authorities() -> ssl.SSLContext:
    """httpx's default verification (certifi's authorities), built once: it takes milliseconds."""
    return httpx.create_ssl_context(trust_env=False)


def _status_error(status: int | None) -> str | None:
    assert status is not None  # the request went through
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"redirect not followed ({status})"
    return f"HTTP status {status}"


def _describe(failure: httpx.TransportError) -> str:
    """A short, safe name for a network failure; the details (addresses, OS messages) stay out."""
    causes = list(_causes(failure))
    if isinstance(failure, httpx.ConnectTimeout):
        return "connect timeout"
    if isinstance(failure, httpx.TimeoutException):
        return "timeout"
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
        return "TLS certificate not trusted or not for this host"
    if any(isinstance(cause, ssl.SSLError) for cause in causes):
        return "TLS handshake failed"
    if any(isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED for cause in causes):
        return "connection refused"
    if isinstance(failure, httpx.ConnectError):
        return "connection failed"
    if isinstance(failure, httpx.RemoteProtocolError):
        return "invalid or missing HTTP answer"
    if isinstance(failure, httpx.NetworkError):
        return "connection lost"
    return "transport error"


def _causes(failure: BaseException) -> Iterator[BaseException]:
    """`failure` and what led to it: httpx wraps httpcore, which wraps anyio's OSError, which wraps
    the OSError of each address tried (one, or an ExceptionGroup of them)."""
    pending, seen = [failure], set[int]()
    while pending:
        cause = pending.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending.extend(link for link in (cause.__cause__, cause.__context__) if link is not None)
        if isinstance(cause, BaseExceptionGroup):
            pending.extend(cause.exceptions)
