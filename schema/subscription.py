"""Live updates: ``taskEvents`` and ``notificationEvents``, over WebSocket (graphql-transport-ws, or the
legacy graphql-ws)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import events, inbox
from schema.directives.auth import Auth
from schema.info import Info
from schema.types.inputs import user_key
from schema.types.notification import Notification
from schema.types.task_event import TaskEvent


@strawberry.type(description="Live updates, over WebSocket at /graphql.")
class Subscription:
    @strawberry.subscription(
        description="Changes to the viewer's tasks; for an admin, to every task, or to one owner's "
        "(ownerId). With `after` (a cursor), every event since that one comes first, then live ones, each "
        "exactly once and in order; a cursor older than the events kept is CURSOR_EXPIRED.",
        directives=[Auth()],
    )
    async def task_events(
        self, info: Info, after: str | None = None, owner_id: strawberry.ID | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        owner = user_key(owner_id, field="ownerId") if owner_id is not None else None
        async for event in events.task_events(info.context, after=after, owner_id=owner):
            yield TaskEvent.from_event(event)

    @strawberry.subscription(
        description="The viewer's new notifications (their in-app inbox, live), oldest first. With `after` "
        "(a Notification's `cursor`), every notification made since that one comes first, then live ones; "
        "without it, those made from now on. Each exactly once and in the order they were made, across "
        "reconnections; one whose wake-up was lost arrives within INBOX_RECHECK_SECONDS.",
        directives=[Auth()],
    )
    async def notification_events(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[Notification, None]:
        async for record in inbox.notification_events(info.context, after=after):
            yield Notification.from_record(record)
