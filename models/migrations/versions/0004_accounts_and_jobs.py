"""accounts (verified email, session metadata, account tokens) and the job queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 17:00:00.000000

The job queue's tables are pgqueuer 1.6.0's own, frozen here as that version's `install` printed them
(models/migrations/pgqueuer-1.6.0.sql): a migration must build the same schema whichever pgqueuer is
installed when it runs. A later pgqueuer that changes them gets a migration of its own.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HERE = Path(__file__).resolve().parents[1]


def _script(name: str) -> None:
    # Several statements (and a plpgsql body) in one script: asyncpg runs those only without parameters,
    # through the simple query protocol, which op.execute does not use.
    connection = op.get_bind().connection.driver_connection
    assert connection is not None
    await_only(connection.execute((HERE / name).read_text()))


def upgrade() -> None:
    op.add_column('users', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        'auth_sessions',
        sa.Column('last_used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.add_column(
        'auth_sessions', sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
    )
    purpose = postgresql.ENUM('verify_email', 'reset_password', 'data_export', name='token_purpose')
    op.create_table('account_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', purpose, server_default='verify_email', nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('account_tokens_expires_at_idx', 'account_tokens', ['expires_at'], unique=False)
    op.create_index('account_tokens_user_id_purpose_idx', 'account_tokens', ['user_id', 'purpose'], unique=False)
    _script('pgqueuer-1.6.0.sql')


def downgrade() -> None:
    _script('pgqueuer-1.6.0-uninstall.sql')
    op.drop_index('account_tokens_user_id_purpose_idx', table_name='account_tokens')
    op.drop_index('account_tokens_expires_at_idx', table_name='account_tokens')
    op.drop_table('account_tokens')
    sa.Enum(name='token_purpose').drop(op.get_bind())
    op.drop_column('auth_sessions', 'user_agent')
    op.drop_column('auth_sessions', 'last_used_at')
    op.drop_column('users', 'email_verified_at')
