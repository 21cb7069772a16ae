"""Global IDs and cursors written as taskql writes them (``core.ids``, ``resolvers.pagination``), and read
back; written here, not imported, so that the check compares two implementations."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

_URLSAFE = bytes.maketrans(b"+/", b"-_")
# The scope of a cursor of tasks in their default order (created_at, newest first; no search).
TASK_SCOPE = "CREATED_AT:desc:"


def _b64(text: str) -> str:
    return binascii.b2a_base64(text.encode(), newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_id(type_name: str, key: uuid.UUID) -> str:
    return _b64(f"{type_name}:{key}")


def decode_id(global_id: str) -> tuple[str, uuid.UUID] | None:
    """The type name and key of a global ID; None when it is not one."""
    try:
        type_name, _, key = _unb64(global_id).decode().partition(":")
        return type_name, uuid.UUID(key)
    except (ValueError, UnicodeError, binascii.Error):
        return None


def task_cursor(created_at: datetime, task_id: uuid.UUID) -> str:
    # json.dumps of [scope, isoformat, id]: all three are ASCII without quotes or backslashes.
    return _b64(f'["{TASK_SCOPE}","{created_at.isoformat()}","{task_id}"]')


def decode_task_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """The created_at and id a cursor of the default order points after; None when it is not one."""
    try:
        scope, value, row_id = json.loads(_unb64(cursor))
        if scope != TASK_SCOPE:
            return None
        created_at = datetime.fromisoformat(value)
        return (created_at, uuid.UUID(row_id)) if created_at.tzinfo is not None else None
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        return None
