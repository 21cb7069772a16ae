from __future__ import annotations

import strawberry

from core.errors import BadUserInput
from models import CommentRecord, ProjectRecord, Role, TaskRecord
from resolvers import accounts, budget, jobs, nodes, notifications, projects, stats, tasks, users, webhooks
from resolvers.loaders import prefetch
from resolvers.notifications import NotificationRecord
from resolvers.pagination import PageRequest
from resolvers.projects import InvitationRecord
from resolvers.webhooks import WebhookRecord
from schema.directives.auth import Auth
from schema.directives.cache_control import PRIVATE
from schema.info import Info
from schema.types.comment import Comment
from schema.types.connections import Connection, connection, selects
from schema.types.inputs import TaskFilter, TaskOrder, UserFilter, given, typed_key, user_key
from schema.types.job import FailedJob
from schema.types.node import Node
from schema.types.notification import Notification, NotificationSettings
from schema.types.project import Project, ProjectFilter, ProjectInvitation
from schema.types.rate_limit import RateLimit
from schema.types.session import Session
from schema.types.stats import TaskStats
from schema.types.task import Task, task_connection
from schema.types.user import User
from schema.types.webhook import Webhook


@strawberry.type(description="Reads.")
class Query:
    @strawberry.field(description="The logged-in user; null when anonymous.")
    async def me(self, info: Info) -> User | None:
        user = await users.me(info.context)
        return User.from_model(user) if user else None

    @strawberry.field(
        description="The viewer's sessions that can still be used, most recently used first.",
        directives=[Auth()],
    )
    async def sessions(self, info: Info) -> list[Session]:
        return [Session.from_record(record) for record in await accounts.list_sessions(info.context)]

    @strawberry.field(
        description="Background jobs held after their last attempt failed, newest first (admins only).",
        directives=[Auth(requires=Role.ADMIN)],
    )
    async def failed_jobs(self, info: Info, first: int = 50) -> list[FailedJob]:
        records = await jobs.failed_jobs(info.context, first=first)
        return [FailedJob.from_record(record) for record in records]

    @strawberry.field(description="The viewer's notification settings.", directives=[Auth()])
    async def notification_settings(self, info: Info) -> NotificationSettings:
        return NotificationSettings.from_record(await notifications.get_settings(info.context))

    @strawberry.field(
        description="The viewer's inbox, newest first (1 to 100 a page, default 20); with `unreadOnly`, the "
        "unread entries only.",
        directives=[Auth()],
    )
    async def notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        unread_only: bool | None = False,
    ) -> Connection[Notification]:
        result = await notifications.list_notifications(
            info.context, page=PageRequest(first, after), unread_only=bool(unread_only)
        )
        return connection(result.page, Notification.from_record, result.count)

    @strawberry.field(description="How many of the viewer's notifications are unread.", directives=[Auth()])
    async def unread_notification_count(self, info: Info) -> int:
        return await notifications.unread_count(info.context)

    @strawberry.field(
        description="The viewer's webhooks, newest first (at most 10 per user).", directives=[Auth()]
    )
    async def webhooks(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Webhook]:
        result = await webhooks.list_webhooks(info.context, page=PageRequest(first, after))
        return connection(result.page, Webhook.from_record, result.count)

    @strawberry.field(description="Any object by its global ID (Relay). Another user's is NOT_FOUND.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        found = await nodes.get_node(info.context, global_id=id)
        if isinstance(found, TaskRecord):
            await _with_owner(info, found)
            return Task.from_model(found)
        if isinstance(found, NotificationRecord):
            return Notification.from_record(found)
        if isinstance(found, WebhookRecord):
            return Webhook.from_record(found)
        if isinstance(found, ProjectRecord):
            return Project.from_record(found)
        if isinstance(found, InvitationRecord):
            return ProjectInvitation.from_record(found)
        if isinstance(found, CommentRecord):
            return Comment.from_record(found)
        return User.from_model(found)

    @strawberry.field(
        description="A task by ID. One the viewer may not see is NOT_FOUND.", directives=[Auth()]
    )
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        found = await tasks.get_task(info.context, task_id=typed_key(id, "Task"))
        await _with_owner(info, found)
        return Task.from_model(found)

    @strawberry.field(
        description="Tasks: the viewer's own and their projects', or every user's for an admin. Page with "
        "first/after or last/before (1 to 100, default 20).",
        directives=[Auth(), PRIVATE],
    )
    async def tasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: TaskFilter | None = None,
        order_by: TaskOrder | None = None,
    ) -> Connection[Task]:
        return await task_connection(
            info, owner_id=None, first=first, after=after, last=last, before=before,
            filter=filter, order_by=order_by,
        )  # fmt: skip

    @strawberry.field(
        description="Task statistics: the viewer's own; for an admin, everyone's or one owner's (ownerId); "
        "a project's (projectId) for its members.",
        directives=[Auth()],
    )
    async def task_stats(
        self, info: Info, owner_id: strawberry.ID | None = None, project_id: strawberry.ID | None = None
    ) -> TaskStats:
        if project_id is not None:
            if owner_id is not None:
                raise BadUserInput(
                    "projectId: pass either ownerId or projectId, not both.", field="projectId"
                )
            project = typed_key(project_id, "Project", field="projectId")
            data = await stats.project_task_stats(info.context, project_id=project)
            return TaskStats.from_data(data)
        owner = user_key(owner_id, field="ownerId") if owner_id is not None else None
        return TaskStats.from_data(await stats.task_stats(info.context, owner_id=owner))

    @strawberry.field(
        description="The viewer's projects, newest first (an admin's: every project); 1 to 100 a page, "
        "default 20.",
        directives=[Auth(), PRIVATE],
    )
    async def projects(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: ProjectFilter | None = None,
    ) -> Connection[Project]:
        result = await projects.list_projects(
            info.context, page=PageRequest(first, after), filters=given(filter) if filter else {}
        )
        return connection(result.page, Project.from_record, result.count)

    @strawberry.field(
        description="The pending invitations to the viewer's address, newest first (at most 100).",
        directives=[Auth()],
    )
    async def my_invitations(self, info: Info) -> list[ProjectInvitation]:
        return [
            ProjectInvitation.from_record(record) for record in await projects.my_invitations(info.context)
        ]

    @strawberry.field(
        description="Every user (admins only), oldest first.",
        directives=[Auth(requires=Role.ADMIN), PRIVATE],
    )
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[User]:
        result = await users.list_users(
            info.context,
            page=PageRequest(first, after, last, before),
            filters=given(filter) if filter else {},
        )
        return connection(result.page, User.from_model, result.count)

    @strawberry.field(
        description="The viewer's points budget (the client address's, without a token), without spending "
        "any of it: an operation that selects only rateLimit costs 0. Null when rate limits are off."
    )
    async def rate_limit(self, info: Info) -> RateLimit | None:
        charge = await budget.rate_limit(info.context)
        return RateLimit.from_charge(charge) if charge is not None else None


async def _with_owner(info: Info, task: TaskRecord) -> None:
    """A task's owner loaded before the task completes when the query selects it (the statement Task.owner
    would send), so that the task's plan answers it without awaiting, as a list's rows do."""
    if selects(info, "owner"):
        await prefetch(info.context.loaders.users, (task.owner_id,))
