"""The courses service's use cases, shared by its routes, handlers and the offer clock.

Everything that changes seats runs under :func:`seat_lock` (one course at a time: a row lock on
PostgreSQL across replicas, and an in-process lock for SQLite, which has no row locks).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc as aware
from chassis.uow import UnitOfWork
from contracts import courses as events
from contracts.base import IntegrationEvent
from contracts.calendar import local_day
from contracts.vocabulary import AgeBand, Gender, GermanLevel, ServiceType
from services.courses import domain
from services.courses.models import (
    Attendance,
    CaseTeam,
    Course,
    CourseSession,
    Enrolment,
    IssuedPass,
    Learner,
    PassEntry,
    PassStatus,
)

log = logging.getLogger(__name__)
_LOCAL_LOCKS: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


@dataclass
class Workflow:
    uow: UnitOfWork
    now: datetime
    offer_hours: float = 72.0
    priorities: tuple[domain.PriorityCriterion, ...] = domain.DEFAULT_PRIORITIES
    held_locks: set[str] = field(default_factory=set)

    @property
    def session(self) -> AsyncSession:
        return self.uow.session

    async def publish(self, event: IntegrationEvent) -> None:
        await self.uow.publish(event)


@asynccontextmanager
async def seat_lock(w: Workflow, course_id: str) -> AsyncIterator[Course]:
    """Hold the course while seats are counted and given: never an overbooking.

    PostgreSQL locks the course row until the transaction ends (across replicas). SQLite has no
    row locks and runs one process, so an in-process lock per course does the same there; it is
    held until the unit of work commits, because the caller commits after this block.
    """
    if w.session.get_bind().dialect.name == "sqlite" and course_id not in w.held_locks:
        lock = _LOCAL_LOCKS[course_id]
        await lock.acquire()
        w.held_locks.add(course_id)
        w.uow.on_end(lock.release)
    course = await w.session.scalar(select(Course).where(Course.id == course_id).with_for_update())
    if course is None:
        raise domain.CourseError(f"no course with id {course_id}", "course-unknown")
    yield course


def rules_of(course: Course, sessions: list[CourseSession]) -> domain.CourseRules:
    return domain.CourseRules(
        category=domain.CourseCategory(course.category),
        target_level=GermanLevel(course.target_level) if course.target_level else None,
        women_only=course.women_only,
        min_age=course.min_age,
        max_age=course.max_age,
        sessions=tuple(domain.Session(aware(s.starts_at), aware(s.ends_at)) for s in sessions),  # type: ignore[arg-type]
    )


def learner_of(row: Learner | None) -> domain.Learner:
    if row is None:
        return domain.Learner(gender=None, age_band=None, german_level=None)
    return domain.Learner(
        gender=Gender(row.gender) if row.gender else None,
        age_band=AgeBand(row.age_band) if row.age_band else None,
        german_level=GermanLevel(row.german_level) if row.german_level else None,
    )


async def sessions_of(session: AsyncSession, course_id: str) -> list[CourseSession]:
    rows = await session.scalars(select(CourseSession).where(CourseSession.course_id == course_id))
    return sorted(rows.all(), key=lambda s: aware(s.starts_at))  # type: ignore[arg-type, return-value]


async def counts(session: AsyncSession, course_id: str) -> tuple[int, int]:
    """(seats held, people waiting)."""
    rows = dict(
        (
            await session.execute(
                select(Enrolment.status, func.count())
                .where(Enrolment.course_id == course_id)
                .group_by(Enrolment.status)
            )
        ).all()
    )
    held = sum(int(rows.get(s.value, 0)) for s in domain.HOLDS_SEAT)
    return held, int(rows.get(domain.EnrolmentStatus.WAITLISTED.value, 0))


async def waiting_line(w: Workflow, course_id: str) -> list[Enrolment]:
    rows = (
        await w.session.scalars(
            select(Enrolment).where(
                Enrolment.course_id == course_id, Enrolment.status == domain.EnrolmentStatus.WAITLISTED.value
            )
        )
    ).all()
    by_id = {r.id: r for r in rows}
    ordered = domain.waiting_order(
        (
            domain.WaitingEntry(
                r.id,
                aware(r.requested_at) or w.now,
                frozenset(domain.PriorityCriterion(f) for f in r.priority_flags),
            )
            for r in rows
        ),
        w.priorities,
    )
    return [by_id[e.enrolment_id] for e in ordered]


def enrolment_facts(enrolment: Enrolment, course: Course, at: datetime) -> dict[str, Any]:
    return {
        "enrolment_id": enrolment.id,
        "course_id": course.id,
        "person_id": enrolment.person_id,
        "category": course.category,
        "at": at,
        "referral_id": enrolment.referral_id,
    }


#: The event that reports each step of an enrolment (``domain.EnrolmentMoved.action``).
_EVENT_FOR_STEP: dict[str, type[IntegrationEvent]] = {
    "request": events.EnrolmentRequested,
    "enrol": events.Enrolled,
    "waitlist": events.Waitlisted,
    "offer": events.SeatOffered,
    "accept": events.Enrolled,
    "expire": events.OfferExpired,
    "cancel": events.EnrolmentCancelled,
    "complete": events.CourseCompleted,
}


def enrolment_event(
    fact: domain.EnrolmentMoved, enrolment: Enrolment, course: Course, at: datetime, **extra: Any
) -> IntegrationEvent:
    """The contracts event reporting an enrolment's step; ``extra``: what that event adds (a position, a reason)."""
    return _EVENT_FOR_STEP[fact.action](**enrolment_facts(enrolment, course, at), **extra)


