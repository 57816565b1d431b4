"""on-the-spot rectification (当场整改) and the rectification deadline of a case

Records say whether the hazard was removed on the spot and on which day. A case being
rectified carries the end of the earliest deadline day of its unfinished records (UTC), so
the case list sorts and flags it like any other deadline.

Revision ID: loop_integrity
Revises: shared_limits
Create Date: 2026-12-01

Existing records were all handled with the five guarantees: on_the_spot is false for them;
the deadline of existing rectifying cases is computed from their records in the installation's
time zone (CHUISHAO_TIME_ZONE, default Asia/Shanghai).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

import service.domain.models
from service.platform import localtime

revision = 'loop_integrity'
down_revision = 'shared_limits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: recreating these tables on SQLite (batch mode) trips the foreign
    # keys that point at them.
    op.add_column('rectifications', sa.Column('on_the_spot', sa.Boolean(), nullable=False,
                                              server_default=sa.false()))
    op.add_column('rectifications', sa.Column('fixed_on', sa.Date(), nullable=True))
    op.add_column('cases', sa.Column('rectification_due_at',
                                     service.domain.models.UTCDateTime(timezone=True), nullable=True))
    _backfill()


def _backfill() -> None:
    zone = localtime.zone()  # installed from the settings by the command that migrates
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT rc.case_id, MIN(r.deadline) FROM rectification_cases rc "
        "JOIN rectifications r ON r.id = rc.rectification_id "
        "JOIN cases c ON c.id = rc.case_id "
        "WHERE c.status = 'rectifying' AND r.deadline IS NOT NULL "
        "AND r.state IN ('opened', 'in_progress', 'awaiting_acceptance') "
        "GROUP BY rc.case_id")).all()
    cases = sa.table('cases', sa.column('id', sa.String),
                     sa.column('rectification_due_at', service.domain.models.UTCDateTime()))
    for case_id, deadline in rows:
        day = deadline if isinstance(deadline, dt.date) else dt.date.fromisoformat(str(deadline))
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone) \
            - dt.timedelta(microseconds=1)
        bind.execute(cases.update().where(cases.c.id == case_id)
                     .values(rectification_due_at=end.astimezone(dt.UTC)))


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('rectification_due_at')
    with op.batch_alter_table('rectifications', schema=None) as batch_op:
        batch_op.drop_column('fixed_on')
        batch_op.drop_column('on_the_spot')
