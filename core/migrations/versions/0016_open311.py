"""Open311 client systems (hashed api_keys scoped to a subtree) and the requests they filed.

Revision ID: 0016_open311
Revises: 0016_kaohe
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_open311"
down_revision = "0016_kaohe"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
# Materialized paths compare byte-wise (core/hierarchy/model.py PathType, as of this revision).
_PATH = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "open311_client",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=60), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("scope_node_id", sa.Integer(), sa.ForeignKey("node.id"), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_table(
        "open311_request",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("open311_client.id"),
                  nullable=False),
        sa.Column("scope_path", _PATH, nullable=False),
        sa.Column("placed_by", sa.String(length=12), nullable=False),
        sa.Column("address_string", sa.String(length=300), nullable=True),
        sa.Column("address_id", sa.String(length=60), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("device_id", sa.String(length=100), nullable=True),
        sa.Column("account_id", sa.String(length=100), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("media_url", sa.String(length=500), nullable=True),
    )
    op.create_index("ix_open311_request_client_id", "open311_request", ["client_id"])
    op.create_index("ix_open311_request_scope", "open311_request", ["scope_path"])


def downgrade() -> None:
    op.drop_index("ix_open311_request_scope", table_name="open311_request")
    op.drop_index("ix_open311_request_client_id", table_name="open311_request")
    op.drop_table("open311_request")
    op.drop_table("open311_client")
