"""A small graphql-transport-ws client over the ``websockets`` library, for the subscription tests."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket as socket_module
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TRANSPORT_WS = "graphql-transport-ws"
TASK_EVENTS = """
subscription Events($after: String, $ownerId: ID) {
  taskEvents(after: $after, ownerId: $ownerId) { cursor kind taskId task { id title owner { id } } at }
}
"""


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code, self.reason = code, reason


@dataclass
class Subscriber:
    socket: ClientConnection
    ids: itertools.count[int]

    @classmethod
    async def open(
        cls,
        url: str,
        payload: dict[str, Any] | None,
        *,
        max_queue: int = 16,
        origin: str | None = None,
        receive_buffer: int | None = None,
    ) -> Subscriber:
        """Connect and initialise; raises ``Closed`` when the server refuses."""
        sock = None
        if receive_buffer is not None:  # set before connecting, so the window is small from the start
            parsed = urlparse(url)
            sock = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
            sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, receive_buffer)
            sock.connect((parsed.hostname or "127.0.0.1", parsed.port or 80))
            sock.setblocking(False)
        socket = await connect(
            url,
            sock=sock,
            subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
            max_queue=max_queue,
            origin=origin,  # type: ignore[arg-type]
            compression=None,
        )
        subscriber = cls(socket, itertools.count(1))
        await socket.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        message = await subscriber.receive(timeout=15)
        if message["type"] != "connection_ack":
            raise AssertionError(message)
        return subscriber

    async def subscribe(self, variables: dict[str, Any] | None = None, query: str = TASK_EVENTS) -> str:
        operation = str(next(self.ids))
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": operation, "type": "subscribe", "payload": payload}))
        return operation

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(self.socket.recv(), timeout)
        except ConnectionClosed as closed:
            code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
            raise Closed(code, reason) from None
        message: dict[str, Any] = json.loads(raw)
        if message["type"] == "ping":
            await self.socket.send(json.dumps({"type": "pong"}))
            return await self.receive(timeout)
        return message

    async def event(self, timeout: float = 10) -> dict[str, Any]:
        """The next task event (asserting it is one)."""
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"]["taskEvents"]
        return event

    async def silent_for(self, seconds: float) -> bool:
        try:
            message = await self.receive(timeout=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected nothing, got {message}")

    async def closed(self, timeout: float = 15) -> Closed:
        """Wait for the server to close the socket; how it did."""
        try:
            while True:
                await self.receive(timeout)
        except Closed as closed:
            return closed

    async def close(self) -> None:
        await self.socket.close()


async def refused(url: str, payload: dict[str, Any] | None, *, origin: str | None = None) -> Closed:
    try:
        subscriber = await Subscriber.open(url, payload, origin=origin)
    except Closed as closed:
        return closed
    await subscriber.close()
    raise AssertionError("the server accepted the connection")
