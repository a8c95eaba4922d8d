"""web chat: browser sessions, the chat log the page reads, one-time phone codes

Revision ID: 0006_web
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_web'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('chat_id', sa.String(length=128), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_web_session_chat_id', 'web_session', ['chat_id'], unique=False)
    op.create_table(
        'web_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('chat_id', sa.String(length=128), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('actions', sa.JSON(), nullable=False),
        sa.Column('options', sa.JSON(), nullable=True),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('edit_of', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('chat_id', 'client_id', name='uq_web_message_client'),
    )
    op.create_index('ix_web_message_chat', 'web_message', ['chat_id', 'id'], unique=False)
    op.create_table(
        'web_phone_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('chat_id', sa.String(length=128), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('used', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_web_phone_code_chat_id', 'web_phone_code', ['chat_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_web_phone_code_chat_id', table_name='web_phone_code')
    op.drop_table('web_phone_code')
    op.drop_index('ix_web_message_chat', table_name='web_message')
    op.drop_table('web_message')
    op.drop_index('ix_web_session_chat_id', table_name='web_session')
    op.drop_table('web_session')
