"""Event handlers of the referral service: one function per consumed event type.

Registration's events build the pseudonymous picture of a person (profile,
needs, consents) and drive cases and routing; partner events carry capacity.
Every handler is idempotent and tolerates events out of order: profile and
needs keep the newest version, a withdrawal may arrive before its consent.

Erasure (``person_erased``) keeps the non-identifying skeleton that the audit of
what was done and the statistics need: the person's row as a tombstone (so that a
late event does not bring the profile back), the case (status, caseworker, dates,
close reason), each referral (service, partner, rule, status, outcome, dates: not
the facts that matched), the goals' dimension and status, and the timeline as a
list of what happened when (event type, source, time and the ids of the platform's
own records, see :data:`KEPT_AFTER_ERASURE`). It removes the profile and needs,
consents, notes, goal titles, the household link, the matched facts, every other
timeline detail (also of events that arrive later) and the stored answers to
idempotent writes about the person, the case and its referrals. When the person was one member of a household
whose case goes on for the others, they leave it: the case, its notes and tasks stay the others', the titles of
goals that named this member and the matched facts of their referrals go (``domain``'s household rule).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import registration as registration_events
from contracts.base import IntegrationEvent
from contracts.registry import model_for
from services.referral import domain, workflow
from services.referral.models import (
    CaseNote,
    CaseTask,
    Goal,
    KnownConsent,
    KnownPartner,
    KnownPerson,
    PartnerOfferRow,
    Referral,
    TimelineEntry,
)

CONSUMED_TOPICS = [registration_events.PERSONS_TOPIC, partner_events.PARTNERS_TOPIC, course_events.ENROLMENTS_TOPIC]
PROFILE_FIELDS = list(registration_events.PersonProfile.model_fields)
#: What an erased person's timeline entries keep of their summary: ids of the platform's own records and whom a
#: referral went to. Profile, needs, consents, course results, reasons and outcomes go.
KEPT_AFTER_ERASURE = frozenset(
    {"case_id", "referral_id", "goal_id", "enrolment_id", "course_id", "partner_id", "service_type"}
)


async def _erased(uow: UnitOfWork, person_id: str) -> bool:
    person = await uow.get(KnownPerson, person_id)
    return person is not None and person.status == "erased"


async def _redact_timeline(uow: UnitOfWork, person_id: str) -> None:
    """Reduce an erased person's timeline to what happened when (the entries of this transaction too)."""
    entries = (await uow.session.scalars(select(TimelineEntry).where(TimelineEntry.person_id == person_id))).all()
    for entry in entries:
        kept = {k: v for k, v in (entry.summary or {}).items() if k in KEPT_AFTER_ERASURE}
        if kept != entry.summary:
            entry.summary = kept
    for key, held in uow.held_rows(workflow.TIMELINE):  # this unit of work's entries, inserted at its commit
        if held["person_id"] == person_id:
            kept = {k: v for k, v in (held["summary"] or {}).items() if k in KEPT_AFTER_ERASURE}
            if kept != held["summary"]:
                uow.insert_at_commit(workflow.TIMELINE, key, held | {"summary": kept})


async def _person(uow: UnitOfWork, person_id: str) -> KnownPerson:
    person = await uow.get(KnownPerson, person_id)
    if person is None:
        person = KnownPerson(person_id=person_id, profile_version=0, needs_version=0, status="registered")
        uow.session.add(person)
    return person


