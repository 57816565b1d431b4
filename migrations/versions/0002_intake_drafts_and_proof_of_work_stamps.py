"""intake drafts and proof-of-work stamps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('spent_stamps',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_spent_stamps'))
    )
    with op.batch_alter_table('spent_stamps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spent_stamps_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ready', sa.Boolean(), nullable=False))
        batch_op.add_column(sa.Column('upload_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('draft_expires_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_ready'), ['ready'], unique=False)

    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author', sa.String(length=16), nullable=False))
        batch_op.add_column(sa.Column('upload_expires_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_column('upload_expires_at')
        batch_op.drop_column('author')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_ready'))
        batch_op.drop_column('draft_expires_at')
        batch_op.drop_column('upload_token_hash')
        batch_op.drop_column('ready')

    with op.batch_alter_table('spent_stamps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spent_stamps_expires_at'))

    op.drop_table('spent_stamps')
