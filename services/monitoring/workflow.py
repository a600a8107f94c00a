"""The monitoring service's use cases (its workflow room): the read model as the domain sees it, and its
rebuild from the topics.

:func:`load_facts` turns the tables into :class:`domain.Facts`; figures are always computed from
them, never stored. :func:`rebuild` stops the consumer, wipes the facts and the inbox, and
replays every topic from the start with a fresh consumer group, which then stays the live one
(its name is kept in ``monitoring_state`` so that a restart continues with it).

The routes' use cases (indicators, planning, the analysts' input, council proposals) read and write through a
:class:`Store` on the unit of work, ask the rules and commit; tests run them on an in-memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc
from chassis.consumer import EventConsumer
from chassis.service import ServiceRuntime, background
from chassis.uow import UnitOfWork
from contracts.vocabulary import AgeBand, Gender, GermanLevel, ResidenceStatusGroup, ServiceType
from services.monitoring import blocks, council, domain, planning, report
from services.monitoring.models import (
    READ_MODEL,
    BlockPopulation,
    CouncilProposal,
    CouncilProposalEvent,
    CourseFact,
    DistrictPopulation,
    EnrolmentFact,
    MonitoringState,
    PassFact,
    Person,
    PlanningCapacity,
    ReferralFact,
    SurveyFigures,
)
from services.monitoring.periods import Period
from services.monitoring.runtime import monitoring_of

_Reference = TypeVar("_Reference")

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
    reference = district_reference((await session.scalars(select(DistrictPopulation))).all())
    block_reference = block_reference_of((await session.scalars(select(BlockPopulation))).all())
    return domain.Facts(persons, referrals, courses, enrolments, passes, surveys, reference, block_reference)


def district_reference(rows: Sequence[DistrictPopulation]) -> domain.DistrictReference | None:
    """The district population as entered (one row per district), if any was."""
    if not rows:
        return None
    population = {r.district: r.population for r in rows}
    return domain.DistrictReference(population, rows[0].source, any(r.illustrative for r in rows))


def block_reference_of(rows: Sequence[BlockPopulation]) -> blocks.BlockReference | None:
    """The residents per block as entered (one row per block), if any were."""
    if not rows:
        return None
    return blocks.BlockReference(
        [blocks.Block(b.block_id, b.name, b.district, b.population) for b in rows],
        rows[0].source,
        any(b.illustrative for b in rows),
    )


def _entered_at(rows: Sequence[DistrictPopulation] | Sequence[BlockPopulation]) -> datetime | None:
    return as_utc(max((r.updated_at for r in rows), default=None))  # SQLite hands back naive times


@dataclass(frozen=True)
class Entered(Generic[_Reference]):
    """Analyst input as it stands: the reference (None before any was entered) and when it was entered."""

    reference: _Reference | None
    updated_at: datetime | None


async def stored_consumer_group(session: AsyncSession) -> str | None:
    state = await session.get(MonitoringState, CONSUMER_GROUP_KEY)
    return state.value if state is not None else None


def start_consumer(runtime: ServiceRuntime, group: str) -> EventConsumer:
    """A consumer in ``group`` that starts at the beginning of every topic when the group is new."""
    settings = runtime.settings.model_copy(update={"kafka_consumer_offset_reset": "earliest"})
    wiring = monitoring_of(runtime)
    consumer = EventConsumer(
        settings=settings,
        unit_of_work=runtime.unit_of_work,
        inbox=runtime.tables.inbox,
        group_id=group,
        handlers=wiring.make_handlers(),
        topics=wiring.topics,
        dead_letters=runtime.tables.dead_letters,
    )
    runtime.consumer = consumer
    # Last in the list: the chassis stops the consumer and waits for the last task at shutdown.
    runtime.tasks.append(background(consumer.run(), name=f"monitoring-consumer-{group}"))
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
    async with monitoring_of(runtime).rebuild_lock:
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


# --- use cases: load, ask the rules, store -----------------------------------------------------


class Store(Protocol):
    """What the use cases read and write: :class:`SqlStore` in the service, an in-memory one in unit tests."""

    async def facts(self) -> domain.Facts: ...

    async def capacities(self) -> list[planning.Capacity]: ...

    async def proposal(self, proposal_id: str) -> CouncilProposal | None: ...

    async def history(self, proposal_id: str) -> list[CouncilProposalEvent]: ...

    def add(self, *rows: CouncilProposal | CouncilProposalEvent) -> None: ...

    async def districts(self) -> Entered[domain.DistrictReference]: ...

    async def block_population(self) -> Entered[blocks.BlockReference]: ...

    async def replace_districts(self, reference: domain.DistrictReference, at: datetime) -> None: ...

    async def replace_blocks(self, reference: blocks.BlockReference, at: datetime) -> None: ...

    async def put_survey(self, survey: domain.Survey, at: datetime) -> SurveyFigures: ...

    async def replace_capacities(self, capacities: Sequence[planning.Capacity], at: datetime) -> None: ...


class SqlStore:
    """The store on a unit of work's session (the monitoring database)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def facts(self) -> domain.Facts:
        return await load_facts(self.session)

    async def capacities(self) -> list[planning.Capacity]:
        query = select(PlanningCapacity).order_by(
            PlanningCapacity.year, PlanningCapacity.district, PlanningCapacity.kind
        )
        return [planning.Capacity(r.year, r.district, r.kind, r.places) for r in (await self.session.scalars(query))]

    async def proposal(self, proposal_id: str) -> CouncilProposal | None:
        # An id longer than the column names no proposal: answered without a query.
        return await self.session.get(CouncilProposal, proposal_id) if len(proposal_id) <= 36 else None

    async def history(self, proposal_id: str) -> list[CouncilProposalEvent]:
        await self.session.flush()  # the step just added is part of the answer
        found = await self.session.scalars(
            select(CouncilProposalEvent)
            .where(CouncilProposalEvent.proposal_id == proposal_id)
            .order_by(CouncilProposalEvent.event_id)
        )
        return list(found.all())

    def add(self, *rows: CouncilProposal | CouncilProposalEvent) -> None:
        self.session.add_all(rows)

    async def districts(self) -> Entered[domain.DistrictReference]:
        rows = (await self.session.scalars(select(DistrictPopulation).order_by(DistrictPopulation.district))).all()
        return Entered(district_reference(rows), _entered_at(rows))

    async def block_population(self) -> Entered[blocks.BlockReference]:
        rows = (await self.session.scalars(select(BlockPopulation).order_by(BlockPopulation.block_id))).all()
        return Entered(block_reference_of(rows), _entered_at(rows))

    async def replace_blocks(self, reference: blocks.BlockReference, at: datetime) -> None:
        await self.session.execute(delete(BlockPopulation))
        self.session.add_all(
            BlockPopulation(
                block_id=b.block_id,
                name=b.name,
                district=b.district,
                population=b.population,
                source=reference.source,
                illustrative=reference.illustrative,
                updated_at=at,
            )
            for b in reference.blocks
        )

    async def replace_districts(self, reference: domain.DistrictReference, at: datetime) -> None:
        await self.session.execute(delete(DistrictPopulation))
        self.session.add_all(
            DistrictPopulation(
                district=d, population=n, source=reference.source, illustrative=reference.illustrative, updated_at=at
            )
            for d, n in reference.population.items()
        )

    async def put_survey(self, survey: domain.Survey, at: datetime) -> SurveyFigures:
        row = await self.session.get(SurveyFigures, survey.year)
        if row is None:
            row = SurveyFigures(year=survey.year)
            self.session.add(row)
        row.source, row.german_citizens_percent = survey.source, survey.german_citizens_percent
        row.questions, row.updated_at = {q: dict(answers) for q, answers in survey.questions.items()}, at
        return row

    async def replace_capacities(self, capacities: Sequence[planning.Capacity], at: datetime) -> None:
        await self.session.execute(delete(PlanningCapacity))
        self.session.add_all(
            PlanningCapacity(year=c.year, district=c.district, kind=c.kind, places=c.places, updated_at=at)
            for c in capacities
        )


