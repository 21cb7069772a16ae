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


class ProjectRole(StrEnum):
    """Declared from the most to the least rights."""

    OWNER = "OWNER"  # manages the project, its members and invitations
    EDITOR = "EDITOR"  # creates, changes, assigns and deletes the project's tasks
    VIEWER = "VIEWER"  # reads and comments

    def at_least(self, required: "ProjectRole") -> bool:
        order = (ProjectRole.VIEWER, ProjectRole.EDITOR, ProjectRole.OWNER)
        return order.index(self) >= order.index(required)


class NotificationChannel(StrEnum):
    EMAIL = "EMAIL"
    IN_APP = "IN_APP"
    WEBHOOK = "WEBHOOK"


class NotificationKind(StrEnum):
    TASK_DUE_SOON = "TASK_DUE_SOON"
    TASK_OVERDUE_DIGEST = "TASK_OVERDUE_DIGEST"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"
    PROJECT_INVITATION = "PROJECT_INVITATION"
    TASK_ASSIGNED = "TASK_ASSIGNED"
    MENTIONED = "MENTIONED"


class WebhookEventType(StrEnum):
    TASK_CREATED = "TASK_CREATED"
    TASK_UPDATED = "TASK_UPDATED"
    TASK_DELETED = "TASK_DELETED"
    TASK_DUE_SOON = "TASK_DUE_SOON"
    COMMENT_CREATED = "COMMENT_CREATED"
    COMMENT_UPDATED = "COMMENT_UPDATED"
    COMMENT_DELETED = "COMMENT_DELETED"
    PING = "PING"  # testWebhook's


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not tried yet
    RETRYING = "retrying"  # failed, tried again at next_attempt_at
    SENDING = "sending"  # a one-off attempt (testWebhook, retryWebhookDelivery) under way
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # given up: the webhook was disabled, or a one-off attempt (test, retry) failed
