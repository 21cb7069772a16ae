"""Notifications: the viewer's settings and inbox entries."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types.unset import UNSET

from core.ids import encode_id
from resolvers import inbox, notifications
from resolvers.notifications import NotificationRecord, SettingsRecord
from schema.info import Info
from schema.types.enums import NotificationChannel, NotificationKind
from schema.types.node import Node
from schema.types.task import Task


@strawberry.type(description="How the viewer wants to be told.")
class NotificationSettings:
    remind_before_minutes: int = strawberry.field(
        description="How long before a task's due date its reminder comes (0 to 10080; default 60)."
    )
    channels: list[NotificationChannel] = strawberry.field(
        description="Where reminders go (default EMAIL and IN_APP); none: no reminders."
    )
    daily_digest: bool = strawberry.field(
        description="A digest of overdue and due-today tasks every day at 08:00 in `timezone` (default off)."
    )
    timezone: str = strawberry.field(description="An IANA time zone (default UTC), for dates and the digest.")

    @classmethod
    def from_record(cls, record: SettingsRecord) -> NotificationSettings:
        return cls(
            remind_before_minutes=record.remind_before_minutes,
            channels=list(record.channels),
            daily_digest=record.daily_digest,
            timezone=record.timezone,
        )


@strawberry.input(description="Changes to the viewer's notification settings: only the fields given change.")
class NotificationSettingsInput:
    remind_before_minutes: int | None = strawberry.field(default=UNSET, description="0 to 10080 minutes.")
    channels: list[NotificationChannel] | None = strawberry.field(
        default=UNSET, description="Where reminders go; an empty list turns them off."
    )
    daily_digest: bool | None = strawberry.field(default=UNSET, description="The 08:00 digest on or off.")
    timezone: str | None = strawberry.field(
        default=UNSET, description="An IANA time zone, e.g. Europe/Paris."
    )


@strawberry.type(description="An entry of the viewer's inbox.")
class Notification(Node):
    kind: NotificationKind = strawberry.field(description="What it is about.")
    title: str = strawberry.field(description="One line.")
    body: str = strawberry.field(description="The text.")
    created_at: datetime = strawberry.field(description="When it was made.")
    read_at: datetime | None = strawberry.field(description="When it was marked read; null while unread.")
    cursor: str = strawberry.field(
        description="Its place in the viewer's inbox, in the order notifications were made: pass the last "
        "one received (or the greatest seen in `notifications`) as `notificationEvents(after:)` to resume."
    )
    task_key: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The task it is about, while the viewer may see it (null once deleted).")
    async def task(self, info: Info) -> Task | None:
        if self.task_key is None:
            return None
        found = await notifications.task_of(info.context, self.task_key)
        return Task.from_model(found) if found is not None else None

    @classmethod
    def from_record(cls, record: NotificationRecord) -> Notification:
        return cls(
            id=strawberry.ID(encode_id("Notification", record.id)),
            kind=record.kind,
            title=record.title,
            body=record.body,
            created_at=record.created_at,
            read_at=record.read_at,
            cursor=inbox.encode_cursor(record.seq),
            task_key=record.task_id,
        )
