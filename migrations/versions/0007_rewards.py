"""rewards: policy versions, reward records, claim key slots, exports

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reward_exports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('audit_entry', sa.Integer(), nullable=False),
    sa.Column('audit_head', sa.String(length=64), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('manifest', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_reward_exports_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_exports'))
    )
    with op.batch_alter_table('reward_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_exports_created_at'), ['created_at'], unique=False)

    op.create_table('reward_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title_zh', sa.String(length=200), nullable=False),
    sa.Column('title_en', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('claim_window_days', sa.Integer(), nullable=True),
    sa.Column('identity_required', sa.Boolean(), nullable=False),
    sa.Column('shipped', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_reward_policies_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_policies')),
    sa.UniqueConstraint('policy_id', 'version', name='uq_reward_policies_version')
    )
    op.create_table('reward_records',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('policy_row_id', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.String(length=64), nullable=False),
    sa.Column('policy_version', sa.Integer(), nullable=False),
    sa.Column('policy_digest', sa.String(length=64), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('calculation', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('proposed_by', sa.Integer(), nullable=False),
    sa.Column('proposed_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decided_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rejection_reason', sa.String(length=500), nullable=False),
    sa.Column('claim_due_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_hash', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_item_id', sa.String(length=32), nullable=True),
    sa.Column('claim_blob', sa.LargeBinary(), nullable=True),
    sa.Column('claim_sealed_on_server', sa.Boolean(), nullable=False),
    sa.Column('paid_by', sa.Integer(), nullable=True),
    sa.Column('paid_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('payment_reference', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_reward_records_case_id_cases')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_reward_records_channel_id_channels')),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_reward_records_decided_by_users')),
    sa.ForeignKeyConstraint(['paid_by'], ['users.id'], name=op.f('fk_reward_records_paid_by_users')),
    sa.ForeignKeyConstraint(['policy_row_id'], ['reward_policies.id'], name=op.f('fk_reward_records_policy_row_id_reward_policies')),
    sa.ForeignKeyConstraint(['proposed_by'], ['users.id'], name=op.f('fk_reward_records_proposed_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_records')),
    sa.UniqueConstraint('claim_hash', name=op.f('uq_reward_records_claim_hash'))
    )
    with op.batch_alter_table('reward_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_records_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_reward_records_channel', ['channel_id', 'proposed_at'], unique=False)
        batch_op.create_index('ix_reward_records_proposed', ['proposed_at', 'id'], unique=False)
        batch_op.create_index('ix_reward_records_status', ['status', 'proposed_at'], unique=False)

    op.create_table('reward_claim_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reward_id', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('suite', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('slot', sa.LargeBinary(length=256), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reward_id'], ['reward_records.id'], name=op.f('fk_reward_claim_slots_reward_id_reward_records')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_reward_claim_slots_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_claim_slots')),
    sa.UniqueConstraint('reward_id', 'key_id', name='uq_reward_claim_slots_key')
    )
    with op.batch_alter_table('reward_claim_slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_claim_slots_reward_id'), ['reward_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reward_claim_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_claim_slots_reward_id'))

    op.drop_table('reward_claim_slots')
    with op.batch_alter_table('reward_records', schema=None) as batch_op:
        batch_op.drop_index('ix_reward_records_status')
        batch_op.drop_index('ix_reward_records_proposed')
        batch_op.drop_index('ix_reward_records_channel')
        batch_op.drop_index(batch_op.f('ix_reward_records_case_id'))

    op.drop_table('reward_records')
    op.drop_table('reward_policies')
    with op.batch_alter_table('reward_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_exports_created_at'))

    op.drop_table('reward_exports')
