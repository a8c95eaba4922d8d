"""Stand-ins (/away, /back) and canned replies (常用答复) of a category.

Revision ID: 0015_away
Revises: 0014_policies
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_away"
down_revision = "0015_dupes"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "away",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("stand_in_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("stand_in_role", sa.String(length=20), nullable=False),
        sa.Column("stand_in_node_id", sa.Integer(), sa.ForeignKey("node.id"), nullable=False),
        sa.Column("set_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("end_reason", sa.String(length=8), nullable=True),
    )
    op.create_index("ix_away_person_ended", "away", ["person_id", "ended_at"])
    op.create_index("ix_away_ended_ends", "away", ["ended_at", "ends_at"])
    if op.get_bind().dialect.name == "sqlite":
        # An inline REFERENCES keeps SQLite from copying the whole cases table (batch mode).
        op.execute("ALTER TABLE cases ADD COLUMN covering_for_id INTEGER REFERENCES person(id)")
    else:
        op.add_column("cases", sa.Column("covering_for_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_cases_covering_for", "cases", "person", ["covering_for_id"],
                              ["id"])
    with op.batch_alter_table("category") as batch:
        batch.add_column(sa.Column("canned", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.drop_column("canned")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE cases DROP COLUMN covering_for_id")
    else:
        op.drop_constraint("fk_cases_covering_for", "cases", type_="foreignkey")
        op.drop_column("cases", "covering_for_id")
    op.drop_index("ix_away_ended_ends", table_name="away")
    op.drop_index("ix_away_person_ended", table_name="away")
    op.drop_table("away")