def course_facts(course: Course, sessions: list[CourseSession]) -> dict[str, Any]:
    return {
        "course_id": course.id,
        "provider_id": course.provider_id,
        "category": course.category,
        "capacity": course.capacity,
        "women_only": course.women_only,
        "childcare_offered": course.childcare_offered,
        "target_level": course.target_level,
        "starts_on": aware(sessions[0].starts_at).date() if sessions else None,  # type: ignore[union-attr]
        "ends_on": aware(sessions[-1].ends_at).date() if sessions else None,  # type: ignore[union-attr]
    }


# --- the catalogue ---------------------------------------------------------------------------------


class NoSuchSession(LookupError):
    """The course has no session with that id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No session {session_id} in this course.")


@dataclass(frozen=True)
class SessionPlan:
    """A session as it is planned: when and where."""

    starts_at: datetime
    ends_at: datetime
    place: str


def session_row(course_id: str, plan: SessionPlan) -> CourseSession:
    # Stored as UTC: SQLite keeps no offset, and a naive time read back is taken as UTC.
    return CourseSession(
        id=str(uuid.uuid4()),
        course_id=course_id,
        starts_at=aware(plan.starts_at),
        ends_at=aware(plan.ends_at),
        place=plan.place,
    )


async def schedule_course(
    w: Workflow, provider_id: str, fields: dict[str, Any], sessions: Sequence[SessionPlan]
) -> Course:
    """A new scheduled course with its sessions, announced (raises ``domain.CourseError`` for sessions that overlap
    or end before they start)."""
    domain.check_sessions([domain.Session(s.starts_at, s.ends_at) for s in sessions])
    course = Course(
        id=str(uuid.uuid4()),
        status=domain.CourseStatus.SCHEDULED.value,
        version=1,
        created_at=w.now,
        updated_at=w.now,
        provider_id=provider_id,
        **fields,
    )
    w.session.add(course)
    rows = [session_row(course.id, s) for s in sorted(sessions, key=lambda s: s.starts_at)]
    w.session.add_all(rows)
    await w.session.flush()
    await w.publish(events.CourseScheduled(**course_facts(course, rows)))
    return course


async def change_course(w: Workflow, course_id: str, changes: dict[str, Any]) -> Course:
    """Change a scheduled course (a new version, announced); more capacity offers seats to those waiting."""
    async with seat_lock(w, course_id) as course:
        domain.changeable(course.status)
        held, _ = await counts(w.session, course.id)
        for key, value in domain.course_changes(changes, held).items():
            setattr(course, key, value)
        await _new_version(w, course)
        await offer_free_seats(w, course)
        return course


async def add_session(w: Workflow, course_id: str, plan: SessionPlan) -> Course:
    """One more session of a scheduled course; it must not overlap the others."""
    async with seat_lock(w, course_id) as course:
        domain.changeable(course.status)
        rows = await sessions_of(w.session, course.id)
        domain.check_sessions(
            [
                domain.Session(aware(r.starts_at), aware(r.ends_at))  # type: ignore[arg-type]
                for r in rows
            ]
            + [domain.Session(plan.starts_at, plan.ends_at)]
        )
        w.session.add(session_row(course.id, plan))
        await _new_version(w, course)
        return course


async def remove_session(w: Workflow, course_id: str, session_id: str) -> Course:
    """Take a session off a scheduled course: not its last one, nor one with attendance recorded."""
    async with seat_lock(w, course_id) as course:
        domain.changeable(course.status)
        row = await w.session.get(CourseSession, session_id)
        if row is None or row.course_id != course.id:
            raise NoSuchSession(session_id)
        if len(await sessions_of(w.session, course.id)) == 1:
            raise domain.CourseError(
                "a course keeps at least one session; cancel the course instead", "course-last-session"
            )
        recorded = await w.session.scalar(
            select(func.count()).select_from(Attendance).where(Attendance.session_id == row.id)
        )
        if recorded:
            raise domain.InvalidTransition(
                "attendance is recorded for this session; it cannot be removed", "course-session-attended"
            )
        await w.session.delete(row)
        await _new_version(w, course)
        return course


async def _new_version(w: Workflow, course: Course) -> None:
    """A course changed: a new version, announced with its dates."""
    await w.session.flush()
    course.version += 1
    course.updated_at = w.now
    await w.publish(events.CourseUpdated(**course_facts(course, await sessions_of(w.session, course.id))))


async def record_attendance(w: Workflow, enrolment: Enrolment, session_id: str, present: bool) -> Attendance:
    """Whether an enrolled learner was at one session of the course (recorded again: the last word counts)."""
    session_row = await w.session.get(CourseSession, session_id)
    if session_row is None or session_row.course_id != enrolment.course_id:
        raise NoSuchSession(session_id)
    if enrolment.status != domain.EnrolmentStatus.ENROLLED.value:
        raise domain.InvalidTransition(
            f"A {enrolment.status} enrolment has no attendance.", status_now=enrolment.status, action="attend"
        )
    row = await w.session.get(Attendance, (enrolment.id, session_row.id))
    if row is None:
        row = Attendance(enrolment_id=enrolment.id, session_id=session_row.id, present=present, recorded_at=w.now)
        w.session.add(row)
    row.present = present
    row.recorded_at = w.now
    course = await w.session.get(Course, enrolment.course_id)
    assert course is not None  # an enrolment's course is never deleted
    await w.publish(
        events.AttendanceRecorded(
            **enrolment_facts(enrolment, course, w.now), session_id=session_row.id, present=present
        )
    )
    return row


# --- enrolment ---------------------------------------------------------------------------------


async def request_enrolment(
    w: Workflow, course_id: str, person_id: str, *, obligation: bool = False, referral_id: str | None = None
) -> Enrolment:
    """Enrol the person, or put them on the waiting list in the fair order; refuse what breaks a rule."""
    async with seat_lock(w, course_id) as course:
        if course.status != domain.CourseStatus.SCHEDULED.value:
            raise domain.CourseError(f"the course is {course.status}", f"course-{course.status}")
        today = local_day(w.now)
        if (course.enrolment_opens_on and today < course.enrolment_opens_on) or (
            course.enrolment_closes_on and today > course.enrolment_closes_on
        ):
            raise domain.CourseError("enrolment for this course is not open now", "course-enrolment-closed")
        learner = await w.session.get(Learner, person_id)
        if learner is not None and learner.erased:
            raise domain.CourseError("this person's data has been erased", "course-learner-erased")
        sessions = await sessions_of(w.session, course.id)
        breaches = domain.eligibility_breaches(rules_of(course, sessions), learner_of(learner))
        if breaches:
            # The first broken rule is the Problem's type; any more are named too, each with its own type.
            first, *more = breaches
            also = [{"kind": b.kind, **b.values} for b in more]
            raise domain.CourseError(
                "; ".join(map(str, breaches)), first.kind, **first.values, **({"also": also} if also else {})
            )
        active = (
            await w.session.scalars(
                select(Enrolment).where(
                    Enrolment.person_id == person_id,
                    Enrolment.status.in_([s.value for s in domain.ACTIVE]),
                )
            )
        ).all()
        if any(e.course_id == course.id for e in active):
            raise domain.InvalidTransition(
                "the person is already enrolled in or waiting for this course", "course-already-enrolled"
            )
        for other in active:
            if other.status in {s.value for s in domain.HOLDS_SEAT} and domain.sessions_overlap(
                rules_of(course, sessions).sessions,
                rules_of(course, await sessions_of(w.session, other.course_id)).sessions,
            ):
                raise domain.CourseError(
                    "the sessions overlap with another course of this person", "course-sessions-clash"
                )
        flags = []
        if obligation:
            flags.append(domain.PriorityCriterion.INTEGRATION_COURSE_OBLIGATION.value)
        if learner is not None and learner.gender == Gender.FEMALE and learner.childcare_needed:
            flags.append(domain.PriorityCriterion.WOMAN_NEEDING_CHILDCARE.value)
        if referral_id:
            flags.append(domain.PriorityCriterion.REFERRED.value)
        held, _ = await counts(w.session, course.id)
        status, facts = domain.admission(held, course.capacity)
        enrolment = Enrolment(
            id=str(uuid.uuid4()),
            course_id=course.id,
            person_id=person_id,
            status=status.value,
            priority_flags=flags,
            referral_id=referral_id,
            requested_at=w.now,
            updated_at=w.now,
        )
        w.session.add(enrolment)
        await w.session.flush()
        for fact in facts:
            extra: dict[str, Any] = {}
            if fact.action == "waitlist":
                extra["position"] = [e.id for e in await waiting_line(w, course.id)].index(enrolment.id) + 1
            await w.publish(enrolment_event(fact, enrolment, course, w.now, **extra))
        return enrolment


async def enrol_for_referral(
    w: Workflow, person_id: str, referral_id: str, *, partner_id: str | None, service: ServiceType
) -> Enrolment | None:
    """An accepted referral to a course provider asks for a seat in a fitting course of that provider: free seats
    first, then the earliest start; none when no course fits (or the service is no course's)."""
    categories = domain.COURSES_FOR_SERVICE.get(service)
    if categories is None:
        return None
    learner = learner_of(await w.session.get(Learner, person_id))
    query = select(Course).where(
        Course.status == domain.CourseStatus.SCHEDULED.value,
        Course.category.in_([c.value for c in categories]),
        Course.provider_id == partner_id,
    )
    if service is ServiceType.COURSE_WITH_CHILDCARE:
        query = query.where(Course.childcare_offered.is_(True))
    candidates = []
    for course in (await w.session.scalars(query)).all():
        sessions = await sessions_of(w.session, course.id)
        if domain.eligibility_problems(rules_of(course, sessions), learner):
            continue
        held, _ = await counts(w.session, course.id)
        first = aware(sessions[0].starts_at) if sessions else w.now
        candidates.append((held >= course.capacity, first, course.id))
    for _, _, course_id in sorted(candidates):  # free seats first, then the earliest start
        try:
            return await request_enrolment(w, course_id, person_id, referral_id=referral_id)
        except domain.CourseError as exc:
            log.info("referral %s: course %s not possible (%s)", referral_id, course_id, exc)
    log.info("referral %s: no fitting course for now", referral_id)
    return None


async def leave_courses(w: Workflow, person_id: str, reason: str) -> int:
    """The person leaves every course they are in or waiting for (moved away, erased); each seat freed goes to the
    next in line. The number of enrolments cancelled."""
    active = (
        await w.session.scalars(
            select(Enrolment).where(
                Enrolment.person_id == person_id, Enrolment.status.in_([s.value for s in domain.ACTIVE])
            )
        )
    ).all()
    for enrolment in active:
        await cancel_enrolment(w, enrolment, reason)
    return len(active)


async def offer_free_seats(w: Workflow, course: Course) -> list[Enrolment]:
    """Offer each free seat to the first in line; the offer holds the seat until it expires."""
    offered: list[Enrolment] = []
    if course.status != domain.CourseStatus.SCHEDULED.value:
        return offered
    held, _ = await counts(w.session, course.id)
    line = await waiting_line(w, course.id)
    for enrolment in line[: max(0, course.capacity - held)]:
        status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "offer")
        enrolment.status = status.value
        enrolment.offered_at = w.now
        enrolment.offer_expires_at = domain.offer_expires_at(w.now, w.offer_hours)
        enrolment.updated_at = w.now
        await w.session.flush()
        for fact in facts:
            await w.publish(enrolment_event(fact, enrolment, course, w.now, expires_at=enrolment.offer_expires_at))
        offered.append(enrolment)
    return offered


