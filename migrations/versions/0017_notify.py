"""staff notifications: outbox, preferences, installation defaults, webhooks, deadlines

Revision ID: notify
Revises: loop_integrity
Create Date: 2026-12-01

New tables only; existing accounts start with no notification address (nothing is sent
until a person chooses how to be told). The defaults row is created with every kind on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = 'notify'
down_revision = 'loop_integrity'
branch_labels = None
depends_on = None

ALL_KINDS = "new_case reporter_activity reward_approval claim_to_pay deadline_soon deadline_passed"


def upgrade() -> None:
    op.create_table('notify_webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_webhooks'))
    )
    op.create_table('notify_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('due_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_until', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notify_outbox_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_outbox'))
    )
    with op.batch_alter_table('notify_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_notify_outbox_state_due', ['state', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_outbox_user_id'), ['user_id'], unique=False)
    op.create_table('notify_preferences',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=True),
    sa.Column('kinds', sa.String(length=200), nullable=True),
    sa.Column('digest', sa.Boolean(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notify_preferences_user_id_users')),
    sa.ForeignKeyConstraint(['webhook_id'], ['notify_webhooks.id'], name=op.f('fk_notify_preferences_webhook_id_notify_webhooks')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notify_preferences'))
    )
    op.create_table('notify_defaults',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kinds', sa.String(length=200), nullable=False),
    sa.Column('digest', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_defaults'))
    )
    op.create_table('notify_deadlines',
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('which', sa.String(length=16), nullable=False),
    sa.Column('due_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'which', 'due_at', name=op.f('pk_notify_deadlines'))
    )
    op.bulk_insert(sa.table('notify_defaults', sa.column('id', sa.Integer()),
                            sa.column('kinds', sa.String()), sa.column('digest', sa.Boolean())),
                   [{'id': 1, 'kinds': ALL_KINDS, 'digest': False}])


def downgrade() -> None:
    op.drop_table('notify_deadlines')
    op.drop_table('notify_defaults')
    op.drop_table('notify_preferences')
    with op.batch_alter_table('notify_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_outbox_user_id'))
        batch_op.drop_index('ix_notify_outbox_state_due')
    op.drop_table('notify_outbox')
    op.drop_table('notify_webhooks')
