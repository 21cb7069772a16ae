"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:24:36.845018
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sa.Enum('USER', 'ADMIN', name='user_role'), server_default='USER', nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('users_created_at_id_idx', 'users', ['created_at', 'id'], unique=False)
    op.create_index('users_email_lower_key', 'users', [sa.literal_column('lower(email)')], unique=True)
    op.create_table('auth_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('auth_sessions_user_id_idx', 'auth_sessions', ['user_id'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.Enum('TODO', 'IN_PROGRESS', 'DONE', name='task_status'), server_default='TODO', nullable=False),
    sa.Column('priority', sa.Enum('LOW', 'MEDIUM', 'HIGH', 'URGENT', name='task_priority'), server_default='MEDIUM', nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tags', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('search', postgresql.TSVECTOR(), sa.Computed("setweight(to_tsvector('simple'::regconfig, title), 'A') || setweight(to_tsvector('simple'::regconfig, coalesce(description, '')), 'B')", persisted=True), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('tasks_created_at_idx', 'tasks', ['created_at', 'id'], unique=False)
    op.create_index('tasks_due_at_idx', 'tasks', [sa.literal_column("coalesce(due_at, 'infinity'::timestamptz)"), 'id'], unique=False)
    op.create_index('tasks_owner_created_at_idx', 'tasks', ['owner_id', 'created_at', 'id'], unique=False)
    op.create_index('tasks_owner_due_at_idx', 'tasks', ['owner_id', sa.literal_column("coalesce(due_at, 'infinity'::timestamptz)"), 'id'], unique=False)
    op.create_index('tasks_owner_priority_idx', 'tasks', ['owner_id', 'priority', 'id'], unique=False)
    op.create_index('tasks_owner_stats_idx', 'tasks', ['owner_id', 'status', 'priority', 'due_at'], unique=False)
    op.create_index('tasks_owner_title_idx', 'tasks', ['owner_id', 'title', 'id'], unique=False)
    op.create_index('tasks_owner_updated_at_idx', 'tasks', ['owner_id', 'updated_at', 'id'], unique=False)
    op.create_index('tasks_priority_idx', 'tasks', ['priority', 'id'], unique=False)
    op.create_index('tasks_search_idx', 'tasks', ['search'], unique=False, postgresql_using='gin')
    op.create_index('tasks_tags_idx', 'tasks', ['tags'], unique=False, postgresql_using='gin')
    op.create_index('tasks_title_idx', 'tasks', ['title', 'id'], unique=False)
    op.create_index('tasks_updated_at_idx', 'tasks', ['updated_at', 'id'], unique=False)
    op.create_table('refresh_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['auth_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('refresh_tokens_session_id_idx', 'refresh_tokens', ['session_id'], unique=False)


def downgrade() -> None:
    op.drop_index('refresh_tokens_session_id_idx', table_name='refresh_tokens')
    op.drop_table('refresh_tokens')
    op.drop_index('tasks_updated_at_idx', table_name='tasks')
    op.drop_index('tasks_title_idx', table_name='tasks')
    op.drop_index('tasks_tags_idx', table_name='tasks', postgresql_using='gin')
    op.drop_index('tasks_search_idx', table_name='tasks', postgresql_using='gin')
    op.drop_index('tasks_priority_idx', table_name='tasks')
    op.drop_index('tasks_owner_updated_at_idx', table_name='tasks')
    op.drop_index('tasks_owner_title_idx', table_name='tasks')
    op.drop_index('tasks_owner_stats_idx', table_name='tasks')
    op.drop_index('tasks_owner_priority_idx', table_name='tasks')
    op.drop_index('tasks_owner_due_at_idx', table_name='tasks')
    op.drop_index('tasks_owner_created_at_idx', table_name='tasks')
    op.drop_index('tasks_due_at_idx', table_name='tasks')
    op.drop_index('tasks_created_at_idx', table_name='tasks')
    op.drop_table('tasks')
    op.drop_index('auth_sessions_user_id_idx', table_name='auth_sessions')
    op.drop_table('auth_sessions')
    op.drop_index('users_email_lower_key', table_name='users')
    op.drop_index('users_created_at_id_idx', table_name='users')
    op.drop_table('users')
    for enum_type in ('task_priority', 'task_status', 'user_role'):
        op.execute(f'DROP TYPE IF EXISTS {enum_type}')
