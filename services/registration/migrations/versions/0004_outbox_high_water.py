"""outbox high water: per topic partition, an offset the broker acknowledged for the outbox's events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox_high_water',
        sa.Column('topic', sa.String(length=200), nullable=False),
        sa.Column('kafka_partition', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('acknowledged_offset', sa.BigInteger(), nullable=False),
        sa.Column('cluster_id', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('topic', 'kafka_partition', name=op.f('pk_outbox_high_water')),
    )


def downgrade() -> None:
    op.drop_table('outbox_high_water')
