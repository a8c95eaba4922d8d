"""ops: a small shared state table for operational jobs (the stalled-sweep alert)

Revision ID: 0008_ops
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = "0008_ops"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_state",
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("ops_state")
