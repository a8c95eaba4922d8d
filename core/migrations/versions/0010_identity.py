"""How each chat account was bound (`chat_identity.proof`), person invites (one-time,
expiring, for one person) and the bind requests a 邻长 confirms.

Rows bound before proofs were recorded cannot all be told apart: a WeChat account of a person
with a phone number may have come from the old typed-number fallback, so it becomes
`legacy_phone` (acts as a resident only, no dashboard sign-in) until its owner redeems a person
invite. A person without a phone came by a 邻's poster (`invite`); the rest had a proof of
some kind on their platform (`legacy`).

Revision ID: 0010_identity
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_identity"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_identity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proof", sa.String(20), nullable=False,
                                      server_default="import"))
    op.execute("UPDATE chat_identity SET proof = CASE"
               " WHEN (SELECT p.phone FROM person p WHERE p.id = chat_identity.person_id)"
               "      IS NULL THEN 'invite'"
               " WHEN platform = 'wechat' THEN 'legacy_phone'"
               " ELSE 'legacy' END")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_invite_person_id", "person", ["person_id"], ["id"])
    op.create_table(
        "bind_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bind_request_sender", "bind_request", ["platform", "external_id"])
    op.create_index("ix_bind_request_person_id", "bind_request", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_bind_request_person_id", table_name="bind_request")
    op.drop_index("ix_bind_request_sender", table_name="bind_request")
    op.drop_table("bind_request")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_constraint("fk_invite_person_id", type_="foreignkey")
        batch_op.drop_column("used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("person_id")
    with op.batch_alter_table("chat_identity", schema=None) as batch_op:
        batch_op.drop_column("proof")
