"""The referral consumer handles a fetched batch of registrations in one transaction, with what all of them need
loaded at once (people, memberships, households' open cases, the roster's workload): the result is the one the
events give one at a time. Household members in one batch share one case, the roster's capacity holds across the
batch, and a handler that fails mid-batch leaves no trace of its try (no second case, no duplicate events).

The records go straight to the consumer's batch handling (as its consume loop hands them over), without a broker:
what is tested is the handlers against the database."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy import func, select

from chassis.cloudevents import ReceivedEvent, as_record
from chassis.consumer import EventConsumer
from chassis.db import make_engine, make_session_factory
from chassis.migrations import upgrade_to_head
from chassis.outbox import Outbox
from chassis.uow import UnitOfWork
from contracts.referral import CaseAssigned, CaseOpened
from contracts.registration import PersonErased, PersonRegistered
from services.referral.handlers import CONSUMED_TOPICS, KEPT_AFTER_ERASURE, make_handlers
from services.referral.models import Case, CaseMember, CaseworkerRow, TimelineEntry, messaging
from services.referral.runtime import ReferralSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "referral" / "migrations"


def registered(person: str, household: str, offset: int) -> ConsumerRecord[bytes, bytes]:
    event = PersonRegistered(
        person_id=person,
        household_id=household,
        age_band="27-44",
        gender="female",
        nationality="TR",
        languages=["tr", "de"],
        preferred_language="tr",
        residence_status_group="skilled_worker_or_study_visa",
        district="Altstadt",
        registered_on=date(2026, 12, 7),
    )
    return as_record(event, source="/services/registration", offset=offset)


async def handle_all(
    database_url: str, records: list[ConsumerRecord[bytes, bytes]], fails: dict[str, set[int]] | None = None
) -> Any:
    """Feed the records to a referral consumer as one fetch; ``fails``: per person, the tries of its handler that
    fail (after doing its work). Returns the engine and the session factory."""
    await _migrate(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    async with factory() as session, session.begin():
        session.add(CaseworkerRow(id="lotse-1", name="Lotse Eins", team="nord", languages=["tr"], max_cases=2))
    settings = ReferralSettings(database_url=database_url, environment="development", kafka_consumer_batch_size=100)
    handlers = dict(make_handlers(lambda: datetime.now(UTC), settings))
    registered_type = PersonRegistered.event_type
    plain = handlers[registered_type]
    tried: Counter[str] = Counter()

    async def flaky(uow: UnitOfWork, event: ReceivedEvent) -> None:
        await plain(uow, event)
        person = event.data["person_id"]
        tried[person] += 1
        if tried[person] in (fails or {}).get(person, set()):
            raise RuntimeError("fails, after its effects")

    handlers[registered_type] = flaky
    consumer = EventConsumer(
        settings=settings,
        unit_of_work=lambda: UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters),
        inbox=messaging.inbox,
        group_id="referral",
        handlers=handlers,
        topics=CONSUMED_TOPICS,
        dead_letters=messaging.dead_letters,
        retry_delay=0.01,
    )
    done = [offset async for offset in consumer._process_records(records)]
    assert done == [r.offset for r in records], "every record settled, in order"
    assert consumer.dead_lettered_total == 0
    return engine, factory


async def _migrate(database_url: str) -> None:
    import asyncio

    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, database_url, "alembic_version_referral")


async def outbox_types(session: Any) -> Counter[str]:
    return Counter((await session.scalars(select(messaging.outbox.c.event_type))).all())


async def test_a_batch_opens_one_case_per_household_and_keeps_the_roster_capacity(database_url: str) -> None:
    household = str(uuid.uuid4())
    people = [str(uuid.uuid4()) for _ in range(6)]
    # Two of one household (the second joins the first's case), four alone; one caseworker with room for two.
    records = [registered(people[0], household, 0), registered(people[1], household, 1)]
    records += [registered(p, p, i + 2) for i, p in enumerate(people[2:])]
    engine, factory = await handle_all(database_url, records)
    try:
        async with factory() as session:
            cases = (await session.scalars(select(Case))).all()
            assert len(cases) == 5, "one case for the household, one for each of the others"
            members = dict((await session.execute(select(CaseMember.person_id, CaseMember.case_id))).all())
            assert members[people[0]] == members[people[1]], "the household's second member joined its case"
            assert Counter(c.caseworker_id for c in cases) == {"lotse-1": 2, None: 3}, "the capacity holds"
            sent = await outbox_types(session)
            assert (sent[CaseOpened.event_type], sent[CaseAssigned.event_type]) == (5, 5)
    finally:
        await engine.dispose()


async def test_a_handler_failing_in_a_batch_leaves_no_trace_of_its_tries(database_url: str) -> None:
    people = [str(uuid.uuid4()) for _ in range(6)]
    # people[3] fails its first try (the batch without savepoints is undone); people[1] its second (its savepoint in
    # the batch's second run is undone): each still has one case and one of each event.
    engine, factory = await handle_all(
        database_url, [registered(p, p, i) for i, p in enumerate(people)], fails={people[3]: {1}, people[1]: {2}}
    )
    try:
        async with factory() as session:
            cases = (await session.scalars(select(Case))).all()
            assert sorted(c.person_id for c in cases) == sorted(people), "one case each"
            assert Counter(c.caseworker_id for c in cases) == {"lotse-1": 2, None: 4}
            sent = await outbox_types(session)
            assert (sent[CaseOpened.event_type], sent[CaseAssigned.event_type]) == (6, 6), "no event of a failed try"
            assert await session.scalar(select(func.count()).select_from(messaging.inbox)) == 6
    finally:
        await engine.dispose()


async def test_an_erasure_in_the_batch_of_the_registration_reduces_its_timeline_entries(database_url: str) -> None:
    """The timeline entries a batch holds for its commit (``UnitOfWork.insert_at_commit``) are reduced by an erasure
    in the same batch, as those already stored are."""
    person = str(uuid.uuid4())
    erasure = as_record(
        PersonErased(person_id=person, erased_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),
        source="/services/registration",
        offset=1,
    )
    engine, factory = await handle_all(database_url, [registered(person, person, 0), erasure])
    try:
        async with factory() as session:
            entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.person_id == person))).all()
            assert {e.event_type for e in entries} >= {PersonRegistered.event_type, PersonErased.event_type}
            for entry in entries:
                assert set(entry.summary) <= KEPT_AFTER_ERASURE, (entry.event_type, sorted(entry.summary))
    finally:
        await engine.dispose()
