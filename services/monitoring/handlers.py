"""Event handlers of the monitoring service: one function per event type an indicator uses.

Every topic is consumed; event types no indicator needs (consents, cases,
goals, proposals, attendance, partner directory changes...) have no handler and are skipped by
the chassis. Handlers only record facts; figures are computed when asked for, from the final
state. That makes the read model independent of the order in which *different* topics are
read, so a replay from the start (:func:`services.monitoring.workflow.rebuild`) gives the same figures:

* facts are keyed by ``ce_id`` (a redelivery inserts nothing), referral facts by the fact the event tells
  (:meth:`contracts.referral._ReferralEvent.fact_id`), so that the same fact published again under a new ce_id
  is counted once;
* a profile is replaced only by a newer version;
* an erasure leaves a tombstone, and a pseudonym linked to a tombstone is never stored, whether
  the linked fact arrives before or after the erasure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, update

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import courses as course_events
from contracts import referral as referral_events
from contracts import registration as registration_events
from contracts.registry import TOPICS, model_for
from contracts.vocabulary import NeedCategory
from services.monitoring import indicators, periods
from services.monitoring.models import CourseFact, EnrolmentFact, PassFact, Person, ReferralFact

log = logging.getLogger(__name__)

#: Every topic of the platform (not the dead-letter twins).
CONSUMED_TOPICS = sorted(TOPICS)


#: Where a registration's new profile is held until the unit of work's commit (``UnitOfWork.insert_at_commit``).
PERSONS = cast(Table, Person.__table__)


async def _person(uow: UnitOfWork, person_id: str) -> Person:
    held = uow.take_held(PERSONS, person_id)
    if held is not None:  # registered earlier in this unit of work: the ORM's row from here on, to be changed
        made = Person(**held)
        uow.session.add(made)
        return made
    person = await uow.get(Person, person_id)
    if person is None:
        person = Person(person_id=person_id, profile_version=0, erased=False)
        uow.session.add(person)
    return person


async def _linkable(uow: UnitOfWork, person_id: str) -> str | None:
    """The pseudonym, unless the person was erased (then the fact is kept without it)."""
    if uow.held(PERSONS, person_id) is not None:
        return person_id  # a new profile, not erased
    person = await uow.get(Person, person_id)
    return None if person is not None and person.erased else person_id


async def _add_once(uow: UnitOfWork, model: type[Any], event_id: str, **values: Any) -> None:
    if await uow.get(model, event_id) is None:
        uow.session.add(model(event_id=event_id, **values))


def _partner(model: referral_events._ReferralEvent) -> str:
    if model.partner_id:
        return model.partner_id
    return f"category:{model.partner_category.value}" if model.partner_category else "unassigned"


def _event_day(event: ReceivedEvent) -> Any:
    return periods.local_day(datetime.fromisoformat(event.time.replace("Z", "+00:00")))


async def profile(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """PersonRegistered (version 1) and PersonUpdated: the newest version wins, late ones change nothing."""
    model: registration_events.PersonRegistered | registration_events.PersonUpdated
    if event.type == registration_events.PersonUpdated.event_type:
        model = registration_events.PersonUpdated.model_validate(event.data)
        version = model.version
    else:
        model = registration_events.PersonRegistered.model_validate(event.data)
        version = 1
        if uow.held(PERSONS, model.person_id) is None and await uow.get(Person, model.person_id) is None:
            # Someone new (a replay's usual case): the row goes in with the batch's others at the commit.
            uow.insert_at_commit(PERSONS, model.person_id, _profile_row(model))
            return
    person = await _person(uow, model.person_id)
    if person.erased or version <= person.profile_version:
        return
    person.household_id, person.registered_on = model.household_id, model.registered_on
    person.nationality, person.age_band, person.gender = model.nationality, model.age_band.value, model.gender.value
    person.residence_status_group, person.district = model.residence_status_group.value, model.district
    person.block = model.block_id
    person.profile_version = version


def _profile_row(model: registration_events.PersonRegistered) -> dict[str, Any]:
    """A new person's row: what :func:`profile` sets on a row it made, as a profile of version 1."""
    return {
        "person_id": model.person_id,
        "household_id": model.household_id,
        "registered_on": model.registered_on,
        "nationality": model.nationality,
        "age_band": model.age_band.value,
        "gender": model.gender.value,
        "residence_status_group": model.residence_status_group.value,
        "district": model.district,
        "block": model.block_id,
        "profile_version": 1,
        "erased": False,
        "moved_away_on": None,
        "needs_version": None,
        "needs_assessed_on": None,
        "housing_need": None,
    }


