from __future__ import annotations

import strawberry

from models import TaskPriority, TaskStatus
from resolvers.stats import TaskStatsData
from schema.directives.cache_control import INHERIT, PRIVATE


@strawberry.type(description="How many tasks have a status.", directives=[INHERIT])
class StatusCount:
    status: TaskStatus = strawberry.field(description="The status.")
    count: int = strawberry.field(description="Tasks with it.")


@strawberry.type(description="How many tasks have a priority.", directives=[INHERIT])
class PriorityCount:
    priority: TaskPriority = strawberry.field(description="The priority.")
    count: int = strawberry.field(description="Tasks with it.")


@strawberry.type(description="Statistics over a set of tasks.", directives=[PRIVATE])
class TaskStats:
    total: int = strawberry.field(description="Number of tasks.")
    by_status: list[StatusCount] = strawberry.field(description="Count per status, every status listed.")
    by_priority: list[PriorityCount] = strawberry.field(description="Count per priority, every one listed.")
    overdue: int = strawberry.field(description="Tasks past their due date and not DONE.")
    completion_rate: float = strawberry.field(description="DONE tasks / all tasks, 0 when there are none.")

    @classmethod
    def from_data(cls, data: TaskStatsData) -> TaskStats:
        return cls(
            total=data.total,
            by_status=[StatusCount(status=s, count=n) for s, n in data.by_status.items()],
            by_priority=[PriorityCount(priority=p, count=n) for p, n in data.by_priority.items()],
            overdue=data.overdue,
            completion_rate=data.completion_rate,
        )
