"""access log: who read which person's data, what and why (chassis.audit)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 08:00:00.000000
"""
from chassis.migrations import create_access_log_table, drop_access_log_table


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_access_log_table()


def downgrade() -> None:
    drop_access_log_table()
