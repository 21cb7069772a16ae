"""A login session of the viewer's (``sessions``)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from core.ids import encode_id
from resolvers.accounts import SessionRecord


@strawberry.type(description="One login (a device or browser) of the viewer's, still able to refresh.")
class Session:
    id: strawberry.ID = strawberry.field(description="Give it to revokeSession to end the session.")
    created_at: datetime = strawberry.field(description="When it logged in.")
    last_used_at: datetime = strawberry.field(description="When it last logged in or refreshed its tokens.")
    user_agent: str | None = strawberry.field(description="The User-Agent it logged in with.")
    current: bool = strawberry.field(description="Whether this request's access token belongs to it.")

    @classmethod
    def from_record(cls, record: SessionRecord) -> Session:
        return cls(
            id=strawberry.ID(encode_id("Session", record.id)),
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            user_agent=record.user_agent,
            current=record.current,
        )
