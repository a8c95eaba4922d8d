"""case_event (case_id, kind, at): the per-update "which case does this message extend" read is
bounded by the case's own events, not by every opened/added event ever written.

Revision ID: 0014_append
Revises: 0012_dispatch
"""

from alembic import op

revision = "0014_append"
down_revision = "0012_dispatch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_event_case_kind_at", "case_event", ["case_id", "kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_case_event_case_kind_at", table_name="case_event")
