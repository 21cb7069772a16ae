"""Webhook signing secrets, in the Standard Webhooks format (``whsec_`` and 32 bytes in base64).

Not stored: each is derived (HMAC-SHA256) from the server's secret (``JWT_SECRET``) and the webhook's random
salt, which is. A copy of the database alone signs nothing; a leaked server secret asks for a new
``JWT_SECRET``, which gives every webhook a new secret as well (their owners rotate or read them anew).
After a rotation the previous secret signs as well, for ``ROTATION_GRACE``: the receiver switches over
without missing a delivery (a Standard Webhooks signature header may carry several signatures).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

PREFIX = "whsec_"
ROTATION_GRACE = timedelta(hours=24)
_DOMAIN = b"taskql webhook signing secret v1:"


def new_salt() -> str:
    return secrets.token_hex(16)


def secret_of(server_secret: str, salt: str) -> str:
    digest = hmac.new(server_secret.encode(), _DOMAIN + salt.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(digest).decode("ascii")


def signing_secrets(
    server_secret: str, salt: str, previous_salt: str | None, rotated_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one during the grace."""
    current = [secret_of(server_secret, salt)]
    if previous_salt is not None and rotated_at is not None and now < rotated_at + ROTATION_GRACE:
        current.append(secret_of(server_secret, previous_salt))
    return current
