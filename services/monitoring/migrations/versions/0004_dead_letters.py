"""dead letters: records whose handler kept failing, kept for admins to replay or discard

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 08:00:00.000000
"""
from chassis.migrations import create_dead_letter_table, drop_dead_letter_table


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_dead_letter_table()


def downgrade() -> None:
    drop_dead_letter_table()
