"""privacy: the case event log lets purge replace a note with the placeholder, nothing else

`linzhang purge` anonymises old closed cases; their events' notes hold the residents' and
leaders' words. The log stays append-only: the one update allowed sets a non-NULL note to
core.privacy.PLACEHOLDER and leaves every other column as it was. Deletes stay refused.

Revision ID: 0008_privacy
Revises: 0007
"""

from alembic import op

revision = "0008_privacy"
down_revision = "0007"
branch_labels = None
depends_on = None

# core.privacy.PLACEHOLDER, spelled out: a migration must not change when that module does.
PLACEHOLDER = "（已匿名化）"
# Every column but note; a column added later must be added here (or the update is refused).
_KEPT = ("id", "case_id", "at", "actor_id", "kind", "from_state", "to_state", "role",
         "holder_id", "via", "detail")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # to_jsonb(row) - 'note': every other column, whatever columns the table grows later.
        op.execute(f"""
            CREATE OR REPLACE FUNCTION case_event_append_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND OLD.note IS NOT NULL AND NEW.note = '{PLACEHOLDER}'
                   AND (to_jsonb(NEW) - 'note') = (to_jsonb(OLD) - 'note') THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'case_event is append-only';
            END;
            $$ LANGUAGE plpgsql
        """)
        return
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _KEPT)
    op.execute("DROP TRIGGER IF EXISTS case_event_no_update")
    op.execute(f"""
        CREATE TRIGGER case_event_no_update BEFORE UPDATE ON case_event
        WHEN NOT (OLD.note IS NOT NULL AND NEW.note IS '{PLACEHOLDER}' AND {same})
        BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE OR REPLACE FUNCTION case_event_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'case_event is append-only';
            END;
            $$ LANGUAGE plpgsql
        """)
        return
    op.execute("DROP TRIGGER IF EXISTS case_event_no_update")
    op.execute("""
        CREATE TRIGGER case_event_no_update BEFORE UPDATE ON case_event
        BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END
    """)
