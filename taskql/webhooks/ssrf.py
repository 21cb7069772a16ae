"""Where a webhook may go: the URL's syntax (`check_url`), then the addresses its host resolves to
(`resolve_public`), judged by `forbidden`. Together they keep webhooks from reaching the server's own
network (server-side request forgery)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import string
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
Reason = Literal[
    "SCHEME", "HTTPS_REQUIRED", "USERINFO", "HOST", "PORT", "PRIVATE_ADDRESS", "UNRESOLVABLE", "TOO_LONG"
]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name as DNS knows it, once in ASCII (IDNA): letters, digits, "-" and "_" (found in real names).
DNS_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
DIGITS = {8: frozenset(string.octdigits), 10: frozenset(string.digits), 16: frozenset(string.hexdigits)}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
FORBIDDEN_IPV4 = (
    _V4("0.0.0.0/8"),  # "this network"; connecting to 0.0.0.0 reaches the host itself
    _V4("10.0.0.0/8"),
    _V4("100.64.0.0/10"),  # carrier-grade NAT (and Alibaba Cloud's metadata at 100.100.100.200)
    _V4("127.0.0.0/8"),
    _V4("169.254.0.0/16"),  # link-local, with the cloud metadata at 169.254.169.254
    _V4("172.16.0.0/12"),
    _V4("192.0.0.0/24"),  # IETF protocol assignments (Oracle Cloud's metadata at 192.0.0.192)
    _V4("192.0.2.0/24"),  # documentation
    _V4("192.88.99.0/24"),  # the retired 6to4 relay anycast
    _V4("192.168.0.0/16"),
    _V4("198.18.0.0/15"),  # benchmarking
    _V4("198.51.100.0/24"),  # documentation
    _V4("203.0.113.0/24"),  # documentation
    _V4("224.0.0.0/4"),  # multicast
    _V4("240.0.0.0/4"),  # reserved, with the broadcast address 255.255.255.255
)
FORBIDDEN_IPV6 = (
    _V6("64:ff9b:1::/48"),  # local-use NAT64: where the IPv4 address sits depends on the network
    _V6("100::/64"),  # discard
    _V6("2001::/23"),  # IETF protocol assignments, with Teredo 2001::/32 and benchmarking 2001:2::/48
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation
    _V6("fc00::/7"),  # unique-local, with AWS's metadata at fd00:ec2::254
    _V6("fe80::/10"),  # link-local
    _V6("fec0::/10"),  # the retired site-local
    _V6("ff00::/8"),  # multicast
)
NAT64 = _V6("64:ff9b::/96")
IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")
# Refused even when private addresses are allowed (development): nothing legitimate listens there.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(text)
    for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


class UnsafeUrl(ValueError):
    """A webhook URL taskql refuses. `str(error)` is safe to show the client and says why; `reason` is a
    stable code for it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def check_url(url: str, *, production: bool, allow_private: bool) -> str:
    """The URL normalized (lower-case host, numeric IPv4 forms as a dotted quad, no fragment), or
    `UnsafeUrl`. Syntax only: a host name's addresses are `resolve_public`'s to judge."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl("TOO_LONG", f"url: {len(url)} characters, at most {MAX_URL_LENGTH} are allowed")
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # an unbalanced "[" or "]"
        raise UnsafeUrl("HOST", "url: the host is not a valid host name or IP address") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        given = f"{_shown(scheme)}:// is" if scheme else "a URL without a scheme is"
        raise UnsafeUrl("SCHEME", f"url: {given} not allowed: use https://")
    if scheme == "http" and production and not allow_private:
        raise UnsafeUrl("HTTPS_REQUIRED", "url: http:// is not allowed in production: use https://")
    if "@" in parts.netloc:  # `https://example.com@127.0.0.1/` goes to 127.0.0.1
        raise UnsafeUrl("USERINFO", "url: a user name or password (user:password@) is not allowed")
    host, bracketed, port_text = _split_authority(parts.netloc)
    if not host:
        raise UnsafeUrl("HOST", "url: a host is required, as in https://example.com/hook")
    port = _port(port_text, scheme)
    address = _literal_address(host, bracketed)
    if address is not None:
        _judge(host, address, allow_private=allow_private, resolved=False)
        host = f"[{address}]" if address.version == 6 else str(address)
    try:
        checked = httpx.URL(urlunsplit((scheme, f"{host}:{port}", parts.path or "/", parts.query, "")))
    except httpx.InvalidURL:
        raise UnsafeUrl("HOST", f"url: {_shown(url)} is not a valid URL") from None
    if address is None:
        _check_name(checked.raw_host.decode("ascii"), shown=host)
    return str(checked)


async def resolve_public(
    host: str, port: int, *, allow_private: bool, resolver: Resolver | None = None
) -> list[str]:
    """The addresses of `host`, each of them allowed, or `UnsafeUrl`. Connect to one of these: resolving
    the name again could answer differently (DNS rebinding)."""
    literal = _ip_address(host.removeprefix("[").removesuffix("]"))
    if literal is not None:
        _judge(host, literal, allow_private=allow_private, resolved=False)
        return [str(literal)]
    try:
        answers = await (resolver or system_resolver)(host, port)
    except OSError:  # socket.gaierror: no such name, or no DNS
        answers = []
    parsed = [_ip_address(text) for text in dict.fromkeys(answers)]
    addresses = [address for address in parsed if address is not None]
    if not addresses or len(addresses) < len(parsed):
        raise UnsafeUrl("UNRESOLVABLE", f"url: {_shown(host)} does not resolve to an IP address")
    for address in addresses:  # every one: a client may connect to any of them
        _judge(host, address, allow_private=allow_private, resolved=True)
    return [str(address) for address in addresses]


def forbidden(address: Address) -> bool:
    """Whether `address` is out of bounds for a webhook: anything but a public unicast address. IPv6
    addresses that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4) are judged by the
    IPv4 address they lead to; Teredo addresses are refused whatever they carry."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else ()
    if embedded:
        return any(forbidden(inner) for inner in embedded)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    networks = FORBIDDEN_IPV4 if isinstance(address, ipaddress.IPv4Address) else FORBIDDEN_IPV6
    # is_global catches what IANA registers after this list was written.
    return not address.is_global or any(address in network for network in networks)


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the event loop's getaddrinfo gives for `host`."""
    answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in answers]


