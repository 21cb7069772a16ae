"""Mails as a user receives them: delivered to a real SMTP server (aiosmtpd), or saved as .eml files."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from taskql.mail.delivery import MailboxMailer, SmtpMailer, mailer_for
from taskql.mail.message import MAIL_KINDS, TEMPLATES, Mail, render
from tests.processes import free_port

MAIL_FROM = "taskql <no-reply@taskql.example>"
LINK = "https://taskql.example/verify-email?token=abc123&next=%2Ftasks"
SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "verify_email": {"name": "Eve", "link": LINK, "expires_hours": 24},
    "address_in_use": {"name": "Eve"},
    "password_reset": {"name": "Eve", "link": LINK, "expires_minutes": 30},
    "password_changed": {"name": "Eve"},
    "email_change_requested": {"name": "Eve", "new_email": "eve@new.example"},
    "data_export": {"name": "Eve", "link": LINK, "expires_hours": 48},
    "account_deleted": {"name": "Eve"},
    "daily_digest": {"name": "Eve", "summary": "Your tasks: 1 overdue\n\nOverdue: Pay <the> rent"},
    "task_due_soon": {"name": "Eve", "task_title": "Pay <the> rent", "due": "Mon 06 Jan 2031, 09:00 (UTC)"},
    "webhook_disabled": {
        "name": "Eve",
        "webhook_url": "https://hooks.example.com/<eve>",
        "failures": 20,
        "reason": "HTTP status 500",
    },
    "project_invitation": {
        "name": "Eve",
        "inviter": "Olivia <O>",
        "project_name": "Launch <v1>",
        "role": "EDITOR",
        "expires": "2031-01-13 09:00 UTC",
        "has_account": True,
        "link": "https://taskql.example/",
    },
}


def a_mail(kind: str = "verify_email", *, message_id: str = "0f3c9a", **context: Any) -> Mail:
    return Mail(
        kind=kind, to="eve@example.com", message_id=message_id, context=SAMPLE_CONTEXTS[kind] | context
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None, f"no text/{subtype} part"
    assert body.get_content_type() == f"text/{subtype}"
    return str(body.get_content())


def files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


class Hrefs(HTMLParser):
    """The targets of the links in an HTML document, as a browser reads them (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href" and value]


# --- a real SMTP server --------------------------------------------------------------------------------


@dataclass
class Arrival:
    envelope: Envelope
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS) when the mail arrived

    @property
    def message(self) -> EmailMessage:
        assert isinstance(self.envelope.content, bytes)
        return parse(self.envelope.content)


