"""rollup: daily per-village figures for towns and districts; refused dashboard sign-ins

Revision ID: 0008_rollup
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_rollup'
down_revision = '0007'
branch_labels = None
depends_on = None

PATH = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")
TS = sa.DateTime(timezone=True)


def _village_day(*extra: sa.Column) -> list:
    return [sa.Column('village_id', sa.Integer(), nullable=False),
            sa.Column('day', sa.Date(), nullable=False), *extra,
            sa.Column('village_path', PATH, nullable=False)]


def _ints(*names: str) -> list:
    return [sa.Column(n, sa.Integer(), nullable=False) for n in names]


def upgrade() -> None:
    op.create_table('rollup_day', *_village_day(), *_ints(
        'received', 'closed', 'rejected', 'merged', 'judged', 'on_time', 'late_replies',
        'to_close', 'rating_sum', 'rated'),
        sa.ForeignKeyConstraint(['village_id'], ['node.id']),
        sa.PrimaryKeyConstraint('village_id', 'day'))
    op.create_index('ix_rollup_day_day_path', 'rollup_day', ['day', 'village_path'])
    op.create_table('rollup_tier', *_village_day(sa.Column('role', sa.String(20),
                                                           nullable=False)),
                    *_ints('replied', 'on_time', 'timeouts', 'escalations'),
                    sa.ForeignKeyConstraint(['village_id'], ['node.id']),
                    sa.PrimaryKeyConstraint('village_id', 'day', 'role'))
    op.create_index('ix_rollup_tier_day_path', 'rollup_tier', [
        'day', 'village_path', 'role', 'replied', 'on_time', 'timeouts', 'escalations'])
    op.create_table('rollup_hist', *_village_day(
        sa.Column('kind', sa.String(8), nullable=False),
        sa.Column('bucket', sa.Integer(), nullable=False)), *_ints('n'),
        sa.ForeignKeyConstraint(['village_id'], ['node.id']),
        sa.PrimaryKeyConstraint('village_id', 'day', 'kind', 'bucket'))
    op.create_index('ix_rollup_hist_day_path', 'rollup_hist', [
        'day', 'village_path', 'kind', 'bucket', 'n'])
    op.create_table('rollup_rating', *_village_day(sa.Column('person_id', sa.Integer(),
                                                             nullable=False)),
                    *_ints('rated', 'rating_sum'),
                    sa.ForeignKeyConstraint(['village_id'], ['node.id']),
                    sa.ForeignKeyConstraint(['person_id'], ['person.id']),
                    sa.PrimaryKeyConstraint('village_id', 'day', 'person_id'))
    op.create_index('ix_rollup_rating_day_path', 'rollup_rating', [
        'day', 'village_path', 'person_id', 'rated', 'rating_sum'])
    op.create_table('rollup_dirty',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('node_path', PATH, nullable=False),
                    sa.Column('at', TS, nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_table('rollup_state',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('refreshed_at', TS, nullable=True),
                    sa.Column('rebuild', sa.Boolean(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_table('login_failure',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('key_hash', sa.String(64), nullable=False),
                    sa.Column('at', TS, nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_login_failure_key_at', 'login_failure', ['key_hash', 'at'])
    # Cases filed before this revision are counted by the first refresh, which rebuilds.
    op.execute("INSERT INTO rollup_state (id, rebuild) VALUES (1, true)")


def downgrade() -> None:
    for name in ('login_failure', 'rollup_state', 'rollup_dirty', 'rollup_rating', 'rollup_hist', 'rollup_tier',
                 'rollup_day'):
        op.drop_table(name)
