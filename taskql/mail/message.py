"""A mail to send, and its rendering from the Jinja2 templates into a multipart email message."""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, get_args

import jinja2

from resolvers.jobs import MailKind

MAIL_KINDS: frozenset[str] = frozenset(get_args(MailKind))  # what a mail job may ask for

TEMPLATES = Path(__file__).parent / "templates"
# The left part of a Message-ID: kept to characters that are valid there and safe in a file name.
MESSAGE_ID = re.compile(r"[A-Za-z0-9._+=-]{1,128}")


@dataclass(frozen=True, slots=True)
class Mail:
    kind: str
    to: str
    message_id: str
    """A stable logical id chosen when the mail was enqueued: a mail sent twice keeps its Message-ID."""
    context: Mapping[str, Any]


@functools.cache
def environment() -> jinja2.Environment:
    # `<kind>.html` is autoescaped, `<kind>.txt` is not. An undefined variable raises: never a blank link.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(mail: Mail, *, mail_from: str) -> EmailMessage:
    """The mail as multipart/alternative: text/plain first, then text/html."""
    subject, text, html = bodies(mail)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = mail.to
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(mail.message_id, mail_from)
    # RFC 3834: tells auto-responders (out-of-office replies) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Taskql-Mail"] = mail.kind
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def bodies(mail: Mail) -> tuple[str, str, str]:
    """The subject (set by the text template), the text and the HTML of a mail."""
    if mail.kind not in MAIL_KINDS:
        raise ValueError(f"unknown mail kind {mail.kind!r}: expected one of {', '.join(sorted(MAIL_KINDS))}")
    text = environment().get_template(f"{mail.kind}.txt").make_module(dict(mail.context))
    subject = str(getattr(text, "subject", "")).strip()
    if not subject:
        raise ValueError(f'{mail.kind}.txt sets no subject: add {{% set subject = "..." %}}')
    html = environment().get_template(f"{mail.kind}.html").render(dict(mail.context), subject=subject)
    return subject, str(text), html


def message_id(logical_id: str, mail_from: str) -> str:
    """``<logical_id@domain of mail_from>``: the same logical mail always gets the same Message-ID."""
    if not MESSAGE_ID.fullmatch(logical_id):
        raise ValueError(
            f"message_id {logical_id!r} is not 1-128 characters among letters, digits and . _ + = -: "
            "use a uuid hex"
        )
    domain = email.utils.parseaddr(mail_from)[1].rpartition("@")[2]
    if not domain:
        raise ValueError(
            f"mail_from {mail_from!r} has no address with a domain, e.g. 'taskql <no-reply@example.com>'"
        )
    return f"<{logical_id}@{domain}>"
