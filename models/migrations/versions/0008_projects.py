"""projects: members, invitations, comments, activity history; tasks gain a project and an assignee

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 23:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_KINDS = ('PROJECT_INVITATION', 'TASK_ASSIGNED', 'MENTIONED')
OLD_KINDS = ('TASK_DUE_SOON', 'TASK_OVERDUE_DIGEST', 'WEBHOOK_DISABLED')
ROLE = postgresql.ENUM('OWNER', 'EDITOR', 'VIEWER', name='project_role', create_type=False)


def upgrade() -> None:
    for kind in NEW_KINDS:
        # Allowed in a transaction since PostgreSQL 12, as long as this transaction does not use the value.
        op.execute(f"ALTER TYPE notification_kind ADD VALUE IF NOT EXISTS '{kind}'")
    ROLE.create(op.get_bind(), checkfirst=False)
    op.create_table('projects',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('projects_created_at_id_idx', 'projects', ['created_at', 'id'], unique=False)
    op.create_table('project_members',
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', ROLE, server_default='VIEWER', nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id')
    )
    op.create_index('project_members_user_id_idx', 'project_members', ['user_id', 'project_id'], unique=False)
    op.create_index('project_members_one_owner_key', 'project_members', ['project_id'], unique=True, postgresql_where=sa.text("role = 'OWNER'"))
    op.create_table('project_invitations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('role', ROLE, server_default='VIEWER', nullable=False),
    sa.Column('invited_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'email', name='project_invitations_project_id_email_key')
    )
    op.create_index('project_invitations_email_idx', 'project_invitations', ['email'], unique=False)
    op.add_column('tasks', sa.Column('project_id', sa.Uuid(), nullable=True))
    op.add_column('tasks', sa.Column('assignee_id', sa.Uuid(), nullable=True))
    op.create_foreign_key('tasks_project_id_fkey', 'tasks', 'projects', ['project_id'], ['id'], ondelete='CASCADE')
    op.create_foreign_key('tasks_assignee_id_fkey', 'tasks', 'users', ['assignee_id'], ['id'], ondelete='SET NULL')
    op.create_index('tasks_project_created_at_idx', 'tasks', ['project_id', 'created_at', 'id'], unique=False)
    op.create_index('tasks_project_stats_idx', 'tasks', ['project_id', 'status', 'priority', 'due_at'], unique=False)
    op.create_index('tasks_assignee_idx', 'tasks', ['assignee_id'], unique=False)
    # An owner's statistics count only the tasks they still see: the index keeps serving them alone.
    op.drop_index('tasks_owner_stats_idx', table_name='tasks')
    op.create_index('tasks_owner_stats_idx', 'tasks', ['owner_id', 'status', 'priority', 'due_at'], unique=False, postgresql_include=['project_id'])
    op.create_table('comments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('comments_task_id_created_at_idx', 'comments', ['task_id', 'created_at', 'id'], unique=False)
    op.create_table('task_activity',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index('task_activity_task_id_seq_idx', 'task_activity', ['task_id', 'seq'], unique=False)
    # History is never edited: an UPDATE is refused by the database itself (deleting a task or an actor's
    # account still removes or anonymizes rows through the foreign keys' ON DELETE).
    op.execute(
        """
CREATE FUNCTION task_activity_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL AND OLD.actor_id IS NOT NULL
       AND (NEW.id, NEW.seq, NEW.task_id, NEW.at, NEW.kind, NEW.changes)
           IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.task_id, OLD.at, OLD.kind, OLD.changes) THEN
        RETURN NEW;  -- the actor's account was deleted (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION 'task_activity is append-only';
END $$"""
    )
    op.execute(
        "CREATE TRIGGER task_activity_append_only BEFORE UPDATE ON task_activity "
        "FOR EACH ROW EXECUTE FUNCTION task_activity_is_append_only()"
    )


def downgrade() -> None:
    op.execute('DROP TRIGGER task_activity_append_only ON task_activity')
    op.execute('DROP FUNCTION task_activity_is_append_only()')
    op.drop_index('task_activity_task_id_seq_idx', table_name='task_activity')
    op.drop_table('task_activity')
    op.drop_index('comments_task_id_created_at_idx', table_name='comments')
    op.drop_table('comments')
    # A project's tasks go back to their owners' personal lists (the data stays; only sharing goes).
    op.drop_index('tasks_owner_stats_idx', table_name='tasks')
    op.create_index('tasks_owner_stats_idx', 'tasks', ['owner_id', 'status', 'priority', 'due_at'], unique=False)
    op.drop_index('tasks_assignee_idx', table_name='tasks')
    op.drop_index('tasks_project_stats_idx', table_name='tasks')
    op.drop_index('tasks_project_created_at_idx', table_name='tasks')
    op.drop_constraint('tasks_assignee_id_fkey', 'tasks', type_='foreignkey')
    op.drop_constraint('tasks_project_id_fkey', 'tasks', type_='foreignkey')
    op.drop_column('tasks', 'assignee_id')
    op.drop_column('tasks', 'project_id')
    op.drop_index('project_invitations_email_idx', table_name='project_invitations')
    op.drop_table('project_invitations')
    op.drop_index('project_members_one_owner_key', table_name='project_members', postgresql_where=sa.text("role = 'OWNER'"))
    op.drop_index('project_members_user_id_idx', table_name='project_members')
    op.drop_table('project_members')
    op.drop_index('projects_created_at_id_idx', table_name='projects')
    op.drop_table('projects')
    ROLE.drop(op.get_bind(), checkfirst=False)
    # PostgreSQL cannot drop an enum's value: the type is made again without the new kinds, whose
    # notifications go (they speak of projects that are gone).
    kinds = ", ".join(f"'{kind}'" for kind in NEW_KINDS)
    op.execute(f"DELETE FROM notifications WHERE kind IN ({kinds})")
    op.execute("ALTER TABLE notifications ALTER COLUMN kind DROP DEFAULT")
    op.execute("ALTER TYPE notification_kind RENAME TO notification_kind_old")
    old = ", ".join(f"'{kind}'" for kind in OLD_KINDS)
    op.execute(f"CREATE TYPE notification_kind AS ENUM ({old})")
    op.execute(
        "ALTER TABLE notifications ALTER COLUMN kind TYPE notification_kind USING kind::text::notification_kind"
    )
    op.execute("ALTER TABLE notifications ALTER COLUMN kind SET DEFAULT 'TASK_DUE_SOON'")
    op.execute("DROP TYPE notification_kind_old")
