"""Category policies: 大类/小类, time limits in working time, 需核查 and 直派 (FORMATS.md),
and the routing rules of the routing file.

Revision ID: 0014_policies
Revises: 0014_campaigns
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_policies"
down_revision = "0014_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.add_column(sa.Column("parent_name", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("answer_limit", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("handle_limit", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("verify", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("route_to", sa.String(length=20), nullable=True))
    op.create_table(
        "routing_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rule_id", sa.String(length=20), nullable=False, unique=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("route_to", sa.String(length=20), nullable=False),
        sa.Column("within_code", sa.String(length=40), nullable=True),
        sa.Column("hours", sa.String(length=11), nullable=True),
        sa.Column("inform", sa.String(length=100), nullable=True),
    )
    op.create_index("ix_routing_rule_category", "routing_rule", ["category"])


def downgrade() -> None:
    op.drop_index("ix_routing_rule_category", table_name="routing_rule")
    op.drop_table("routing_rule")
    with op.batch_alter_table("category") as batch:
        for name in ("route_to", "verify", "handle_limit", "answer_limit", "parent_name"):
            batch.drop_column(name)