async def moved_away(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = registration_events.PersonMovedAway.model_validate(event.data)
    person = await _person(uow, model.person_id)
    if not person.erased:
        person.moved_away_on = model.moved_away_on


async def needs_assessed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """NeedsAssessed: only whether the newest assessment names a housing need, and its day (the housing indicator)."""
    model = registration_events.NeedsAssessed.model_validate(event.data)
    person = await _person(uow, model.person_id)
    if person.erased or model.assessment_version <= (person.needs_version or 0):
        return
    person.needs_version, person.needs_assessed_on = model.assessment_version, _event_day(event)
    person.housing_need = NeedCategory.HOUSING in model.need_categories


async def erased(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Art. 17: the profile goes (a tombstone stays, so late linked facts drop the pseudonym too)."""
    model = registration_events.PersonErased.model_validate(event.data)
    person = await _person(uow, model.person_id)
    person.erased, person.household_id, person.registered_on, person.nationality = True, None, None, None
    person.age_band = person.gender = person.residence_status_group = person.district = person.block = None
    person.moved_away_on = person.needs_version = person.needs_assessed_on = person.housing_need = None
    for table in (ReferralFact, EnrolmentFact):
        await uow.session.execute(update(table).where(table.person_id == model.person_id).values(person_id=None))
    await uow.forget_stored_responses(model.person_id)  # and the dead letters that name the person


def _referral_handler(model_type: type[referral_events._ReferralEvent], kind: str) -> Handler:
    async def handle(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = model_type.model_validate(event.data)
        person_id = None
        if kind == "sent" and model.service_type in indicators.LINKED_SERVICES:
            person_id = await _linkable(uow, model.person_id)
        await _add_once(
            uow,
            ReferralFact,
            model.fact_id(),
            referral_id=model.referral_id,
            kind=kind,
            at=model.at,
            partner=_partner(model),
            service_type=model.service_type.value,
            outcome=getattr(model, "outcome", None),
            person_id=person_id,
        )

    handle.__name__ = f"referral_{kind}"
    return handle


async def course(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """CourseScheduled / CourseUpdated / CourseCancelled (in order per course on their topic)."""
    model = course_events.CourseScheduled.model_validate(event.data)  # all three carry the same fields
    row = await uow.get(CourseFact, model.course_id)
    if row is None:
        row = CourseFact(course_id=model.course_id)
        uow.session.add(row)
    row.category, row.capacity = model.category, model.capacity
    row.women_only, row.ends_on = model.women_only, model.ends_on
    if event.type == course_events.CourseCancelled.event_type:
        row.cancelled_on = _event_day(event)


def _enrolment_handler(model_type: type[course_events._EnrolmentEvent], kind: str) -> Handler:
    async def handle(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = model_type.model_validate(event.data)
        level = getattr(model, "level_reached", None)
        await _add_once(
            uow,
            EnrolmentFact,
            event.id,
            enrolment_id=model.enrolment_id,
            course_id=model.course_id,
            category=model.category,
            kind=kind,
            at=model.at,
            person_id=await _linkable(uow, model.person_id) if kind == "enrolled" else None,
            level_reached=level.value if level is not None else None,
            result=getattr(model, "result", None),
        )

    handle.__name__ = f"enrolment_{kind}"
    return handle


async def pass_entry(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = course_events.PassEntryAdded.model_validate(event.data)
    await _add_once(uow, PassFact, event.id, kind=model.kind, at=model.at)


def _referral_fact_id(event: ReceivedEvent) -> str:
    model = model_for(event.type).model_validate(event.data)
    assert isinstance(model, referral_events._ReferralEvent)  # only referral events add referral facts
    return model.fact_id()


async def _prefetch(uow: UnitOfWork, facts: Mapping[str, type[Any]]) -> None:
    """A consumer's batch: the people its events name, and the facts (by ``ce_id``) and courses they would
    add, loaded in one query each instead of one per event (again after a savepoint's rollback emptied the cache)."""
    if not uow.batch or "monitoring.batch" in uow.cache:
        return
    uow.cache["monitoring.batch"] = True
    await uow.load(Person, {str(e.data["person_id"]) for e in uow.batch if e.data.get("person_id")})
    # Referral facts are keyed by the fact the event tells, not by its ce_id (the module's description).
    await uow.load(ReferralFact, {_referral_fact_id(e) for e in uow.batch if facts.get(e.type) is ReferralFact})
    for model in (EnrolmentFact, PassFact):
        await uow.load(model, {e.id for e in uow.batch if facts.get(e.type) is model})
    await uow.load(CourseFact, {str(e.data["course_id"]) for e in uow.batch if facts.get(e.type) is CourseFact})


def make_handlers() -> Mapping[str, Handler]:
    r, c = referral_events, course_events
    handlers: dict[str, Handler] = {
        registration_events.PersonRegistered.event_type: profile,
        registration_events.PersonUpdated.event_type: profile,
        registration_events.PersonMovedAway.event_type: moved_away,
        registration_events.PersonErased.event_type: erased,
        registration_events.NeedsAssessed.event_type: needs_assessed,
        r.ReferralSent.event_type: _referral_handler(r.ReferralSent, "sent"),
        r.ReferralAccepted.event_type: _referral_handler(r.ReferralAccepted, "accepted"),
        r.ReferralDeclined.event_type: _referral_handler(r.ReferralDeclined, "declined"),
        r.ReferralCompleted.event_type: _referral_handler(r.ReferralCompleted, "completed"),
        r.ReferralEscalated.event_type: _referral_handler(r.ReferralEscalated, "escalated"),
        c.CourseScheduled.event_type: course,
        c.CourseUpdated.event_type: course,
        c.CourseCancelled.event_type: course,
        c.Waitlisted.event_type: _enrolment_handler(c.Waitlisted, "waitlisted"),
        c.SeatOffered.event_type: _enrolment_handler(c.SeatOffered, "seat_offered"),
        c.Enrolled.event_type: _enrolment_handler(c.Enrolled, "enrolled"),
        c.OfferExpired.event_type: _enrolment_handler(c.OfferExpired, "offer_expired"),
        c.EnrolmentCancelled.event_type: _enrolment_handler(c.EnrolmentCancelled, "cancelled"),
        c.CourseCompleted.event_type: _enrolment_handler(c.CourseCompleted, "completed"),
        c.PassEntryAdded.event_type: pass_entry,
    }
    # What each event type adds (for _prefetch): referral and enrolment facts, pass entries, courses.
    adds: list[tuple[type[Any], tuple[Any, ...]]] = [
        (
            ReferralFact,
            (r.ReferralSent, r.ReferralAccepted, r.ReferralDeclined, r.ReferralCompleted, r.ReferralEscalated),
        ),
        (
            EnrolmentFact,
            (c.Waitlisted, c.SeatOffered, c.Enrolled, c.OfferExpired, c.EnrolmentCancelled, c.CourseCompleted),
        ),
        (PassFact, (c.PassEntryAdded,)),
        (CourseFact, (c.CourseScheduled, c.CourseUpdated, c.CourseCancelled)),
    ]
    facts = {event.event_type: model for model, events in adds for event in events}

    def batched(handler: Handler) -> Handler:
        async def handle(uow: UnitOfWork, event: ReceivedEvent) -> None:
            await _prefetch(uow, facts)
            await handler(uow, event)

        handle.__name__ = getattr(handler, "__name__", "handle")
        return handle

    return {event_type: batched(handler) for event_type, handler in handlers.items()}