class Inbox:
    """An aiosmtpd handler: hands each mail, from the server's thread, to the test's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.arrivals: asyncio.Queue[Arrival] = asyncio.Queue()
        self.logins: list[LoginPassword] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        arrival = Arrival(envelope, tls=server.transport.get_extra_info("ssl_object") is not None)
        self.loop.call_soon_threadsafe(self.arrivals.put_nowait, arrival)
        return "250 OK"

    async def next(self) -> Arrival:
        return await asyncio.wait_for(self.arrivals.get(), timeout=10)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data)
        # handled=False: aiosmtpd answers a failure itself (535).
        return AuthResult(success=auth_data == LoginPassword(b"mailer", PASSWORD.encode()), handled=False)


PASSWORD = "p@ss/w:rd?#é"  # every character that must be percent-encoded in a URL
# aiosmtpd warns about AUTH without TLS, which is what these tests mean to allow.
PLAIN_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@dataclass
class Server:
    inbox: Inbox
    port: int

    def url(self, scheme: str = "smtp", userinfo: str = "", query: str = "") -> str:
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{query}"


StartServer = Callable[..., Server]
Deliver = Callable[[Mail], Awaitable[Arrival]]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts aiosmtpd servers on 127.0.0.1 (a free port each) with the given SMTP options."""
    controllers: list[Controller] = []

    def start(**options: Any) -> Server:
        inbox = Inbox(asyncio.get_running_loop())
        port = free_port()
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, **options
        )
        controller.start()
        controllers.append(controller)
        return Server(inbox, port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key): a private CA of its own."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj"
    names = "subjectAltName=IP:127.0.0.1,DNS:localhost"
    subprocess.run(
        [*command.split(), "/CN=127.0.0.1", "-addext", names, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def cafile(certificate: tuple[Path, Path]) -> str:
    return str(certificate[0])


@pytest.fixture
async def delivered(start_server: StartServer) -> Deliver:
    """Renders a mail, sends it with SmtpMailer to a plain SMTP server, and returns what arrived."""
    server = start_server()

    async def deliver(mail: Mail) -> Arrival:
        await SmtpMailer(server.url()).send(render(mail, mail_from=MAIL_FROM))
        return await server.inbox.next()

    return deliver


# --- what a user sees ------------------------------------------------------------------------------------


async def test_a_mail_arrives_with_its_subject_sender_and_recipient(delivered: Deliver) -> None:
    arrival = await delivered(a_mail())
    message = arrival.message
    assert message["Subject"] == "Confirm your email address"
    assert message["From"] == MAIL_FROM
    assert message["To"] == "eve@example.com"
    assert message["Date"] is not None
    assert arrival.envelope.mail_from == "no-reply@taskql.example"
    assert arrival.envelope.rcpt_tos == ["eve@example.com"]


async def test_a_mail_says_it_is_automatic_and_which_kind_it_is(delivered: Deliver) -> None:
    message = (await delivered(a_mail("password_reset"))).message
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Taskql-Mail"] == "password_reset"


async def test_a_mail_has_a_text_part_then_an_html_part_each_with_the_link(delivered: Deliver) -> None:
    message = (await delivered(a_mail())).message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert LINK in part(message, "plain").split()
    assert LINK in Hrefs(part(message, "html")).hrefs


async def test_a_name_is_escaped_in_the_html_part_and_left_as_written_in_the_text_part(
    delivered: Deliver,
) -> None:
    message = (await delivered(a_mail(name="<b>Eve</b>"))).message
    html = part(message, "html")
    assert "Hi &lt;b&gt;Eve&lt;/b&gt;," in html
    assert "<b>Eve</b>" not in html
    assert "Hi <b>Eve</b>," in part(message, "plain")


async def test_the_same_logical_mail_keeps_its_message_id_and_another_gets_its_own(
    delivered: Deliver,
) -> None:
    first = (await delivered(a_mail(message_id="0f3c9a"))).message
    again = (await delivered(a_mail(message_id="0f3c9a"))).message
    other = (await delivered(a_mail(message_id="77ab01"))).message
    assert first["Message-ID"] == again["Message-ID"] == "<0f3c9a@taskql.example>"
    assert other["Message-ID"] == "<77ab01@taskql.example>"


@pytest.mark.parametrize("kind", sorted(MAIL_KINDS))
def test_every_kind_renders_a_subject_a_text_and_an_html_part_in_the_name_of_the_person(kind: str) -> None:
    message = render(a_mail(kind, name="Eve Example"), mail_from=MAIL_FROM)
    assert message["Subject"]
    for subtype in ("plain", "html"):
        assert "Hi Eve Example," in part(message, subtype)
        assert "taskql" in part(message, subtype)


@pytest.mark.parametrize("kind", ["verify_email", "password_reset", "data_export"])
def test_the_link_of_every_kind_with_a_link_is_in_both_parts(kind: str) -> None:
    message = render(a_mail(kind), mail_from=MAIL_FROM)
    assert LINK in part(message, "plain").split()
    assert LINK in Hrefs(part(message, "html")).hrefs


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("verify_email", "expires in 24 hours"),
        ("password_reset", "expires in 30 minutes"),
        ("password_reset", "your password is unchanged"),
        ("password_changed", "every other session was signed out"),
        ("email_change_requested", "eve@new.example"),
        ("data_export", "expires in 48 hours"),
        ("address_in_use", "already has a taskql account"),
        ("account_deleted", "were deleted"),
        ("task_due_soon", "is due Mon 06 Jan 2031, 09:00 (UTC)"),
        ("daily_digest", "Your tasks: 1 overdue"),
        ("webhook_disabled", "disabled after 20 failed deliveries in a row"),
        ("webhook_disabled", "The last one: HTTP status 500."),
        ("project_invitation", "as EDITOR"),
        ("project_invitation", "It expires on 2031-01-13 09:00 UTC"),
        ("project_invitation", "waiting among your invitations"),
    ],
)
def test_each_kind_tells_what_the_person_needs_to_know_in_both_parts(kind: str, says: str) -> None:
    message = render(a_mail(kind), mail_from=MAIL_FROM)
    assert says in part(message, "plain")
    assert says in part(message, "html")


