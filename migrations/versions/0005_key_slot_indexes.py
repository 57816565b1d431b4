"""key slot indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('key_slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_slots_key_id'), ['key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_slots_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('key_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_slots_user_id'))
        batch_op.drop_index(batch_op.f('ix_key_slots_key_id'))

