"""case teams for object-level rules; the education passes' revocation status

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_teams',
    sa.Column('case_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=64), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('caseworker_id', sa.String(length=64), nullable=True),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_teams'))
    )
    op.create_index(op.f('ix_case_teams_person_id'), 'case_teams', ['person_id'], unique=False)
    op.create_table('pass_status',
    sa.Column('pass_id', sa.String(length=36), nullable=False),
    sa.Column('status_index', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('pass_id', name=op.f('pk_pass_status')),
    sa.UniqueConstraint('code', name=op.f('uq_pass_status_code')),
    sa.UniqueConstraint('status_index', name=op.f('uq_pass_status_status_index'))
    )
    # Passes issued before: not revoked, and without a place in the status list (their credentials name none).
    op.execute('INSERT INTO pass_status (pass_id, code, issued_at) SELECT id, code, issued_at FROM issued_passes')


def downgrade() -> None:
    op.drop_table('pass_status')
    op.drop_index(op.f('ix_case_teams_person_id'), table_name='case_teams')
    op.drop_table('case_teams')
