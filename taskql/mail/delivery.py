"""Delivery of rendered mails: over SMTP, or as .eml files into a mailbox folder (development)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

logger = logging.getLogger("taskql.mail")

URL_SHAPE = "smtp://[user:password@]host[:port][?starttls=require] or smtps://[user:password@]host[:port]"
# Characters other than these, in a Message-ID, become "_" in the name of its file.
UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._@+=-]")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...

    def describe(self) -> str:
        """Where mail goes, for logs, without a password."""
        ...


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """The parts of an SMTP URL."""

    host: str
    port: int
    implicit_tls: bool
    require_starttls: bool
    username: str | None
    password: str | None = field(repr=False)  # never in a log
    cafile: str | None


def parse_smtp_url(url: str) -> SmtpServer:
    """Reads an SMTP URL; the error messages never quote the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(
            f"the SMTP URL must start with smtp:// or smtps://, not {parts.scheme or '(none)'}://"
        )
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range: its text may be part of a misplaced password
        port = 0
    if port == 0 or parts.path not in ("", "/") or parts.fragment:
        raise ValueError(
            f"the SMTP URL is not of the form {URL_SHAPE}; "
            "write / ? # @ : in the user name or password percent-encoded (%2F %3F %23 %40 %3A)"
        )
    if not parts.hostname:
        raise ValueError(f"the SMTP URL has no host: expected {URL_SHAPE}")
    # Options are not quoted back either: an unencoded "?" in a password starts the query.
    options = parse_qs(parts.query, keep_blank_values=True)
    if set(options) - {"starttls", "cafile"}:
        raise ValueError("unknown option in the SMTP URL: the options are starttls=require and cafile=/path")
    starttls = options.get("starttls", [])
    if starttls not in ([], ["require"]):
        raise ValueError("the starttls option of the SMTP URL takes one value: starttls=require")
    implicit_tls = parts.scheme == "smtps"
    if implicit_tls and starttls:
        raise ValueError("starttls=require in an smtps:// URL: smtps is TLS from the start; drop the option")
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        require_starttls=bool(starttls),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        cafile=options["cafile"][-1] if "cafile" in options else None,
    )


class SmtpMailer:
    """Sends each mail over a new SMTP connection; errors propagate (the worker retries)."""

    def __init__(self, url: str, *, timeout: float = 10.0, cafile: str | None = None) -> None:
        self.server = parse_smtp_url(url)
        self.timeout = timeout
        cafile = cafile or self.server.cafile
        # Certificates are always verified; a cafile replaces the system's CAs with a private one.
        self.tls_context = ssl.create_default_context(cafile=cafile) if cafile else None

    async def send(self, message: EmailMessage) -> None:
        server = self.server
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            # None: STARTTLS when the server offers it, else plain text; True: refuse a server without it.
            start_tls=True if server.require_starttls else None,
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    def describe(self) -> str:
        host = f"[{self.server.host}]" if ":" in self.server.host else self.server.host
        scheme = "smtps" if self.server.implicit_tls else "smtp"
        return f"{scheme}://{host}:{self.server.port}"


class MailboxMailer:
    """Writes each mail as ``<Message-ID>.eml`` into a folder: the same mail sent twice leaves one file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        path = await asyncio.to_thread(self.save, message)
        logger.info("mail to %s saved in %s", message["To"], path)

    def save(self, message: EmailMessage) -> Path:
        path = self.folder / file_name(message)
        self.folder.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed over: a reader never sees half a mail. (The file is private: 0600.)
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".", suffix=".tmp", delete=False) as file:
            try:
                file.write(message.as_bytes())
                file.flush()
                os.fsync(file.fileno())
            except BaseException:
                os.unlink(file.name)
                raise
        os.replace(file.name, path)
        return path

    def describe(self) -> str:
        return f"mailbox folder {self.folder}"


def file_name(message: EmailMessage) -> str:
    message_id = str(message.get("Message-ID", "")).strip().strip("<>")
    if not message_id:
        raise ValueError("the message has no Message-ID (render() sets one); its file would have no name")
    return UNSAFE_IN_FILE_NAME.sub("_", message_id).lstrip(".")[:200] + ".eml"


def mailer_for(smtp_url: str | None, mailbox: Path, *, timeout: float = 10.0) -> Mailer:
    """SMTP when a URL is given, otherwise the mailbox folder."""
    if smtp_url is None:
        return MailboxMailer(mailbox)
    return SmtpMailer(smtp_url, timeout=timeout)
