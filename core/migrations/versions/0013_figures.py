"""Figures: rollups of cases per category; ratings credited to the 邻长 who resolved the case.
Both need the rollups rebuilt once from the cases.

Revision ID: 0013_figures
Revises: 0013_map
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_figures"
down_revision = "0013_map"
branch_labels = None
depends_on = None

PATH = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")


def _rebuild() -> None:
    # rollup_rating now sums by the case's resolver and rollup_category is new: the next
    # refresh rebuilds every rollup from the cases.
    op.execute(sa.text("UPDATE rollup_state SET rebuild = :t").bindparams(t=True))


def upgrade() -> None:
    op.create_table(
        "rollup_category",
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("village_path", PATH, nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["village_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("village_id", "day", "category_id"))
    op.create_index("ix_rollup_category_day_path", "rollup_category",
                    ["day", "village_path", "category_id", "received", "closed"])
    _rebuild()


def downgrade() -> None:
    op.drop_index("ix_rollup_category_day_path", table_name="rollup_category")
    op.drop_table("rollup_category")
    _rebuild()
