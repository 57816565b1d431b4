"""global no-JavaScript ceilings shared by every instance (rate_windows)

Revision ID: shared_limits
Revises: timing
Create Date: 2026-12-01

A new table only: existing installations start with every window unused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = 'shared_limits'
down_revision = 'timing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_windows',
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('window_start', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('purpose', 'window_start', name=op.f('pk_rate_windows'))
    )


def downgrade() -> None:
    op.drop_table('rate_windows')
