"""Who sent each inbound update, so that a person's messages of the last minute can be counted
across every worker (flood control, bot/flows/flood.py).

Revision ID: 0008_flood
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_flood"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_id", sa.String(128), nullable=True))
        batch_op.create_index("ix_inbound_sender_time", ["platform", "sender_id", "received_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_sender_time")
        batch_op.drop_column("sender_id")
