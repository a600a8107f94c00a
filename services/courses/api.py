"""HTTP routes of the courses service: public catalogue, staff enrolment, the education pass."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from enum import Enum
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from chassis.errors import Problem
from chassis.schemas import Page
from chassis.service import RuntimeDep
from contracts import courses as events
from contracts.vocabulary import GermanLevel
from services.courses import domain, workflow
from services.courses.models import Attendance, Course, CourseSession, Enrolment, IssuedPass, PassEntry
from services.courses.schemas import (
    AttendanceCreate,
    Cancellation,
    CompletionCreate,
    CourseCreate,
    CourseRead,
    CourseUpdate,
    EnrolmentCreate,
    EnrolmentRead,
    IssuedPassRead,
    PassEntryRead,
    PassIssue,
    SessionRead,
    Verification,
)

router = APIRouter(prefix="/api/v1", tags=["courses"])


async def get_workflow(runtime: RuntimeDep) -> AsyncIterator[workflow.Workflow]:
    async with runtime.unit_of_work() as uow:
        yield workflow.Workflow(
            uow=uow,
            now=runtime.extras["clock"](),
            offer_hours=runtime.settings.offer_hours,
            priorities=tuple(runtime.settings.waitlist_priorities),
        )


WorkflowDep = Annotated[workflow.Workflow, Depends(get_workflow)]


def rule_broken(exc: domain.CourseError) -> Problem:
    if isinstance(exc, domain.InvalidTransition):
        return Problem(409, str(exc), kind="invalid-transition")
    return Problem(422, str(exc), kind="course-rule", title="Not possible for this course")


async def course_read(w: workflow.Workflow, course: Course) -> CourseRead:
    sessions = await workflow.sessions_of(w.session, course.id)
    held, waiting = await workflow.counts(w.session, course.id)
    return CourseRead(
        course_id=course.id, title=course.title, description=course.description,
        category=course.category, target_level=course.target_level,  # type: ignore[arg-type]
        language_of_instruction=course.language_of_instruction, provider_id=course.provider_id,
        capacity=course.capacity, free_seats=max(0, course.capacity - held), waiting=waiting,
        childcare_offered=course.childcare_offered, women_only=course.women_only, min_age=course.min_age,
        max_age=course.max_age, funding=course.funding, fee_euro=course.fee_euro,  # type: ignore[arg-type]
        enrolment_opens_on=course.enrolment_opens_on, enrolment_closes_on=course.enrolment_closes_on,
        location=course.location, status=course.status,  # type: ignore[arg-type]
        sessions=[
            SessionRead(session_id=s.id, starts_at=workflow.aware(s.starts_at), ends_at=workflow.aware(s.ends_at),  # type: ignore[arg-type]
                        place=s.place)
            for s in sessions
        ],
    )  # fmt: skip


async def load_course(w: workflow.Workflow, course_id: str) -> Course:
    course = await w.session.get(Course, course_id)
    if course is None:
        raise Problem(404, f"No course with id {course_id}.", kind="not-found")
    return course


async def load_enrolment(w: workflow.Workflow, course_id: str, enrolment_id: str) -> Enrolment:
    enrolment = await w.session.get(Enrolment, enrolment_id)
    if enrolment is None or enrolment.course_id != course_id:
        raise Problem(404, f"No enrolment {enrolment_id} in this course.", kind="not-found")
    return enrolment


async def enrolment_read(w: workflow.Workflow, e: Enrolment) -> EnrolmentRead:
    position = None
    if e.status == domain.EnrolmentStatus.WAITLISTED.value:
        position = [x.id for x in await workflow.waiting_line(w, e.course_id)].index(e.id) + 1
    return EnrolmentRead(
        enrolment_id=e.id, course_id=e.course_id, person_id=e.person_id, status=e.status,  # type: ignore[arg-type]
        position=position, priority_flags=e.priority_flags, referral_id=e.referral_id,
        requested_at=workflow.aware(e.requested_at),  # type: ignore[arg-type]
        offer_expires_at=workflow.aware(e.offer_expires_at), cancel_reason=e.cancel_reason, result=e.result,
        certificate=e.certificate, completed_on=e.completed_on,
    )  # fmt: skip


# --- catalogue ----------------------------------------------------------------------------


@router.get("/courses", response_model=Page[CourseRead])
async def list_courses(
    w: WorkflowDep,
    category: domain.CourseCategory | None = None,
    target_level: GermanLevel | None = None,
    women_only: bool | None = None,
    childcare_offered: bool | None = None,
    language: str | None = Query(None, max_length=35),
    status: domain.CourseStatus | None = domain.CourseStatus.SCHEDULED,
    provider_id: str | None = Query(None, max_length=64),
    page: int = Query(1, ge=1, le=10_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[CourseRead]:
    """The public, filterable course catalogue: no personal data, only free seats and waiting counts."""
    filters = []
    for column, value in (
        (Course.category, category), (Course.target_level, target_level), (Course.women_only, women_only),
        (Course.childcare_offered, childcare_offered), (Course.language_of_instruction, language),
        (Course.status, status), (Course.provider_id, provider_id),
    ):  # fmt: skip
        if value is not None:
            filters.append(column == (value.value if hasattr(value, "value") else value))
    total = await w.session.scalar(select(func.count()).select_from(Course).where(*filters)) or 0
    rows = (
        await w.session.scalars(
            select(Course).where(*filters).order_by(Course.created_at, Course.id)
            .offset((page - 1) * page_size).limit(page_size)
        )
    ).all()  # fmt: skip
    return Page(items=[await course_read(w, c) for c in rows], total=total, page=page, page_size=page_size)


@router.post("/courses", status_code=201, response_model=CourseRead)
async def schedule_course(body: CourseCreate, w: WorkflowDep) -> CourseRead:
    sessions = [domain.Session(s.starts_at, s.ends_at) for s in body.sessions]
    try:
        domain.check_sessions(sessions)
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    course = Course(
        id=str(uuid.uuid4()), status=domain.CourseStatus.SCHEDULED.value, version=1, created_at=w.now,
        updated_at=w.now, **{k: v.value if isinstance(v, Enum) else v
                             for k, v in body.model_dump(exclude={"sessions"}).items()},
    )  # fmt: skip
    w.session.add(course)
    rows = [
        # Stored as UTC: SQLite keeps no offset, and a naive time read back is taken as UTC.
        CourseSession(
            id=str(uuid.uuid4()),
            course_id=course.id,
            starts_at=workflow.aware(s.starts_at),
            ends_at=workflow.aware(s.ends_at),
            place=s.place,
        )
        for s in sorted(body.sessions, key=lambda s: s.starts_at)
    ]
    w.session.add_all(rows)
    await w.session.flush()
    await w.publish(events.CourseScheduled(**workflow.course_facts(course, rows)))
    await w.uow.commit()
    return await course_read(w, course)


@router.get("/courses/{course_id}", response_model=CourseRead)
async def read_course(course_id: str, w: WorkflowDep) -> CourseRead:
    return await course_read(w, await load_course(w, course_id))


@router.patch("/courses/{course_id}", response_model=CourseRead)
async def update_course(course_id: str, body: CourseUpdate, w: WorkflowDep) -> CourseRead:
    try:
        async with workflow.seat_lock(w, course_id) as course:
            if course.status != domain.CourseStatus.SCHEDULED.value:
                raise domain.InvalidTransition(f"a {course.status} course cannot be changed")
            changes = body.model_dump(exclude_unset=True)
            held, _ = await workflow.counts(w.session, course.id)
            if changes.get("capacity") is not None and changes["capacity"] < held:
                raise domain.CourseError(f"{held} seats are taken; the capacity cannot go below that")
            for key, value in changes.items():
                if value is None and key not in ("description", "enrolment_closes_on"):
                    raise domain.CourseError(f"{key} cannot be removed")
                setattr(course, key, value)
            course.version += 1
            course.updated_at = w.now
            await w.session.flush()
            await w.publish(
                events.CourseUpdated(**workflow.course_facts(course, await workflow.sessions_of(w.session, course.id)))
            )
            await workflow.offer_free_seats(w, course)  # more capacity frees seats for those waiting
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await course_read(w, course)


@router.post("/courses/{course_id}/cancel", response_model=CourseRead)
async def cancel_course(course_id: str, w: WorkflowDep) -> CourseRead:
    """Cancel a course; the enrolled and waiting hear of it by event."""
    await load_course(w, course_id)
    try:
        course = await workflow.cancel_course(w, course_id)
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await course_read(w, course)


# --- enrolments ---------------------------------------------------------------------------


@router.post("/courses/{course_id}/enrolments", status_code=201, response_model=EnrolmentRead)
async def enrol(course_id: str, body: EnrolmentCreate, w: WorkflowDep) -> EnrolmentRead:
    """Enrol a person (staff); a full course puts them on the waiting list in the documented order."""
    await load_course(w, course_id)
    try:
        enrolment = await workflow.request_enrolment(
            w, course_id, body.person_id, obligation=body.integration_course_obligation, referral_id=body.referral_id
        )
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await enrolment_read(w, enrolment)


@router.get("/courses/{course_id}/enrolments", response_model=list[EnrolmentRead])
async def list_enrolments(
    course_id: str, w: WorkflowDep, status: domain.EnrolmentStatus | None = None
) -> list[EnrolmentRead]:
    """Staff view: enrolled first, then the waiting list in its order."""
    await load_course(w, course_id)
    query = select(Enrolment).where(Enrolment.course_id == course_id)
    if status:
        query = query.where(Enrolment.status == status.value)
    rows = (await w.session.scalars(query.order_by(Enrolment.requested_at, Enrolment.id))).all()
    line = {e.id: i for i, e in enumerate(await workflow.waiting_line(w, course_id))}
    rows = sorted(rows, key=lambda e: (e.status == domain.EnrolmentStatus.WAITLISTED.value, line.get(e.id, -1)))
    return [await enrolment_read(w, e) for e in rows]


@router.post("/courses/{course_id}/enrolments/{enrolment_id}/cancel", response_model=EnrolmentRead)
async def cancel(course_id: str, enrolment_id: str, body: Cancellation, w: WorkflowDep) -> EnrolmentRead:
    """Cancellation by the person or staff; a freed seat is offered to the first in line."""
    enrolment = await load_enrolment(w, course_id, enrolment_id)
    try:
        await workflow.cancel_enrolment(w, enrolment, body.reason)
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await enrolment_read(w, enrolment)


@router.post("/courses/{course_id}/enrolments/{enrolment_id}/accept-offer", response_model=EnrolmentRead)
async def accept_offer(course_id: str, enrolment_id: str, w: WorkflowDep) -> EnrolmentRead:
    enrolment = await load_enrolment(w, course_id, enrolment_id)
    try:
        await workflow.accept_offer(w, enrolment)
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await enrolment_read(w, enrolment)


@router.post("/courses/{course_id}/enrolments/{enrolment_id}/attendance", status_code=201)
async def record_attendance(
    course_id: str, enrolment_id: str, body: AttendanceCreate, w: WorkflowDep
) -> dict[str, Any]:
    enrolment = await load_enrolment(w, course_id, enrolment_id)
    session_row = await w.session.get(CourseSession, body.session_id)
    if session_row is None or session_row.course_id != course_id:
        raise Problem(404, f"No session {body.session_id} in this course.", kind="not-found")
    if enrolment.status != domain.EnrolmentStatus.ENROLLED.value:
        raise Problem(409, f"A {enrolment.status} enrolment has no attendance.", kind="invalid-transition")
    row = await w.session.get(Attendance, (enrolment.id, session_row.id))
    if row is None:
        row = Attendance(enrolment_id=enrolment.id, session_id=session_row.id, present=body.present, recorded_at=w.now)
        w.session.add(row)
    row.present = body.present
    row.recorded_at = w.now
    course = await load_course(w, course_id)
    await w.publish(
        events.AttendanceRecorded(**workflow.enrolment_facts(enrolment, course, w.now), session_id=session_row.id,
                                  present=body.present)
    )  # fmt: skip
    await w.uow.commit()
    return {"enrolment_id": enrolment.id, "session_id": session_row.id, "present": body.present}


@router.post("/courses/{course_id}/enrolments/{enrolment_id}/completion", response_model=EnrolmentRead)
async def complete(course_id: str, enrolment_id: str, body: CompletionCreate, w: WorkflowDep) -> EnrolmentRead:
    """Completion with result and certificate (e.g. "DTZ B1", "Leben in Deutschland"); fills the pass."""
    enrolment = await load_enrolment(w, course_id, enrolment_id)
    try:
        await workflow.complete(w, enrolment, body.result, body.certificate, body.completed_on)
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    await w.uow.commit()
    return await enrolment_read(w, enrolment)


@router.get("/learners/{person_id}/enrolments", response_model=list[EnrolmentRead])
async def person_enrolments(person_id: str, w: WorkflowDep) -> list[EnrolmentRead]:
    rows = (
        await w.session.scalars(
            select(Enrolment).where(Enrolment.person_id == person_id).order_by(Enrolment.requested_at)
        )
    ).all()
    return [await enrolment_read(w, e) for e in rows]


# --- the education pass (Bildungspass) -------------------------------------------------------


@router.get("/education-passes/public-key", tags=["education pass"])
async def public_key(request: Request) -> dict[str, Any]:
    """The key that signs education passes (JWK set): with it anyone can verify a pass offline."""
    keys = request.app.state.runtime.extras["pass_keys"]
    return {
        "keys": [domain.public_jwk(keys.public, keys.key_id)],
        "issuer": request.app.state.runtime.settings.pass_issuer,
    }


@router.get("/learners/{person_id}/education-pass/entries", response_model=list[PassEntryRead], tags=["education pass"])
async def pass_entries(person_id: str, w: WorkflowDep) -> list[PassEntryRead]:
    rows = (
        await w.session.scalars(
            select(PassEntry).where(PassEntry.person_id == person_id).order_by(PassEntry.at, PassEntry.id)
        )
    ).all()
    return [PassEntryRead(entry_id=r.id, kind=r.kind, details=r.details, at=workflow.aware(r.at)) for r in rows]  # type: ignore[arg-type]


@router.post(
    "/learners/{person_id}/education-pass", status_code=201, response_model=IssuedPassRead, tags=["education pass"]
)
async def issue_pass(person_id: str, body: PassIssue, request: Request, w: WorkflowDep) -> IssuedPassRead:
    """Issue a signed education pass: a W3C-shaped verifiable credential and a printable page."""
    runtime = request.app.state.runtime
    rows = (
        await w.session.scalars(
            select(PassEntry).where(PassEntry.person_id == person_id).order_by(PassEntry.at, PassEntry.id)
        )
    ).all()
    if not rows:
        raise Problem(404, "This person has no entries for an education pass yet.", kind="not-found")
    keys = runtime.extras["pass_keys"]
    pass_id = str(uuid.uuid4())
    issuer = runtime.settings.pass_issuer
    credential = domain.sign(
        domain.education_pass(
            pass_id=pass_id, issuer=issuer, person_id=person_id, holder_name=body.holder_name,
            entries=[{"kind": r.kind, **r.details} for r in rows], issued_at=w.now,
        ),
        keys.private, f"{issuer}/keys#{keys.key_id}", w.now,
    )  # fmt: skip
    code = domain.verification_code(credential)
    w.session.add(IssuedPass(id=pass_id, person_id=person_id, code=code, credential=credential, issued_at=w.now))
    await w.uow.commit()
    return IssuedPassRead(
        pass_id=pass_id, code=code, credential=credential, html_url=f"/api/v1/education-passes/{pass_id}/page"
    )


@router.get("/education-passes/{pass_id}/page", response_class=HTMLResponse, tags=["education pass"])
async def pass_page(pass_id: str, w: WorkflowDep) -> HTMLResponse:
    """The printable pass, carrying its verification code."""
    issued = await w.session.get(IssuedPass, pass_id)
    if issued is None:
        raise Problem(404, f"No education pass {pass_id}.", kind="not-found")
    subject = issued.credential["credentialSubject"]
    rows = "".join(
        f"<tr><td>{escape(e['kind'])}</td>"
        f"<td>{escape(', '.join(f'{k}: {v}' for k, v in e.items() if k != 'kind'))}</td></tr>"
        for e in subject["entries"]
    )
    holder = escape(subject.get("name", "")) or "—"
    return HTMLResponse(
        '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Bildungspass</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:auto;padding:1rem}"
        "table{border-collapse:collapse;width:100%}td,th{border:1px solid #555;padding:.3rem;text-align:left}"
        ".code{font:700 1.4rem monospace}</style></head><body>"
        f"<h1>Bildungspass / Education pass</h1><p>Inhaber/in / Holder: <strong>{holder}</strong></p>"
        f"<p>Ausgestellt / Issued: {escape(issued.credential['validFrom'])} · {escape(issued.credential['issuer'])}</p>"
        f"<table><thead><tr><th>Art / Kind</th><th>Eintrag / Entry</th></tr></thead><tbody>{rows}</tbody></table>"
        f'<p>Prüfcode / Verification code: <span class="code">{escape(issued.code)}</span></p>'
        f"<p>Prüfen / Verify: /api/v1/education-passes/verify/{escape(issued.code)}</p></body></html>"
    )


@router.post("/education-passes/verify", response_model=Verification, tags=["education pass"])
async def verify_pass(credential: dict[str, Any], request: Request) -> Verification:
    """Check a pass (the credential JSON) against this issuer's key."""
    keys = request.app.state.runtime.extras["pass_keys"]
    valid = domain.verify(credential, keys.public)
    return Verification(
        valid=valid, reason="signature valid" if valid else "signature does not match this content and issuer",
        credential_id=credential.get("id") if isinstance(credential.get("id"), str) else None,
    )  # fmt: skip


@router.get("/education-passes/verify/{code}", response_model=Verification, tags=["education pass"])
async def verify_code(code: str, request: Request, w: WorkflowDep) -> Verification:
    """Check the code printed on a pass page."""
    issued = await w.session.scalar(select(IssuedPass).where(IssuedPass.code == code.upper()))
    if issued is None:
        return Verification(valid=False, reason="no pass with this code (or it was erased)", code=code)
    valid = domain.verify(issued.credential, request.app.state.runtime.extras["pass_keys"].public)
    return Verification(valid=valid, reason="issued by this office" if valid else "signature invalid", code=code,
                        credential_id=issued.credential["id"])  # fmt: skip
