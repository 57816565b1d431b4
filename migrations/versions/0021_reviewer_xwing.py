"""protocol v2: a console account's X-Wing key pair next to its X25519 one

Revision ID: reviewer_xwing
Revises: timing_outbox
Create Date: 2026-12-01

All three columns stay empty for existing accounts: only the account's browser can make the
pair (the seed is wrapped with the password's kek), which it does at the next sign-in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'reviewer_xwing'
down_revision = 'timing_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs and an index: batch mode would recreate a table others point at.
    op.add_column('users', sa.Column('xwing_public_key', sa.LargeBinary(length=1216),
                                     nullable=True))
    op.add_column('users', sa.Column('xwing_key_id', sa.String(length=32), nullable=True))
    op.add_column('users', sa.Column('wrapped_xwing_seed', sa.LargeBinary(length=64),
                                     nullable=True))
    op.create_index('ix_users_xwing_key_id', 'users', ['xwing_key_id'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_users_xwing_key_id', table_name='users')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('wrapped_xwing_seed')
        batch_op.drop_column('xwing_key_id')
        batch_op.drop_column('xwing_public_key')
