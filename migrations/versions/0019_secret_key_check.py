"""installation.secret_key_check: one secret key for every instance

Revision ID: secret_key_check
Revises: pq_recovery
Create Date: 2026-12-01

Empty until the first instance after this migration starts; it then records a check value of
its secret key (service/domain/installation.py, pin_secret_key), and an instance started with
another key is refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'secret_key_check'
down_revision = 'pq_recovery'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('installation', sa.Column('secret_key_check', sa.String(length=64),
                                            nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('installation', schema=None) as batch_op:
        batch_op.drop_column('secret_key_check')
