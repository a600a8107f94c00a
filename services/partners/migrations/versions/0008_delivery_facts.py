"""webhook deliveries: the fact a referral event tells, so that a copy under a new ce_id is delivered once

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Deliveries made before keep none (NULLs never collide): only copies of facts delivered from now on are caught.
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fact_id', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint('uq_webhook_deliveries_fact', ['subscription_id', 'fact_id'])


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_webhook_deliveries_fact', type_='unique')
        batch_op.drop_column('fact_id')
