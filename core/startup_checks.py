"""Configuration that is unsafe to serve with: refused in production, warned about in development.

As fastapi's full-stack template does for its secrets: a deployment that still carries the example's
password (``postgres:postgres``, ``changeme``, ...) or lets every website read its answers (``*``) fails
at startup, saying what to change, instead of running exposed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("taskql.settings")

# Passwords from examples, images' defaults and tutorials: whoever reads them could log in.
PLACEHOLDER_PASSWORDS = frozenset(
    {
        "postgres",
        "password",
        "passw0rd",
        "pass",
        "changeme",
        "changethis",
        "change_me",
        "change-me",
        "secret",
        "admin",
        "root",
        "redis",
        "test",
        "example",
        "default",
        "letmein",
        "123456",
        "12345678",
        "qwerty",
    }
)
# An origin is scheme://host[:port], nothing after it: "https://app.example.com/" never matches a browser's
# Origin header, and the mistake would otherwise only show as CORS failures in the browser.
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\*$")
ANY_ORIGIN = ("*", "null")


def weak_password(url: str | None) -> tuple[str, bool] | None:
    """What is weak about the password in ``url``, and whether it is a placeholder (None: nothing is).

    No password at all is fine: a Unix socket with peer authentication, or a server on a private network
    (the embedded servers have none)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return None  # not a URL we can read: the driver will say so
    if not password:
        return None
    password, user = unquote(password), unquote(user or "")
    if password.lower() in PLACEHOLDER_PASSWORDS:
        return f"its password is {password!r}, a well-known placeholder", True
    if password == user:
        return "its password is the user name", False
    return None


def check_passwords(urls: dict[str, str | None], *, production: bool) -> list[str]:
    """What must change in ``urls`` (setting name → URL) before serving. A placeholder is refused in
    production; the rest (a placeholder in development, a password equal to the user name, as
    docker-compose examples have for servers no one else reaches) is logged as a warning."""
    problems = []
    for name, url in urls.items():
        weak = weak_password(url)
        if weak is None:
            continue
        why, placeholder = weak
        advice = f"{name}: {why}. Give the server a random password (e.g. `openssl rand -base64 24`)."
        if production and placeholder:
            problems.append(advice)
        else:
            logger.warning("%s", advice)
    return problems


def check_origins(origins: Iterable[str], *, production: bool) -> list[str]:
    problems = [
        f"CORS_ORIGINS: {origin!r} is not an origin: write scheme://host[:port], without a path or a "
        "trailing slash (e.g. https://app.example.com)."
        for origin in origins
        if origin != "null" and not ORIGIN.match(origin)
    ]
    if production:
        problems += [
            f"CORS_ORIGINS: {origin!r} lets any website read the API's answers with its visitors' "
            "credentials: list the origins of your own front ends."
            for origin in origins
            if origin in ANY_ORIGIN
        ]
    return problems
