"""access log: who read which person's data, what and why (chassis.audit)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 08:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# Copied from the chassis when this revision was written (frozen: a later change to the chassis must
# not change what this revision built).
def create_access_log_table() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(op.f("ix_access_log_person_id"), "access_log", ["person_id"], unique=False)


def drop_access_log_table() -> None:
    op.drop_index(op.f("ix_access_log_person_id"), table_name="access_log")
    op.drop_table("access_log")


def upgrade() -> None:
    create_access_log_table()


def downgrade() -> None:
    drop_access_log_table()
