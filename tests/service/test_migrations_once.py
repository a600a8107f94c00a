"""Migrations once per release: on PostgreSQL an upgrade waits for the advisory lock of its version table, so two
starters (the release's migration Job and a pod, or two pods) never race; with ``MIGRATE_AT_START=false`` (the
manifests) a service does not migrate at all but waits for the schema the Job makes."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from chassis.db import make_engine
from chassis.migrations import (
    current_revisions,
    head_revisions,
    migration_lock_keys,
    upgrade_to_head,
    wait_for_head,
    with_chassis_tables,
)
from tests.conftest import eventually, fresh_postgres_database, registration_settings, running_app

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "registration"
MIGRATIONS = ROOT / "services" / SERVICE / "migrations"
VERSION_TABLE = f"alembic_version_{SERVICE}"


@pytest.fixture
async def postgres_url(postgres_server: str | None) -> AsyncIterator[str]:
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    async with fresh_postgres_database(postgres_server) as (url, _name):
        yield url


JOB = (
    "import sys; from pathlib import Path; from chassis.migrations import upgrade_to_head; "
    "upgrade_to_head(Path(sys.argv[1]), sys.argv[2], sys.argv[3])"
)


async def start_upgrade(url: str) -> asyncio.subprocess.Process:
    """An upgrade in its own process, as the migration Job and each pod run it (Alembic's context is global to a
    process, so two upgrades race only between processes)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        JOB,
        str(MIGRATIONS),
        url,
        VERSION_TABLE,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finished(process: asyncio.subprocess.Process) -> None:
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def schema_differences(url: str, service: str = SERVICE) -> list[object]:
    """Where the database at ``url`` differs from the service's models (Alembic's own version table aside)."""
    metadata = with_chassis_tables(importlib.import_module(f"services.{service}.models").Base.metadata)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    return [d for d in differences if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]


async def test_two_concurrent_upgrades_both_succeed_one_after_the_other(postgres_url: str) -> None:
    """While someone holds the migration lock, neither upgrade touches the database; released, both finish (the
    second finds the schema at head), and the schema is exactly the models'."""
    holder = await asyncpg.connect(plain(postgres_url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", *migration_lock_keys(VERSION_TABLE))
        upgrades = [await start_upgrade(postgres_url) for _ in range(2)]

        async def both_waiting() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return int(waiting) == 2

        await eventually(both_waiting, timeout_s=30, interval_s=0.05)
        tables = await holder.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0, "an upgrade ran without the lock"
        await holder.execute("SELECT pg_advisory_unlock($1, $2)", *migration_lock_keys(VERSION_TABLE))
        await asyncio.gather(*(finished(p) for p in upgrades))
    finally:
        await holder.close()
    assert await current_revisions(postgres_url, VERSION_TABLE) == head_revisions(MIGRATIONS)
    assert await schema_differences(postgres_url) == []


async def test_unheld_concurrent_upgrades_do_not_race(postgres_url: str) -> None:
    """Four starters at once, as pods of a rollout would: all succeed, one schema."""
    upgrades = [await start_upgrade(postgres_url) for _ in range(4)]
    await asyncio.gather(*(finished(p) for p in upgrades))
    assert await current_revisions(postgres_url, VERSION_TABLE) == head_revisions(MIGRATIONS)
    assert await schema_differences(postgres_url) == []


async def test_without_migrate_at_start_a_service_waits_for_the_job(postgres_url: str, broker: Any) -> None:
    """MIGRATE_AT_START=false: on an empty database the service does not migrate, and gives up naming the Job;
    once the Job (upgrade_to_head) has run, it starts."""
    settings = registration_settings(
        postgres_url, broker.bootstrap_servers, migrate_at_start=False, migration_wait_seconds=0.5
    )
    from services.registration.app import create_app

    with pytest.raises(RuntimeError, match="migration Job"):
        async with running_app(create_app(settings)):
            pass
    assert await current_revisions(postgres_url, VERSION_TABLE) == set(), "the service migrated by itself"

    waiting = asyncio.create_task(wait_for_head(MIGRATIONS, postgres_url, VERSION_TABLE, timeout_s=60, interval_s=0.1))
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, postgres_url, VERSION_TABLE)
    await asyncio.wait_for(waiting, 60)
    async with running_app(create_app(settings)) as client:
        assert (await client.get("/healthz")).status_code == 200
