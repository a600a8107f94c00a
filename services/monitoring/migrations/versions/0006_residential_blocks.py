"""residential blocks: the block per person and the residents per block (segregation per Baublock)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('block', sa.String(length=64), nullable=True))
    op.create_table('block_population',
    sa.Column('block_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('district', sa.String(length=80), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('illustrative', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_id', name=op.f('pk_block_population'))
    )


def downgrade() -> None:
    op.drop_table('block_population')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('block')
