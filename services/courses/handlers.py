"""Event handlers of the courses service: one function per consumed event type.

Registration's events give the pseudonymous facts for eligibility and fair order; an accepted VHS
referral asks for a seat; a successful IHK recognition referral adds a line to the education pass; referral's
case events say which team works a person's case (the caseworkers' object-level rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import referral as referral_events
from contracts import registration as registration_events
from contracts.vocabulary import ServiceType
from services.courses import workflow
from services.courses.models import CaseTeam, Learner

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [registration_events.PERSONS_TOPIC, referral_events.REFERRALS_TOPIC, referral_events.CASES_TOPIC]


async def _load_batch(uow: UnitOfWork) -> None:
    """The learners and case teams all events of a consumer's batch name, in two queries once (the handlers' lookups
    then need none): a newcomer's registration, needs and case events came with one query each."""
    if not uow.batch or "courses.batch_loaded" in uow.cache:
        return
    uow.cache["courses.batch_loaded"] = True  # emptied with the cache when a savepoint is undone: loaded again then
    people = {e.data.get("person_id") for e in uow.batch}
    cases = {e.data.get("case_id") for e in uow.batch if e.topic == referral_events.CASES_TOPIC}
    await uow.load(Learner, {p for p in people if isinstance(p, str)})
    await uow.load(CaseTeam, {c for c in cases if isinstance(c, str)})


async def _learner(uow: UnitOfWork, person_id: str) -> Learner:
    await _load_batch(uow)
    learner = await uow.get(Learner, person_id)
    if learner is None:
        learner = Learner(person_id=person_id, profile_version=0, needs_version=0, erased=False, childcare_needed=False)
        uow.session.add(learner)
    return learner


def make_handlers(clock: Callable[[], datetime], settings: Any) -> Mapping[str, Handler]:
    def flow(uow: UnitOfWork) -> workflow.Workflow:
        return workflow.Workflow(
            uow=uow, now=clock(), offer_hours=settings.offer_hours, priorities=tuple(settings.waitlist_priorities)
        )

    async def profile_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        data = event.data
        learner = await _learner(uow, data["person_id"])
        version = int(data.get("version", 1))
        if not learner.erased and version > learner.profile_version:
            learner.gender, learner.age_band, learner.profile_version = data["gender"], data["age_band"], version
            learner.household_id = data.get("household_id")

    async def needs_assessed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.NeedsAssessed.model_validate(event.data)
        learner = await _learner(uow, model.person_id)
        if not learner.erased and model.assessment_version > learner.needs_version:
            learner.german_level = model.german_level.value
            learner.childcare_needed = model.childcare_needed
            learner.gender, learner.age_band = model.gender.value, model.age_band.value
            learner.needs_version = model.assessment_version

    async def moved_away(uow: UnitOfWork, event: ReceivedEvent) -> None:
        await workflow.leave_courses(flow(uow), event.data["person_id"], "moved_away")

    async def erased(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Art. 17: seats are freed, the passes revoked and gone with their entries, the enrolments unlinked."""
        person_id = event.data["person_id"]
        learner = await _learner(uow, person_id)  # stays as a tombstone: no new enrolment for an erased person
        learner.erased, learner.gender, learner.age_band, learner.german_level = True, None, None, None
        learner.childcare_needed, learner.household_id = False, None
        w = flow(uow)
        await workflow.leave_courses(w, person_id, "person_erased")
        await workflow.erase_person(w, person_id)

    async def case_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Which team works the person's case, and whether it is open (events of one case come in order)."""
        data = event.data
        await _load_batch(uow)
        learner = await uow.get(Learner, data["person_id"])
        if learner is not None and learner.erased:
            return  # nobody acts on an erased person's records
        case = await uow.get(CaseTeam, data["case_id"])
        if case is None:
            case = CaseTeam(case_id=data["case_id"], person_id=data["person_id"], open=True)
            uow.session.add(case)
        if event.type == referral_events.CaseOpened.event_type:
            case.household_id = data.get("household_id") or None
        if event.type == referral_events.CaseAssigned.event_type:
            model = referral_events.CaseAssigned.model_validate(data)
            case.team, case.caseworker_id = model.team, model.caseworker_id
        elif event.type == referral_events.CaseClosed.event_type:
            case.open = False
        elif event.type == referral_events.CaseReopened.event_type:
            model_reopened = referral_events.CaseReopened.model_validate(data)
            case.open, case.team, case.caseworker_id = True, model_reopened.team, model_reopened.caseworker_id

    async def referral_accepted(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """An accepted VHS referral asks for a seat in a fitting course."""
        model = referral_events.ReferralAccepted.model_validate(event.data)
        await workflow.enrol_for_referral(
            flow(uow), model.person_id, model.referral_id, partner_id=model.partner_id, service=model.service_type
        )

    async def referral_completed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """A successful IHK recognition advice becomes a line of the education pass."""
        model = referral_events.ReferralCompleted.model_validate(event.data)
        if model.service_type is not ServiceType.QUALIFICATION_RECOGNITION or model.outcome != "successful":
            return
        details = {
            "recognition": "foreign qualification recognition advice completed",
            "by": model.partner_id,
            "completed_on": model.at.date().isoformat(),
        }
        await workflow.add_pass_entry(
            flow(uow), model.person_id, "recognition", details, source_id=f"referral:{model.referral_id}"
        )

    return {
        registration_events.PersonRegistered.event_type: profile_changed,
        registration_events.PersonUpdated.event_type: profile_changed,
        registration_events.NeedsAssessed.event_type: needs_assessed,
        registration_events.PersonMovedAway.event_type: moved_away,
        registration_events.PersonErased.event_type: erased,
        referral_events.ReferralAccepted.event_type: referral_accepted,
        referral_events.ReferralCompleted.event_type: referral_completed,
        referral_events.CaseOpened.event_type: case_changed,
        referral_events.CaseAssigned.event_type: case_changed,
        referral_events.CaseClosed.event_type: case_changed,
        referral_events.CaseReopened.event_type: case_changed,
    }
