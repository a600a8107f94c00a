"""access log in the shape every service shares (chassis.audit): the reason an erasure names is its purpose

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 08:00:00.000000
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.alter_column('reason', new_column_name='purpose')


def downgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.alter_column('purpose', new_column_name='reason')
