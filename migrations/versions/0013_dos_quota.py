"""sign-in failure counters, follow-up session quotas, aggregated anonymous refusals

Revision ID: dos_quota
Revises: recipients
Create Date: 2026-12-01

Existing pauses (users.throttled_until) stop counting: sign-in no longer pauses an account,
it asks for a dearer proof-of-work stamp instead. The columns stay for older readers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = 'dos_quota'
down_revision = 'recipients'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sign_in_failures',
    sa.Column('name_hash', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('last_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name_hash', name=op.f('pk_sign_in_failures'))
    )
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_failures_last_at'), ['last_at'],
                              unique=False)

    op.create_table('followup_quotas',
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('expires_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_hash', name=op.f('pk_followup_quotas'))
    )
    with op.batch_alter_table('followup_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_quotas_expires_at'), ['expires_at'],
                              unique=False)

    op.create_table('refusal_counts',
    sa.Column('bucket', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'kind', name=op.f('pk_refusal_counts'))
    )
    # Accounts paused by the old throttle are free again: the pause is gone as a policy.
    op.execute(sa.text("UPDATE users SET throttled_until = NULL, failed_logins = 0"))


def downgrade() -> None:
    op.drop_table('refusal_counts')
    with op.batch_alter_table('followup_quotas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_quotas_expires_at'))
    op.drop_table('followup_quotas')
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_failures_last_at'))
    op.drop_table('sign_in_failures')
