"""Request ids: the one a client (or the proxy in front) sent in ``X-Request-Id`` when it is well formed,
else a new one. Every response carries it in ``X-Request-Id``, an unexpected error also in
``extensions.requestId``, and the log line of that error names it: one id finds both ends.
"""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import Scope

from taskql.state import StateKey

HEADER = b"x-request-id"
REQUEST_ID = StateKey[str]("taskql.request_id")
MAX_LENGTH = 128
# Letters, digits and the punctuation of UUIDs, base64 and trace ids: nothing that could forge a log line
# or a header (no spaces, quotes, control characters).
WELL_FORMED = re.compile(rf"[A-Za-z0-9._:+/=-]{{1,{MAX_LENGTH}}}")
# Unique (a random prefix per process, then a counter) and cheaper than uuid4.
_PREFIX = os.urandom(8).hex()
_NUMBERS = itertools.count()


def new() -> str:
    return f"{_PREFIX}{next(_NUMBERS):08x}"


def accepted(sent: str | None) -> str:
    """``sent`` when it is a well-formed id, else a new one."""
    if sent is not None and WELL_FORMED.fullmatch(sent):
        return sent
    return new()


def of(scope: Scope) -> str | None:
    """The id the security middleware gave this request (None outside the app, as in a unit test)."""
    return REQUEST_ID.get(scope)
