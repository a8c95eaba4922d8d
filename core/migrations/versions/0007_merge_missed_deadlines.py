"""Join the web, WeChat and dashboard branches; count missed deadlines on cases.

Revision ID: 0007
Revises: 0006_web, 0006_wechat, 0006_dashboard
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = ("0006_web", "0006_wechat", "0006_dashboard")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missed_deadlines", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.drop_index("ix_cases_state_path_deadline")
        batch_op.create_index("ix_cases_state_path_deadline",
                              ["state", "node_path", "deadline_at", "missed_deadlines"],
                              unique=False)
    # Cases already escalated by the sweep before this column existed count as overdue too.
    op.execute(
        "UPDATE cases SET missed_deadlines = 1 WHERE id IN (SELECT case_id FROM case_event"
        " WHERE kind IN ('escalated', 'overdue') AND actor_id IS NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_state_path_deadline")
        batch_op.create_index("ix_cases_state_path_deadline",
                              ["state", "node_path", "deadline_at"], unique=False)
        batch_op.drop_column("missed_deadlines")
