"""rectification records: the five guarantees, linked cases, progress entries, evidence files

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.domain.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rectifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('location', sa.String(length=300), nullable=False),
    sa.Column('found_on', sa.Date(), nullable=False),
    sa.Column('risk_assessment', sa.Text(), nullable=False),
    sa.Column('responsible_unit', sa.String(length=200), nullable=False),
    sa.Column('responsible_person', sa.String(length=200), nullable=False),
    sa.Column('measures', sa.Text(), nullable=False),
    sa.Column('funds_fen', sa.BigInteger(), nullable=True),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('contingency_plan', sa.Text(), nullable=False),
    sa.Column('interim_measures', sa.Text(), nullable=False),
    sa.Column('work_stopped', sa.Boolean(), nullable=False),
    sa.Column('listed_supervision', sa.Boolean(), nullable=False),
    sa.Column('supervision_by', sa.String(length=200), nullable=False),
    sa.Column('opened_by', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_deadline', sa.Date(), nullable=True),
    sa.Column('explained_deadline', sa.Date(), nullable=True),
    sa.Column('accepted_by', sa.Integer(), nullable=True),
    sa.Column('accepted_on', sa.Date(), nullable=True),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.Column('closed_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('public_text', sa.Text(), nullable=True),
    sa.Column('published_by', sa.Integer(), nullable=True),
    sa.Column('published_at', service.domain.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['accepted_by'], ['users.id'], name=op.f('fk_rectifications_accepted_by_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_rectifications_case_id_cases')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_rectifications_channel_id_channels')),
    sa.ForeignKeyConstraint(['closed_by'], ['users.id'], name=op.f('fk_rectifications_closed_by_users')),
    sa.ForeignKeyConstraint(['opened_by'], ['users.id'], name=op.f('fk_rectifications_opened_by_users')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_rectifications_owner_id_users')),
    sa.ForeignKeyConstraint(['published_by'], ['users.id'], name=op.f('fk_rectifications_published_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rectifications'))
    )
    op.create_index(op.f('ix_rectifications_case_id'), 'rectifications', ['case_id'], unique=False)
    op.create_index('ix_rectifications_channel_found', 'rectifications', ['channel_id', 'found_on'], unique=False)
    op.create_index('ix_rectifications_channel_state', 'rectifications', ['channel_id', 'state'], unique=False)
    op.create_index(op.f('ix_rectifications_deadline'), 'rectifications', ['deadline'], unique=False)

    op.create_table('rectification_cases',
    sa.Column('rectification_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('linked_by', sa.Integer(), nullable=False),
    sa.Column('linked_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_rectification_cases_case_id_cases')),
    sa.ForeignKeyConstraint(['linked_by'], ['users.id'], name=op.f('fk_rectification_cases_linked_by_users')),
    sa.ForeignKeyConstraint(['rectification_id'], ['rectifications.id'], name=op.f('fk_rectification_cases_rectification_id_rectifications')),
    sa.PrimaryKeyConstraint('rectification_id', 'case_id', name=op.f('pk_rectification_cases'))
    )
    op.create_index(op.f('ix_rectification_cases_case_id'), 'rectification_cases', ['case_id'], unique=False)

    op.create_table('rectification_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rectification_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('deadline_before', sa.Date(), nullable=True),
    sa.Column('deadline_after', sa.Date(), nullable=True),
    sa.Column('result', sa.String(length=8), nullable=True),
    sa.Column('on_date', sa.Date(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['rectification_id'], ['rectifications.id'], name=op.f('fk_rectification_entries_rectification_id_rectifications')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_rectification_entries_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rectification_entries'))
    )
    op.create_index(op.f('ix_rectification_entries_rectification_id'), 'rectification_entries', ['rectification_id'], unique=False)

    op.create_table('rectification_files',
    sa.Column('file_id', sa.String(length=32), nullable=False),
    sa.Column('rectification_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('created_at', service.domain.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['rectification_entries.id'], name=op.f('fk_rectification_files_entry_id_rectification_entries')),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_rectification_files_file_id_files')),
    sa.ForeignKeyConstraint(['rectification_id'], ['rectifications.id'], name=op.f('fk_rectification_files_rectification_id_rectifications')),
    sa.PrimaryKeyConstraint('file_id', name=op.f('pk_rectification_files'))
    )
    op.create_index(op.f('ix_rectification_files_entry_id'), 'rectification_files', ['entry_id'], unique=False)
    op.create_index(op.f('ix_rectification_files_rectification_id'), 'rectification_files', ['rectification_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_rectification_files_rectification_id'), table_name='rectification_files')
    op.drop_index(op.f('ix_rectification_files_entry_id'), table_name='rectification_files')
    op.drop_table('rectification_files')

    op.drop_index(op.f('ix_rectification_entries_rectification_id'), table_name='rectification_entries')
    op.drop_table('rectification_entries')

    op.drop_index(op.f('ix_rectification_cases_case_id'), table_name='rectification_cases')
    op.drop_table('rectification_cases')

    op.drop_index(op.f('ix_rectifications_deadline'), table_name='rectifications')
    op.drop_index('ix_rectifications_channel_state', table_name='rectifications')
    op.drop_index('ix_rectifications_channel_found', table_name='rectifications')
    op.drop_index(op.f('ix_rectifications_case_id'), table_name='rectifications')
    op.drop_table('rectifications')
