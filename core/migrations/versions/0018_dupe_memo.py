"""A case keeps the likely originals its first card found (可能重复), so refreshing its card
on each escalation does not search its 组 again.

Revision ID: 0018_dupe_memo
Revises: 0017_hooks
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_dupe_memo"
down_revision = "0017_hooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER on both engines: batch mode would copy the whole cases table on SQLite.
    op.add_column("cases", sa.Column("maybe_dupes", sa.String(length=80), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE cases DROP COLUMN maybe_dupes")
    else:
        op.drop_column("cases", "maybe_dupes")
