"""One webhook delivery, over real sockets on loopback: signed, pinned to the address checked, bounded in
time and size; and the URLs and addresses a webhook may never reach."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import h11
import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from auth.webhook_secrets import new_salt, secret_of, signing_secrets
from taskql.webhooks.delivery import Attempt, deliver
from taskql.webhooks.ssrf import Resolver, UnsafeUrl, check_url, forbidden, resolve_public
from tests.processes import free_port
from tests.webhook_receiver import read_request

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
PAYLOAD = b'{"type":"task.created","data":{"id":"42","title":"caf\xc3\xa9"}}'
PUBLIC = "93.184.215.14"
TLS_NAME = "hooks.example.test"  # .test is reserved: only the tests' resolvers know it

Behaviour = Literal["ok", "fail", "silent", "endless", "trickle", "redirect"]


@dataclass
class Received:
    target: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 (asyncio streams, parsed by h11) that checks each request's
    Standard Webhooks signature, records it, and answers as its `behaviour` says."""

    behaviour: Behaviour
    port: int = 0
    received: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI, one per handshake
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, host: str = "127.0.0.1", path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self.answer(h11.Connection(h11.SERVER), reader, writer)
        except ConnectionError:
            pass  # the client went away: the endless answer and the timeout end that way
        finally:
            writer.close()
            self.handlers.discard(task)

    async def answer(
        self, http: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await self.read_request(http, reader)
        if request is None:
            return
        if self.behaviour == "silent":
            await reader.read()  # until the client gives up and closes
            return
        status, headers, body = {
            "ok": (200, [], b"thanks"),
            "fail": (500, [], b"oops"),
            "redirect": (302, [("location", "http://10.0.0.1/")], b""),
            "endless": (200, [("transfer-encoding", "chunked")], b""),
            "trickle": (200, [("transfer-encoding", "chunked")], b""),
        }[self.behaviour]
        if self.behaviour not in ("endless", "trickle"):
            headers.append(("content-length", str(len(body))))
        writer.write(http.send(h11.Response(status_code=status, headers=headers)) or b"")
        if self.behaviour == "endless":
            await self.send_until_closed(http, writer, b"x" * 65536, pause=0)
        if self.behaviour == "trickle":
            await self.send_until_closed(http, writer, b"x", pause=0.05)
        writer.write(http.send(h11.Data(data=body)) or b"")
        writer.write(http.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def read_request(self, http: h11.Connection, reader: asyncio.StreamReader) -> Received | None:
        read = await read_request(http, reader)
        if read is None:
            return None
        target, headers, body = read
        try:
            Webhook(SECRET).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        received = Received(target, headers, body, verified)
        self.received.append(received)
        return received

    async def send_until_closed(
        self, http: h11.Connection, writer: asyncio.StreamWriter, chunk: bytes, *, pause: float
    ) -> None:
        """Sends `chunk` after `chunk` until the client closes (a ConnectionError), for 30 s at most."""
        async with asyncio.timeout(30):
            while True:
                writer.write(http.send(h11.Data(data=chunk)) or b"")
                await writer.drain()
                await asyncio.sleep(pause)


ReceiverFactory = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver() -> AsyncIterator[ReceiverFactory]:
    servers: list[tuple[asyncio.Server, Receiver]] = []

    async def start(behaviour: Behaviour = "ok", tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = Receiver(behaviour)
        if tls is not None:
            tls.sni_callback = lambda _socket, name, _context: receiver.server_names.append(name)
        server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0, ssl=tls)
        receiver.port = server.sockets[0].getsockname()[1]
        servers.append((server, receiver))
        return receiver  # listening already: start_server returns once the socket is bound

    yield start
    for server, receiver in servers:
        server.close()
        for task in list(receiver.handlers):
            task.cancel()
        await asyncio.gather(*receiver.handlers, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for TLS_NAME (its own authority), made by the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={TLS_NAME}"),
            *("-addext", f"subjectAltName=DNS:{TLS_NAME}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def resolving_to(*addresses: str, calls: list[str] | None = None) -> Resolver:
    """A resolver with fixed answers, recording the names asked."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return list(addresses)

    return resolve


async def send(url: str, **options: object) -> Attempt:
    arguments: dict[str, object] = {
        "secret": SECRET,
        "message_id": "msg_2b8f9c",
        "timestamp": datetime.now(UTC),
        "production": False,
        "allow_private": True,
    }
    return await deliver(url, PAYLOAD, **(arguments | options))  # type: ignore[arg-type]


async def test_a_delivery_arrives_signed_with_the_given_id_and_a_2xx_makes_it_ok(
    start_receiver: ReceiverFactory,
) -> None:
    receiver = await start_receiver("ok")
    sent_at = datetime.now(UTC)

    attempt = await send(receiver.url(), message_id="msg_1", timestamp=sent_at)

    assert attempt == Attempt(ok=True, status=200, duration_ms=attempt.duration_ms, body="thanks", error=None)
    [received] = receiver.received
    assert received.verified
    assert received.body == PAYLOAD
    assert received.target == "/hook"
    assert received.headers["webhook-id"] == "msg_1"
    assert received.headers["webhook-timestamp"] == str(int(sent_at.timestamp()))
    assert received.headers["webhook-signature"].startswith("v1,")
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "taskql-webhooks/1"


async def test_a_delivery_signed_with_another_secret_does_not_verify(start_receiver: ReceiverFactory) -> None:
    receiver = await start_receiver("ok")

    await send(receiver.url(), secret=new_secret())

    assert [received.verified for received in receiver.received] == [False]


async def test_the_connection_goes_to_the_address_checked_while_the_host_header_keeps_the_name(
    start_receiver: ReceiverFactory,
) -> None:
    receiver = await start_receiver("ok")
    calls: list[str] = []

    # The name exists for the resolver given only: the HTTP client cannot have looked it up itself.
    attempt = await send(receiver.url("hooks.example.test"), resolver=resolving_to("127.0.0.1", calls=calls))

    assert attempt.ok, attempt
    assert calls == ["hooks.example.test"]
    assert receiver.received[0].headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_when_an_address_refuses_the_next_one_checked_is_tried(start_receiver: ReceiverFactory) -> None:
    receiver = await start_receiver("ok")

    # 127.0.0.2 is loopback too, where nothing listens on the receiver's port.
    attempt = await send(receiver.url("hooks.example.test"), resolver=resolving_to("127.0.0.2", "127.0.0.1"))

    assert attempt.ok, attempt
    assert len(receiver.received) == 1


async def test_an_error_answer_is_a_failed_attempt_with_its_status_and_body(
    start_receiver: ReceiverFactory,
) -> None:
    receiver = await start_receiver("fail")

    attempt = await send(receiver.url())

    assert (attempt.ok, attempt.status, attempt.body, attempt.error) == (
        False,
        500,
        "oops",
        "HTTP status 500",
    )


async def test_a_receiver_that_never_answers_is_a_timeout_within_the_total_timeout(
    start_receiver: ReceiverFactory,
) -> None:
    receiver = await start_receiver("silent")

    attempt = await send(receiver.url(), total_timeout=0.5)

    assert (attempt.ok, attempt.status, attempt.error) == (False, None, "timeout")
    assert 400 <= attempt.duration_ms < 2000
    assert len(receiver.received) == 1


async def test_a_closed_port_is_connection_refused() -> None:
    attempt = await send(f"http://127.0.0.1:{free_port()}/hook")

    assert (attempt.ok, attempt.status, attempt.error) == (False, None, "connection refused")


async def test_an_endless_answer_is_read_to_1_kb_and_no_further(start_receiver: ReceiverFactory) -> None:
    receiver = await start_receiver("endless")

    attempt = await send(receiver.url(), total_timeout=2.0)

    assert (attempt.ok, attempt.status, attempt.error) == (True, 200, None)
    assert attempt.body == "x" * 1024
    assert attempt.duration_ms < 1500  # reading on would have run into the timeout


async def test_an_answer_that_trickles_in_is_cut_by_the_total_timeout(
    start_receiver: ReceiverFactory,
) -> None:
    # A byte every 50 ms: no single read waits long enough for httpx's own timeouts.
    receiver = await start_receiver("trickle")

    attempt = await send(receiver.url(), total_timeout=0.6)

    assert (attempt.ok, attempt.status, attempt.error) == (False, 200, "timeout")
    assert 0 < len(attempt.body) < 1024
    assert 500 <= attempt.duration_ms < 2000


async def test_a_redirect_is_not_followed(start_receiver: ReceiverFactory) -> None:
    receiver = await start_receiver("redirect")

    attempt = await send(receiver.url())

    assert (attempt.ok, attempt.status, attempt.error) == (False, 302, "redirect not followed (302)")
    assert attempt.duration_ms < 2000  # 10.0.0.1 was not tried: it would not even answer
    assert len(receiver.received) == 1


async def test_no_proxy_is_taken_from_the_environment(
    start_receiver: ReceiverFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await start_receiver("ok")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    attempt = await send(receiver.url())

    assert attempt.ok, attempt


async def test_https_connects_to_the_address_checked_and_verifies_the_certificate_for_the_name(
    start_receiver: ReceiverFactory, certificate: tuple[Path, Path]
) -> None:
    receiver = await start_receiver("ok", tls=server_tls(certificate))
    trusted = ssl.create_default_context(cafile=certificate[0])

    attempt = await send(
        receiver.url(TLS_NAME, scheme="https"),
        production=True,
        resolver=resolving_to("127.0.0.1"),
        ssl_context=trusted,
    )

    assert attempt.ok, attempt
    assert receiver.server_names == [TLS_NAME]
    assert receiver.received[0].headers["host"] == f"{TLS_NAME}:{receiver.port}"
    assert receiver.received[0].verified


async def test_https_refuses_a_certificate_for_another_name(
    start_receiver: ReceiverFactory, certificate: tuple[Path, Path]
) -> None:
    receiver = await start_receiver("ok", tls=server_tls(certificate))
    trusted = ssl.create_default_context(cafile=certificate[0])

    attempt = await send(
        receiver.url("other.example.test", scheme="https"),
        resolver=resolving_to("127.0.0.1"),
        ssl_context=trusted,
    )

    assert (attempt.ok, attempt.error) == (False, "TLS certificate not trusted or not for this host")
    assert receiver.received == []


async def test_https_refuses_a_self_signed_certificate_by_default(
    start_receiver: ReceiverFactory, certificate: tuple[Path, Path]
) -> None:
    receiver = await start_receiver("ok", tls=server_tls(certificate))

    attempt = await send(receiver.url(TLS_NAME, scheme="https"), resolver=resolving_to("127.0.0.1"))

    assert (attempt.ok, attempt.error) == (False, "TLS certificate not trusted or not for this host")
    assert receiver.received == []


HOSTILE_URLS = [
    pytest.param("https://127.0.0.1/", "PRIVATE_ADDRESS", id="loopback"),
    pytest.param("https://[::1]/", "PRIVATE_ADDRESS", id="ipv6-loopback"),
    pytest.param("https://169.254.169.254/latest/meta-data", "PRIVATE_ADDRESS", id="cloud-metadata"),
    pytest.param("https://10.0.0.1/", "PRIVATE_ADDRESS", id="private"),
    pytest.param("https://192.168.1.1:8443/", "PRIVATE_ADDRESS", id="private-with-port"),
    pytest.param("https://[::ffff:127.0.0.1]/", "PRIVATE_ADDRESS", id="ipv4-mapped"),
    pytest.param("https://[::7f00:1]/", "PRIVATE_ADDRESS", id="ipv4-compatible"),
    pytest.param("https://[64:ff9b::7f00:1]/", "PRIVATE_ADDRESS", id="nat64"),
    pytest.param("https://[2002:7f00:1::]/", "PRIVATE_ADDRESS", id="6to4"),
    pytest.param("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "PRIVATE_ADDRESS", id="teredo"),
    pytest.param("https://0.0.0.0/", "PRIVATE_ADDRESS", id="unspecified"),
    pytest.param("https://[::]/", "PRIVATE_ADDRESS", id="ipv6-unspecified"),
    pytest.param("https://2130706433/", "PRIVATE_ADDRESS", id="decimal"),
    pytest.param("https://0x7f000001/", "PRIVATE_ADDRESS", id="hex"),
    pytest.param("https://0177.0.0.1/", "PRIVATE_ADDRESS", id="octal"),
    pytest.param("https://0x7f.1/", "PRIVATE_ADDRESS", id="short-hex"),
    pytest.param("https://127.1/", "PRIVATE_ADDRESS", id="short"),
    pytest.param("https://localhost/", "PRIVATE_ADDRESS", id="name-of-loopback"),
    pytest.param("https://[fd00:ec2::254]/", "PRIVATE_ADDRESS", id="aws-ipv6-metadata"),
    pytest.param("https://100.64.0.1/", "PRIVATE_ADDRESS", id="cgnat"),
    pytest.param("http://example.com/hook", "HTTPS_REQUIRED", id="http-in-production"),
    pytest.param("https://example.com@127.0.0.1/", "USERINFO", id="userinfo"),
    pytest.param("https://user:password@example.com/", "USERINFO", id="password"),
    pytest.param("ftp://example.com/", "SCHEME", id="ftp"),
    pytest.param("file:///etc/passwd", "SCHEME", id="file"),
    pytest.param("gopher://127.0.0.1:6379/_FLUSHALL", "SCHEME", id="gopher"),
    pytest.param("https://example.com:0/", "PORT", id="port-0"),
    pytest.param("https://example.com:65536/", "PORT", id="port-too-high"),
    pytest.param("https://[fe80::1%25eth0]/", "HOST", id="zone-id"),
    pytest.param("https://1.2.3.4.5/", "HOST", id="five-numbers"),
    pytest.param("https://exa mple.com/", "HOST", id="space-in-host"),
    pytest.param("https:///hook", "HOST", id="no-host"),
    pytest.param("https://example.com/" + "a" * 2048, "TOO_LONG", id="too-long"),
]


async def reason_refused(url: str) -> str | None:
    """The reason `check_url` or `resolve_public` (the real resolver) gives for `url`, if any."""
    try:
        checked = httpx.URL(check_url(url, production=True, allow_private=False))
        await resolve_public(checked.raw_host.decode(), checked.port or 443, allow_private=False)
    except UnsafeUrl as refusal:
        return refusal.reason
    return None


@pytest.mark.parametrize(("url", "reason"), HOSTILE_URLS)
async def test_a_hostile_url_is_refused_in_production_with_its_reason(url: str, reason: str) -> None:
    assert await reason_refused(url) == reason

    attempt = await send(url, production=True, allow_private=False, total_timeout=1.0)

    assert (attempt.ok, attempt.status) == (False, None)
    assert attempt.error is not None
    assert attempt.error.startswith("refused: url: "), attempt.error


async def test_a_name_with_one_private_address_among_public_ones_is_refused_without_naming_it() -> None:
    with pytest.raises(UnsafeUrl) as refused:
        await resolve_public(
            "hooks.example.test", 443, allow_private=False, resolver=resolving_to(PUBLIC, "10.1.2.3")
        )

    assert refused.value.reason == "PRIVATE_ADDRESS"
    assert str(refused.value) == (
        "url: hooks.example.test resolves to a private address: webhooks go to public addresses only"
    )


async def test_a_name_that_rebinds_to_a_private_address_after_it_was_checked_is_refused_at_delivery(
    start_receiver: ReceiverFactory,
) -> None:
    receiver = await start_receiver("ok")
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    registered = await resolve_public(
        "hooks.example.test", receiver.port, allow_private=False, resolver=rebinding
    )
    attempt = await send(
        receiver.url("hooks.example.test", scheme="https"),
        production=True,
        allow_private=False,
        resolver=rebinding,
    )

    assert registered == [PUBLIC]
    assert calls == ["hooks.example.test", "hooks.example.test"]
    assert attempt.error == (
        "refused: url: hooks.example.test resolves to a private address: webhooks go to public addresses only"
    )
    assert receiver.received == []


async def test_a_name_without_addresses_is_unresolvable() -> None:
    attempt = await send("https://hooks.example.test/", resolver=resolving_to())

    assert attempt.error == "refused: url: hooks.example.test does not resolve to an IP address"
    with pytest.raises(UnsafeUrl) as refused:
        await resolve_public("hooks.example.test", 443, allow_private=True, resolver=resolving_to())
    assert refused.value.reason == "UNRESOLVABLE"


@pytest.mark.parametrize(
    "address",
    [
        "172.16.0.1",
        "192.168.0.1",
        "127.255.255.254",
        "169.254.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.192",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "100.100.100.200",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::ffff:0:a00:1",
        "64:ff9b:1::a00:1",
        "::ffff:224.0.0.1",  # multicast is "global" to the standard library: only our list refuses it
        "64:ff9b::e000:1",
        "2002:e000:1::1",
        "2001:0:5db8:d70e:0:63bf:a247:28f1",  # Teredo, even with a public server and client
    ],
)
def test_forbidden_covers_every_non_public_range(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", [PUBLIC, "1.1.1.1", "::ffff:93.184.215.14", "64:ff9b::5db8:d70e", "2606:4700::1111"]
)
def test_a_public_address_is_allowed(address: str) -> None:
    assert not forbidden(ipaddress.ip_address(address))


def test_numeric_hosts_are_read_the_way_browsers_read_them() -> None:
    assert (
        check_url("https://1572394766/hook", production=True, allow_private=False) == f"https://{PUBLIC}/hook"
    )
    assert (
        check_url("https://0x5d.0xb8.0xd7.0x0e/", production=True, allow_private=False)
        == f"https://{PUBLIC}/"
    )
    assert check_url("https://0135.184.215.14/", production=True, allow_private=False) == f"https://{PUBLIC}/"


def test_a_url_is_normalized_and_loses_its_fragment() -> None:
    checked = check_url("HTTPS://Hooks.Example.COM:443/a b?x=1#top", production=True, allow_private=False)

    assert checked == "https://hooks.example.com/a%20b?x=1"


async def test_allow_private_lets_loopback_through_in_development_and_tests() -> None:
    assert check_url("http://127.0.0.1:8000/hook", production=True, allow_private=True) == (
        "http://127.0.0.1:8000/hook"
    )
    addresses = await resolve_public("localhost", 8000, allow_private=True)
    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)


def test_cloud_metadata_is_refused_even_when_private_addresses_are_allowed() -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_url("http://169.254.169.254/latest/meta-data", production=False, allow_private=True)

    assert refused.value.reason == "PRIVATE_ADDRESS"
    assert str(refused.value) == "url: 169.254.169.254 is a cloud metadata address"


def test_a_numeric_host_is_named_with_the_address_it_stands_for() -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_url("https://2130706433/", production=True, allow_private=False)

    assert str(refused.value) == (
        "url: 2130706433 (127.0.0.1) is a private address: webhooks go to public addresses only"
    )


def new_secret() -> str:
    return secret_of("a server secret of the tests, long enough", new_salt())


def test_a_new_secret_is_a_standard_webhooks_secret_of_32_bytes_unique_to_its_salt_and_server() -> None:
    salt = new_salt()
    secret = secret_of("server one", salt)

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret == secret_of("server one", salt)  # derived, never stored
    assert secret != secret_of("server one", new_salt())
    assert secret != secret_of("server two", salt)
    Webhook(secret)  # accepted by the library


def test_after_a_rotation_the_previous_secret_signs_too_for_a_day() -> None:
    rotated = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    during = signing_secrets("s", "new", "old", rotated, rotated + timedelta(hours=23))
    after = signing_secrets("s", "new", "old", rotated, rotated + timedelta(hours=24, seconds=1))

    assert during == [secret_of("s", "new"), secret_of("s", "old")]
    assert after == [secret_of("s", "new")]
