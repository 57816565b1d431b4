"""audit entries a reporter's action caused, held until their time bucket ends

Revision ID: audit_anchor
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = 'audit_anchor'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_deferred',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('release_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_deferred'))
    )
    with op.batch_alter_table('audit_deferred', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_deferred_release_at'), ['release_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_deferred', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_deferred_release_at'))
    op.drop_table('audit_deferred')
