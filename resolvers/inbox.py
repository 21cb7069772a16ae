"""The live inbox: ``notificationEvents``, each of the viewer's notifications once and in commit order.

PostgreSQL is the source of truth. Each notification has its number in its user's inbox (``seq``: 1, 2,
3, ... in the order their transactions commit, ``resolvers.notifications.notify``), and a subscriber
reads ``seq > last`` whenever it may have something new: the server wakes it when a notifying transaction
commits (PostgreSQL's NOTIFY), and every little while anyway. Its cursor is the number of the last
notification it received: a resume reads what came after it, then goes on live. Waking subscribers is the
app's (``InboxSource``: ``taskql.realtime.inbox``).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import BigInteger, Uuid, bindparam, func
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from core.errors import AppError, BadUserInput
from core.reader import Reader
from core.sql import compile_sql
from models import Notification, NotificationSettings
from resolvers.notifications import COLUMNS, NotificationRecord, record_of

if TYPE_CHECKING:
    from resolvers.context import Context

PAGE = 100  # notifications read per statement
_PREFIX = "inbox:"
_MAX_SEQ = 2**63 - 1  # bigint
_MAX_CURSOR_LENGTH = 40


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(after: str) -> int:
    """The number ``after`` names; BAD_USER_INPUT on ``after`` if it is not a cursor of the inbox."""
    number = ""
    if len(after) <= _MAX_CURSOR_LENGTH:
        try:
            raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode("ascii")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raw = ""
        number = raw.removeprefix(_PREFIX) if raw.startswith(_PREFIX) else ""
    if not (number.isascii() and number.isdigit()) or int(number) > _MAX_SEQ:
        raise BadUserInput(
            "after: not a cursor of notificationEvents: pass the `cursor` of a notification you received.",
            field="after",
        )
    return int(number)


class InboxSource(Protocol):
    def stream(self, user_id: uuid.UUID, after: int | None) -> AsyncIterator[NotificationRecord]:
        """The user's notifications numbered after ``after`` (None: from now on), then each new one, once and
        in order."""
        ...


_USER = bindparam("user_id", type_=Uuid())
_AFTER = compile_sql(
    select_columns(*COLUMNS)
    .where(col(Notification.user_id) == _USER, col(Notification.seq) > bindparam("seq", type_=BigInteger()))
    .order_by(col(Notification.seq))
    .limit(PAGE)
)
_LAST_NUMBERS = compile_sql(
    select_columns(col(NotificationSettings.user_id), col(NotificationSettings.last_notification_seq)).where(
        col(NotificationSettings.user_id) == func.any(bindparam("user_ids", type_=ARRAY(Uuid())))
    )
)
_LATEST = compile_sql(
    select_columns(func.coalesce(func.max(col(Notification.seq)), 0)).where(
        col(Notification.user_id) == _USER
    )
)


async def notifications_after(reader: Reader, user_id: uuid.UUID, seq: int) -> list[NotificationRecord]:
    """The user's next ``PAGE`` notifications after number ``seq``, in order. Read on the primary: a
    notification a subscriber was woken for is there, and a replica may not have it yet."""
    return [record_of(row) for row in await reader.fetch(_AFTER, {"user_id": user_id, "seq": seq})]


async def latest_seq(reader: Reader, user_id: uuid.UUID) -> int:
    """The number of the user's last committed notification (0: none)."""
    return int(await reader.fetchval(_LATEST, {"user_id": user_id}))


async def last_numbers(reader: Reader, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each user's last number given (users without one: absent). It moves with each notification made."""
    rows = await reader.fetch(_LAST_NUMBERS, {"user_ids": user_ids})
    return {row[0]: int(row[1]) for row in rows}


async def notification_events(ctx: Context, *, after: str | None) -> AsyncIterator[NotificationRecord]:
    """The viewer's notifications: after ``after`` (a cursor), or those committed from now on."""
    viewer = ctx.require_viewer()
    last = decode_cursor(after) if after is not None else None
    source = ctx.hooks.inbox_source
    if source is None:
        raise AppError("Subscriptions are not available on this server.")
    async for record in source.stream(viewer.user_id, last):
        # As for task events (resolvers.events): fresh loaders, and the primary, for each notification.
        ctx.reads.fresh_loaders()
        ctx.reads.read_primary()
        yield record
