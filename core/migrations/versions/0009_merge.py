"""Join the five branches made side by side: flood counting, operations, privacy, figure
rollups with sign-in failures, and the shared rate buckets of several workers.

Revision ID: 0009
Revises: 0008_flood, 0008_ops, 0008_privacy, 0008_rollup, 0008_workers
"""

revision = "0009"
down_revision = ("0008_flood", "0008_ops", "0008_privacy", "0008_rollup", "0008_workers")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
