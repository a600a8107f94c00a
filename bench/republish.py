"""How long a service takes to publish its outbox again after the embedded broker came back empty.

For each database (SQLite; PostgreSQL when the server at BENCH_POSTGRES_URL answers) and each size in
BENCH_REPUBLISH_ROWS (default 10000,50000: events of a third as many keys, three per key, as registration
writes them), it fills an outbox, lets the relay publish it, kills the broker (SIGKILL), starts it again empty
on the same port and measures the time until the relay has published every row again, and until a reader
has them all. This is the price of keeping the embedded broker in memory (see README, "The embedded broker").
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chassis.db import make_engine, make_session_factory, new_metadata  # noqa: E402
from chassis.embedded_broker import EmbeddedBroker  # noqa: E402
from chassis.outbox import Outbox, OutboxRelay, define_messaging_tables  # noqa: E402
from chassis.settings import ServiceSettings  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SIZES = [int(n) for n in os.environ.get("BENCH_REPUBLISH_ROWS", "10000,50000").split(",")]
TOPIC = "bench.republish.v1"

metadata = new_metadata()
messaging = define_messaging_tables(metadata)


@dataclass
class Step:
    topic: ClassVar[str] = TOPIC
    event_type: ClassVar[str] = "de.landsberg.integration.bench.step.v1"
    key: str
    n: int

    def partition_key(self) -> str:
        return self.key

    def subject(self) -> str:
        return self.key

    def model_dump(self, *, mode: str = "json") -> dict[str, Any]:
        return {"person_id": self.key, "n": self.n, "padding": "x" * 300}  # about a registration event's size


async def read_all(bootstrap: str, expected: int, timeout_s: float) -> float:
    started = time.monotonic()
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: set[bytes] = set()
    try:
        while len(seen) < expected and time.monotonic() - started < timeout_s:
            for records in (await consumer.getmany(timeout_ms=300, max_records=5000)).values():
                seen.update(dict(r.headers)["ce_id"] for r in records)
    finally:
        await consumer.stop()
    return time.monotonic() - started


async def measure(database_url: str, rows: int, tmp: Path) -> dict[str, float]:
    broker = EmbeddedBroker(log_path=tmp / "tansu.log").start()
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    settings = ServiceSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        environment="development",  # the chassis alone: no identity keys needed
        log_json=False,
    )
    relay = OutboxRelay(
        settings=settings,
        session_factory=sessions,
        table=messaging.outbox,
        high_water=messaging.high_water,
        source="/bench",
        topics=[TOPIC],
        lock_key=99,
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        outbox = Outbox(messaging.outbox)
        for start in range(0, rows, 1000):
            events = [Step(f"p{i // 3}", i % 3) for i in range(start, min(rows, start + 1000))]
            async with sessions() as session, session.begin():
                await outbox.add_all(session, events)
        task = asyncio.create_task(relay.run())
        began = time.monotonic()
        while await relay.count_backlog():  # noqa: ASYNC110 - polling the database, as an operator would
            await asyncio.sleep(0.1)
        first = time.monotonic() - began

        broker.kill()
        broker.start()  # empty, another cluster id
        began = time.monotonic()
        reader = asyncio.create_task(read_all(broker.bootstrap_servers, rows, timeout_s=600))
        while relay.republished_total < rows or await relay.count_backlog():  # noqa: ASYNC110 - as above
            await asyncio.sleep(0.1)
        republished = time.monotonic() - began
        readable = await reader
        await relay.stop()
        task.cancel()
        return {"first publish s": first, "republished s": republished, "all read s": readable}
    finally:
        await engine.dispose()
        broker.stop()


async def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        databases = {"sqlite": f"sqlite+aiosqlite:///{tmp / 'bench.db'}"}
        try:
            admin = await asyncpg.connect(POSTGRES, timeout=3)
        except (OSError, asyncpg.PostgresError):
            admin = None
        database = f"bench_republish_{uuid.uuid4().hex[:8]}"
        if admin is not None:
            await admin.execute(f'CREATE DATABASE "{database}"')
            postgres = make_url(POSTGRES).set(drivername="postgresql+asyncpg", database=database)
            databases["postgresql"] = postgres.render_as_string(hide_password=False)
        try:
            for kind, url in databases.items():
                for rows in SIZES:
                    if kind == "sqlite":
                        (tmp / "bench.db").unlink(missing_ok=True)
                    elif admin is not None:
                        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                        await admin.execute(f'CREATE DATABASE "{database}"')
                    figures = await measure(url, rows, tmp)
                    shown = ", ".join(f"{k} {v:.1f}" for k, v in figures.items())
                    rate = rows / figures["republished s"]
                    print(f"{kind:<10} {rows:>7} rows: {shown}; {rate:,.0f} rows/s published again", flush=True)
        finally:
            if admin is not None:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
