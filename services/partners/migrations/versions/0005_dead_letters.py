"""dead letters: records whose handler kept failing, kept for admins to replay or discard

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# Copied from the chassis when this revision was written (frozen: a later change to the chassis must
# not change what this revision built).
def create_dead_letter_table() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=True),
        sa.Column("source_topic", sa.String(length=200), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("consumer_group", sa.String(length=200), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(length=200), nullable=False),
        sa.Column("error_message", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("resolved_by", sa.String(length=300), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discard_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("event_id", "consumer_group", name=op.f("uq_dead_letters_event_id")),
    )
    op.create_index(op.f("ix_dead_letters_status"), "dead_letters", ["status"], unique=False)


def drop_dead_letter_table() -> None:
    op.drop_index(op.f("ix_dead_letters_status"), table_name="dead_letters")
    op.drop_table("dead_letters")


def upgrade() -> None:
    create_dead_letter_table()


def downgrade() -> None:
    drop_dead_letter_table()
