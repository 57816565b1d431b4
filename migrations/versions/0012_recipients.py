"""recipients follow roles; channel scope; every case carries an identity item

Revision ID: recipients
Revises: storage_probe
Create Date: 2026-12-01

- ``channel_scopes``: the channels whose plaintext records a user may see and act on, apart
  from receiving sealed reports. Existing recipient rows of accounts that may not receive
  (not a reviewer, deactivated, never enrolled) become scope rows and stop being recipients.
- ``invitations.scope``: the channels an invited account will have in scope. An open
  invitation that would have made a non-reviewer a recipient gives scope instead.
- Cases without an ``identity`` item get a stand-in of the same size as a small real one
  (random bytes the case key does not open), so the plaintext no longer tells which cases
  carry a reporter's identity (docs/PROTOCOL.md section 6.1).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = 'recipients'
down_revision = 'storage_probe'
branch_labels = None
depends_on = None

# A small identity item's wire length: 1 + 12 + 256 + 16 (docs/PROTOCOL.md section 6).
STAND_IN_BYTES = 285


def upgrade() -> None:
    op.create_table('channel_scopes',
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_scopes_channel_id_channels')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_channel_scopes_user_id_users')),
    sa.PrimaryKeyConstraint('channel_id', 'user_id', name=op.f('pk_channel_scopes'))
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=500), nullable=False,
                                      server_default=''))

    bind = op.get_bind()
    _recipients_to_scope(bind)
    _invitations_to_scope(bind)
    _identity_stand_ins(bind)


def _receives(roles: str, active: bool, confirmed: bool) -> bool:
    return bool(active) and bool(confirmed) and "reviewer" in (roles or "").split()


def _recipients_to_scope(bind: sa.engine.Connection) -> None:
    rows = bind.execute(sa.text(
        "SELECT r.channel_id, r.user_id, r.created_at, u.roles, u.active, u.totp_confirmed "
        "FROM channel_recipients r JOIN users u ON u.id = r.user_id")).all()
    for channel_id, user_id, created_at, roles, active, confirmed in rows:
        if _receives(roles, active, confirmed):
            continue
        bind.execute(sa.text(
            "INSERT INTO channel_scopes (channel_id, user_id, created_at) "
            "VALUES (:c, :u, :t)"), {"c": channel_id, "u": user_id, "t": created_at})
        bind.execute(sa.text(
            "DELETE FROM channel_recipients WHERE channel_id = :c AND user_id = :u"),
            {"c": channel_id, "u": user_id})


def _invitations_to_scope(bind: sa.engine.Connection) -> None:
    rows = bind.execute(sa.text(
        "SELECT id, roles, channel_id FROM invitations "
        "WHERE channel_id IS NOT NULL AND used_at IS NULL")).all()
    for invitation_id, roles, channel_id in rows:
        if "reviewer" in (roles or "").split():
            continue
        bind.execute(sa.text(
            "UPDATE invitations SET scope = :s, channel_id = NULL WHERE id = :i"),
            {"s": str(channel_id), "i": invitation_id})


def _identity_stand_ins(bind: sa.engine.Connection) -> None:
    cases = bind.execute(sa.text(
        "SELECT c.id, c.created_at FROM cases c WHERE NOT EXISTS ("
        "SELECT 1 FROM sealed_items i WHERE i.case_id = c.id AND i.kind = 'identity')")).all()
    items = sa.table('sealed_items', sa.column('id', sa.String), sa.column('case_id', sa.String),
                     sa.column('kind', sa.String), sa.column('author', sa.String),
                     sa.column('user_id', sa.Integer), sa.column('blob', sa.LargeBinary),
                     sa.column('created_at'),
                     sa.column('position', sa.Integer))
    for case_id, created_at in cases:
        # Where intake puts an identity: right after the report (position 1).
        bind.execute(sa.text(
            "UPDATE sealed_items SET position = position + 1 "
            "WHERE case_id = :c AND position >= 2"), {"c": case_id})
        bind.execute(items.insert().values(
            id=os.urandom(16).hex(), case_id=case_id, kind='identity', author='reporter',
            user_id=None, blob=b"\x01" + os.urandom(STAND_IN_BYTES - 1),
            created_at=created_at, position=2))


def downgrade() -> None:
    # Scope is dropped, never turned back into recipient rows (that would hand out keys);
    # stand-in identity items stay.
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_column('scope')
    op.drop_table('channel_scopes')
