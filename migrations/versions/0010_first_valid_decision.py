"""first valid report: decided, not guessed

Adds the open-question flag and the reviewer's decision to cases. Existing duplicate groups
are not silently re-decided: a group whose first valid case is unverified, or whose first valid
case shares its time bucket with another report that counted as valid under the old rule (so
the random case id chose), is flagged for a reviewer's decision. first_valid is left as it was.

Revision ID: first_valid_decision
Revises: audit_anchor
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = 'first_valid_decision'
down_revision = 'audit_anchor'
branch_labels = None
depends_on = None

CONFIRMED = ('true', 'partly')


def upgrade() -> None:
    # Plain ADD COLUMNs: recreating `cases` on SQLite (batch mode) trips the foreign keys of
    # every table that points at it. The decider is a user id without a constraint for the
    # same reason; users are never deleted (only deactivated).
    op.add_column('cases', sa.Column('first_valid_open', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column('cases', sa.Column('first_valid_decided_by', sa.Integer(), nullable=True))
    op.add_column('cases', sa.Column('first_valid_reason', sa.Text(), nullable=True))
    conn = op.get_bind()
    cases = sa.table('cases', sa.column('id', sa.String), sa.column('duplicate_of', sa.String),
                     sa.column('created_at', sa.DateTime), sa.column('status', sa.String),
                     sa.column('verification_result', sa.String),
                     sa.column('first_valid', sa.Boolean),
                     sa.column('first_valid_open', sa.Boolean))
    rows = conn.execute(sa.select(cases.c.id, cases.c.duplicate_of, cases.c.created_at,
                                  cases.c.status, cases.c.verification_result,
                                  cases.c.first_valid)).all()
    by_id = {row.id: row for row in rows}
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        if row.duplicate_of is not None and row.duplicate_of in by_id:
            groups[row.duplicate_of].append(row)
    flagged: list[str] = []
    for root_id, children in groups.items():
        members = [by_id[root_id], *children]
        first = [m for m in members if m.first_valid]
        old_valid = [m for m in members
                     if m.status != 'not_accepted' and m.verification_result != 'false']
        unverified = any(m.verification_result not in CONFIRMED for m in first)
        tied = any(other.id != m.id and other.created_at == m.created_at
                   for m in first for other in old_valid)
        if unverified or tied:
            flagged.extend(m.id for m in members)
    if flagged:
        conn.execute(sa.update(cases).where(cases.c.id.in_(flagged))
                     .values(first_valid_open=True))


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('first_valid_reason')
        batch_op.drop_column('first_valid_decided_by')
        batch_op.drop_column('first_valid_open')
