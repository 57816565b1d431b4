"""storage probe: one row the readiness check rewrites

Revision ID: storage_probe
Revises: first_valid_decision
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'storage_probe'
down_revision = 'first_valid_decision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'storage_probe',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('writes', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_probe')),
    )
    op.bulk_insert(sa.table('storage_probe', sa.column('id', sa.Integer()),
                            sa.column('writes', sa.Integer())), [{'id': 1, 'writes': 0}])


def downgrade() -> None:
    op.drop_table('storage_probe')
