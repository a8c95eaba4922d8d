"""考核: rollup_kaohe, the monthly measures per village-month and unit (village, tier, first
holder, department); the next refresh rebuilds every rollup from the cases to fill it.
满意度测评: notice.survey and survey_answer (one resident's 1–5 for their 邻长 per survey).
ix_node_level_path: the towns or villages of a subtree for the rankings.

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
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("village_path", PATH, nullable=False),
        *[sa.Column(k, sa.Integer(), nullable=False) for k in COUNTERS],
        sa.ForeignKeyConstraint(["village_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("village_id", "month", "kind", "unit_id", "role"))
    # Covering: a month's rows of one kind are read from the index alone.
    op.create_index("ix_rollup_kaohe_kind_month_path", "rollup_kaohe",
                    ["kind", "month", "village_path", "unit_id", "role", *COUNTERS])
    op.create_index("ix_node_level_path", "node", ["level", "path"])
    op.add_column("notice", sa.Column("survey", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "survey_answer",
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("leader_id", sa.Integer(), nullable=False),
        sa.Column("node_path", PATH, nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_survey_answer_score"),
        sa.ForeignKeyConstraint(["notice_id"], ["notice.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.ForeignKeyConstraint(["leader_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("notice_id", "person_id"))
    op.create_index("ix_survey_answer_leader", "survey_answer", ["leader_id", "notice_id"])
    _rebuild()


def downgrade() -> None:
    op.drop_index("ix_node_level_path", table_name="node")
    op.drop_index("ix_survey_answer_leader", table_name="survey_answer")
    op.drop_table("survey_answer")
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("survey")
    op.drop_index("ix_rollup_kaohe_kind_month_path", table_name="rollup_kaohe")
    op.drop_table("rollup_kaohe")
    _rebuild()