class StoreUnitOfWork(Protocol):
    """The unit of work the use cases need: a store and a commit (duck-typed, so a test hands in a fake)."""

    @property
    def store(self) -> Store: ...

    async def commit(self) -> None: ...


class MonitoringUnitOfWork:
    """The chassis' unit of work (:class:`chassis.uow.UnitOfWork`) with a :class:`SqlStore` on its session."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.store: Store

    async def __aenter__(self) -> MonitoringUnitOfWork:
        await self._uow.__aenter__()
        self.store = SqlStore(self._uow.session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._uow.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self._uow.commit()


def unit_of_work(runtime: ServiceRuntime) -> MonitoringUnitOfWork:
    return MonitoringUnitOfWork(runtime.unit_of_work())


@dataclass
class Workflow:
    """One use case's context: its unit of work, the moment it runs and k of the disclosure control."""

    uow: StoreUnitOfWork
    now: datetime
    k: int = 5

    @property
    def store(self) -> Store:
        return self.uow.store


class NoSuchProposal(LookupError):
    """No proposal has that id."""


class ProposalConflict(council.TransitionError):
    """The step does not fit the proposal's status (``status_now``, for the answer's Problem Details)."""

    def __init__(self, message: str, status_now: str) -> None:
        super().__init__(message)
        self.status_now = status_now


