"""Mail as a user reads it: from the mailbox folder (``.eml`` files) or a real SMTP server (aiosmtpd)
started by the test; and the link's token in it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from aiosmtpd.controller import Controller

from tests.processes import free_port

LINK = re.compile(r"https?://[^\s\"'<>]+[?&]token=[^\s\"'<>&]+")


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no text part"
    return str(part.get_content())


def link_in(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found is not None, text_of(message)
    return found.group(0)


def token_in(message: EmailMessage) -> str:
    return unquote(parse_qs(urlparse(link_in(message)).query)["token"][0])


def wait_for_mail(folder: Path, count: int = 1, timeout: float = 30.0) -> EmailMessage:
    """The newest of the first ``count`` mails in ``folder`` once there are that many (a condition polled
    until a deadline: the worker writes them from another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.eml"), key=lambda path: path.stat().st_mtime) if folder.exists() else []
        if len(files) >= count:
            return parsed(files[count - 1].read_bytes())
        time.sleep(0.05)
    raise AssertionError(f"no mail number {count} in {folder} after {timeout} s")


class Sink:
    """An SMTP server that keeps what it is given; ``next`` waits for the next message."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[EmailMessage] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = parsed(envelope.content)
        self.loop.call_soon_threadsafe(self.messages.put_nowait, message)
        return "250 OK"

    async def next(self, to: str | None = None, timeout: float = 30.0) -> EmailMessage:
        """The next message (to ``to``, when given: others are kept for later)."""
        for kept in self.received:
            if to is None or kept["To"] == to:
                self.received.remove(kept)
                return kept
        async with asyncio.timeout(timeout):
            while True:
                message = await self.messages.get()
                if to is None or message["To"] == to:
                    return message
                self.received.append(message)


@contextmanager
def smtp_server(handler: object) -> Iterator[str]:
    """A real SMTP server (aiosmtpd) with ``handler`` on a free port; its ``smtp://`` URL."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, str]]:
    """A real SMTP server that keeps what it is given, and its ``smtp://`` URL."""
    sink = Sink()
    with smtp_server(sink) as url:
        yield sink, url
