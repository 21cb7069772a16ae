"""The GraphQL enums. ``Role`` is registered by ``schema.directives.auth`` (its argument is typed with it)."""

from enum import Enum

import strawberry

import schema.directives.auth  # noqa: F401  (registers Role: the directive's argument is typed with it)
from models import (
    NotificationChannel,
    NotificationKind,
    ProjectRole,
    Role,
    TaskPriority,
    TaskStatus,
    WebhookEventType,
)
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
    "tasks, a webhook disabled after failing, an invitation to a project, a task assigned to the user, a "
    "mention in a comment.",
)
strawberry.enum(
    ProjectRole,
    description="A member's role in a project: VIEWERs read and comment; EDITORs also create, change, assign "
    "and delete its tasks; the one OWNER also manages the project, its members and invitations.",
)

strawberry.enum(
    WebhookEventType,
    description="What a webhook is told of: a task created, changed or deleted (as its owner sees it: a task "
    "that leaves their view, given to another owner or moved out of their projects, is DELETED for them, "
    "one that enters it CREATED), due soon (when the owner's notification channels include WEBHOOK), a "
    "comment added, edited or deleted on a task they see; PING is testWebhook's, not subscribed to.",
)


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


__all__ = [
    "NotificationChannel",
    "NotificationKind",
    "OrderDirection",
    "ProjectRole",
    "Role",
    "TaskOrderField",
    "TaskPriority",
    "TaskStatus",
    "WebhookEventType",
]
