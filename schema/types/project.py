"""Projects, their members and invitations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from core.ids import encode_id
from models import ProjectRecord, ProjectRole
from resolvers import projects, stats
from resolvers.pagination import PageRequest
from resolvers.projects import InvitationRecord, MemberRecord
from resolvers.visibility import project_role
from schema.directives.cache_control import PRIVATE
from schema.info import Info
from schema.types.connections import Connection, connection
from schema.types.inputs import UNSET, TaskFilter, TaskOrder
from schema.types.node import Node
from schema.types.stats import TaskStats
from schema.types.task import Task, task_connection
from schema.types.user import User, user_by_id

if TYPE_CHECKING:
    pass


@strawberry.type(description="A shared project: its tasks are every member's.", directives=[PRIVATE])
class Project(Node):
    name: str = strawberry.field(description="1 to 200 characters.")
    description: str | None = strawberry.field(description="At most 10,000 characters.")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When its name or description last changed.")
    key: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The viewer's role; null for an admin who is not a member.")
    async def viewer_role(self, info: Info) -> ProjectRole | None:
        viewer = info.context.require_viewer()
        return await project_role(info.context, viewer, self.key)

    @strawberry.field(description="The members, earliest first (1 to 100 a page, default 20).")
    async def members(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ProjectMember]:
        result = await projects.list_members(
            info.context, project_id=self.key, page=PageRequest(first, after)
        )
        return connection(result.page, ProjectMember.from_record, result.count)

    @strawberry.field(
        description="Pending invitations, newest first (1 to 100 a page, default 20): the OWNER's (and "
        "admins') alone; FORBIDDEN for other members."
    )
    async def invitations(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ProjectInvitation]:
        result = await projects.list_invitations(
            info.context, project_id=self.key, page=PageRequest(first, after)
        )
        return connection(result.page, ProjectInvitation.from_record, result.count)

    @strawberry.field(description="The project's tasks, newest first unless ordered otherwise.")
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
            filter=filter, order_by=order_by, project_id=self.key,
        )  # fmt: skip

    @strawberry.field(description="Statistics over the project's tasks.")
    async def task_stats(self, info: Info) -> TaskStats:
        return TaskStats.from_data(await stats.project_task_stats(info.context, project_id=self.key))

    @classmethod
    def from_record(cls, record: ProjectRecord) -> Project:
        return cls(
            id=strawberry.ID(encode_id("Project", record.id)),
            name=record.name,
            description=record.description,
            created_at=record.created_at,
            updated_at=record.updated_at,
            key=record.id,
        )


@strawberry.type(description="A member of a project.", directives=[PRIVATE])
class ProjectMember:
    role: ProjectRole = strawberry.field(description="What the member may do.")
    added_at: datetime = strawberry.field(description="When they joined.")
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The member (id and name; the email for the project's OWNER).")
    async def user(self, info: Info) -> User:
        user = await user_by_id(info.context, self.user_id)
        assert user is not None, "a member exists (foreign key)"
        return user

    @classmethod
    def from_record(cls, record: MemberRecord) -> ProjectMember:
        return cls(role=record.role, added_at=record.added_at, user_id=record.user_id)


@strawberry.type(
    description="An invitation to a project, pending until accepted, declined, revoked or expired (7 days). "
    "Seen by the project's OWNER, the invited address's account, and admins.",
    directives=[PRIVATE],
)
class ProjectInvitation(Node):
    email: str = strawberry.field(description="The invited address.")
    role: ProjectRole = strawberry.field(description="The role it grants.")
    created_at: datetime = strawberry.field(description="When it was sent (or last renewed).")
    expires_at: datetime = strawberry.field(description="After this it can no longer be accepted.")
    project_id: strawberry.Private[uuid.UUID]
    invited_by_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The project (its name and description, for the invitee).")
    async def project(self, info: Info) -> Project:
        return Project.from_record(await projects.invitation_project(info.context, self.project_id))

    @strawberry.field(description="Who invited; null if their account is gone.")
    async def invited_by(self, info: Info) -> User | None:
        return await user_by_id(info.context, self.invited_by_id)

    @classmethod
    def from_record(cls, record: InvitationRecord) -> ProjectInvitation:
        return cls(
            id=strawberry.ID(encode_id("ProjectInvitation", record.id)),
            email=record.email,
            role=record.role,
            created_at=record.created_at,
            expires_at=record.expires_at,
            project_id=record.project_id,
            invited_by_id=record.invited_by_id,
        )


@strawberry.input(description="A new project; you become its OWNER.")
class CreateProjectInput:
    name: str = strawberry.field(description="1 to 200 characters.")
    description: str | None = strawberry.field(default=UNSET, description="At most 10,000 characters.")


@strawberry.input(description="Changes to a project: only the fields given change.")
class UpdateProjectInput:
    name: str | None = strawberry.field(default=UNSET, description="1 to 200 characters.")
    description: str | None = strawberry.field(
        default=UNSET, description="At most 10,000 characters, or null."
    )


@strawberry.input(description="Narrows the project list.")
class ProjectFilter:
    role: ProjectRole | None = strawberry.field(
        default=UNSET, description="Only those where you have this role."
    )
    search: str | None = strawberry.field(
        default=UNSET, description="The name contains this text (any case)."
    )
