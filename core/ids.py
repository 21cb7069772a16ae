"""Opaque global IDs (``base64("Task:<uuid>")``), the form Relay's ``node(id:)`` works with."""

from __future__ import annotations

import base64
import binascii
import uuid

from core.errors import BadUserInput

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def encode_id(type_name: str, key: uuid.UUID) -> str:
    # base64url without padding; binascii directly (twice as fast as base64's wrappers, and every row of a
    # list encodes one or two)
    return (
        binascii.b2a_base64(f"{type_name}:{key}".encode(), newline=False)
        .translate(_URLSAFE)
        .rstrip(b"=")
        .decode()
    )


def decode_id(global_id: str, *, field: str = "id") -> tuple[str, uuid.UUID]:
    """Split a global ID into its type name and key; anything else is a ``BAD_USER_INPUT``."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw_key = base64.urlsafe_b64decode(padded.encode("ascii")).decode().partition(":")
        key = uuid.UUID(raw_key)
    except (ValueError, UnicodeError, binascii.Error):
        raise BadUserInput(f"{global_id!r} is not a valid ID.", field=field) from None
    if not type_name.isidentifier():
        raise BadUserInput(f"{global_id!r} is not a valid ID.", field=field)
    return type_name, key


def decode_typed_id(global_id: str, type_name: str, *, field: str = "id") -> uuid.UUID | None:
    """The key of a global ID of ``type_name``; ``None`` when it is a well-formed ID of another type."""
    actual_type, key = decode_id(global_id, field=field)
    return key if actual_type == type_name else None