def _judge(host: str, address: Address, *, allow_private: bool, resolved: bool) -> None:
    # A name's addresses are not shown: they would map the private network for the client.
    if resolved:
        subject = f"{_shown(host)} resolves to"
    elif host.strip("[]") != str(address):  # a numeric form such as 2130706433
        subject = f"{_shown(host)} ({address}) is"
    else:
        subject = f"{address} is"
    if CLOUD_METADATA.intersection((address, *_embedded(address))):
        raise UnsafeUrl("PRIVATE_ADDRESS", f"url: {subject} a cloud metadata address")
    if not allow_private and forbidden(address):
        raise UnsafeUrl(
            "PRIVATE_ADDRESS", f"url: {subject} a private address: webhooks go to public addresses only"
        )


def _embedded(address: Address) -> tuple[ipaddress.IPv4Address, ...]:
    return _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else ()


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if int(address) >> 32 == 0:  # IPv4-compatible ::a.b.c.d, and so :: and ::1 as 0.0.0.0 and 0.0.0.1
        return (low32,)
    if address in IPV4_TRANSLATED or address in NAT64:
        return (low32,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    return ()  # Teredo (2001::/32) needs no look inside: it is refused whole, as part of 2001::/23


def _split_authority(netloc: str) -> tuple[str, bool, str]:
    """(host, whether it was in brackets, port text) of a netloc without userinfo."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise UnsafeUrl("HOST", f"url: {_shown(netloc)} is not a valid host")
        return host, True, rest[1:]
    host, _, port_text = netloc.partition(":")
    return host, False, port_text


def _port(text: str, scheme: str) -> int:
    if not text:
        return DEFAULT_PORTS[scheme]
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise UnsafeUrl("PORT", f"url: the port {_shown(text)} is not a number from 1 to 65535")
    return int(text)


def _literal_address(host: str, bracketed: bool) -> Address | None:
    """The IP address `host` stands for, as a browser reads it (so `2130706433`, `0x7f.1` and
    `0177.0.0.1` are all 127.0.0.1), or None for a name."""
    if bracketed:
        if "%" in host:  # a zone (fe80::1%25eth0): only link-local addresses have one
            raise UnsafeUrl("HOST", f"url: [{_shown(host)}] has a zone identifier: not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl("HOST", f"url: [{_shown(host)}] is not a valid IPv6 address") from None
    if not _ends_in_number(host):
        return None
    address = _parse_ipv4(host)
    if address is None:
        raise UnsafeUrl("HOST", f"url: {_shown(host)} is neither a valid IPv4 address nor a host name")
    return address


def _ends_in_number(host: str) -> bool:
    """The WHATWG URL standard's test: a host whose last label is a number is an IPv4 address."""
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    last = labels[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2].lower() == "0x" and set(last[2:]) <= DIGITS[16]


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG IPv4 parser: one to four parts, each decimal, octal (leading 0) or hex (0x); the last
    part fills the remaining bytes. Curl and the C library's inet_aton read them the same way."""
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    numbers = [_ipv4_number(part) for part in parts]
    if len(numbers) > 4 or None in numbers:
        return None
    *leading, last = [number for number in numbers if number is not None]
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        return None
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(leading)) + last)


def _ipv4_number(text: str) -> int | None:
    if not text:
        return None
    base = 10
    if text[:2].lower() == "0x":
        text, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        text, base = text[1:], 8
    if not set(text) <= DIGITS[base]:
        return None
    return int(text, base) if text else 0


def _check_name(name: str, *, shown: str) -> None:
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(DNS_LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrl("HOST", f"url: {_shown(shown)} is not a valid host name")


def _ip_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _shown(text: str) -> str:
    """A piece of the client's URL for a message: cut short, control characters as "?"."""
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= 100 else text[:97] + "..."
