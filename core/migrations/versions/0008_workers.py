"""Several workers: rate buckets shared by every process sending with one bot token.

Revision ID: 0008_workers
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_workers"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_bucket",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", "bucket"),
    )


def downgrade() -> None:
    op.drop_table("rate_bucket")
