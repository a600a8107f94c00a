"""A consumer's own cost, without the broker: person_registered records through the referral or monitoring consumer.

``python -m bench.handlers referral 2000`` makes a fresh PostgreSQL database, migrates it, seeds the demo roster
and partner directory (as ``DEMO_DATA`` does), and feeds the records to :class:`chassis.consumer.EventConsumer`
in fetches of 500 (what ``getmany`` hands it), as its consume loop does: batches, savepoints, inbox. Prints events
per second. It isolates the handlers and the database from Kafka and the other processes (``make bench``'s replay
phase measures it all together), and it is quick to run under ``py-spy record -- python -m bench.handlers ...``.
``BENCH_POSTGRES_URL`` names the server (default the local one); the database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.engine import make_url

from chassis.consumer import EventConsumer
from chassis.db import make_engine, make_session_factory
from chassis.migrations import upgrade_to_head
from chassis.outbox import Outbox
from chassis.settings import ServiceSettings
from chassis.telemetry import setup_tracing
from chassis.uow import UnitOfWork
from services.referral import directory
from services.referral.models import CaseworkerRow, PartnerOfferRow

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FETCH = 500


def records(count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """``count`` new people's person_registered records, each its own household (as ``make bench``'s backlog), with
    the headers the outbox relay sends."""
    from tests.service.test_referral_batches import registered

    people = [str(uuid.uuid4()) for _ in range(count)]
    fed = [registered(person, person, offset) for offset, person in enumerate(people)]
    for record in fed:  # the relay's traceparent: the registration request's span, not sampled (no exporter)
        record.headers.append(("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00".encode()))
    return fed


async def run(service: str, count: int) -> tuple[float, float, float | None]:
    name = f"bench_handlers_{service}_{os.getpid()}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES).set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    try:
        return await measure(service, url, count)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def backend_cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these PostgreSQL backends so far, from /proc (None when the server is not local)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None
    return total


async def database_cpu(admin_url: str, database: str) -> float | None:
    """The CPU seconds the backends serving ``database`` spent (all of them are this run's: the database is new)."""
    admin = await asyncpg.connect(admin_url)
    try:
        pids = [r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)]
    finally:
        await admin.close()
    return backend_cpu_seconds(pids)


async def measure(service: str, url: str, count: int) -> tuple[float, float, float | None]:
    """Events per second, and CPU milliseconds per event of this process and of the database's backends."""
    from services.monitoring import app as monitoring_app
    from services.monitoring import handlers as monitoring_handlers
    from services.monitoring import models as monitoring_models
    from services.referral import app as referral_app
    from services.referral import handlers as referral_handlers
    from services.referral import models as referral_models
    from services.referral.runtime import ReferralSettings

    referral = service == "referral"
    settings: ServiceSettings
    if referral:
        settings = ReferralSettings(database_url=url, demo_data=True, environment="development")
        handlers = referral_handlers.make_handlers(lambda: datetime.now(UTC), settings)
        messaging, topics, module_file = (
            referral_models.messaging,
            referral_handlers.CONSUMED_TOPICS,
            referral_app.__file__,
        )
    else:
        settings = monitoring_app.MonitoringSettings(database_url=url, environment="development")
        handlers = monitoring_handlers.make_handlers()
        messaging, topics = monitoring_models.messaging, monitoring_handlers.CONSUMED_TOPICS
        module_file = monitoring_app.__file__
    setup_tracing(settings)  # the tracer provider a service installs (a span per event is made, not recorded)
    await asyncio.to_thread(upgrade_to_head, Path(module_file).parent / "migrations", url, f"alembic_version_{service}")
    engine = make_engine(url)
    factory = make_session_factory(engine)
    if referral:  # DEMO_DATA's roster and partner directory, as `make run` has them
        async with factory() as session, session.begin():
            session.add_all(PartnerOfferRow(**offer) for offer in directory.LANDSBERG_PARTNER_OFFERS)
            session.add_all(CaseworkerRow(**worker, active=True) for worker in directory.DEMO_ROSTER)

    def unit_of_work() -> UnitOfWork:
        return UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters)

    consumer = EventConsumer(
        settings=settings,
        unit_of_work=unit_of_work,
        inbox=messaging.inbox,
        group_id=service,
        handlers=handlers,
        topics=topics,
        dead_letters=messaging.dead_letters,
    )
    fed = records(count)
    gc.freeze()  # as a service does once started (chassis.heap): what exists now is left out of collections
    async with factory() as session:  # every pooled connection open before the clock starts (their CPU counted)
        await session.execute(text("SELECT 1"))
    database = make_url(url).database or ""
    db_before = await database_cpu(POSTGRES, database)
    started, cpu = time.monotonic(), time.process_time()
    for start in range(0, count, FETCH):
        async for _ in consumer._process_records(fed[start : start + FETCH]):
            pass
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    db_after = await database_cpu(POSTGRES, database)
    # Backends opened during the run count whole (their start is small); None when the server is elsewhere.
    db_ms = None if db_before is None or db_after is None else (db_after - db_before) * 1000 / count
    assert consumer.handled_total == count, (consumer.handled_total, count)
    async with factory() as session:  # the effects are all there, once
        own = ["cases", "case_members", "timeline", "known_persons"] if referral else ["persons"]
        tables = ["inbox", "outbox", *own]
        counts = {t: await session.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables}
    await engine.dispose()
    print(json.dumps(counts), file=sys.stderr)
    return count / elapsed, cpu * 1000 / count, db_ms


def main() -> None:
    service = sys.argv[1] if len(sys.argv) > 1 else "referral"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rate, cpu_ms, db_ms = asyncio.run(run(service, count))
    result = {"service": service, "events": count, "per_second": round(rate, 1), "cpu_ms_per_event": round(cpu_ms, 3)}
    result["db_cpu_ms_per_event"] = None if db_ms is None else round(db_ms, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
