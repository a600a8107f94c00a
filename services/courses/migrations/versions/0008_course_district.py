"""course district: the Ortsteil a course is held in, for the newcomers' filter (issue 18)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('district', sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f('ix_courses_district'), ['district'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_courses_district'))
        batch_op.drop_column('district')
