"""Join the branches of issue 11 made side by side: chat identity proofs, and the nonces of
WeChat and WeCom callbacks.

Revision ID: 0011
Revises: 0010_identity, 0010_transport
"""

revision = "0011"
down_revision = ("0010_identity", "0010_transport")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
