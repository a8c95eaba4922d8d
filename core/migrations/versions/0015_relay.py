"""Notices ↔ campaigns: a campaign may be the relay of a notice (its residents without a chat,
reached through their 邻长), and a relay item may stand for one person without an address.

Revision ID: 0015_relay
Revises: 0014_policies
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_relay"
down_revision = "0014_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign") as b:
        b.add_column(sa.Column("notice_id", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_campaign_notice", "notice", ["notice_id"], ["id"])
        b.create_index("ix_campaign_notice_id", ["notice_id"])
    with op.batch_alter_table("campaign_item") as b:
        b.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_campaign_item_person", "person", ["person_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("campaign_item") as b:
        b.drop_constraint("fk_campaign_item_person", type_="foreignkey")
        b.drop_column("person_id")
    with op.batch_alter_table("campaign") as b:
        b.drop_index("ix_campaign_notice_id")
        b.drop_constraint("fk_campaign_notice", type_="foreignkey")
        b.drop_column("notice_id")
