"""notifications: the in-app inbox and each user's notification settings

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 17:20:42.595895
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notification_settings',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('remind_before_minutes', sa.Integer(), server_default=sa.text('60'), nullable=False),
    sa.Column('channels', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{EMAIL,IN_APP}'::text[]"), nullable=False),
    sa.Column('daily_digest', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), server_default=sa.text("'UTC'"), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('notifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('TASK_DUE_SOON', 'TASK_OVERDUE_DIGEST', 'WEBHOOK_DISABLED', name='notification_kind'), server_default='TASK_DUE_SOON', nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=True),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'dedupe_key', name='notifications_user_id_dedupe_key_key')
    )
    op.create_index('notifications_unread_idx', 'notifications', ['user_id'], unique=False, postgresql_where=sa.text('read_at IS NULL'))
    op.create_index('notifications_user_id_created_at_idx', 'notifications', ['user_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('notifications_user_id_created_at_idx', table_name='notifications')
    op.drop_index('notifications_unread_idx', table_name='notifications', postgresql_where=sa.text('read_at IS NULL'))
    op.drop_table('notifications')
    op.drop_table('notification_settings')
    sa.Enum(name='notification_kind').drop(op.get_bind())
