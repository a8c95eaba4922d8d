"""Open311 status webhooks: one per client system, its URL and signing secret.

Revision ID: 0017_hooks
Revises: 0016_open311
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_hooks"
down_revision = "0016_open311"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "open311_hook",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("open311_client.id"),
                  nullable=False, unique=True),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=80), nullable=False),
        sa.Column("scope_wide", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("disabled_at", _TS, nullable=True),
        sa.Column("disabled_why", sa.String(length=200), nullable=True),
        sa.Column("failing_since", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("open311_hook")
