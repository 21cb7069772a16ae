"""outbox: the side effects of each write, recorded in its transaction

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("effects", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("position_ms", sa.BigInteger(), nullable=True),
        sa.Column("position_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "outbox_unpublished_idx", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_index(
        "outbox_position_idx",
        "outbox",
        ["position_ms", "position_seq"],
        postgresql_where=sa.text("position_ms IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("outbox_position_idx", table_name="outbox")
    op.drop_index("outbox_unpublished_idx", table_name="outbox")
    op.drop_table("outbox")
