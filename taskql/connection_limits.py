"""Bounds on connections, below the app: how long a connection may take to send a request head, how many
one client address may hold open, and how many files the process may open at all.

uvicorn (0.54, httptools and h11 alike) bounds none of the first two. Its keep-alive timer starts only once a
response is sent, and any byte received cancels it until the next response. So a connection that sends
nothing, that sends a request head a byte at a time (slowloris), or that sends a response's worth of
requests and then half of a head, is kept for ever, holding one of the process's file descriptors: 1,000 of
them from one client, under the usual soft limit of 1,024, and nobody else is answered.

- ``REQUEST_HEAD_TIMEOUT_SECONDS``: a connection must send a complete request head (request line and
  headers) within this long of being opened, and within this long of the first byte of each later request.
  The clock is never reset by data: a trickle gains nothing. Past it, the connection is closed; with a 408
  when part of a head had arrived (a client that was slow, not one that never spoke). Between requests the
  keep-alive timeout (``serve --timeout-keep-alive``) applies, as uvicorn does it; while a request runs,
  the app's own bounds do (``BODY_IDLE_TIMEOUT_SECONDS``, the statement timeout).
- ``MAX_CONNECTIONS_PER_CLIENT``: connections one address may hold open in one process (HTTP and WebSocket
  alike; 0: no bound). One more is closed as soon as it is accepted, before anything is read: a 503 would
  first need its request head, and holding the connection until then is what the bound is there to avoid.
  The refusals are logged, at most once per ``REFUSAL_LOG_SECONDS``.
- ``raise_open_files_limit``: ``serve`` raises the soft limit of open files to the hard limit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from collections import Counter
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings
from taskql.websocket import GoingAwayWebSocketProtocol

logger = logging.getLogger("taskql.connections")

REFUSAL_LOG_SECONDS = 10.0
# Where the hard limit is "unlimited" (macOS, some containers) the soft one cannot be: Linux caps it at
# fs.nr_open, 1,048,576 unless raised.
UNLIMITED_FALLBACK = 1 << 20
HEAD_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 38\r\n"
    b"connection: close\r\n\r\nThe request head took too long to send."
)


class OpenFiles(NamedTuple):
    before: int  # the soft limit the process started with
    soft: int
    hard: int


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft limit of open files (RLIMIT_NOFILE) as far as the hard limit allows. Every connection
    holds a descriptor: 1,024, a common default, is a few hundred clients. Worker processes inherit it."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FALLBACK if hard == resource.RLIM_INFINITY else hard
    if before != resource.RLIM_INFINITY and before < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:  # e.g. macOS's OPEN_MAX: keep what there is, say so
            logger.warning("could not raise the open files limit from %d to %d: %s", before, target, error)
    return OpenFiles(before, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)


class ClientSlots:
    """How many connections each client address holds open in this process, bounded by ``limit`` (0: no
    bound, nothing counted)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._refused: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def open(self, host: str) -> int:
        return self._open.get(host, 0)

    def take(self, host: str) -> bool:
        """Count one more connection of ``host``; False (nothing counted) when it holds ``limit`` already."""
        held = self._open.get(host, 0)
        if held >= self.limit:
            self._refused_one(host)
            return False
        self._open[host] = held + 1
        return True

    def release(self, host: str) -> None:
        held = self._open.get(host, 0) - 1
        if held > 0:
            self._open[host] = held
        else:
            self._open.pop(host, None)

    def _refused_one(self, host: str) -> None:
        """The first refusal is logged at once; those that follow, summed up every REFUSAL_LOG_SECONDS for
        as long as they go on (a client retrying in a loop must not flood the log)."""
        if self._summary is None:
            logger.warning(
                "refused a connection from %s: it holds %d open (MAX_CONNECTIONS_PER_CLIENT)",
                host,
                self.limit,
            )
            self._schedule_summary()
        else:
            self._refused[host] += 1

    def _schedule_summary(self) -> None:
        self._summary = asyncio.get_running_loop().call_later(REFUSAL_LOG_SECONDS, self._summarize)

    def _summarize(self) -> None:
        self._summary = None
        if not self._refused:
            return
        worst = ", ".join(f"{host} ({count})" for host, count in self._refused.most_common(5))
        logger.warning(
            "refused %d more connections in %.0f s (MAX_CONNECTIONS_PER_CLIENT=%d), the most from: %s",
            self._refused.total(),
            REFUSAL_LOG_SECONDS,
            self.limit,
            worst,
        )
        self._refused.clear()
        self._schedule_summary()


@functools.cache
def _bounds() -> tuple[float, ClientSlots | None]:
    """This process's head timeout and client slots. Read from the environment, as the app's settings are
    in every worker (``serve`` passes uvicorn this module's classes, not instances)."""
    settings = Settings()
    limit = settings.max_connections_per_client
    return settings.request_head_timeout_seconds, ClientSlots(limit) if limit else None


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head timeout and the per-client bound."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout, self.slots = _bounds()
        self.slot: str | None = None  # the address whose count this connection is in
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_begun = False
        self.upgraded = False  # a WebSocket now: its bytes are frames, no HTTP head is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None  # None: a Unix socket
        if host is not None and self.slots is not None:
            if not self.slots.take(host):
                transport.close()
                return
            self.slot = host
        self.head_timer = self.loop.call_later(self.head_timeout, self.head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        waiting = self.cycle is None or self.cycle.response_complete  # for a (next) request's head
        if waiting and data and not self.upgraded and not self.transport.is_closing():
            self.head_begun = True
            if self.head_timer is None:  # the first byte of a later request; the keep-alive timer is off
                self.head_timer = self.loop.call_later(self.head_timeout, self.head_timed_out)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self.head_begun = False
        super().on_headers_complete()

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_begun:
            self.transport.write(HEAD_TIMED_OUT)
        self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self.upgraded = True
        self._stop_head_timer()
        super().handle_websocket_upgrade()
        # The socket keeps this connection's slot: the WebSocket protocol, now the transport's, gives it back.
        successor = self.transport.get_protocol()
        if isinstance(successor, BoundedWebSocketProtocol):
            successor.slot, self.slot = self.slot, None
        else:
            self._release()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._release()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _release(self) -> None:
        if self.slot is not None and self.slots is not None:
            self.slots.release(self.slot)
        self.slot = None


class BoundedWebSocketProtocol(GoingAwayWebSocketProtocol):
    """The WebSocket protocol, giving back the slot its HTTP connection took when the socket closes."""

    slot: str | None = None  # a class default: nothing more per socket when there is no bound

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            _, slots = _bounds()
            if self.slot is not None and slots is not None:
                slots.release(self.slot)
            self.slot = None
