"""A background job held after its last attempt failed (admins: ``failedJobs``, ``retryJob``)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.jobs import FailedJobRecord


@strawberry.type(description="A background job that failed every attempt and is held until retried.")
class FailedJob:
    id: strawberry.ID = strawberry.field(description="Give it to retryJob to run it again.")
    kind: str = strawberry.field(description="What it does: `mail:<kind>` or `cleanup`.")
    attempts: int = strawberry.field(description="Attempts it made.")
    created_at: datetime = strawberry.field(description="When it was enqueued.")
    failed_at: datetime = strawberry.field(description="When its last attempt failed.")
    error: str | None = strawberry.field(description="The error of its last attempt.")

    @classmethod
    def from_record(cls, record: FailedJobRecord) -> FailedJob:
        return cls(
            id=strawberry.ID(str(record.id)),
            kind=record.kind,
            attempts=record.attempts,
            created_at=record.created_at,
            failed_at=record.failed_at,
            error=record.error,
        )
