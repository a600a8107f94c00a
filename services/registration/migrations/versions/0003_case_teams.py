"""case teams (from referral's case events) and the reason of an audited action

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
    with op.batch_alter_table('case_teams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_teams_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_teams_team'), ['team'], unique=False)

    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_column('reason')

    with op.batch_alter_table('case_teams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_teams_team'))
        batch_op.drop_index(batch_op.f('ix_case_teams_person_id'))

    op.drop_table('case_teams')
