"""Signed callbacks' nonces, so that a WeChat or WeCom callback cannot be replayed with another
body (core/callback_nonces.py).

Revision ID: 0010_transport
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_transport"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callback_nonce",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("timestamp", sa.String(length=12), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "timestamp", "nonce"),
    )
    op.create_index("ix_callback_nonce_seen_at", "callback_nonce", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_callback_nonce_seen_at", table_name="callback_nonce")
    op.drop_table("callback_nonce")