async def cancel_enrolment(w: Workflow, enrolment: Enrolment, reason: str) -> None:
    async with seat_lock(w, enrolment.course_id) as course:
        status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "cancel")
        enrolment.status = status.value
        enrolment.cancel_reason = reason
        enrolment.updated_at = w.now
        await w.session.flush()
        for fact in facts:
            await w.publish(enrolment_event(fact, enrolment, course, w.now, reason=reason))
        await offer_free_seats(w, course)


async def accept_offer(w: Workflow, enrolment: Enrolment) -> None:
    async with seat_lock(w, enrolment.course_id) as course:
        expires = aware(enrolment.offer_expires_at)
        if enrolment.status == domain.EnrolmentStatus.OFFERED.value and expires is not None and expires <= w.now:
            raise domain.InvalidTransition("the offer has expired", "course-offer-expired")
        status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "accept")
        enrolment.status = status.value
        enrolment.updated_at = w.now
        for fact in facts:
            await w.publish(enrolment_event(fact, enrolment, course, w.now))


async def expire_offers(w: Workflow) -> int:
    """Offers past their time pass to the next in line."""
    due = (
        await w.session.scalars(
            select(Enrolment).where(
                Enrolment.status == domain.EnrolmentStatus.OFFERED.value, Enrolment.offer_expires_at <= w.now
            )
        )
    ).all()
    for course_id in sorted({e.course_id for e in due}):
        async with seat_lock(w, course_id) as course:
            for enrolment in (e for e in due if e.course_id == course_id):
                status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "expire")
                enrolment.status = status.value
                enrolment.updated_at = w.now
                await w.session.flush()
                for fact in facts:
                    await w.publish(enrolment_event(fact, enrolment, course, w.now))
            await offer_free_seats(w, course)
    return len(due)


