"""考核: rollup_kaohe, the monthly measures per village-day and unit (village, tier, first
holder, department). The next refresh rebuilds every rollup from the cases to fill it.

Revision ID: 0016_kaohe
Revises: 0015_away
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_kaohe"
down_revision = "0015_away"
branch_labels = None
depends_on = None

PATH = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")
COUNTERS = ("received", "merged", "judged", "signed", "closed", "closed_on_time", "resolved",
            "redone", "rated", "satisfied", "rating_sum", "overdue")


def _rebuild() -> None:
    op.execute(sa.text("UPDATE rollup_state SET rebuild = :t").bindparams(t=True))


def upgrade() -> None:
    op.create_table(
        "rollup_kaohe",
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("village_path", PATH, nullable=False),
        *[sa.Column(k, sa.Integer(), nullable=False) for k in COUNTERS],
        sa.ForeignKeyConstraint(["village_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("village_id", "day", "kind", "unit_id", "role"))
    # Covering: a month's rows of one kind are read from the index alone.
    op.create_index("ix_rollup_kaohe_kind_day_path", "rollup_kaohe",
                    ["kind", "day", "village_path", "unit_id", "role", *COUNTERS])
    _rebuild()


def downgrade() -> None:
    op.drop_index("ix_rollup_kaohe_kind_day_path", table_name="rollup_kaohe")
    op.drop_table("rollup_kaohe")
    _rebuild()
