"""The database tables (SQLModel) and the enums they store. Imports nothing of ours but ``core``."""

from models.account_token import AccountToken, TokenPurpose
from models.enums import (
    DeliveryStatus,
    NotificationChannel,
    NotificationKind,
    ProjectRole,
    Role,
    TaskPriority,
    TaskStatus,
    WebhookEventType,
)
from models.idempotency import IdempotencyKey
from models.notification import Notification, NotificationSettings
from models.outbox import OUTBOX, Outbox
from models.project import INVITATION_DAYS, Comment, Project, ProjectInvitation, ProjectMember, TaskActivity
from models.records import (
    COMMENT_COLUMNS,
    PROJECT_COLUMNS,
    PROJECT_ROLE,
    TASK_COLUMNS,
    USER_COLUMNS,
    CommentRecord,
    ProjectRecord,
    TaskRecord,
    UserRecord,
)
from models.session import AuthSession, RefreshToken
from models.task import Task
from models.user import User
from models.webhook import Webhook, WebhookDelivery

__all__ = [
    "COMMENT_COLUMNS",
    "INVITATION_DAYS",
    "OUTBOX",
    "PROJECT_COLUMNS",
    "PROJECT_ROLE",
    "TASK_COLUMNS",
    "USER_COLUMNS",
    "AccountToken",
    "AuthSession",
    "Comment",
    "CommentRecord",
    "DeliveryStatus",
    "IdempotencyKey",
    "Notification",
    "NotificationChannel",
    "NotificationKind",
    "NotificationSettings",
    "Outbox",
    "Project",
    "ProjectInvitation",
    "ProjectMember",
    "ProjectRecord",
    "ProjectRole",
    "RefreshToken",
    "Role",
    "Task",
    "TaskActivity",
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
