"""meeting offers: meeting places and recurring offers (Begegnung) partners and the city publish

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('meeting_offers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('audience', sa.String(length=40), nullable=False),
    sa.Column('schedule', sa.String(length=300), nullable=True),
    sa.Column('place_name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=True),
    sa.Column('district', sa.String(length=100), nullable=True),
    sa.Column('childcare', sa.Boolean(), nullable=False),
    sa.Column('free_of_charge', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_meeting_offers_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_offers'))
    )
    with op.batch_alter_table('meeting_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_offers_active'), ['active'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_offers_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_offers_partner_id'), ['partner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('meeting_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_offers_partner_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_offers_kind'))
        batch_op.drop_index(batch_op.f('ix_meeting_offers_active'))
    op.drop_table('meeting_offers')
