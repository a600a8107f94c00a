"""Every service's migrations build exactly the schema its models describe (with the chassis' own tables,
such as the stored idempotent responses), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chassis.db import make_engine
from chassis.migrations import upgrade_to_head, with_chassis_tables

SERVICES = ["registration", "referral", "courses", "partners", "monitoring"]


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_models(service: str, database_url: str) -> None:
    root = Path(__file__).resolve().parents[2] / "services" / service
    await asyncio.to_thread(upgrade_to_head, root / "migrations", database_url, f"alembic_version_{service}")
    metadata = with_chassis_tables(importlib.import_module(f"services.{service}.models").Base.metadata)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    # The version table is Alembic's own, not a model's.
    assert [d for d in differences if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))] == []
