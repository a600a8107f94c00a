"""The monitoring consumer handles a fetched batch of referral facts with the facts already known loaded in one
query: a referral fact is keyed by the fact its event tells (not its ce_id), and the batch looks it up by that key,
so that a fact published again under a new ce_id counts once without a query per event.

The records go straight to the consumer's batch handling (as its consume loop hands them over), without a broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from chassis.cloudevents import ReceivedEvent, as_record
from chassis.consumer import EventConsumer, Handler
from chassis.db import make_engine, make_session_factory
from chassis.migrations import upgrade_to_head
from chassis.outbox import Outbox
from chassis.uow import UnitOfWork
from contracts.referral import ReferralSent
from contracts.registration import PersonRegistered, PersonUpdated
from contracts.vocabulary import ConsentPurpose, ServiceType
from services.monitoring.app import MonitoringSettings
from services.monitoring.handlers import CONSUMED_TOPICS, make_handlers
from services.monitoring.models import Person, ReferralFact, messaging
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


def _registered(person: str, district: str = "Altstadt") -> PersonRegistered:
    return PersonRegistered(
        person_id=person,
        household_id=person,
        age_band="27-44",
        gender="female",
        nationality="TR",
        languages=["tr"],
        preferred_language="tr",
        residence_status_group="skilled_worker_or_study_visa",
        district=district,
        registered_on=date(2026, 12, 7),
    )


def _updated(person: str, district: str) -> PersonUpdated:
    return PersonUpdated(**_registered(person, district).model_dump(), version=2)


async def test_new_profiles_held_for_the_commit_survive_savepoints_and_later_events(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch holds its new people's rows for one insert at the commit (``UnitOfWork.insert_at_commit``): a later
    event of the batch about the same person changes the held row, a linked fact sees the person, a registration
    published again changes nothing, and a handler's failure in a savepoint gives back the row it took."""
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, database_url, "alembic_version_monitoring")
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    settings = MonitoringSettings(database_url=database_url, environment="development", kafka_consumer_batch_size=100)
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    link = sent(str(uuid.uuid4()), at).model_copy(update={"person_id": a})
    events = [_registered(a), _registered(b), _updated(a, "Ost"), link, _registered(c), _updated(c, "West")]
    events += [_registered(d), _registered(a, "Nord")]  # a's registration again, under a new ce_id: no change
    records = [as_record(e, source="/services/registration", offset=i) for i, e in enumerate(events)]
    # d fails its first try (the batch without savepoints is undone), c's update its second (in the batch's second
    # run, with savepoints: the row it took from the held ones is given back, and c is inserted with the others).
    fails = {records[6].offset: {1}, records[5].offset: {2}}
    handlers = dict(make_handlers())
    tried: Counter[int] = Counter()

    def flaky(handler: Handler) -> Handler:
        async def handle(uow: UnitOfWork, received: ReceivedEvent) -> None:
            await handler(uow, received)
            tried[received.offset] += 1
            if tried[received.offset] in fails.get(received.offset, set()):
                raise RuntimeError("fails, after its effects")

        return handle

    consumer = EventConsumer(
        settings=settings,
        unit_of_work=lambda: UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters),
        inbox=messaging.inbox,
        group_id="monitoring",
        handlers={event_type: flaky(handler) for event_type, handler in handlers.items()},
        topics=CONSUMED_TOPICS,
        dead_letters=messaging.dead_letters,
        retry_delay=0.001,
    )
    consumer._batch_size = len(records)  # no slow start: all in the first batch
    try:
        assert [offset async for offset in consumer._process_records(records)] == list(range(len(records)))
        assert consumer.dead_lettered_total == 0
        assert "not committed" not in caplog.text, "no batch failed at its commit (a row held and added twice, say)"
        async with factory() as session:
            people = {p.person_id: p for p in (await session.scalars(select(Person))).all()}
            assert set(people) == {a, b, c, d}, "each person once"
            assert (people[a].profile_version, people[a].district) == (2, "Ost"), "the update won, not the copy"
            assert (people[c].profile_version, people[c].district) == (2, "West")
            assert (people[b].profile_version, people[b].district) == (1, "Altstadt")
            assert (people[d].profile_version, people[d].erased) == (1, False)
            assert await session.scalar(select(ReferralFact.person_id)) == a, "the fact is linked to the new person"
            assert await session.scalar(select(func.count()).select_from(messaging.inbox)) == len(records)
        if "postgresql" in database_url:
            assert tried[records[5].offset] == 3, "c's update failed in a savepoint and ran again on its own"
    finally:
        await engine.dispose()
