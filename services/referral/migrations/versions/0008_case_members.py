"""case members: one case per household, its members listed; a goal may name the member it is for (issue 14)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 08:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_members',
    sa.Column('person_id', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_members_case_id_cases')),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_case_members'))
    )
    with op.batch_alter_table('case_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_members_case_id'), ['case_id'], unique=False)
    # Every existing case had one person: its only member.
    op.execute("INSERT INTO case_members (person_id, case_id, joined_at) SELECT person_id, id, opened_at FROM cases")
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.drop_column('person_id')
    with op.batch_alter_table('case_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_members_case_id'))
    op.drop_table('case_members')