async def cancel_course(w: Workflow, course_id: str) -> Course:
    """Cancel a course; everyone in it hears of it by event, so that referral can route them again."""
    async with seat_lock(w, course_id) as course:
        if course.status != domain.CourseStatus.SCHEDULED.value:
            raise domain.InvalidTransition(
                f"a {course.status} course cannot be cancelled", status_now=course.status, action="cancel"
            )
        course.status = domain.CourseStatus.CANCELLED.value
        course.updated_at = w.now
        active = (
            await w.session.scalars(
                select(Enrolment).where(
                    Enrolment.course_id == course.id, Enrolment.status.in_([s.value for s in domain.ACTIVE])
                )
            )
        ).all()
        for enrolment in active:
            status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "cancel")
            enrolment.status = status.value
            enrolment.cancel_reason = "course_cancelled"
            enrolment.updated_at = w.now
            for fact in facts:
                await w.publish(enrolment_event(fact, enrolment, course, w.now, reason="course_cancelled"))
        await w.publish(events.CourseCancelled(**course_facts(course, await sessions_of(w.session, course.id))))
        return course


# --- completion and the pass ---------------------------------------------------------------------


async def add_pass_entry(
    w: Workflow, person_id: str, kind: str, details: dict[str, Any], *, source_id: str | None = None
) -> PassEntry | None:
    if source_id is not None and await w.session.scalar(select(PassEntry.id).where(PassEntry.source_id == source_id)):
        return None  # already recorded
    entry = PassEntry(
        id=str(uuid.uuid4()), person_id=person_id, kind=kind, details=details, at=w.now, source_id=source_id
    )
    w.session.add(entry)
    await w.publish(events.PassEntryAdded(person_id=person_id, entry_id=entry.id, kind=kind, at=w.now))
    return entry


