"""Notices (通知) with read receipts: the notice, its recipients, its events.

Revision ID: 0014_notices
Revises: 0014_append
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_notices"
down_revision = "0014_append"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("node.id"), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo", sa.String(length=200), nullable=True),
        sa.Column("document", sa.String(length=200), nullable=True),
        sa.Column("confirm", sa.Boolean(), nullable=False),
        sa.Column("deadline", TZ, nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("reping_at", TZ, nullable=True),
        sa.Column("repinged", sa.Boolean(), nullable=False),
        sa.Column("next_due_at", TZ, nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
    )
    op.create_index("ix_notice_node_id", "notice", ["node_id"])
    op.create_index("ix_notice_due", "notice", ["state", "next_due_at"])
    op.create_table(
        "notice_recipient",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notice.id"), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("node.id"), nullable=False),
        sa.Column("relay_households", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", TZ, nullable=True),
        sa.Column("confirmed_via", sa.String(length=16), nullable=True),
        sa.UniqueConstraint("notice_id", "person_id", name="uq_notice_recipient"),
    )
    op.create_index("ix_notice_recipient_person_id", "notice_recipient", ["person_id"])
    op.create_index("ix_notice_recipient_open", "notice_recipient",
                    ["notice_id", "confirmed_at"])
    op.create_table(
        "notice_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notice.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_notice_event_notice_id", "notice_event", ["notice_id"])


def downgrade() -> None:
    op.drop_table("notice_event")
    op.drop_table("notice_recipient")
    op.drop_table("notice")
