"""Ratings credited to the 邻长 who resolved the case: rebuild the rollups once.

Revision ID: 0013_figures
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_figures"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # rollup_rating now sums by the case's resolver, not its first holder: the stored rows
    # were computed the old way, so the next refresh rebuilds every rollup from the cases.
    op.execute(sa.text("UPDATE rollup_state SET rebuild = :t").bindparams(t=True))


def downgrade() -> None:
    op.execute(sa.text("UPDATE rollup_state SET rebuild = :t").bindparams(t=True))