async def complete(
    w: Workflow, enrolment: Enrolment, result: domain.CompletionResult, certificate: str | None, completed_on: date
) -> None:
    course = await w.session.get(Course, enrolment.course_id)
    assert course is not None
    # The day as the course admin's calendar says it (the UI's, Europe/Berlin), not the server's: between midnight
    # in Landsberg and midnight UTC today's completion was refused as lying in the future.
    domain.completed_on_or_before(completed_on, local_day(w.now))
    status, facts = domain.step(domain.EnrolmentStatus(enrolment.status), "complete")
    enrolment.status = status.value
    enrolment.result = result.value
    enrolment.certificate = certificate
    enrolment.completed_on = completed_on
    enrolment.updated_at = w.now
    target = GermanLevel(course.target_level) if course.target_level else None
    level = domain.level_reached(result, target, certificate)
    for fact in facts:
        await w.publish(
            enrolment_event(
                fact, enrolment, course, w.now, result=result.value, certificate=certificate, level_reached=level
            )
        )
    details = {
        "course": course.title,
        "category": course.category,
        "provider": course.provider_id,
        "result": result.value,
        "completed_on": completed_on.isoformat(),
    }
    await add_pass_entry(w, enrolment.person_id, "course", details, source_id=f"course:{enrolment.id}")
    if certificate and result is domain.CompletionResult.PASSED:
        await add_pass_entry(
            w,
            enrolment.person_id,
            "certificate",
            {"certificate": certificate, "issued_on": completed_on.isoformat()},
            source_id=f"certificate:{enrolment.id}",
        )
    if level is not None and course.category in {c.value for c in domain.LANGUAGE_CATEGORIES}:
        await add_pass_entry(
            w,
            enrolment.person_id,
            "language_level",
            {"language": "de", "level": level.value, "reached_on": completed_on.isoformat()},
            source_id=f"level:{enrolment.id}",
        )


