"""inbox sequence: each user's notifications numbered in commit order (the live inbox's cursor)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('notification_settings', sa.Column('last_notification_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
    op.add_column('notifications', sa.Column('seq', sa.BigInteger(), nullable=True))
    # The notifications already there, numbered in the order they were made.
    op.execute(
        "UPDATE notifications n SET seq = numbered.seq FROM ("
        " SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id) AS seq"
        " FROM notifications) numbered WHERE numbered.id = n.id"
    )
    op.alter_column('notifications', 'seq', nullable=False)
    op.create_index('notifications_user_id_seq_key', 'notifications', ['user_id', 'seq'], unique=True)
    # Every user with notifications gets a settings row (with the defaults) holding their last number.
    op.execute(
        "INSERT INTO notification_settings (user_id, last_notification_seq)"
        " SELECT user_id, max(seq) FROM notifications GROUP BY user_id"
        " ON CONFLICT (user_id) DO UPDATE SET last_notification_seq = excluded.last_notification_seq"
    )


def downgrade() -> None:
    op.drop_index('notifications_user_id_seq_key', table_name='notifications')
    op.drop_column('notifications', 'seq')
    op.drop_column('notification_settings', 'last_notification_seq')