async def indicator_document(w: Workflow, period: Period) -> dict[str, Any]:
    """The published indicators of ``period`` (with the period before, for the trend) and the rules' proposals."""
    return report.indicator_document(await w.store.facts(), period, w.k)


async def planning_document(w: Workflow, today: date) -> dict[str, Any]:
    """Children of newcomer households by district and age cohort, now and expected."""
    return report.planning_document(await w.store.facts(), today, w.k)


async def forecast(w: Workflow, today: date) -> planning.Forecast:
    """Kita and school demand for the next five school years against the places the city entered."""
    facts = await w.store.facts()
    return planning.forecast(facts.persons, today, await w.store.capacities(), w.k)


async def districts(w: Workflow) -> Entered[domain.DistrictReference]:
    """The district population as entered, and when."""
    return await w.store.districts()


async def block_population(w: Workflow) -> Entered[blocks.BlockReference]:
    """The residents per residential block as entered, and when."""
    return await w.store.block_population()


async def replace_blocks(w: Workflow, reference: blocks.BlockReference) -> None:
    """Replace the residents per residential block (the reference of the block-level index) as a whole."""
    await w.store.replace_blocks(reference, w.now)
    await w.uow.commit()


async def replace_districts(w: Workflow, reference: domain.DistrictReference) -> None:
    """Replace the district population (the reference of the dissimilarity index) as a whole."""
    await w.store.replace_districts(reference, w.now)
    await w.uow.commit()


async def enter_survey(w: Workflow, survey: domain.Survey) -> SurveyFigures:
    """Enter (or correct) the citizens' survey figures of one year."""
    row = await w.store.put_survey(survey, w.now)
    await w.uow.commit()
    return row


async def replace_capacities(w: Workflow, capacities: Sequence[planning.Capacity]) -> None:
    """Replace the places the city plans in Kitas and schools as a whole."""
    await w.store.replace_capacities(capacities, w.now)
    await w.uow.commit()


async def create_proposal(
    w: Workflow,
    *,
    title: str,
    text: str,
    rule: str | None,
    period: str | None,
    due_on: date | None,
    actor: str,
) -> tuple[CouncilProposal, list[CouncilProposalEvent]]:
    """Put a proposal before the integration council (status ``proposed``), with the first step of its history."""
    row = CouncilProposal(
        proposal_id=str(uuid.uuid4()),
        title=title,
        text=text,
        rule=rule,
        period=period,
        status=council.Status.PROPOSED.value,
        assignee=None,
        due_on=due_on,
        created_by=actor,
        created_at=w.now,
        updated_at=w.now,
    )
    step = CouncilProposalEvent(
        proposal_id=row.proposal_id,
        at=w.now,
        actor=actor,
        action=council.Action.CREATE.value,
        status=row.status,
        assignee=None,
        note=None,
    )
    w.store.add(row, step)
    await w.uow.commit()
    return row, [step]


async def act_on_proposal(
    w: Workflow,
    proposal_id: str,
    action: council.Action,
    *,
    actor: str,
    assignee: str | None = None,
    note: str | None = None,
    due_on: date | None = None,
) -> tuple[CouncilProposal, list[CouncilProposalEvent]]:
    """One step of the follow-up (:func:`council.apply` decides); raises :class:`NoSuchProposal`,
    :class:`ProposalConflict` or :class:`council.IncompleteAction` and then stores nothing."""
    row = await w.store.proposal(proposal_id)
    if row is None:
        raise NoSuchProposal(proposal_id)
    try:
        after = council.apply(council.Status(row.status), action, assignee=assignee, note=note)
    except council.TransitionError as exc:
        raise ProposalConflict(str(exc), row.status) from exc
    row.status, row.updated_at = after.value, w.now
    if assignee is not None:
        row.assignee = assignee
    if due_on is not None:
        row.due_on = due_on
    w.store.add(
        CouncilProposalEvent(
            proposal_id=row.proposal_id,
            at=w.now,
            actor=actor,
            action=action.value,
            status=after.value,
            assignee=assignee,
            note=note,
        )
    )
    history = await w.store.history(proposal_id)
    await w.uow.commit()
    return row, history