async def revoke(w: Workflow, status: PassStatus, reason: str) -> bool:
    """Mark a pass revoked (once: the first reason and moment stay); True when it was not revoked before."""
    if status.revoked_at is not None:
        return False
    status.revoked_at, status.revocation_reason = w.now, reason
    return True


async def place_in_status_list(w: Workflow) -> int:
    """A free place in the revocation list, drawn at random (see ``domain.status_index_range``)."""
    taken = await w.session.scalar(select(func.count()).where(PassStatus.status_index.is_not(None))) or 0
    size = domain.status_index_range(taken)
    while True:  # at most half the places are taken: a free one comes within a few draws
        index = secrets.randbelow(size)
        if await w.session.scalar(select(PassStatus.pass_id).where(PassStatus.status_index == index)) is None:
            return index


async def erase_person(w: Workflow, person_id: str) -> None:
    """Art. 17, as far as the course records allow: the person's passes are revoked (their place in the status
    list stays set, nothing else of them) and deleted with the pass entries; the enrolments stay for the courses'
    seat counts and figures, each under a new random id that links it to nobody and to no other enrolment, without
    the referral, the priority reasons (gender, childcare, obligation) and the certificate."""
    # The stored answers to writes about the person (an issued pass carries the holder's name), by every id that
    # names them: the person, their enrolments and passes.
    enrolment_ids = (await w.session.scalars(select(Enrolment.id).where(Enrolment.person_id == person_id))).all()
    pass_ids = (await w.session.scalars(select(IssuedPass.id).where(IssuedPass.person_id == person_id))).all()
    await w.uow.forget_stored_responses(person_id, *enrolment_ids, *pass_ids)
    for issued in (await w.session.scalars(select(IssuedPass).where(IssuedPass.person_id == person_id))).all():
        status = await w.session.get(PassStatus, issued.id)
        if status is None:  # not expected: every pass gets its status row when it is issued
            status = PassStatus(pass_id=issued.id, code=issued.code, issued_at=issued.issued_at)
            w.session.add(status)
        await revoke(w, status, "person_erased")
        await w.session.delete(issued)
    for entry in (await w.session.scalars(select(PassEntry).where(PassEntry.person_id == person_id))).all():
        await w.session.delete(entry)
    for enrolment in (await w.session.scalars(select(Enrolment).where(Enrolment.person_id == person_id))).all():
        enrolment.person_id = f"erased-{uuid.uuid4().hex}"
        enrolment.referral_id, enrolment.priority_flags, enrolment.certificate = None, [], None
        enrolment.updated_at = w.now
    for case in (await w.session.scalars(select(CaseTeam).where(CaseTeam.person_id == person_id))).all():
        await w.session.delete(case)


