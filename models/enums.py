"""Enums shared by the tables and the schema. Their declaration order is their sort order in PostgreSQL."""

from enum import StrEnum


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"

    def satisfies(self, required: "Role") -> bool:
        """ADMIN may do everything a USER may."""
        return self is Role.ADMIN or required is Role.USER


class TaskStatus(StrEnum):
    TODO = "TODO"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class TaskPriority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


class NotificationChannel(StrEnum):
    EMAIL = "EMAIL"
    IN_APP = "IN_APP"
    WEBHOOK = "WEBHOOK"


class NotificationKind(StrEnum):
    TASK_DUE_SOON = "TASK_DUE_SOON"
    TASK_OVERDUE_DIGEST = "TASK_OVERDUE_DIGEST"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"


class WebhookEventType(StrEnum):
    TASK_CREATED = "TASK_CREATED"
    TASK_UPDATED = "TASK_UPDATED"
    TASK_DELETED = "TASK_DELETED"
    TASK_DUE_SOON = "TASK_DUE_SOON"
    PING = "PING"  # testWebhook's


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not tried yet
    RETRYING = "retrying"  # failed, tried again at next_attempt_at
    SENDING = "sending"  # a one-off attempt (testWebhook, retryWebhookDelivery) under way
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # given up: the webhook was disabled, or a one-off attempt (test, retry) failed
