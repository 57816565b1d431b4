"""console accounts, sessions, audit log, triage fields, hazard criteria

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _seed_criteria() -> None:
    # The 2023 major-hazard criteria ship as seed data that admins may correct later.
    path = Path(__file__).resolve().parents[2] / "data" / "major-hazard-criteria-2023.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    table = sa.table("hazard_criteria", sa.column("article", sa.Integer),
                     sa.column("item_no", sa.Integer), sa.column("group", sa.String),
                     sa.column("scope", sa.String), sa.column("title", sa.Text),
                     sa.column("verified", sa.Boolean), sa.column("active", sa.Boolean))
    rows = [{"article": article["article"], "item_no": item["no"], "group": article["group"],
             "scope": article["scope"], "title": item["title"],
             "verified": bool(item.get("verified")), "active": True}
            for article in data["articles"] for item in article["items"]]
    op.bulk_insert(table, rows)


def upgrade() -> None:
    op.create_table('hazard_criteria',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article', sa.Integer(), nullable=False),
    sa.Column('item_no', sa.Integer(), nullable=False),
    sa.Column('group', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hazard_criteria')),
    sa.UniqueConstraint('article', 'item_no', name='uq_hazard_criteria_item')
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_log_hash')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_audit_log_prev_hash'))
    )
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('grade', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('criterion_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('category', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('enterprise', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('location', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('not_accepted_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('verification_result', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('duplicate_of', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('first_valid', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('accept_due_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('verify_due_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('verify_extended', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('verified_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('feedback_due_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_verify_due_at'), ['verify_due_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_cases_assigned_to_users'), 'users', ['assigned_to'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_cases_duplicate_of_cases'), 'cases', ['duplicate_of'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_cases_criterion_id_hazard_criteria'), 'hazard_criteria', ['criterion_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_confirmed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('throttled_until', service.domain.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', service.domain.models.UTCDateTime(timezone=True), nullable=True))


    _seed_criteria()


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('throttled_until')
        batch_op.drop_column('failed_logins')
        batch_op.drop_column('totp_confirmed')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cases_criterion_id_hazard_criteria'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_cases_duplicate_of_cases'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_cases_assigned_to_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_cases_verify_due_at'))
        batch_op.drop_column('feedback_due_at')
        batch_op.drop_column('verified_at')
        batch_op.drop_column('verify_extended')
        batch_op.drop_column('verify_due_at')
        batch_op.drop_column('accepted_at')
        batch_op.drop_column('accept_due_at')
        batch_op.drop_column('first_valid')
        batch_op.drop_column('duplicate_of')
        batch_op.drop_column('verification_result')
        batch_op.drop_column('not_accepted_reason')
        batch_op.drop_column('location')
        batch_op.drop_column('enterprise')
        batch_op.drop_column('category')
        batch_op.drop_column('criterion_id')
        batch_op.drop_column('grade')
        batch_op.drop_column('assigned_to')

    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))

    op.drop_table('console_sessions')
    op.drop_table('audit_log')
    op.drop_table('hazard_criteria')
