"""The GraphQL enums. ``Role`` is registered by ``schema.directives.auth`` (its argument is typed with it)."""

from enum import Enum

import strawberry

import schema.directives.auth  # noqa: F401  (registers Role: the directive's argument is typed with it)
from models import Role, TaskPriority, TaskStatus
from resolvers.tasks import TaskOrderField

strawberry.enum(TaskStatus, description="Where a task stands.")
strawberry.enum(TaskPriority, description="How urgent a task is, from LOW to URGENT (the sort order).")
strawberry.enum(
    TaskOrderField,
    description="What a task list is sorted by. RELEVANCE ranks full-text matches and needs filter.search.",
)


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


__all__ = ["OrderDirection", "Role", "TaskOrderField", "TaskPriority", "TaskStatus"]
