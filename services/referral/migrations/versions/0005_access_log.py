"""access log: who read which person's data, what and why (chassis.audit)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:00:00.000000
"""
from chassis.migrations import create_access_log_table, drop_access_log_table


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_access_log_table()


def downgrade() -> None:
    drop_access_log_table()