def test_the_kinds_are_exactly_the_templates_each_with_a_text_and_an_html_version() -> None:
    assert set(SAMPLE_CONTEXTS) == MAIL_KINDS
    names = {path.name for path in TEMPLATES.iterdir()} - {"layout.txt", "layout.html", "macros.html"}
    assert names == {f"{kind}.{suffix}" for kind in MAIL_KINDS for suffix in ("txt", "html")}


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mail kind 'welcome'"):
        render(Mail(kind="welcome", to="eve@example.com", message_id="1", context={}), mail_from=MAIL_FROM)


def test_a_missing_template_variable_is_an_error_rather_than_a_blank_link() -> None:
    mail = Mail(kind="verify_email", to="eve@example.com", message_id="1", context={"name": "Eve"})
    with pytest.raises(Exception, match="'link' is undefined"):
        render(mail, mail_from=MAIL_FROM)


@pytest.mark.parametrize("message_id", ["", "a b", "x>y", "a@b"])
def test_a_message_id_unfit_for_a_message_id_header_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="use a uuid hex"):
        render(a_mail(message_id=message_id), mail_from=MAIL_FROM)


# --- SMTP: authentication and TLS --------------------------------------------------------------------------


@PLAIN_AUTH
async def test_a_user_and_password_in_the_url_are_decoded_and_used_to_log_in(
    start_server: StartServer,
) -> None:
    server = start_server(auth_required=True, auth_require_tls=False)
    mailer = SmtpMailer(server.url(userinfo=f"mailer:{quote(PASSWORD, safe='')}@"))
    await mailer.send(render(a_mail(), mail_from=MAIL_FROM))
    assert (await server.inbox.next()).message["To"] == "eve@example.com"
    assert server.inbox.logins == [LoginPassword(b"mailer", PASSWORD.encode())]


@PLAIN_AUTH
async def test_a_wrong_password_is_refused_by_the_server(start_server: StartServer) -> None:
    server = start_server(auth_required=True, auth_require_tls=False)
    mailer = SmtpMailer(server.url(userinfo="mailer:wrong@"))
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await mailer.send(render(a_mail(), mail_from=MAIL_FROM))


@pytest.mark.parametrize("ca_in", ["argument", "url"])
async def test_starttls_is_used_when_the_server_offers_it(
    start_server: StartServer, server_tls: ssl.SSLContext, cafile: str, ca_in: str
) -> None:
    # require_starttls: the server refuses any mail sent before STARTTLS.
    server = start_server(tls_context=server_tls, require_starttls=True)
    if ca_in == "argument":
        mailer = SmtpMailer(server.url(), cafile=cafile)
    else:
        mailer = SmtpMailer(server.url(query=f"?cafile={quote(cafile)}"))
    await mailer.send(render(a_mail(), mail_from=MAIL_FROM))
    arrival = await server.inbox.next()
    assert arrival.tls
    assert arrival.message["Subject"] == "Confirm your email address"


async def test_a_certificate_from_an_untrusted_ca_is_refused(
    start_server: StartServer, server_tls: ssl.SSLContext
) -> None:
    server = start_server(tls_context=server_tls)
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
        await SmtpMailer(server.url()).send(render(a_mail(), mail_from=MAIL_FROM))


async def test_starttls_require_refuses_a_server_that_does_not_offer_it(start_server: StartServer) -> None:
    server = start_server()
    mailer = SmtpMailer(server.url(query="?starttls=require"))
    with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS extension not supported"):
        await mailer.send(render(a_mail(), mail_from=MAIL_FROM))
    assert server.inbox.arrivals.empty()


async def test_without_starttls_require_a_server_without_starttls_gets_the_mail_in_plain_text(
    start_server: StartServer,
) -> None:
    server = start_server()
    await SmtpMailer(server.url()).send(render(a_mail(), mail_from=MAIL_FROM))
    assert not (await server.inbox.next()).tls


async def test_smtps_speaks_tls_from_the_first_byte(
    start_server: StartServer, server_tls: ssl.SSLContext, cafile: str
) -> None:
    server = start_server(ssl_context=server_tls)
    await SmtpMailer(server.url("smtps"), cafile=cafile).send(render(a_mail(), mail_from=MAIL_FROM))
    arrival = await server.inbox.next()
    assert arrival.tls
    assert arrival.message["Subject"] == "Confirm your email address"


