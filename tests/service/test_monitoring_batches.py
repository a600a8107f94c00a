"""The monitoring consumer handles a fetched batch of referral facts with the facts already known loaded in one
query: a referral fact is keyed by the fact its event tells (not its ce_id), and the batch looks it up by that key,
so that a fact published again under a new ce_id counts once without a query per event.

The records go straight to the consumer's batch handling (as its consume loop hands them over), without a broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from chassis.cloudevents import ReceivedEvent, as_record
from chassis.consumer import EventConsumer
from chassis.db import make_engine, make_session_factory
from chassis.migrations import upgrade_to_head
from chassis.outbox import Outbox
from chassis.uow import UnitOfWork
from contracts.referral import ReferralSent
from contracts.vocabulary import ConsentPurpose, ServiceType
from services.monitoring.app import MonitoringSettings
from services.monitoring.handlers import CONSUMED_TOPICS, make_handlers
from services.monitoring.models import ReferralFact, messaging
from tests.conftest import fresh_postgres_database

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "monitoring" / "migrations"


def sent(referral_id: str, at: datetime) -> ReferralSent:
    return ReferralSent(
        referral_id=referral_id,
        case_id=str(uuid.uuid4()),
        person_id=str(uuid.uuid4()),
        service_type=ServiceType.MIGRATION_COUNSELLING,
        partner_id="caritas",
        at=at,
        purpose=ConsentPurpose.REFERRAL,
        response_due_at=at + timedelta(days=5),
    )


async def test_a_batch_of_referral_facts_looks_the_known_ones_up_at_once(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, database_url, "alembic_version_monitoring")
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    settings = MonitoringSettings(database_url=database_url, environment="development", kafka_consumer_batch_size=100)
    consumer = EventConsumer(
        settings=settings,
        unit_of_work=lambda: UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters),
        inbox=messaging.inbox,
        group_id="monitoring",
        handlers=make_handlers(),
        topics=CONSUMED_TOPICS,
        dead_letters=messaging.dead_letters,
    )
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    facts = [sent(str(uuid.uuid4()), at) for _ in range(20)]
    # The first five facts again under new ce_ids (an outbox published them again): each counts once.
    records = [as_record(f, source="/services/referral", offset=i) for i, f in enumerate([*facts, *facts[:5]])]
    lookups: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "referral_facts" in statement:
            lookups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        done = [offset async for offset in consumer._process_records(records)]
        assert done == [r.offset for r in records], "every record settled, in order"
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(ReferralFact)) == len(facts)
        if "postgresql" in database_url:  # batches (SQLite handles one event at a time)
            batches = 5  # the slow start: 2, 4, 8, 16 … records per transaction
            assert len(lookups) <= batches, f"{len(lookups)} lookups of referral facts for {len(records)} events"
    finally:
        await engine.dispose()


async def test_a_batch_plans_its_lookups_for_their_keys_in_its_own_transaction_only(
    postgres_server: str | None,
) -> None:
    """Batches run with custom plans (a cached generic plan compared every row of a replayed table with every key
    of a batch's lookups); the setting ends with the batch's transaction, the pool's connections keep the default."""
    if postgres_server is None:
        pytest.skip("batches are PostgreSQL's (set TEST_POSTGRES_URL); CI runs this")
    async with fresh_postgres_database(postgres_server) as (database_url, _name):
        await asyncio.to_thread(upgrade_to_head, MIGRATIONS, database_url, "alembic_version_monitoring")
        engine = make_engine(database_url, pool_size=1, max_overflow=0)  # one connection: the batch's, reused after
        factory = make_session_factory(engine)
        settings = MonitoringSettings(
            database_url=database_url, environment="development", kafka_consumer_batch_size=100
        )
        handlers = dict(make_handlers())
        plain = handlers[ReferralSent.event_type]
        modes: list[str] = []

        async def noting(uow: UnitOfWork, received: ReceivedEvent) -> None:
            modes.append(str(await uow.session.scalar(text("SHOW plan_cache_mode"))))
            await plain(uow, received)

        handlers[ReferralSent.event_type] = noting
        consumer = EventConsumer(
            settings=settings,
            unit_of_work=lambda: UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters),
            inbox=messaging.inbox,
            group_id="monitoring",
            handlers=handlers,
            topics=CONSUMED_TOPICS,
            dead_letters=messaging.dead_letters,
        )
        at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        records = [as_record(sent(str(uuid.uuid4()), at), source="/services/referral", offset=i) for i in range(6)]
        try:
            assert [offset async for offset in consumer._process_records(records)] == list(range(6))
            assert modes == ["force_custom_plan"] * 6
            async with factory() as session:
                assert await session.scalar(text("SHOW plan_cache_mode")) == "auto"
        finally:
            await engine.dispose()
