"""The database tables (SQLModel) and the enums they store. Imports nothing of ours but ``core``."""

from models.account_token import AccountToken, TokenPurpose
from models.enums import (
    DeliveryStatus,
    NotificationChannel,
    NotificationKind,
    Role,
    TaskPriority,
    TaskStatus,
    WebhookEventType,
)
from models.idempotency import IdempotencyKey
from models.notification import Notification, NotificationSettings
from models.outbox import OUTBOX, Outbox
from models.records import TASK_COLUMNS, USER_COLUMNS, TaskRecord, UserRecord
from models.session import AuthSession, RefreshToken
from models.task import Task
from models.user import User
from models.webhook import Webhook, WebhookDelivery

__all__ = [
    "OUTBOX",
    "TASK_COLUMNS",
    "USER_COLUMNS",
    "AccountToken",
    "AuthSession",
    "DeliveryStatus",
    "IdempotencyKey",
    "Notification",
    "NotificationChannel",
    "NotificationKind",
    "NotificationSettings",
    "Outbox",
    "RefreshToken",
    "Role",
    "Task",
    "TaskPriority",
    "TaskRecord",
    "TaskStatus",
    "TokenPurpose",
    "User",
    "UserRecord",
    "Webhook",
    "WebhookDelivery",
    "WebhookEventType",
]
