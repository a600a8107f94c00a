"""The courses service's use cases (services/courses/workflow.py) on the in-memory unit of work (chassis/memory.py):
seats, the waiting line, offers, course changes, attendance, completion and the pass, checked by what each decides,
stores and publishes. A refused step publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chassis.memory import InMemoryUnitOfWork
from contracts import courses as events
from contracts.vocabulary import ServiceType
from services.courses import domain, workflow
from services.courses.models import Base, Course, CourseSession, Enrolment, Learner, PassEntry

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
START = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "title": "Integrationskurs B1",
    "description": None,
    "category": "integration_course",
    "target_level": "B1",
    "language_of_instruction": "de",
    "capacity": 1,
    "childcare_offered": True,
    "women_only": False,
    "min_age": None,
    "max_age": None,
    "funding": "bamf",
    "fee_euro": None,
    "enrolment_opens_on": None,
    "enrolment_closes_on": None,
    "location": "VHS Landsberg am Lech",
    "district": "Altstadt",
}


def learner(person_id: str, *, gender: str = "female", childcare: bool = False, erased: bool = False) -> Learner:
    return Learner(
        person_id=person_id,
        gender=gender,
        age_band="27-44",
        german_level="A2",
        childcare_needed=childcare,
        erased=erased,
        profile_version=1,
        needs_version=1,
    )


def plan(day: int, hours: int = 3) -> workflow.SessionPlan:
    starts = START + timedelta(days=day)
    return workflow.SessionPlan(starts, starts + timedelta(hours=hours), "Raum 1")


@pytest.fixture
async def uow() -> AsyncIterator[InMemoryUnitOfWork]:
    unit = await InMemoryUnitOfWork.create(Base.metadata)
    async with unit:
        unit.session.add_all(
            [
                learner("anna"),
                learner("berta", childcare=True),
                learner("carl", gender="male"),
                learner("gone", erased=True),
            ]
        )
        await unit.commit()
    yield unit
    await unit.close()


def flow(uow: InMemoryUnitOfWork, now: datetime = NOW) -> workflow.Workflow:
    return workflow.Workflow(uow=uow, now=now, offer_hours=72)


async def scheduled(uow: InMemoryUnitOfWork, capacity: int = 1, provider: str = "vhs-landsberg") -> str:
    async with uow:
        course = await workflow.schedule_course(
            flow(uow), provider, FIELDS | {"capacity": capacity}, [plan(2), plan(0)]
        )
        await uow.commit()
        return course.id


async def enrol(uow: InMemoryUnitOfWork, course_id: str, person_id: str, **options: Any) -> Enrolment:
    async with uow:
        enrolment = await workflow.request_enrolment(flow(uow), course_id, person_id, **options)
        await uow.commit()
        return enrolment


async def fresh(uow: InMemoryUnitOfWork, enrolment_id: str) -> Enrolment:
    found = await uow.session.get(Enrolment, enrolment_id)
    assert found is not None
    return found


def since(uow: InMemoryUnitOfWork, mark: int) -> list[str]:
    return uow.types()[mark:]


async def test_a_scheduled_course_is_announced_with_its_sessions_in_order(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    assert uow.types() == [events.CourseScheduled.event_type]
    announced = uow.published[0]
    assert (announced.course_id, announced.starts_on, announced.ends_on) == (  # type: ignore[attr-defined]
        course_id,
        date(2027, 1, 11),
        date(2027, 1, 13),
    )


async def test_sessions_that_overlap_are_refused_and_nothing_is_announced(uow: InMemoryUnitOfWork) -> None:
    with pytest.raises(domain.CourseError, match="must not overlap"):
        async with uow:
            await workflow.schedule_course(flow(uow), "vhs-landsberg", FIELDS, [plan(0), plan(0, hours=1)])
            await uow.commit()
    assert uow.types() == []


async def test_the_first_takes_the_seat_and_the_next_waits_in_line(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    mark = len(uow.published)
    first = await enrol(uow, course_id, "carl")
    second = await enrol(uow, course_id, "anna", referral_id="r-1")
    assert since(uow, mark) == [
        events.EnrolmentRequested.event_type,
        events.Enrolled.event_type,
        events.EnrolmentRequested.event_type,
        events.Waitlisted.event_type,
    ]
    assert (first.status, second.status, second.priority_flags) == ("enrolled", "waitlisted", ["referred"])
    assert uow.published[-1].position == 1  # type: ignore[attr-defined]


async def test_the_line_puts_a_woman_needing_childcare_first(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    await enrol(uow, course_id, "carl")
    await enrol(uow, course_id, "anna")
    await enrol(uow, course_id, "berta")
    assert uow.published[-1].position == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("person_id", "error"),
    [("carl", "already enrolled"), ("gone", "erased")],
)
async def test_a_refused_enrolment_publishes_nothing(uow: InMemoryUnitOfWork, person_id: str, error: str) -> None:
    course_id = await scheduled(uow)
    await enrol(uow, course_id, "carl")
    mark = len(uow.published)
    with pytest.raises(domain.CourseError, match=error):
        await enrol(uow, course_id, person_id)
    assert since(uow, mark) == []


async def test_a_cancelled_seat_is_offered_to_the_first_in_line_who_may_accept(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    first = await enrol(uow, course_id, "carl")
    second = await enrol(uow, course_id, "anna")
    mark = len(uow.published)
    async with uow:
        await workflow.cancel_enrolment(flow(uow), await fresh(uow, first.id), "person_request")
        await uow.commit()
    assert since(uow, mark) == [events.EnrolmentCancelled.event_type, events.SeatOffered.event_type]
    offered = uow.published[-1]
    assert (offered.enrolment_id, offered.expires_at) == (second.id, NOW + timedelta(hours=72))  # type: ignore[attr-defined]
    async with uow:
        await workflow.accept_offer(flow(uow), await fresh(uow, second.id))
        await uow.commit()
        assert (await fresh(uow, second.id)).status == "enrolled"
    assert uow.types()[-1] == events.Enrolled.event_type


async def test_an_offer_past_its_time_passes_to_the_next_and_cannot_be_accepted(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    first = await enrol(uow, course_id, "carl")
    second = await enrol(uow, course_id, "anna")
    third = await enrol(uow, course_id, "berta")
    async with uow:
        await workflow.cancel_enrolment(flow(uow), await fresh(uow, first.id), "person_request")
        await uow.commit()
    offered_to = uow.published[-1].enrolment_id  # type: ignore[attr-defined]
    assert offered_to == third.id  # the woman needing childcare comes first
    later = NOW + timedelta(hours=73)
    mark = len(uow.published)
    with pytest.raises(domain.InvalidTransition, match="expired"):
        async with uow:
            await workflow.accept_offer(flow(uow, later), await fresh(uow, third.id))
    assert since(uow, mark) == []
    async with uow:
        assert await workflow.expire_offers(flow(uow, later)) == 1
        await uow.commit()
    assert since(uow, mark) == [events.OfferExpired.event_type, events.SeatOffered.event_type]
    assert uow.published[-1].enrolment_id == second.id  # type: ignore[attr-defined]


async def test_more_capacity_is_a_new_version_and_offers_the_seat(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    await enrol(uow, course_id, "carl")
    waiting = await enrol(uow, course_id, "anna")
    mark = len(uow.published)
    async with uow:
        course = await workflow.change_course(flow(uow), course_id, {"capacity": 2, "description": None})
        await uow.commit()
    assert course.version == 2
    assert since(uow, mark) == [events.CourseUpdated.event_type, events.SeatOffered.event_type]
    assert uow.published[-1].enrolment_id == waiting.id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"capacity": 0}, "1 seats are taken"), ({"title": None}, "title cannot be removed")],
)
async def test_a_refused_course_change_publishes_nothing(
    uow: InMemoryUnitOfWork, changes: dict[str, Any], error: str
) -> None:
    course_id = await scheduled(uow)
    await enrol(uow, course_id, "carl")
    mark = len(uow.published)
    with pytest.raises(domain.CourseError, match=error):
        async with uow:
            await workflow.change_course(flow(uow), course_id, changes)
            await uow.commit()
    assert since(uow, mark) == []


async def test_sessions_are_added_and_removed_as_new_versions(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    mark = len(uow.published)
    async with uow:
        course = await workflow.add_session(flow(uow), course_id, plan(4))
        await uow.commit()
    assert (course.version, uow.published[-1].ends_on) == (2, date(2027, 1, 15))  # type: ignore[attr-defined]
    async with uow:
        first = await uow.session.scalar(
            select(CourseSession).where(CourseSession.course_id == course_id).order_by(CourseSession.starts_at)
        )
        assert first is not None
        course = await workflow.remove_session(flow(uow), course_id, first.id)
        await uow.commit()
    assert (course.version, uow.published[-1].starts_on) == (3, date(2027, 1, 13))  # type: ignore[attr-defined]
    assert since(uow, mark) == [events.CourseUpdated.event_type] * 2


async def test_session_changes_that_break_a_rule_are_refused(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    mark = len(uow.published)
    with pytest.raises(domain.CourseError, match="overlap"):
        async with uow:
            await workflow.add_session(flow(uow), course_id, plan(0, hours=1))
    with pytest.raises(workflow.NoSuchSession):
        async with uow:
            await workflow.remove_session(flow(uow), course_id, "no-such-session")
    async with uow:
        await workflow.cancel_course(flow(uow), course_id)
        await uow.commit()
    with pytest.raises(domain.InvalidTransition, match="cancelled course cannot be changed"):
        async with uow:
            await workflow.add_session(flow(uow), course_id, plan(9))
    assert since(uow, mark) == [events.CourseCancelled.event_type]


async def test_the_last_session_stays(uow: InMemoryUnitOfWork) -> None:
    async with uow:
        course = await workflow.schedule_course(flow(uow), "vhs-landsberg", FIELDS, [plan(0)])
        await uow.commit()
    async with uow:
        only = await uow.session.scalar(select(CourseSession.id).where(CourseSession.course_id == course.id))
    mark = len(uow.published)
    with pytest.raises(domain.CourseError, match="at least one session"):
        async with uow:
            await workflow.remove_session(flow(uow), course.id, only or "")
    assert since(uow, mark) == []


async def test_a_cancelled_course_tells_everyone_in_it(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    await enrol(uow, course_id, "carl")
    await enrol(uow, course_id, "anna")
    mark = len(uow.published)
    async with uow:
        await workflow.cancel_course(flow(uow), course_id)
        await uow.commit()
    assert since(uow, mark) == [events.EnrolmentCancelled.event_type] * 2 + [events.CourseCancelled.event_type]
    assert {e.reason for e in uow.published[mark:-1]} == {"course_cancelled"}  # type: ignore[attr-defined]
    with pytest.raises(domain.InvalidTransition):
        async with uow:
            await workflow.cancel_course(flow(uow), course_id)


async def test_attendance_is_recorded_for_the_enrolled_only(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    enrolled = await enrol(uow, course_id, "carl")
    waiting = await enrol(uow, course_id, "anna")
    async with uow:
        session_id = await uow.session.scalar(select(CourseSession.id).where(CourseSession.course_id == course_id))
    assert session_id is not None
    mark = len(uow.published)
    async with uow:
        await workflow.record_attendance(flow(uow), await fresh(uow, enrolled.id), session_id, present=True)
        await workflow.record_attendance(flow(uow), await fresh(uow, enrolled.id), session_id, present=False)
        await uow.commit()
    assert since(uow, mark) == [events.AttendanceRecorded.event_type] * 2
    assert uow.published[-1].present is False  # type: ignore[attr-defined]
    mark = len(uow.published)
    with pytest.raises(domain.InvalidTransition, match="waitlisted enrolment has no attendance"):
        async with uow:
            await workflow.record_attendance(flow(uow), await fresh(uow, waiting.id), session_id, present=True)
    with pytest.raises(workflow.NoSuchSession):
        async with uow:
            await workflow.record_attendance(flow(uow), await fresh(uow, enrolled.id), "elsewhere", present=True)
    assert since(uow, mark) == []


async def test_a_passed_language_course_fills_the_pass(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    enrolled = await enrol(uow, course_id, "carl")
    mark = len(uow.published)
    async with uow:
        await workflow.complete(
            flow(uow), await fresh(uow, enrolled.id), domain.CompletionResult.PASSED, "DTZ B1", date(2026, 12, 4)
        )
        await uow.commit()
        kinds = (await uow.session.scalars(select(PassEntry.kind).order_by(PassEntry.kind))).all()
    assert since(uow, mark) == [events.CourseCompleted.event_type] + [events.PassEntryAdded.event_type] * 3
    assert uow.published[mark].level_reached == "B1"  # type: ignore[attr-defined]
    assert list(kinds) == ["certificate", "course", "language_level"]


async def test_a_completion_in_the_future_is_refused(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    enrolled = await enrol(uow, course_id, "carl")
    mark = len(uow.published)
    with pytest.raises(domain.CourseError, match="future"):
        async with uow:
            await workflow.complete(
                flow(uow), await fresh(uow, enrolled.id), domain.CompletionResult.PASSED, None, date(2026, 12, 8)
            )
    assert since(uow, mark) == []


async def test_a_pass_entry_from_the_same_source_is_recorded_once(uow: InMemoryUnitOfWork) -> None:
    for _ in range(2):
        async with uow:
            await workflow.add_pass_entry(flow(uow), "anna", "recognition", {"by": "ihk"}, source_id="referral:r-1")
            await uow.commit()
    assert uow.types() == [events.PassEntryAdded.event_type]


async def test_an_accepted_referral_gets_a_seat_at_that_provider(uow: InMemoryUnitOfWork) -> None:
    await scheduled(uow, provider="vhs-ammersee")
    ours = await scheduled(uow, capacity=5)
    mark = len(uow.published)
    async with uow:
        got = await workflow.enrol_for_referral(
            flow(uow), "anna", "r-1", partner_id="vhs-landsberg", service=ServiceType.INTEGRATION_COURSE
        )
        none = await workflow.enrol_for_referral(
            flow(uow), "anna", "r-2", partner_id="vhs-landsberg", service=ServiceType.HOUSING_ADVICE
        )
        await uow.commit()
    assert got is not None and (got.course_id, got.referral_id, got.status) == (ours, "r-1", "enrolled")
    assert none is None
    assert since(uow, mark) == [events.EnrolmentRequested.event_type, events.Enrolled.event_type]


async def test_leaving_frees_every_seat_and_erasure_unlinks_the_enrolments(uow: InMemoryUnitOfWork) -> None:
    course_id = await scheduled(uow)
    enrolled = await enrol(uow, course_id, "carl")
    await enrol(uow, course_id, "anna")
    mark = len(uow.published)
    async with uow:
        w = flow(uow)
        assert await workflow.leave_courses(w, "carl", "person_erased") == 1
        await workflow.erase_person(w, "carl")
        await uow.commit()
        assert (await fresh(uow, enrolled.id)).person_id.startswith("erased-")
    assert since(uow, mark) == [events.EnrolmentCancelled.event_type, events.SeatOffered.event_type]


async def test_the_course_rules_know_nothing_of_a_missing_course(uow: InMemoryUnitOfWork) -> None:
    with pytest.raises(domain.CourseError, match="no course"):
        async with uow:
            await workflow.request_enrolment(flow(uow), "nowhere", "anna")
    async with uow:
        assert (await uow.session.scalars(select(Course))).all() == []
