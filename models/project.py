"""Shared projects: their members (each with a role), pending invitations, and what happens to a task:
its comments and its activity history."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.columns import enum_column, timestamp_column, utcnow
from models.enums import ProjectRole

INVITATION_DAYS = 7


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = (Index("projects_created_at_id_idx", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ProjectMember(SQLModel, table=True):
    """Who is in a project, and as what. Exactly one OWNER per project (a unique partial index)."""

    __tablename__ = "project_members"
    __table_args__ = (
        Index("project_members_user_id_idx", "user_id", "project_id"),
        Index(
            "project_members_one_owner_key",
            "project_id",
            unique=True,
            postgresql_where=text("role = 'OWNER'"),
        ),
    )

    project_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    user_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    role: ProjectRole = Field(sa_column=enum_column(ProjectRole, "project_role", ProjectRole.VIEWER))
    added_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ProjectInvitation(SQLModel, table=True):
    """An invitation to an email address, pending until accepted, declined, revoked (each deletes it) or
    expired. One per address and project: inviting again renews it."""

    __tablename__ = "project_invitations"
    __table_args__ = (
        UniqueConstraint("project_id", "email", name="project_invitations_project_id_email_key"),
        Index("project_invitations_email_idx", "email"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    )
    email: str = Field(max_length=254)
    role: ProjectRole = Field(sa_column=enum_column(ProjectRole, "project_role", ProjectRole.VIEWER))
    invited_by_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column(default_now=False))


class Comment(SQLModel, table=True):
    __tablename__ = "comments"
    __table_args__ = (Index("comments_task_id_created_at_idx", "task_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False))
    author_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class TaskActivity(SQLModel, table=True):
    """One change to a task, written in the change's transaction. Never updated: a trigger refuses it."""

    __tablename__ = "task_activity"
    __table_args__ = (Index("task_activity_task_id_seq_idx", "task_id", "seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True)
    )
    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    actor_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    kind: str = Field(max_length=32)
    changes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
