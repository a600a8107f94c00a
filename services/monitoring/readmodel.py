"""The read model as the domain sees it, and its rebuild from the topics.

:func:`load_facts` turns the tables into :class:`domain.Facts`; figures are always computed from
them, never stored. :func:`rebuild` stops the consumer, wipes the facts and the inbox, and
replays every topic from the start with a fresh consumer group, which then stays the live one
(its name is kept in ``monitoring_state`` so that a restart continues with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc
from chassis.consumer import EventConsumer
from chassis.service import ServiceRuntime
from contracts.vocabulary import AgeBand, Gender, GermanLevel, ResidenceStatusGroup, ServiceType
from services.monitoring import blocks, domain
from services.monitoring.handlers import CONSUMED_TOPICS, make_handlers
from services.monitoring.models import (
    READ_MODEL,
    BlockPopulation,
    CourseFact,
    DistrictPopulation,
    EnrolmentFact,
    MonitoringState,
    PassFact,
    Person,
    ReferralFact,
    SurveyFigures,
)

log = logging.getLogger(__name__)

CONSUMER_GROUP_KEY = "consumer_group"
#: A rebuild's consumer group is ``<group>-rebuild-<8 hex digits>``: the KafkaUser's ACLs allow that prefix.
REBUILD_GROUP_INFIX = "-rebuild-"


def _person(p: Person) -> domain.PersonFact | None:
    if p.erased or p.registered_on is None or not (p.age_band and p.gender and p.residence_status_group):
        return None  # erased, or only a late move-away seen so far
    return domain.PersonFact(
        person_id=p.person_id,
        household_id=p.household_id or p.person_id,
        registered_on=p.registered_on,
        nationality=p.nationality or "XX",
        age_band=AgeBand(p.age_band),
        gender=Gender(p.gender),
        residence_status_group=ResidenceStatusGroup(p.residence_status_group),
        district=p.district or "unknown",
        moved_away_on=p.moved_away_on,
        housing_need_since=p.needs_assessed_on if p.housing_need else None,
        block=p.block,
    )


def _referral(r: ReferralFact) -> domain.ReferralFact:
    return domain.ReferralFact(
        referral_id=r.referral_id,
        kind=r.kind,
        at=as_utc(r.at) or r.at,
        partner=r.partner,
        service_type=ServiceType(r.service_type),
        outcome=r.outcome,
        person_id=r.person_id,
    )


def _enrolment(e: EnrolmentFact) -> domain.EnrolmentFact:
    return domain.EnrolmentFact(
        enrolment_id=e.enrolment_id,
        course_id=e.course_id,
        category=e.category,
        kind=e.kind,
        at=as_utc(e.at) or e.at,
        person_id=e.person_id,
        level_reached=GermanLevel(e.level_reached) if e.level_reached else None,
        result=e.result,
    )


async def load_facts(session: AsyncSession) -> domain.Facts:
    persons = [f for p in (await session.scalars(select(Person))).all() if (f := _person(p)) is not None]
    referrals = [_referral(r) for r in (await session.scalars(select(ReferralFact))).all()]
    courses = [
        domain.CourseFact(c.course_id, c.category, c.capacity, c.women_only, c.ends_on, c.cancelled_on)
        for c in (await session.scalars(select(CourseFact))).all()
    ]
    enrolments = [_enrolment(e) for e in (await session.scalars(select(EnrolmentFact))).all()]
    passes = [domain.PassFact(p.kind, as_utc(p.at) or p.at) for p in (await session.scalars(select(PassFact))).all()]
    surveys = [
        domain.Survey(s.year, s.source, s.german_citizens_percent, s.questions)
        for s in (await session.scalars(select(SurveyFigures))).all()
    ]
    rows = (await session.scalars(select(DistrictPopulation))).all()
    reference = None
    if rows:
        population = {r.district: r.population for r in rows}
        reference = domain.DistrictReference(population, rows[0].source, any(r.illustrative for r in rows))
    block_rows = (await session.scalars(select(BlockPopulation))).all()
    block_reference = None
    if block_rows:
        block_reference = blocks.BlockReference(
            [blocks.Block(b.block_id, b.name, b.district, b.population) for b in block_rows],
            block_rows[0].source, any(b.illustrative for b in block_rows),
        )  # fmt: skip
    return domain.Facts(persons, referrals, courses, enrolments, passes, surveys, reference, block_reference)


async def stored_consumer_group(session: AsyncSession) -> str | None:
    state = await session.get(MonitoringState, CONSUMER_GROUP_KEY)
    return state.value if state is not None else None


def start_consumer(runtime: ServiceRuntime, group: str) -> EventConsumer:
    """A consumer in ``group`` that starts at the beginning of every topic when the group is new."""
    settings = runtime.settings.model_copy(update={"kafka_consumer_offset_reset": "earliest"})
    consumer = EventConsumer(
        settings=settings, unit_of_work=runtime.unit_of_work, inbox=runtime.tables.inbox, group_id=group,
        handlers=make_handlers(), topics=CONSUMED_TOPICS, dead_letters=runtime.tables.dead_letters,
    )  # fmt: skip
    runtime.consumer = consumer
    # Last in the list: the chassis stops the consumer and waits for the last task at shutdown.
    runtime.tasks.append(asyncio.create_task(consumer.run(), name=f"monitoring-consumer-{group}"))
    return consumer


async def stop_consumer(runtime: ServiceRuntime) -> None:
    consumer = runtime.consumer
    if consumer is None:
        return
    await consumer.stop()
    for task in [t for t in runtime.tasks if "consumer" in t.get_name()]:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 15)
        runtime.tasks.remove(task)
    runtime.consumer = None


async def rebuild(runtime: ServiceRuntime) -> str:
    """Wipe the read model and replay every topic from the start under a fresh consumer group.

    Returns the new group's name; the figures are complete once it has caught up with the topics.
    """
    lock: asyncio.Lock = runtime.extras.setdefault("rebuild_lock", asyncio.Lock())
    async with lock:
        await stop_consumer(runtime)
        base = runtime.settings.kafka_consumer_group or "monitoring"
        group = f"{base.split(REBUILD_GROUP_INFIX)[0]}{REBUILD_GROUP_INFIX}{uuid.uuid4().hex[:8]}"
        async with runtime.session_factory() as session, session.begin():
            for model in READ_MODEL:
                await session.execute(delete(model))
            await session.execute(delete(runtime.tables.inbox))
            state = await session.get(MonitoringState, CONSUMER_GROUP_KEY)
            if state is None:
                session.add(MonitoringState(key=CONSUMER_GROUP_KEY, value=group))
            else:
                state.value = group
        start_consumer(runtime, group)
        log.info("monitoring read model wiped; replaying all topics with consumer group %s", group)
    return group