# --- who may act on which learner -------------------------------------------------------------------


def caseworker_people(caller: domain.Caller) -> Any:
    """The persons of the caseworker's team's open cases (without a team: of the open cases assigned to them), as a
    subquery; None when the caller is no caseworker."""
    if caller.roles is None or domain.CASEWORKER not in caller.roles:
        return None
    if caller.team is not None:
        mine = CaseTeam.team == caller.team
    elif caller.caseworker_id is not None:
        mine = CaseTeam.caseworker_id == caller.caseworker_id
    else:
        return None
    # The case's person, and the members of the household whose case it is (referral has one case per household).
    households = select(CaseTeam.household_id).where(mine, CaseTeam.open.is_(True), CaseTeam.household_id.is_not(None))
    members = select(Learner.person_id).where(Learner.household_id.in_(households))
    return select(CaseTeam.person_id).where(mine, CaseTeam.open.is_(True)).union(members)


def reaches(people: Any, person_id: str) -> Select[Any]:
    """Whether ``people`` (``caseworker_people``'s answer) holds the person, as a query of their id."""
    found = people.subquery()
    return select(found.c.person_id).where(found.c.person_id == person_id)


def provider_courses(caller: domain.Caller) -> Select[Any] | None:
    """The course admin's provider's courses, as a subquery; None when the caller is no course admin of one."""
    if caller.roles is None or domain.COURSE_ADMIN not in caller.roles or caller.provider_id is None:
        return None
    return select(Course.id).where(Course.provider_id == caller.provider_id)


async def learner_view(w: Workflow, caller: domain.Caller, person_id: str) -> str | None:
    """How much of this person's course records the caller sees: "all" (an admin; a caseworker of their case),
    "provider" (a course admin of a provider they are or were enrolled with: that provider's records), or None:
    not the caller's learner, which the routes answer as if the person were unknown (404)."""
    if caller.unrestricted:
        return "all"
    people = caseworker_people(caller)
    if people is not None and await w.session.scalar(reaches(people, person_id).limit(1)) is not None:
        return "all"
    courses = provider_courses(caller)
    if (
        courses is not None
        and await w.session.scalar(
            select(Enrolment.id).where(Enrolment.person_id == person_id, Enrolment.course_id.in_(courses)).limit(1)
        )
        is not None
    ):
        return "provider"
    return None