# --- SMTP URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("smtp://mail.example", "smtp://mail.example:25"),
        ("smtp://mailer:s3cret@mail.example:2525", "smtp://mail.example:2525"),
        ("smtps://mailer:s3cret@mail.example", "smtps://mail.example:465"),
        ("smtp://[::1]:2525?starttls=require", "smtp://[::1]:2525"),
    ],
)
def test_an_smtp_mailer_describes_its_server_with_default_ports_and_never_shows_the_password(
    url: str, described: str
) -> None:
    mailer = SmtpMailer(url)
    assert mailer.describe() == described
    assert "s3cret" not in repr(mailer.server)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://mailer:s3cret@mail.example", "must start with smtp:// or smtps://"),
        ("smtp://mailer:s3cret@", "has no host"),
        ("smtp://mailer:s3/cret@mail.example", "percent-encoded"),
        ("smtp://mailer:s3?cret@mail.example", "percent-encoded"),
        ("smtp://mailer:s3cret@mail.example:99999", "not of the form"),
        ("smtp://mailer:s3cret@mail.example:0", "not of the form"),
        ("smtp://mailer:s3cret@mail.example?tls=s3cret", "unknown option"),
        ("smtp://mailer:123?s3cret@mail.example", "unknown option"),
        ("smtp://mailer:s3cret@mail.example?starttls=s3cret", "takes one value: starttls=require"),
        ("smtps://mailer:s3cret@mail.example?starttls=require", "smtps is TLS from the start"),
    ],
)
def test_a_malformed_smtp_url_is_refused_with_a_message_that_never_shows_the_password(
    url: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error) as refused:
        SmtpMailer(url)
    assert "s3" not in str(refused.value)
    assert "cret" not in str(refused.value)


def test_mailer_for_picks_smtp_when_given_a_url_and_the_mailbox_folder_otherwise(tmp_path: Path) -> None:
    assert mailer_for(None, tmp_path).describe() == f"mailbox folder {tmp_path}"
    assert mailer_for("smtp://mail.example", tmp_path).describe() == "smtp://mail.example:25"


# --- the mailbox folder ------------------------------------------------------------------------------------


async def test_the_mailbox_saves_a_mail_as_an_eml_file_that_reads_back_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "mail"  # created when missing
    await MailboxMailer(folder).send(render(a_mail(), mail_from=MAIL_FROM))
    [saved] = files(folder)
    assert saved.name == "0f3c9a@taskql.example.eml"
    message = parse(saved.read_bytes())
    assert message["Subject"] == "Confirm your email address"
    assert message["To"] == "eve@example.com"
    assert LINK in part(message, "plain").split()
    assert LINK in Hrefs(part(message, "html")).hrefs


async def test_the_same_mail_saved_twice_leaves_one_file_and_two_mails_leave_two(tmp_path: Path) -> None:
    mailbox = MailboxMailer(tmp_path)
    for message_id in ["0f3c9a", "0f3c9a", "77ab01"]:
        await mailbox.send(render(a_mail(message_id=message_id), mail_from=MAIL_FROM))
    assert [path.name for path in files(tmp_path)] == [
        "0f3c9a@taskql.example.eml",
        "77ab01@taskql.example.eml",
    ]


async def test_the_mailbox_logs_where_it_saved_each_mail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.mail")
    await MailboxMailer(tmp_path).send(render(a_mail(), mail_from=MAIL_FROM))
    [saved] = files(tmp_path)
    assert [r.getMessage() for r in caplog.records if r.name == "taskql.mail"] == [
        f"mail to eve@example.com saved in {saved}"
    ]


async def test_the_mailbox_refuses_a_message_without_message_id(tmp_path: Path) -> None:
    message = EmailMessage()
    message["To"] = "eve@example.com"
    with pytest.raises(ValueError, match="no Message-ID"):
        await MailboxMailer(tmp_path).send(message)
    assert files(tmp_path) == []


def test_an_invitation_to_an_address_without_an_account_asks_to_register_and_greets_no_one() -> None:
    mail = a_mail("project_invitation", name="", has_account=False)
    message = render(mail, mail_from=MAIL_FROM)
    for kind in ("plain", "html"):
        text = part(message, kind)
        assert "Hi," in text
        assert "with this address, verify it" in text
        assert "waiting among your invitations" not in text
    assert message["Subject"] == "Olivia <O> invited you to Launch <v1>"
