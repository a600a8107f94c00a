"""planning capacities, the integration council's proposals and their history, the housing need per person

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 11:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('needs_assessed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('housing_need', sa.Boolean(), nullable=True))
    op.create_table('planning_capacities',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('district', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('places', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('year', 'district', 'kind', name=op.f('pk_planning_capacities'))
    )
    op.create_table('council_proposals',
    sa.Column('proposal_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('text', sa.String(length=4000), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=True),
    sa.Column('period', sa.String(length=7), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee', sa.String(length=200), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('proposal_id', name=op.f('pk_council_proposals'))
    )
    with op.batch_alter_table('council_proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_council_proposals_status'), ['status'], unique=False)
    op.create_table('council_proposal_events',
    sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('proposal_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee', sa.String(length=200), nullable=True),
    sa.Column('note', sa.String(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_council_proposal_events'))
    )
    with op.batch_alter_table('council_proposal_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_council_proposal_events_proposal_id'), ['proposal_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('council_proposal_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_council_proposal_events_proposal_id'))
    op.drop_table('council_proposal_events')
    with op.batch_alter_table('council_proposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_council_proposals_status'))
    op.drop_table('council_proposals')
    op.drop_table('planning_capacities')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('housing_need')
        batch_op.drop_column('needs_assessed_on')
        batch_op.drop_column('needs_version')
