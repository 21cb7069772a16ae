"""Webhooks: the viewer's endpoints and their delivery logs."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types.unset import UNSET

from core.ids import encode_id
from resolvers import webhooks
from resolvers.pagination import PageRequest
from resolvers.webhooks import DeliveryRecord, WebhookRecord
from schema.directives.cache_control import NEVER
from schema.info import Info
from schema.types.connections import Connection, connection
from schema.types.enums import WebhookEventType
from schema.types.node import Node


@strawberry.type(description="One event sent (or being sent) to a webhook, and how its last attempt went.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="For retryWebhookDelivery.")
    message_id: str = strawberry.field(
        description="The `webhook-id` header the receiver gets, the same at every attempt: deduplicate by it."
    )
    event_type: WebhookEventType = strawberry.field(description="What happened.")
    attempt: int = strawberry.field(description="Attempts made so far (0: not yet tried).")
    status: str = strawberry.field(
        description="pending (not tried yet), retrying (failed; tried again at nextAttemptAt), sending (a "
        "testWebhook or retryWebhookDelivery under way), delivered (a 2xx answer), or failed (given up)."
    )
    response_status: int | None = strawberry.field(description="The HTTP status of the last answer, if any.")
    duration_ms: int | None = strawberry.field(description="How long the last attempt took.")
    response_body: str | None = strawberry.field(description="The last answer's first 1 kB.")
    error: str | None = strawberry.field(
        description="Why the last attempt failed: an HTTP status, a timeout, a refused address, ..."
    )
    at: datetime = strawberry.field(description="When it was last attempted, or else made.")
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried again, while retrying.")

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(encode_id("WebhookDelivery", record.id)),
            message_id=webhooks.message_header(record.message_id),
            event_type=record.event_type,
            attempt=record.attempt,
            status=record.status.value,
            response_status=record.response_status,
            duration_ms=record.duration_ms,
            response_body=record.response_body,
            error=record.error,
            at=record.attempted_at or record.created_at,
            next_attempt_at=record.next_attempt_at,
        )


@strawberry.type(
    description="An endpoint the viewer's events are POSTed to, signed (Standard Webhooks). Never cached: "
    "the worker changes it (a disabled endpoint, its deliveries)."
)
class Webhook(Node):
    url: str = strawberry.field(directives=[NEVER], description="Where events go (https:// in production).")
    events: list[WebhookEventType] = strawberry.field(
        directives=[NEVER], description="The events it is sent."
    )
    description: str | None = strawberry.field(directives=[NEVER], description="The owner's note.")
    enabled: bool = strawberry.field(
        directives=[NEVER],
        description="Whether events are sent; false once disabled by its owner or after 20 failed attempts "
        "in a row.",
    )
    disabled_reason: str | None = strawberry.field(
        directives=[NEVER], description="Why it was disabled, while it is."
    )
    created_at: datetime = strawberry.field(directives=[NEVER], description="When it was made.")
    key: strawberry.Private[uuid.UUID]

    @strawberry.field(
        description="Its deliveries, newest first (1 to 100 a page, default 20).", directives=[NEVER]
    )
    async def deliveries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[WebhookDelivery]:
        result = await webhooks.list_deliveries(
            info.context, webhook_id=self.key, page=PageRequest(first, after)
        )
        return connection(result.page, WebhookDelivery.from_record, result.count)

    @classmethod
    def from_record(cls, record: WebhookRecord) -> Webhook:
        return cls(
            id=strawberry.ID(encode_id("Webhook", record.id)),
            url=record.url,
            events=list(record.events),
            description=record.description,
            enabled=record.enabled,
            disabled_reason=record.disabled_reason,
            created_at=record.created_at,
            key=record.id,
        )


@strawberry.type(description="A webhook and its signing secret, shown this once.")
class CreateWebhookPayload:
    webhook: Webhook = strawberry.field(description="The webhook.")
    secret: str = strawberry.field(
        description='"whsec_" and 32 bytes in base64: verify deliveries with it (any Standard Webhooks '
        "library)."
    )


@strawberry.input(description="A new webhook.")
class CreateWebhookInput:
    url: str = strawberry.field(description="https://... in production; never an internal address.")
    events: list[WebhookEventType] = strawberry.field(description="The events to send it (not PING).")
    description: str | None = strawberry.field(default=None, description="Up to 500 characters.")


@strawberry.input(description="Changes to a webhook: only the fields given change.")
class UpdateWebhookInput:
    url: str | None = strawberry.field(default=UNSET, description="A new address.")
    events: list[WebhookEventType] | None = strawberry.field(default=UNSET, description="The events to send.")
    description: str | None = strawberry.field(default=UNSET, description="Null clears it.")
    enabled: bool | None = strawberry.field(
        default=UNSET,
        description="false pauses it (its undelivered events wait); true resumes it and counts its failures "
        "from zero (events written while it was disabled are not sent).",
    )
