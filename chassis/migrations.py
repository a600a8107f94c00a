"""Alembic helpers: each service has its own migrations and its own version table.

On PostgreSQL an upgrade runs under an advisory lock of its version table, so that two starters (the release's
migration Job and a pod, or two pods) never run the same migration at once: the second waits, then finds the
schema at head and does nothing. Production runs the migrations once per release, in the migration Job
(``MIGRATE_AT_START=false``); a service then waits for the schema instead (:func:`wait_for_head`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.db import async_url, is_sqlite

log = logging.getLogger(__name__)

#: The first key of the two-key advisory locks of migrations (PostgreSQL keeps the two-key space apart from the
#: one-key space, which the outbox relay uses).
_MIGRATION_LOCK_CLASS = "alembic-migrations"


def _int4(value: int) -> int:
    """An unsigned 32-bit value as PostgreSQL's signed int4."""
    return value - 2**32 if value >= 2**31 else value


def migration_lock_keys(version_table: str) -> tuple[int, int]:
    """The advisory lock of one service's migrations: one lock per version table, the same in every process."""
    return _int4(zlib.crc32(_MIGRATION_LOCK_CLASS.encode())), _int4(zlib.crc32(version_table.encode()))


def alembic_config(migrations_dir: Path, database_url: str, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    # Percent signs in passwords would be read as interpolation by configparser.
    cfg.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


def upgrade_to_head(migrations_dir: Path, database_url: str, version_table: str) -> None:
    """Blocking; run it in a thread (``asyncio.to_thread``) or before the loop starts."""
    if is_sqlite(database_url):
        from sqlalchemy.engine import make_url

        database = make_url(async_url(database_url)).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(migrations_dir, database_url, version_table), "head")


def head_revisions(migrations_dir: Path) -> set[str]:
    return set(ScriptDirectory(str(migrations_dir)).get_heads())


async def current_revisions(database_url: str, version_table: str) -> set[str]:
    """The revisions the database's version table holds (none before the first migration)."""
    engine = create_async_engine(async_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:

            def read(sync: Connection) -> set[str]:
                return set(MigrationContext.configure(sync, opts={"version_table": version_table}).get_current_heads())

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def wait_for_head(
    migrations_dir: Path, database_url: str, version_table: str, timeout_s: float, interval_s: float = 2.0
) -> None:
    """Wait until the release's migration Job has brought the schema to this code's head; raise after
    ``timeout_s`` (the process then exits, and Kubernetes starts it again), naming both revisions."""
    wanted = head_revisions(migrations_dir)
    deadline = time.monotonic() + timeout_s
    current: set[str] = set()
    said = False
    while True:
        try:
            current = await current_revisions(database_url, version_table)
        except Exception as exc:  # noqa: BLE001 - the database not up yet is waited for like an old schema
            current = {f"unreadable ({type(exc).__name__})"}
        if current == wanted:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the schema ({version_table}) is at {sorted(current) or 'nothing'}, this release needs "
                f"{sorted(wanted)}: has this release's migration Job run? (MIGRATE_AT_START=false)"
            )
        if not said:
            log.info(
                "waiting for the migration Job: schema at %s, this release needs %s", sorted(current), sorted(wanted)
            )
            said = True
        await asyncio.sleep(interval_s)


def with_chassis_tables(metadata: MetaData) -> MetaData:
    """A service's metadata plus the chassis' tables that are not in it (the stored idempotent responses):
    what its migrations build, for autogenerate and the migration test. The service's own is left as it is."""
    from chassis.idempotency import TABLE_NAME, define_idempotency_table

    combined = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(combined)
    if TABLE_NAME not in combined.tables:
        define_idempotency_table(combined)
    return combined


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    metadata = with_chassis_tables(metadata)
    cfg = context.config
    version_table = cfg.attributes.get("version_table") or cfg.get_main_option("version_table")
    url = cfg.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    assert version_table, "the version table is not set"

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            locked = connection.dialect.name == "postgresql"
            if locked:
                # A session lock, taken before Alembic reads the version table and held across its transaction;
                # a second starter waits here. The lock ends with the connection if this process dies.
                keys = dict(zip(("a", "b"), migration_lock_keys(version_table), strict=True))
                await connection.execute(text("SELECT pg_advisory_lock(:a, :b)"), keys)
                await connection.commit()
            try:
                await connection.run_sync(do_run)
            finally:
                if locked:
                    await connection.execute(text("SELECT pg_advisory_unlock(:a, :b)"), keys)
                    await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())
