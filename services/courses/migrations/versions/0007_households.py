"""households: a learner's household and a case's, so that a household case's team works every member (issue 14)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 08:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('household_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_learners_household_id'), ['household_id'], unique=False)
    with op.batch_alter_table('case_teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('household_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_case_teams_household_id'), ['household_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_teams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_teams_household_id'))
        batch_op.drop_column('household_id')
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learners_household_id'))
        batch_op.drop_column('household_id')
