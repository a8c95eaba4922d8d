"""Duplicates: where a case is (its first location) and a coarse geo cell, indexed with the
state, so that open cases within 100 m are found without a table scan.

Revision ID: 0015_dupes
Revises: 0015_relay
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_dupes"
down_revision = "0015_relay"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("geo_cell", sa.BigInteger(), nullable=True))
    op.create_index("ix_cases_cell_state", "cases", ["geo_cell", "state"])


def downgrade() -> None:
    op.drop_index("ix_cases_cell_state", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("geo_cell")
        batch.drop_column("longitude")
        batch.drop_column("latitude")
