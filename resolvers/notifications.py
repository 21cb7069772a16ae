"""Notifications: each user's settings, their in-app inbox, and the reminders a task with a due date gets.

A reminder is a job enqueued with the write that gives a task its due date (or changes it, or reopens the
task, or changes the owner's settings), to run ``remind_before_minutes`` ahead of it. It is never cancelled:
when it runs it does nothing if the task moved on (done, deleted, another due date, another setting), and
the job enqueued for the new state reminds instead. The inbox entry it makes is unique per task and due
date: a job that runs twice (its worker died) notifies once.
"""

from __future__ import annotations

import functools
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, field_validator
from sqlalchemy import Uuid, bindparam, exists, func, literal, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cache_tags
from core.errors import BadUserInput
from core.ids import decode_typed_id
from core.sql import Sql, compile_sql
from models import (
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationSettings,
    Task,
    TaskRecord,
    TaskStatus,
)
from models.notification import DEFAULT_CHANNELS, DEFAULT_REMIND_BEFORE_MINUTES
from resolvers import jobs
from resolvers.inputs import Strict, graphql_name, validate
from resolvers.jobs import ReminderJob
from resolvers.pagination import (
    Listing,
    PageRequest,
    SortKey,
    from_iso,
    iso,
    keyset,
    page_sql,
    read_page,
)
from resolvers.visibility import can_see_task

if TYPE_CHECKING:
    from sqlalchemy.sql.dml import ReturningInsert

    from resolvers.context import Context

MAX_REMIND_BEFORE_MINUTES = 7 * 24 * 60
MAX_MARKED = 100
# Told the id of a user at the COMMIT of a transaction that added to their inbox (the live inbox listens).
INBOX_CHANNEL = "taskql_inbox"


@dataclass(frozen=True, slots=True)
class SettingsRecord:
    remind_before_minutes: int
    channels: tuple[NotificationChannel, ...]
    daily_digest: bool
    timezone: str

    @classmethod
    def of(cls, row: NotificationSettings | None) -> SettingsRecord:
        if row is None:
            return DEFAULTS
        return cls(
            row.remind_before_minutes, tuple(NotificationChannel(c) for c in row.channels), row.daily_digest,
            row.timezone,
        )  # fmt: skip


DEFAULTS = SettingsRecord(
    DEFAULT_REMIND_BEFORE_MINUTES, tuple(NotificationChannel(c) for c in DEFAULT_CHANNELS), False, "UTC"
)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: uuid.UUID
    kind: NotificationKind
    title: str
    body: str
    task_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None
    seq: int  # its number in the user's inbox: the live inbox's cursor (resolvers.inbox)


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)"
        ) from None
    return value


class SettingsPatch(Strict):
    remind_before_minutes: Annotated[int, Field(ge=0, le=MAX_REMIND_BEFORE_MINUTES)] | None = None
    channels: Annotated[list[NotificationChannel], Field(max_length=3)] | None = None
    daily_digest: bool | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return None if value is None else _timezone(value)


async def settings_of(db: AsyncSession, user_id: uuid.UUID) -> SettingsRecord:
    return SettingsRecord.of(await db.get(NotificationSettings, user_id))


async def get_settings(ctx: Context) -> SettingsRecord:
    viewer = ctx.require_viewer()
    async with ctx.writes.sessions() as db:
        return await settings_of(db, viewer.user_id)


async def update_settings(ctx: Context, *, values: Mapping[str, Any]) -> SettingsRecord:
    viewer = ctx.require_viewer()
    patch = validate(SettingsPatch, values, argument="input")
    for name in patch.model_fields_set:
        if getattr(patch, name) is None:
            field = f"input.{graphql_name(name)}"
            raise BadUserInput(f"{field}: cannot be null.", field=field)
    now = ctx.now()
    async with ctx.transaction() as db:
        # The row with the defaults first, if there is none: two first changes at once then wait for each
        # other on its lock instead of both inserting.
        await db.exec(insert(NotificationSettings).values(user_id=viewer.user_id).on_conflict_do_nothing())
        row = await db.get(NotificationSettings, viewer.user_id, with_for_update=True, populate_existing=True)
        assert row is not None
        before = row.remind_before_minutes
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            setattr(row, name, [c.value for c in dict.fromkeys(value)] if name == "channels" else value)
        row.updated_at = now
        db.add(row)
        await db.flush()
        if row.remind_before_minutes != before:  # every open task's reminder moves
            tasks = await db.exec(
                select(Task).where(
                    Task.owner_id == viewer.user_id,
                    col(Task.due_at) > now,
                    col(Task.status) != TaskStatus.DONE,
                )
            )
            for task in tasks:
                await schedule_reminder(db, task, now, row.remind_before_minutes)
    return SettingsRecord.of(row)


