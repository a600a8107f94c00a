"""Referral's use cases (services/referral/workflow.py) on the in-memory unit of work (chassis/memory.py): what each
decides, stores and publishes, without a database server or a broker. A refused step publishes nothing.

The scenario: an adult with German below B1 who seeks work. The rules propose an integration course (VHS) and job
placement (Jobcenter); the consent covers the adult-education partners only, so the course goes at once and the
job placement waits for a consent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chassis.memory import InMemoryUnitOfWork
from contracts import referral as events
from contracts.vocabulary import EsserDimension
from services.referral import domain, workflow
from services.referral.models import (
    Base,
    Case,
    CaseworkerRow,
    KnownConsent,
    KnownPerson,
    PartnerOfferRow,
    Referral,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday
A = domain.ReferralAction


def person(person_id: str = "p-1", household_id: str = "h-1", age_band: str = "27-44") -> KnownPerson:
    return KnownPerson(
        person_id=person_id,
        household_id=household_id,
        status="registered",
        profile_version=1,
        needs_version=1,
        profile={
            "household_id": household_id,
            "age_band": age_band,
            "gender": "female",
            "residence_status_group": "recognised_refugee",
            "languages": ["ar", "de"],
            "preferred_language": "ar",
        },
        needs={
            "german_level": "A2",
            "need_categories": ["employment"],
            "childcare_needed": False,
            "children_age_bands": [],
        },
    )


def offer(partner_id: str, category: str, service: str, free_places: int | None = 10) -> PartnerOfferRow:
    return PartnerOfferRow(
        partner_id=partner_id,
        service_type=service,
        partner_name=partner_id,
        partner_category=category,
        free_places=free_places,
        languages=["ar"],
        response_days=5,
    )


def consent_for_adult_education(person_id: str = "p-1", consent_id: str = "c-1") -> KnownConsent:
    return KnownConsent(
        consent_id=consent_id,
        person_id=person_id,
        partner_id=None,
        partner_category="adult_education",
        purpose="course_enrolment",
        given_at=NOW - timedelta(days=1),
    )


@pytest.fixture
async def uow() -> AsyncIterator[InMemoryUnitOfWork]:
    unit = await InMemoryUnitOfWork.create(Base.metadata)
    async with unit:
        unit.session.add_all(
            [
                person(),
                CaseworkerRow(id="lotse-1", name="Lotse", team="nord", languages=["ar"], max_cases=10, active=True),
                offer("vhs-landsberg", "adult_education", "integration_course"),
                offer("vhs-ammersee", "adult_education", "integration_course"),
                offer("jobcenter", "job_centre", "job_placement", free_places=None),
                consent_for_adult_education(),
            ]
        )
        await unit.commit()
    yield unit
    await unit.close()


def flow(uow: InMemoryUnitOfWork, now: datetime = NOW) -> workflow.Workflow:
    return workflow.Workflow(uow=uow, now=now, actor="user:lotse-1")


async def routed(uow: InMemoryUnitOfWork) -> dict[str, Referral]:
    """Route the person (committed): their referrals by service type."""
    async with uow:
        found = await uow.session.get(KnownPerson, "p-1")
        assert found is not None
        created = await workflow.route(flow(uow), found)
        await uow.commit()
    return {r.service_type: r for r in created}


async def one(uow: InMemoryUnitOfWork, referral_id: str) -> Referral:
    referral = await uow.session.get(Referral, referral_id)
    assert referral is not None
    return referral


async def the_case(uow: InMemoryUnitOfWork) -> Case:
    case = await workflow.case_of(uow.session, "p-1")
    assert case is not None
    return case


def published_since(uow: InMemoryUnitOfWork, mark: int) -> list[str]:
    return uow.types()[mark:]


async def test_routing_opens_the_case_proposes_and_sends_what_a_consent_covers(uow: InMemoryUnitOfWork) -> None:
    referrals = await routed(uow)
    assert uow.types() == [
        events.CaseOpened.event_type,
        events.CaseAssigned.event_type,
        events.ReferralProposed.event_type,
        events.ReferralProposed.event_type,
        events.ReferralSent.event_type,
    ]
    course, job = referrals["integration_course"], referrals["job_placement"]
    assert (course.status, course.partner_id, course.consent_id) == ("sent", "vhs-ammersee", "c-1")  # most room: tie
    assert (job.status, workflow.blocked_of(job)) == ("proposed", workflow.CONSENT_MISSING)
    sent = uow.published[-1]
    assert sent.referral_id == course.id and sent.partner_id == course.partner_id  # type: ignore[attr-defined]
    async with uow:
        case = await the_case(uow)
        assert (case.caseworker_id, case.team) == ("lotse-1", "nord")
        place = await uow.session.get(PartnerOfferRow, (course.partner_id, "integration_course"))
        assert place is not None and place.free_places == 9  # until the partner's next capacity event


async def test_routing_again_proposes_nothing_new(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    before = len(uow.published)
    assert await routed(uow) == {}
    assert len(uow.published) == before


async def test_no_routing_before_the_needs_are_known(uow: InMemoryUnitOfWork) -> None:
    async with uow:
        found = await uow.session.get(KnownPerson, "p-1")
        assert found is not None
        found.needs = None
        assert await workflow.route(flow(uow), found) == []
        await uow.commit()
    assert uow.types() == []


async def test_a_consent_lets_the_waiting_referral_go(uow: InMemoryUnitOfWork) -> None:
    job = (await routed(uow))["job_placement"]
    mark = len(uow.published)
    async with uow:
        uow.session.add(
            KnownConsent(
                consent_id="c-2", person_id="p-1", partner_id="jobcenter", purpose="job_placement", given_at=NOW
            )
        )
        await uow.session.flush()
        assert await workflow.retry_blocked(flow(uow), person_id="p-1") == 1
        await uow.commit()
        assert (await one(uow, job.id)).status == "sent"
    assert published_since(uow, mark) == [events.ReferralSent.event_type]


async def test_sending_without_a_consent_is_refused_and_says_why(uow: InMemoryUnitOfWork) -> None:
    job = (await routed(uow))["job_placement"]
    mark = len(uow.published)
    with pytest.raises(domain.ReferralError, match="consent missing"):
        async with uow:
            await workflow.act(flow(uow), await one(uow, job.id), A.SEND)
            await uow.commit()
    assert published_since(uow, mark) == []


async def step(uow: InMemoryUnitOfWork, referral_id: str, action: domain.ReferralAction, **reasons: Any) -> None:
    async with uow:
        await workflow.act(flow(uow), await one(uow, referral_id), action, **reasons)
        await uow.commit()


async def test_the_partners_answers_move_the_referral_on_each_with_its_event(uow: InMemoryUnitOfWork) -> None:
    course = (await routed(uow))["integration_course"]
    mark = len(uow.published)
    await step(uow, course.id, A.ACCEPT)
    await step(uow, course.id, A.START)
    await step(
        uow,
        course.id,
        A.COMPLETE,
        outcome=domain.Outcome.UNSUCCESSFUL,
        unsuccessful_reason=domain.UnsuccessfulReason.CLIENT_REFUSED,
    )
    assert published_since(uow, mark) == [
        events.ReferralAccepted.event_type,
        events.ReferralStarted.event_type,
        events.ReferralCompleted.event_type,
    ]
    completed = uow.published[-1]
    assert (completed.outcome, completed.reason) == ("unsuccessful", "client_refused")  # type: ignore[attr-defined]
    async with uow:
        stored = await one(uow, course.id)
        assert (stored.status, stored.outcome, stored.unsuccessful_reason) == (
            "completed",
            "unsuccessful",
            "client_refused",
        )


@pytest.mark.parametrize(
    ("action", "reasons", "error"),
    [
        (A.DECLINE, {}, "a decline needs a reason"),
        (A.COMPLETE, {}, "a sent referral cannot complete"),
        (A.START, {}, "a sent referral cannot start"),
    ],
)
async def test_a_refused_answer_changes_and_publishes_nothing(
    uow: InMemoryUnitOfWork, action: domain.ReferralAction, reasons: dict[str, Any], error: str
) -> None:
    course = (await routed(uow))["integration_course"]
    mark = len(uow.published)
    with pytest.raises(domain.ReferralError, match=error):
        await step(uow, course.id, action, **reasons)
    assert published_since(uow, mark) == []
    async with uow:
        assert (await one(uow, course.id)).status == "sent"


async def test_a_decline_reports_its_reason(uow: InMemoryUnitOfWork) -> None:
    course = (await routed(uow))["integration_course"]
    await step(uow, course.id, A.DECLINE, decline_reason=domain.DeclineReason.NO_CAPACITY)
    declined = uow.published[-1]
    assert (declined.event_type, declined.reason) == (events.ReferralDeclined.event_type, "no_capacity")  # type: ignore[attr-defined]


async def test_referring_elsewhere_ends_the_referral_and_sends_the_same_service_to_the_other_partner(
    uow: InMemoryUnitOfWork,
) -> None:
    course = (await routed(uow))["integration_course"]
    await step(uow, course.id, A.ACCEPT)
    mark = len(uow.published)
    other = "vhs-landsberg" if course.partner_id == "vhs-ammersee" else "vhs-ammersee"
    async with uow:
        again = await workflow.refer_elsewhere(
            flow(uow), await one(uow, course.id), other, domain.ElsewhereReason.DISTANCE
        )
        await uow.commit()
    assert published_since(uow, mark) == [
        events.ReferralReferredElsewhere.event_type,
        events.ReferralProposed.event_type,
        events.ReferralSent.event_type,
    ]
    elsewhere = uow.published[mark]
    assert (elsewhere.target_partner_id, elsewhere.reason) == (other, "distance")  # type: ignore[attr-defined]
    assert (again.partner_id, again.status, again.rule_id) == (other, "sent", course.rule_id)


@pytest.mark.parametrize("target", ["same", "jobcenter"])
async def test_referring_elsewhere_to_no_fitting_partner_is_refused(uow: InMemoryUnitOfWork, target: str) -> None:
    course = (await routed(uow))["integration_course"]
    await step(uow, course.id, A.ACCEPT)
    mark = len(uow.published)
    with pytest.raises(domain.ElsewhereRefused):
        async with uow:
            referral = await one(uow, course.id)
            partner = referral.partner_id if target == "same" else target
            await workflow.refer_elsewhere(flow(uow), referral, partner or "", domain.ElsewhereReason.OTHER)
    assert published_since(uow, mark) == []


async def test_the_clock_escalates_an_unanswered_referral_then_expires_it(uow: InMemoryUnitOfWork) -> None:
    course = (await routed(uow))["integration_course"]
    mark = len(uow.published)
    for days, expected in [
        (1, {"escalated": 0, "expired": 0}),
        (7, {"escalated": 1, "expired": 0}),
        (8, {"escalated": 0, "expired": 0}),
        (22, {"escalated": 0, "expired": 1}),
    ]:
        async with uow:
            assert await workflow.run_clocks(flow(uow, NOW + timedelta(days=days))) == expected
            await uow.commit()
    assert published_since(uow, mark) == [events.ReferralEscalated.event_type, events.ReferralExpired.event_type]
    async with uow:
        assert (await one(uow, course.id)).status == "expired"


async def test_closing_the_case_revokes_what_is_open_and_reopening_opens_it_again(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    mark = len(uow.published)
    async with uow:
        await workflow.close(flow(uow), await the_case(uow), domain.CaseCloseReason.GOALS_REACHED, by="user:lotse-1")
        await uow.commit()
    assert published_since(uow, mark) == [
        events.CaseClosed.event_type,
        events.ReferralRevoked.event_type,
        events.ReferralRevoked.event_type,
    ]
    mark = len(uow.published)
    async with uow:
        await workflow.reopen(flow(uow), await the_case(uow), by="user:lotse-1")
        await uow.commit()
        assert (await the_case(uow)).status == "open"
    assert published_since(uow, mark) == [events.CaseReopened.event_type]


async def test_reopening_an_open_case_is_refused_and_publishes_nothing(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    mark = len(uow.published)
    with pytest.raises(domain.CaseError, match="open already"):
        async with uow:
            await workflow.reopen(flow(uow), await the_case(uow), by="user:lotse-1")
    assert published_since(uow, mark) == []


async def test_a_member_moving_away_leaves_the_household_case_which_goes_on(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    async with uow:
        uow.session.add(person("p-2"))
        uow.session.add(consent_for_adult_education("p-2", "c-2"))
        await uow.session.flush()
        second = await uow.session.get(KnownPerson, "p-2")
        assert second is not None
        theirs = await workflow.route(flow(uow), second)
        await uow.commit()
    assert {r.status for r in theirs} == {"sent", "proposed"}
    mark = len(uow.published)
    async with uow:
        assert await workflow.close_case(flow(uow), "p-2", domain.CaseCloseReason.MOVED_AWAY) is None
        await uow.commit()
        open_ones = await workflow.open_referrals(uow.session, (await the_case(uow)).id)
        assert {r.person_id for r in open_ones} == {"p-1"}
    assert published_since(uow, mark) == [events.ReferralRevoked.event_type] * 2  # only theirs


async def test_the_last_member_moving_away_closes_the_case(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    mark = len(uow.published)
    async with uow:
        closed = await workflow.close_case(flow(uow), "p-1", domain.CaseCloseReason.MOVED_AWAY)
        await uow.commit()
    assert closed is not None and closed.close_reason == "moved_away"
    assert published_since(uow, mark)[0] == events.CaseClosed.event_type


async def test_a_handover_says_who_assigned_the_case(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    async with uow:
        await workflow.assign(flow(uow), await the_case(uow), "lotse-2", "sued", assigned_by="user:admin")
        await uow.commit()
    assigned = uow.published[-1]
    assert (assigned.caseworker_id, assigned.team, assigned.assigned_by) == ("lotse-2", "sued", "user:admin")  # type: ignore[attr-defined]


async def test_goals_of_the_plan_are_set_and_updated_with_their_events(uow: InMemoryUnitOfWork) -> None:
    await routed(uow)
    mark = len(uow.published)
    async with uow:
        case = await the_case(uow)
        goal = await workflow.set_goal(
            flow(uow), case, person_id="p-1", dimension=EsserDimension.PLACEMENT, title="B1 bis Sommer", due_on=None
        )
        await workflow.update_goal(flow(uow), case, goal, {"status": domain.GoalStatus.ACHIEVED})
        await uow.commit()
    assert published_since(uow, mark) == [events.GoalSet.event_type, events.GoalUpdated.event_type]
    updated = uow.published[-1]
    assert (updated.goal_id, updated.status, updated.dimension) == (goal.id, "achieved", "placement")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("person_id", "changes", "error"),
    [("p-9", None, "not a member"), ("p-1", {"title": None}, "title cannot be removed")],
)
async def test_a_goal_for_someone_else_or_without_its_title_is_refused(
    uow: InMemoryUnitOfWork, person_id: str, changes: dict[str, Any] | None, error: str
) -> None:
    await routed(uow)
    mark = len(uow.published)
    with pytest.raises(domain.GoalError, match=error):
        async with uow:
            case = await the_case(uow)
            goal = await workflow.set_goal(
                flow(uow),
                case,
                person_id=person_id,
                dimension=EsserDimension.INTERACTION,
                title="Sprachcafé",
                due_on=None,
            )
            if changes is not None:
                await workflow.update_goal(flow(uow), case, goal, changes)
            await uow.commit()
    assert published_since(uow, mark) == []
    async with uow:
        assert (await uow.session.scalars(select(Referral))).all()  # the rest stays as it was
