"""Bounds on what a client can make the server read: the request body (uvicorn itself refuses a request line
or header block over about 64 KiB, with a plain-text 400, before the app is called).

``BodyLimit`` sits in front of everything (the express lane included), so a refused request costs nothing
else. The limit holds whatever the headers say: a ``Content-Length`` over it is refused before a byte is
read, and the bytes themselves are counted as they stream in (chunked bodies, and a ``Content-Length`` that
understates), so at most ``max_bytes`` plus one chunk is ever held. A refused body is not read to its end:
the answer closes the connection. A body the limit lets through is handed on whole: in one message, and in
the scope's state (``BODY``), where the express lane reads it.

A body that stops arriving (no byte for ``idle_seconds``, give or take a second: a stalled or deliberately
slow client) is refused with 408 rather than holding its connection and its buffer for ever: uvicorn bounds
the time between requests, not the time a request takes to arrive.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskql.http import request_ids
from taskql.http.media import JSON, negotiate
from taskql.http.refusals import RequestRefused, send_refusal
from taskql.state import StateKey

BODY = StateKey[bytes]("taskql.body")
SWEEP_SECONDS = 1.0  # how often stalled bodies are looked for: a stall is refused within this of its time
WITHOUT_BODY = frozenset(("GET", "HEAD"))  # nothing here reads their bodies: they are never buffered


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class _Stalls:
    """The body reads under way, each with the time by which its next message must have come, and a sweep a
    second (only while there are some) that cancels the late ones. One timer for all of them: a timer per
    request (``asyncio.timeout``, ``call_later``) would cost the express lane a few microseconds each."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadlines: dict[asyncio.Task[object], float] = {}
        self.late: set[asyncio.Task[object]] = set()
        self.sweeping = False

    def watch(self, task: asyncio.Task[object], loop: asyncio.AbstractEventLoop) -> None:
        """(Re)start ``task``'s wait for its next message."""
        self.deadlines[task] = loop.time() + self.seconds
        if not self.sweeping:
            self.sweeping = True
            loop.call_later(SWEEP_SECONDS, self._sweep, loop)

    def forget(self, task: asyncio.Task[object]) -> bool:
        """Stop watching ``task``; whether it was late (and cancelled for it)."""
        self.deadlines.pop(task, None)
        if task in self.late:
            self.late.discard(task)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self.deadlines.items()):
            if deadline <= now:
                del self.deadlines[task]
                self.late.add(task)
                task.cancel()
        if self.deadlines:
            loop.call_later(SWEEP_SECONDS, self._sweep, loop)
        else:
            self.sweeping = False


class _ClientGone(Exception):
    """The client went away before sending its whole request: nobody to answer."""


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        idle_seconds: float,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """``headers``: what the security middleware adds to every other response (``taskql.http.security``),
        which a refusal from here, in front of it, never reaches."""
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.headers = headers
        self._stalls = _Stalls(idle_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, 413, f"The request body is larger than {self.max_bytes} bytes.")
            return
        if scope["method"] in WITHOUT_BODY:
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        try:
            body = await self._read(receive, task)
        except _ClientGone:
            return
        except asyncio.CancelledError:
            if not self._stalls.forget(task):
                raise
            task.uncancel()
            await self._refuse(scope, send, 408, f"No part of the body arrived for {self.idle_seconds:g} s.")
            return
        finally:
            self._stalls.forget(task)
        if body is None:
            await self._refuse(scope, send, 413, f"The request body is larger than {self.max_bytes} bytes.")
            return
        BODY.set(scope, body)
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, task: asyncio.Task[object]) -> bytes | None:
        """The whole body; None when it is larger than allowed."""
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            self._stalls.watch(task, loop)
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        # The rest of the body is never read: the connection cannot carry another request.
        refusal = RequestRefused(status, message, headers={"connection": "close"})
        request_id = request_ids.accepted(_header(scope, request_ids.HEADER))
        extra = (*self.headers, (request_ids.HEADER, request_id.encode()))
        await send_refusal(send, refusal, negotiate(_header(scope, b"accept")) or JSON, extra)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the client's own messages (a disconnect, which Starlette listens for)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
