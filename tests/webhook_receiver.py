"""A real HTTP receiver of webhooks for the tests: an HTTP/1.1 server on 127.0.0.1 (asyncio streams, parsed
by h11) that verifies each request with PyPI's ``standardwebhooks``, as an integrator would, records it, and
answers with the status the test sets (or holds the answer until the test lets it go)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import h11
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]  # the secrets among the receiver's that verify it

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    status: int = 200
    hold: asyncio.Event | None = None  # set: answer; None: answer at once
    received: list[Delivery] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/taskql"

    @property
    def verified(self) -> list[Delivery]:
        return [delivery for delivery in self.received if delivery.verified_by]

    async def until(self, count: int, timeout: float = 30) -> list[Delivery]:
        """The first ``count`` requests, once they came."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.received) >= count)
            return self.received[:count]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = h11.Connection(h11.SERVER)
        try:
            while True:
                delivery = await self._request(http, reader)
                if delivery is None:
                    return
                async with self.changed:
                    self.received.append(delivery)
                    self.changed.notify_all()
                if self.hold is not None:
                    await self.hold.wait()
                body = b'{"ok":true}' if 200 <= self.status < 300 else b"not now"
                headers = [("content-length", str(len(body))), ("content-type", "application/json")]
                if 300 <= self.status < 400:  # onwards to an internal address: never to be followed
                    headers.append(("location", "http://10.0.0.1/admin"))
                writer.write(http.send(h11.Response(status_code=self.status, headers=headers)) or b"")
                writer.write(http.send(h11.Data(data=body)) or b"")
                writer.write(http.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                    return
                http.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()

    async def _request(self, http: h11.Connection, reader: asyncio.StreamReader) -> Delivery | None:
        read = await read_request(http, reader)
        if read is None:
            return None
        _, headers, body = read
        verified = []
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                verified.append(secret)
        return Delivery(headers, body, verified)


async def read_request(
    http: h11.Connection, reader: asyncio.StreamReader
) -> tuple[str, dict[str, str], bytes] | None:
    """The next request on the connection (its target, headers in lower case, body); None when the client
    closed or sent something else."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                return None
            http.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            break
        else:
            return None
    headers = {name.decode().lower(): value.decode() for name, value in request.headers}
    return request.target.decode(), headers, bytes(body)


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await server.wait_closed()
