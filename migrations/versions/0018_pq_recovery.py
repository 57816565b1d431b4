"""protocol v2: the recovery key's X-Wing part, and cases marked classical-only

Revision ID: pq_recovery
Revises: notify
Create Date: 2026-12-01

Both installation columns stay empty until `chuishao recovery add-pq` fills them (nothing can
be generated here: the secret must be shown to the operator). Every existing case has only v1
slots, so classical_only is true for all of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'pq_recovery'
down_revision = 'notify'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode would recreate tables other tables' foreign keys point at.
    op.add_column('installation', sa.Column('recovery_xwing_public_key',
                                            sa.LargeBinary(length=1216), nullable=True))
    op.add_column('installation', sa.Column('recovery_xwing_key_id', sa.String(length=32),
                                            nullable=True))
    op.add_column('cases', sa.Column('classical_only', sa.Boolean(), nullable=False,
                                     server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('classical_only')
    with op.batch_alter_table('installation', schema=None) as batch_op:
        batch_op.drop_column('recovery_xwing_key_id')
        batch_op.drop_column('recovery_xwing_public_key')
