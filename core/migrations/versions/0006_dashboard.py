"""dashboard: login tokens, sessions, passwords, the map's count index

Revision ID: 0006_dashboard
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_dashboard'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_token',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_login_token_person_id'), 'login_token', ['person_id'], unique=False)
    op.create_table('dashboard_session',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.String(length=12), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_dashboard_session_person_id'), 'dashboard_session', ['person_id'], unique=False)
    op.create_table('password_credential',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=200), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['set_by'], ['person.id'], ),
    sa.PrimaryKeyConstraint('person_id')
    )
    op.create_index('ix_cases_state_path_deadline', 'cases', ['state', 'node_path', 'deadline_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cases_state_path_deadline', table_name='cases')
    op.drop_table('password_credential')
    op.drop_index(op.f('ix_dashboard_session_person_id'), table_name='dashboard_session')
    op.drop_table('dashboard_session')
    op.drop_index(op.f('ix_login_token_person_id'), table_name='login_token')
    op.drop_table('login_token')