async def schedule_reminder(
    db: AsyncSession, task: Task, now: datetime, remind_before: int | None = None
) -> None:
    """Enqueue ``task``'s reminder in ``db``'s transaction, if it is open and due in the future; at once when
    the moment to remind is already past."""
    if task.due_at is None or task.status is TaskStatus.DONE or task.due_at <= now:
        return
    if remind_before is None:
        remind_before = (await settings_of(db, task.owner_id)).remind_before_minutes
    at = task.due_at - timedelta(minutes=remind_before)
    job = ReminderJob(str(task.id), task.due_at.isoformat(), remind_before)
    await jobs.enqueue(db, job, after=max(at - now, timedelta(0)))


def due_text(due_at: datetime, timezone: str) -> str:
    """When a task is due, in its owner's time zone, as a person reads it."""
    local = due_at.astimezone(zoneinfo.ZoneInfo(timezone))
    return f"{local:%a %d %b %Y, %H:%M} ({timezone})"


def reminder_key(task_id: uuid.UUID | str, due_at: datetime | str) -> str:
    """What makes a reminder one: the task and the due date it reminds of."""
    when = due_at if isinstance(due_at, str) else due_at.isoformat()
    return f"due:{task_id}:{when}"


async def notify(
    db: AsyncSession,
    user_id: uuid.UUID,
    kind: NotificationKind,
    *,
    title: str,
    body: str,
    dedupe_key: str,
    task_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Add an entry to the user's inbox, once per ``dedupe_key``: its id, or None if it was there. Call it
    inside a transaction: the entry takes the user's next number, and subscribers hear of it at COMMIT."""
    inserted = await db.exec(_notify_statement(user_id, kind, title, body, dedupe_key, task_id))
    made = inserted.scalar_one_or_none()
    if made is not None:
        await db.exec(select(func.pg_notify(INBOX_CHANNEL, str(user_id))))
    return made


def _notify_statement(
    user_id: uuid.UUID,
    kind: NotificationKind,
    title: str,
    body: str,
    dedupe_key: str,
    task_id: uuid.UUID | None,
) -> ReturningInsert[uuid.UUID]:
    # The user's settings row (made with the defaults if there is none) counts their notifications: the
    # update locks it until COMMIT, so the user's notifying transactions take their numbers one after the
    # other, in commit order, and a subscriber reading "seq > cursor" never misses one that commits later
    # with a smaller number. An entry already there (the dedupe key) takes no number, but one inserted by a
    # transaction that began before ours commits may: the insert then does nothing and leaves a gap.
    last = col(NotificationSettings.last_notification_seq)
    already = exists().where(col(Notification.user_id) == user_id, col(Notification.dedupe_key) == dedupe_key)
    numbered = (
        insert(NotificationSettings)
        .values(user_id=user_id, last_notification_seq=1)
        .on_conflict_do_update(
            index_elements=[col(NotificationSettings.user_id)], set_={last: last + 1}, where=~already
        )
        .returning(last)
        .cte("numbered")
    )
    given = {
        "id": uuid.uuid4(), "user_id": user_id, "kind": kind, "title": title, "body": body,
        "task_id": task_id, "dedupe_key": dedupe_key,
    }  # fmt: skip
    table = Notification.__table__.c  # type: ignore[attr-defined]
    values = select_columns(
        *(literal(value, table[name].type) for name, value in given.items()), numbered.c.last_notification_seq
    )
    names = [*given, "seq"]
    return (
        insert(Notification)
        .from_select(names, values)
        .on_conflict_do_nothing(constraint="notifications_user_id_dedupe_key_key")
        .returning(col(Notification.id))
    )


# The inbox: newest first.
NOTIFICATION_ORDER = SortKey(
    "NOTIFICATION_CREATED_AT",
    col(Notification.created_at),
    lambda record: record.created_at,
    from_json=from_iso,
    to_json=iso,
)
COLUMNS = (
    col(Notification.id), col(Notification.kind), col(Notification.title), col(Notification.body),
    col(Notification.task_id), col(Notification.created_at), col(Notification.read_at), col(Notification.seq),
)  # fmt: skip


_USER = bindparam("user_id", type_=Uuid())


@functools.cache  # bounded: 2 x 2 x 2
def _page_sql(unread_only: bool, walk_descending: bool, cursor: bool) -> Sql:
    where = [col(Notification.user_id) == _USER]
    if unread_only:
        where.append(col(Notification.read_at).is_(None))
    return page_sql(
        NOTIFICATION_ORDER,
        col(Notification.id),
        COLUMNS,
        where,
        walk_descending=walk_descending,
        cursor=cursor,
    )


@functools.cache
def _count_sql(unread_only: bool) -> Sql:
    statement = (
        select_columns(func.count()).select_from(Notification).where(col(Notification.user_id) == _USER)
    )
    if unread_only:
        statement = statement.where(col(Notification.read_at).is_(None))
    return compile_sql(statement, constants=False)


def record_of(row: Sequence[Any]) -> NotificationRecord:
    """A row of ``COLUMNS`` as a record."""
    notification_id, kind, title, body, task_id, created_at, read_at, seq = row
    return NotificationRecord(
        notification_id, NotificationKind(kind), title, body, task_id, created_at, read_at, seq
    )


async def list_notifications(
    ctx: Context, *, page: PageRequest, unread_only: bool
) -> Listing[NotificationRecord]:
    viewer = ctx.require_viewer()
    window = keyset(NOTIFICATION_ORDER, page, descending=True, query="unread" if unread_only else "")
    sql = _page_sql(unread_only, window.walk_descending, window.cursor is not None)
    values = {"user_id": viewer.user_id}
    # The primary: the worker writes the inbox, and what it wrote must show at once.
    count = _count_sql(unread_only)
    return await read_page(ctx.reads.primary, NOTIFICATION_ORDER, page, window, sql, count, values, record_of)


async def unread_count(ctx: Context) -> int:
    viewer = ctx.require_viewer()
    return int(await ctx.reads.primary.fetchval(_count_sql(True), {"user_id": viewer.user_id}))


async def mark_read(ctx: Context, *, ids: Sequence[str] | None, everything: bool) -> int:
    """Mark the viewer's notifications read (``ids``, or ``everything``); how many were unread. Another
    user's id counts as none of the viewer's: nothing tells it exists."""
    viewer = ctx.require_viewer()
    if everything == (ids is not None):
        raise BadUserInput("Pass either ids or all: true.", field="ids")
    keys: list[uuid.UUID] = []
    if ids is not None:
        if len(ids) > MAX_MARKED:
            raise BadUserInput(f"ids: at most {MAX_MARKED} at once.", field="ids")
        keys = [key for global_id in ids if (key := decode_typed_id(global_id, "Notification", field="ids"))]
    statement = (
        update(Notification)
        .where(col(Notification.user_id) == viewer.user_id, col(Notification.read_at).is_(None))
        .values(read_at=ctx.now())
    )
    if not everything:
        statement = statement.where(col(Notification.id).in_(keys))
    async with ctx.transaction() as db:
        marked = (await db.exec(statement)).rowcount
        if marked:
            await ctx.record(
                db, cache_tags.shown_changed(viewer.user_id)
            )  # a cached node(id:) showed it unread
    return int(marked)


async def get_notification(ctx: Context, notification_id: uuid.UUID) -> NotificationRecord | None:
    viewer = ctx.require_viewer()
    row = await ctx.reads.primary.fetchrow(_BY_ID, {"id": notification_id, "user_id": viewer.user_id})
    return None if row is None else record_of(row)


_BY_ID = compile_sql(
    select_columns(*COLUMNS).where(
        col(Notification.id) == bindparam("id", type_=Uuid()), col(Notification.user_id) == _USER
    )
)


async def task_of(ctx: Context, task_id: uuid.UUID) -> TaskRecord | None:
    """The task a notification is about, if the viewer may still see it."""
    viewer = ctx.require_viewer()
    task = await ctx.loaders.tasks.load(task_id)
    return task if task is not None and await can_see_task(ctx, viewer, task) else None
