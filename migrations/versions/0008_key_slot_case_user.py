"""key slot lookup by case and holder

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('key_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_slots_case_id'))
        batch_op.drop_index(batch_op.f('ix_key_slots_key_id'))
        batch_op.drop_index(batch_op.f('ix_key_slots_user_id'))
        batch_op.create_index('ix_key_slots_case_user', ['case_id', 'user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('key_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_key_slots_case_user')
        batch_op.create_index(batch_op.f('ix_key_slots_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_slots_key_id'), ['key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_slots_case_id'), ['case_id'], unique=False)

