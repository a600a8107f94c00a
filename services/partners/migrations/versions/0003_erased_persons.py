"""erasure: the person a delivery is about, and the erased persons

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 09:00:00.000000
"""
import json

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erased_persons',
    sa.Column('person_id', sa.String(length=64), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_erased_persons'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_person_id'), ['person_id'], unique=False)
    # Deliveries made before: the person from the payload (the event's data), so that erasure finds them too.
    deliveries = sa.table('webhook_deliveries', sa.column('id', sa.String), sa.column('payload', sa.Text),
                          sa.column('person_id', sa.String))
    bind = op.get_bind()
    after = ''
    while True:  # in pages: memory stays bounded however long the delivery log is
        page = bind.execute(
            sa.select(deliveries.c.id, deliveries.c.payload)
            .where(deliveries.c.id > after).order_by(deliveries.c.id).limit(1000)
        ).all()
        if not page:
            break
        after = page[-1].id
        for row in page:
            try:
                person_id = json.loads(row.payload).get('data', {}).get('person_id')
            except (ValueError, AttributeError):
                continue
            if isinstance(person_id, str):
                bind.execute(deliveries.update().where(deliveries.c.id == row.id).values(person_id=person_id[:64]))


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_person_id'))
        batch_op.drop_column('erased_at')
        batch_op.drop_column('person_id')
    op.drop_table('erased_persons')