def make_handlers(clock: Callable[[], datetime], settings: Any) -> Mapping[str, Handler]:
    def flow(uow: UnitOfWork) -> workflow.Workflow:
        return workflow.Workflow(uow=uow, now=clock(), expiry_days=settings.referral_expiry_days)

    async def timeline(w: workflow.Workflow, model: IntegrationEvent, event: ReceivedEvent) -> None:
        await workflow.record_timeline(w, model, event_id=event.id, source=event.source)
        person_id = getattr(model, "person_id", None)
        if person_id is not None and await _erased(w.uow, person_id):
            await _redact_timeline(w.uow, person_id)  # an event that arrived after the erasure

    async def profile_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = model_for(event.type).model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        person = await _person(uow, model.person_id)  # type: ignore[attr-defined]
        if person.status == "erased":
            return
        version = getattr(model, "version", 1)
        if version > person.profile_version:  # an older snapshot arriving late changes nothing
            person.profile = model.model_dump(mode="json", include=set(PROFILE_FIELDS))
            person.household_id = person.profile["household_id"]
            person.profile_version = version
        if person.status == "registered":
            await workflow.open_case(w, person)
            await workflow.route(w, person)

    async def needs_assessed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.NeedsAssessed.model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        person = await _person(uow, model.person_id)
        if person.status == "erased" or model.assessment_version <= person.needs_version:
            return
        person.needs = model.model_dump(mode="json")
        person.needs_version = model.assessment_version
        await uow.session.flush()
        await workflow.route(w, person)

    async def consent_given(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.ConsentGiven.model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        row = await uow.session.get(KnownConsent, model.consent_id)
        if row is None:
            row = KnownConsent(consent_id=model.consent_id, person_id=model.person_id)
            uow.session.add(row)
        row.partner_id = model.partner_id
        row.partner_category = model.partner_category.value if model.partner_category else None
        row.purpose = model.purpose.value
        row.given_at = model.given_at
        row.expires_on = model.expires_on
        await uow.session.flush()
        await workflow.retry_blocked(w, person_id=model.person_id)

    async def consent_withdrawn(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.ConsentWithdrawn.model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        row = await uow.session.get(KnownConsent, model.consent_id)
        if row is None:  # the withdrawal overtook its consent: remember it, the consent will find it
            row = KnownConsent(consent_id=model.consent_id, person_id=model.person_id)
            uow.session.add(row)
        row.withdrawn_at = model.withdrawn_at
        # Already shared: flag it, so the caseworker can tell the partner to stop using the data.
        await uow.session.execute(
            update(Referral)
            .where(
                Referral.consent_id == model.consent_id,
                Referral.status.in_(["sent", "accepted", "in_progress"]),
            )
            .values(consent_withdrawn=True, updated_at=w.now)
        )

    async def moved_away(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.PersonMovedAway.model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        person = await _person(uow, model.person_id)
        if person.status == "registered":
            person.status = "moved_away"
        await workflow.close_case(w, model.person_id, domain.CaseCloseReason.MOVED_AWAY)

    async def erased(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Art. 17: close and reduce to the skeleton (the module's description says what stays)."""
        model = registration_events.PersonErased.model_validate(event.data)
        w = flow(uow)
        person = await _person(uow, model.person_id)
        person.status = "erased"
        person.profile = None
        person.needs = None
        person.household_id = None
        household_case = await workflow.case_of(uow.session, model.person_id)
        case = await workflow.close_case(w, model.person_id, domain.CaseCloseReason.ERASED)
        session = uow.session
        if case is None and household_case is not None:
            # The household's case goes on for the others: only what was this member's goes (a goal's title may
            # name them). The notes are the household's record; they stay with the others' case.
            goals = select(Goal.id).where(Goal.case_id == household_case.id, Goal.person_id == person.person_id)
            await session.execute(
                update(Goal)
                .where(Goal.case_id == household_case.id, Goal.person_id == person.person_id)
                .values(title=None)
            )
            await uow.forget_stored_responses(*(await session.scalars(goals)).all())
        for consent in (
            await session.scalars(select(KnownConsent).where(KnownConsent.person_id == person.person_id))
        ).all():
            await session.delete(consent)
        subjects = [person.person_id]
        if case is not None:
            case.household_id = None
            for note in (await session.scalars(select(CaseNote).where(CaseNote.case_id == case.id))).all():
                await session.delete(note)
            # A follow-up's title is the caseworker's free text: it may name the person.
            for task in (await session.scalars(select(CaseTask).where(CaseTask.case_id == case.id))).all():
                await session.delete(task)
            await session.execute(update(Goal).where(Goal.case_id == case.id).values(title=None))
            subjects.append(case.id)
            subjects += (await session.scalars(select(Goal.id).where(Goal.case_id == case.id))).all()
        referrals = (await session.scalars(select(Referral).where(Referral.person_id == person.person_id))).all()
        for referral in referrals:
            referral.matched_facts = {}
        subjects += [r.id for r in referrals]
        await timeline(w, model, event)  # also reduces the entries the closing of the case has just added
        await uow.forget_stored_responses(*subjects)

    async def partner_described(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """A partner joined the directory or changed its entry: remember what filing its services needs."""
        model = model_for(event.type).model_validate(event.data)
        assert isinstance(model, partner_events.PartnerRegistered | partner_events.PartnerUpdated)
        row = await uow.session.get(KnownPartner, model.partner_id)
        if row is None:
            row = KnownPartner(partner_id=model.partner_id)
            uow.session.add(row)
        row.name, row.category, row.languages = model.name, model.category.value, list(model.languages)
        await uow.session.execute(
            update(PartnerOfferRow)
            .where(PartnerOfferRow.partner_id == model.partner_id)
            .values(partner_category=model.category.value)
        )
        workflow.forget_offers(uow)

    async def service_offered(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """A partner offers a service (or changed its terms): routing may send referrals there."""
        model = partner_events.ServiceOffered.model_validate(event.data)
        session = uow.session
        row = await session.get(PartnerOfferRow, (model.partner_id, model.service_type.value))
        partner = await session.get(KnownPartner, model.partner_id)
        category = partner.category if partner else (row.partner_category if row else None)
        if category is None:
            raise ValueError(f"service offered by {model.partner_id}, whose directory entry is unknown")
        if row is None:
            row = PartnerOfferRow(partner_id=model.partner_id, service_type=model.service_type.value)
            session.add(row)
            workflow.forget_offers(uow)
        row.partner_name, row.partner_category, row.languages = model.name, category, list(model.languages)
        row.free_places, row.response_days = model.free_places, model.response_days
        await session.flush()
        await workflow.retry_blocked(flow(uow), service_type=model.service_type.value)

    async def service_withdrawn(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = partner_events.ServiceWithdrawn.model_validate(event.data)
        row = await uow.session.get(PartnerOfferRow, (model.partner_id, model.service_type.value))
        if row is not None:
            await uow.session.delete(row)  # referrals already sent there stay; new ones go elsewhere
            workflow.forget_offers(uow)

    async def capacity_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = partner_events.PartnerCapacityChanged.model_validate(event.data)
        row = await uow.session.get(PartnerOfferRow, (model.partner_id, model.service_type.value))
        if row is None:
            return  # a partner this service does not route to
        row.free_places = model.free_places
        await uow.session.flush()
        await workflow.retry_blocked(flow(uow), service_type=model.service_type.value)

    async def course_event(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Courses report on a person: the timeline shows it, and a VHS referral follows the enrolment."""
        model = model_for(event.type).model_validate(event.data)
        w = flow(uow)
        await timeline(w, model, event)
        referral_id = getattr(model, "referral_id", None)
        referral = await uow.session.get(Referral, referral_id) if referral_id else None
        if referral is None:
            return
        status = domain.ReferralStatus(referral.status)
        if isinstance(model, course_events.Enrolled) and status is domain.ReferralStatus.ACCEPTED:
            await workflow.act(w, referral, domain.ReferralAction.START)
        elif isinstance(model, course_events.CourseCompleted) and status is domain.ReferralStatus.IN_PROGRESS:
            passed = model.result in ("passed", "attended")
            await workflow.act(
                w,
                referral,
                domain.ReferralAction.COMPLETE,
                outcome=domain.Outcome.SUCCESSFUL if passed else domain.Outcome.UNSUCCESSFUL,
                unsuccessful_reason=None if passed else domain.UnsuccessfulReason.OTHER,
            )
        elif (
            isinstance(model, course_events.EnrolmentCancelled)
            and model.reason == "course_cancelled"
            and status in (domain.ReferralStatus.ACCEPTED, domain.ReferralStatus.IN_PROGRESS)
        ):
            # The course fell through: close this referral and route the person again.
            await workflow.act(w, referral, domain.ReferralAction.REFER_ELSEWHERE)
            person = await uow.session.get(KnownPerson, referral.person_id)
            if person is not None:
                await workflow.route(w, person)

    def batched(handler: Handler) -> Handler:
        async def handle(uow: UnitOfWork, event: ReceivedEvent) -> None:
            await workflow.prefetch(uow)  # the rows all the batch's events need, once (nothing outside a batch)
            await handler(uow, event)

        return handle

    handlers: dict[str, Handler] = {
        **{
            model.event_type: course_event
            for model in course_events.EVENTS
            if model.topic == course_events.ENROLMENTS_TOPIC
        },
        registration_events.PersonRegistered.event_type: profile_changed,
        registration_events.PersonUpdated.event_type: profile_changed,
        registration_events.NeedsAssessed.event_type: needs_assessed,
        registration_events.ConsentGiven.event_type: consent_given,
        registration_events.ConsentWithdrawn.event_type: consent_withdrawn,
        registration_events.PersonMovedAway.event_type: moved_away,
        registration_events.PersonErased.event_type: erased,
        partner_events.PartnerCapacityChanged.event_type: capacity_changed,
        partner_events.PartnerRegistered.event_type: partner_described,
        partner_events.PartnerUpdated.event_type: partner_described,
        partner_events.ServiceOffered.event_type: service_offered,
        partner_events.ServiceWithdrawn.event_type: service_withdrawn,
    }
    return {event_type: batched(handler) for event_type, handler in handlers.items()}
