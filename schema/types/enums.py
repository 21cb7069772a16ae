"""The GraphQL enums. ``Role`` is registered by ``schema.directives.auth`` (its argument is typed with it)."""

from enum import Enum

import strawberry

import schema.directives.auth  # noqa: F401  (registers Role: the directive's argument is typed with it)
from models import NotificationChannel, NotificationKind, Role, TaskPriority, TaskStatus, WebhookEventType
from resolvers.tasks import TaskOrderField

strawberry.enum(TaskStatus, description="Where a task stands.")
strawberry.enum(TaskPriority, description="How urgent a task is, from LOW to URGENT (the sort order).")
strawberry.enum(
    TaskOrderField,
    description="What a task list is sorted by. RELEVANCE ranks full-text matches and needs filter.search.",
)
strawberry.enum(
    NotificationChannel, description="How a user is told: by email, in the app's inbox, by webhook."
)
strawberry.enum(
    NotificationKind,
    description="What a notification is about: a task due soon, the daily digest of overdue and due-today "
    "tasks, a webhook disabled after failing.",
)

strawberry.enum(
    WebhookEventType,
    description="What a webhook is told of: a task created, changed or deleted (as its owner sees it: a task "
    "given to another owner is DELETED for the previous one and CREATED for the new one), due soon (when "
    "the owner's notification channels include WEBHOOK); PING is testWebhook's, not subscribed to.",
)


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


__all__ = [
    "NotificationChannel",
    "NotificationKind",
    "OrderDirection",
    "Role",
    "TaskOrderField",
    "TaskPriority",
    "TaskStatus",
    "WebhookEventType",
]
