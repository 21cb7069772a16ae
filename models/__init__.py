"""The database tables (SQLModel) and the enums they store. Imports nothing of ours but ``core``."""

from models.account_token import AccountToken, TokenPurpose
from models.enums import NotificationChannel, NotificationKind, Role, TaskPriority, TaskStatus
from models.idempotency import IdempotencyKey
from models.notification import Notification, NotificationSettings
from models.outbox import OUTBOX, Outbox
from models.records import TASK_COLUMNS, USER_COLUMNS, TaskRecord, UserRecord
from models.session import AuthSession, RefreshToken
from models.task import Task
from models.user import User

__all__ = [
    "OUTBOX",
    "TASK_COLUMNS",
    "USER_COLUMNS",
    "AccountToken",
    "AuthSession",
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
]
