from __future__ import annotations

import strawberry

from models import TaskPriority, TaskStatus
from resolvers.stats import TaskStatsData
from schema.directives.cache_control import INHERIT, PRIVATE
from schema.planning.plans import planned


@strawberry.type(description="How many tasks have a status.", directives=[INHERIT])
class StatusCount:
    status: TaskStatus = strawberry.field(description="The status.")
    count: int = strawberry.field(description="Tasks with it.")


@strawberry.type(description="How many tasks have a priority.", directives=[INHERIT])
class PriorityCount:
    priority: TaskPriority = strawberry.field(description="The priority.")
    count: int = strawberry.field(description="Tasks with it.")


def _status_counts(stats: TaskStats) -> list[StatusCount]:
    return [StatusCount(status=s, count=n) for s, n in stats.data.by_status.items()]


def _priority_counts(stats: TaskStats) -> list[PriorityCount]:
    return [PriorityCount(priority=p, count=n) for p, n in stats.data.by_priority.items()]


# Resolvers of ``self`` (the TaskStats), each with its variant for plans: built only when selected.
@planned(lambda stats, context: _status_counts(stats))
def _by_status(self: TaskStats) -> list[StatusCount]:
    return _status_counts(self)


@planned(lambda stats, context: _priority_counts(stats))
def _by_priority(self: TaskStats) -> list[PriorityCount]:
    return _priority_counts(self)


@planned(lambda stats, context: stats.data.completion_rate)
def _completion_rate(self: TaskStats) -> float:
    return self.data.completion_rate


@strawberry.type(description="Statistics over a set of tasks.", directives=[PRIVATE])
class TaskStats:
    """Built from the loaded counts; the lists and the rate only when a query selects them (a page of 50
    owners' ``taskStats { total }`` builds 50 objects, not 350)."""

    total: int = strawberry.field(description="Number of tasks.")
    by_status: list[StatusCount] = strawberry.field(
        resolver=_by_status, description="Count per status, every status listed."
    )
    by_priority: list[PriorityCount] = strawberry.field(
        resolver=_by_priority, description="Count per priority, every one listed."
    )
    overdue: int = strawberry.field(description="Tasks past their due date and not DONE.")
    completion_rate: float = strawberry.field(
        resolver=_completion_rate, description="DONE tasks / all tasks, 0 when there are none."
    )
    data: strawberry.Private[TaskStatsData]

    @classmethod
    def from_data(cls, data: TaskStatsData) -> TaskStats:
        return cls(total=data.total, overdue=data.overdue, data=data)
