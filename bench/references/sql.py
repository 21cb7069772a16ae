"""The statements taskql sends for these documents, their text copied from what ``core.sql`` compiles (so
that PostgreSQL plans and asyncpg prepares the same statements): a task's columns in ``TaskRecord``'s
order, a user's in ``UserRecord``'s."""

from __future__ import annotations

TASK_COLUMNS = (
    "tasks.id, tasks.owner_id, tasks.title, tasks.description, tasks.status, tasks.priority, tasks.due_at, "
    "tasks.tags, tasks.created_at, tasks.updated_at, tasks.completed_at, tasks.project_id, tasks.assignee_id"
)
ORDER = "ORDER BY tasks.created_at DESC, tasks.id DESC \n LIMIT "
PERSONAL = "tasks.owner_id = $1::UUID AND tasks.project_id IS NULL"
AFTER = "(tasks.created_at, tasks.id) < ($1::TIMESTAMP WITH TIME ZONE, $2::UUID)"
# A page of tasks by (the viewer is an admin, there is an `after` cursor): resolvers.tasks._page_sql, for a
# user in no project (their personal tasks).
PAGE_SQL = {
    (True, False): f"SELECT {TASK_COLUMNS} \nFROM tasks {ORDER}$1::INTEGER",
    (True, True): f"SELECT {TASK_COLUMNS} \nFROM tasks \nWHERE {AFTER} {ORDER}$3::INTEGER",
    (
        False,
        False,
    ): f"SELECT {TASK_COLUMNS} \nFROM tasks \nWHERE {PERSONAL} {ORDER}$2::INTEGER",
    (False, True): f"SELECT {TASK_COLUMNS} \nFROM tasks \nWHERE {PERSONAL} AND "
    + AFTER.replace("$2", "$3").replace("$1", "$2")
    + f" {ORDER}$4::INTEGER",
}
# resolvers.loaders._by_id
USERS_SQL = (
    "SELECT users.id, users.email, users.name, users.role, users.is_active, users.created_at, "
    "users.email_verified_at \n"
    "FROM users \nWHERE users.id = ANY ($1::UUID[])"
)
TASKS_SQL = f"SELECT {TASK_COLUMNS} \nFROM tasks \nWHERE tasks.id = ANY ($1::UUID[])"
STATUSES = ("TODO", "IN_PROGRESS", "DONE")
PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
# resolvers.stats: one row of counts per status, per priority, overdue, and the next due date; $1 to $8 are
# constants of the compiled statement (the statuses, the priorities, 'DONE'): ``STATS_ARGS``.
STATS_ARGS = (*STATUSES, *PRIORITIES, "DONE")
_STATS = (
    "SELECT "
    + ", ".join(f"count(*) FILTER (WHERE tasks.status = ${n}::task_status) AS anon_{n}" for n in (1, 2, 3))
    + ", "
    + ", ".join(
        f"count(*) FILTER (WHERE tasks.priority = ${n}::task_priority) AS anon_{n}" for n in (4, 5, 6, 7)
    )
    + ", count(*) FILTER (WHERE tasks.due_at < now() AND tasks.status != $8::task_status) AS anon_8, "
    "min(tasks.due_at) FILTER (WHERE tasks.due_at >= now() AND tasks.status != $8::task_status) AS anon_9"
)
GLOBAL_STATS_SQL = f"{_STATS} \nFROM tasks"
STATS_BY_OWNER_SQL = (
    f"{_STATS}, tasks.owner_id \nFROM tasks \nWHERE tasks.owner_id = ANY ($9::UUID[]) AND "
    "(tasks.project_id IS NULL OR (EXISTS (SELECT * \nFROM project_members \n"
    "WHERE project_members.project_id = tasks.project_id AND project_members.user_id = tasks.owner_id))) "
    "GROUP BY tasks.owner_id"
)
