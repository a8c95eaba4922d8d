"""wechat and wecom: shared access tokens, per-member send log

Revision ID: 0006_wechat
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = "0006_wechat"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("key", sa.String(length=120), primary_key=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lock_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "send_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_send_log_recipient_at", "send_log", ["platform", "recipient", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_send_log_recipient_at", table_name="send_log")
    op.drop_table("send_log")
    op.drop_table("api_token")
