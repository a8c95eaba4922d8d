"""WeCom button cards keep the `response_code` that `message/send` answered, so that other
copies of a card can be updated within 72 h (core/deliveries.py).

Revision ID: 0012_dispatch
Revises: 0013_figures
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_dispatch"
down_revision = "0013_figures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("response_code", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("response_code")
