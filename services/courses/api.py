"""HTTP routes of the courses service: public catalogue, staff enrolment, the education pass.

Object-level rules (issue 12; ``domain.Caller``), from the identity the gateway forwards signed: a course admin
changes only their own provider's courses and works only their enrolments (another provider's course: 403, the
course is public anyway); a caseworker enrols and sees only the people of their team's open cases; a learner's
enrolments, pass entries and passes are for an admin, the caseworkers of their case and the course admins of a
provider they are enrolled with, and for anyone else the learner does not exist (404). No identity at all
(development and tests calling the service directly; production refuses that) is not limited.

The pass holder's name comes from registration, which owns it, asked by this service in its own signed name
(``/api/internal/persons/{id}/pass-holder``, audited there): never from the request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from enum import Enum
from html import escape
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select

from chassis import audit as access
from chassis.clock import as_utc
from chassis.db import page_of_rows
from chassis.deps import CallerDep as ChassisCallerDep
from chassis.deps import ClockDep, RuntimeDep, UnitOfWorkDep, log_callers_read
from chassis.deps import caller_of as chassis_caller
from chassis.errors import PROBLEM_BASE, PROBLEM_JSON, Problem
from chassis.identity import HEADER
from chassis.schemas import Page
from contracts.vocabulary import GermanLevel
from services.courses import domain, workflow
from services.courses.models import (
    Attendance,
    Course,
    Enrolment,
    IssuedPass,
    Learner,
    PassEntry,
    PassStatus,
)
from services.courses.runtime import courses_of
from services.courses.schemas import (
    AttendanceCreate,
    Cancellation,
    CompletionCreate,
    CourseCreate,
    CourseRead,
    CourseUpdate,
    District,
    EnrolmentCreate,
    EnrolmentRead,
    IssuedPassRead,
    Participant,
    ParticipantList,
    PassEntryRead,
    PassIssue,
    PassRevocation,
    PassStatusRead,
    SessionCreate,
    SessionRead,
    Verification,
)

if TYPE_CHECKING:
    from services.courses.runtime import CoursesSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["courses"])

#: The provider of a course an admin (or a call without identity) schedules without naming one.
DEFAULT_PROVIDER = "vhs-landsberg"
#: Where a verifier fetches the revocation list, under the pass issuer's address (the gateway's public one).
STATUS_PATH = "/api/v1/education-passes/status"


async def get_workflow(runtime: RuntimeDep, uow: UnitOfWorkDep, clock: ClockDep) -> workflow.Workflow:
    settings = cast("CoursesSettings", runtime.settings)  # the settings this service's app was created with
    return workflow.Workflow(
        uow=uow, now=clock(), offer_hours=settings.offer_hours, priorities=tuple(settings.waitlist_priorities)
    )


WorkflowDep = Annotated[workflow.Workflow, Depends(get_workflow)]


async def get_caller(caller: ChassisCallerDep) -> domain.Caller:
    """The chassis's caller (the signed identity) in the terms of the courses' object rules."""
    return domain.caller_from(caller.roles_header, caller.partner_id, caller.team, caller.actor)


CallerDep = Annotated[domain.Caller, Depends(get_caller)]


async def log_read(w: workflow.Workflow, request: Request, action: str, person_ids: Any) -> None:
    """Log the read of these learners' data (``chassis.audit``) as the caller's, and commit it."""
    await log_callers_read(w.uow, request, action, person_ids)


def forbidden(detail: str) -> Problem:
    return Problem(403, detail, kind="forbidden")


def not_a_learner_of(person_id: str) -> Problem:
    """Another's learner: answered as if unknown, so that the caller learns nothing of them."""
    return Problem(404, f"No learner {person_id} among yours.", kind="not-found")


async def managed_course(w: workflow.Workflow, caller: domain.Caller, course_id: str) -> Course:
    """The course, when the caller may work it: their own provider's (a course admin) or any (an admin)."""
    course = await load_course(w, course_id)
    if not caller.manages(course.provider_id):
        raise forbidden("Course admins work their own provider's courses only.")
    return course


def _rule_refusals() -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of the routes that check course rules: each broken rule is its own Problem type."""

    def listed(status: str) -> str:
        return "; ".join(
            f"`{kind}` ({text.split(': ', 1)[1]})" for kind, text in domain.RULES.items() if text.startswith(status)
        )

    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        409: {
            "description": f"In conflict with the course's or enrolment's state; the Problem's type says which: "
            f"{listed('409')}",
            "content": content,
        },
        "4XX": {
            "description": f"Refused; a broken course rule is a 422 whose Problem type names it (more broken "
            f"rules in `also`, each with its `type`): {listed('422')}",
            "content": content,
        },
    }


RULE_REFUSALS = _rule_refusals()


def rule_broken(exc: domain.CourseError) -> Problem:
    """The broken rule as Problem Details: its own type (``RULES``) and what matters of it as members."""
    values = dict(exc.values)
    if "also" in values:  # the other broken rules, each named by its type as the Problem's own is
        values["also"] = [{"type": PROBLEM_BASE + a.pop("kind"), **a} for a in map(dict, values["also"])]
    if isinstance(exc, domain.InvalidTransition):
        return Problem(409, str(exc), kind=exc.kind, **values)
    return Problem(422, str(exc), kind=exc.kind, title="Not possible for this course", **values)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """The use cases' refusals as Problem Details, in one place."""
    try:
        yield
    except domain.CourseError as exc:
        raise rule_broken(exc) from exc
    except workflow.NoSuchSession as exc:
        raise Problem(404, str(exc), kind="not-found") from exc


@contextlib.asynccontextmanager
async def course_change(w: workflow.Workflow, caller: domain.Caller, course_id: str) -> AsyncIterator[None]:
    """A change by the course's own staff: checked first, its refusals as Problem Details, committed once done."""
    await managed_course(w, caller, course_id)
    with refusals():
        yield
    await w.uow.commit()


async def course_read(w: workflow.Workflow, course: Course) -> CourseRead:
    sessions = await workflow.sessions_of(w.session, course.id)
    held, waiting = await workflow.counts(w.session, course.id)
    return CourseRead(
        course_id=course.id,
        title=course.title,
        description=course.description,
        category=course.category,
        target_level=course.target_level,
        language_of_instruction=course.language_of_instruction,
        provider_id=course.provider_id,
        capacity=course.capacity,
        free_seats=max(0, course.capacity - held),
        waiting=waiting,
        childcare_offered=course.childcare_offered,
        women_only=course.women_only,
        min_age=course.min_age,
        max_age=course.max_age,
        funding=course.funding,
        fee_euro=course.fee_euro,
        enrolment_opens_on=course.enrolment_opens_on,
        enrolment_closes_on=course.enrolment_closes_on,
        location=course.location,
        district=course.district,
        status=course.status,
        sessions=[
            SessionRead(session_id=s.id, starts_at=as_utc(s.starts_at), ends_at=as_utc(s.ends_at), place=s.place)
            for s in sessions
        ],
    )


async def load_course(w: workflow.Workflow, course_id: str) -> Course:
    course = await w.session.get(Course, course_id)
    if course is None:
        raise Problem(404, f"No course with id {course_id}.", kind="not-found")
    return course


@contextlib.asynccontextmanager
async def enrolment_change(
    w: workflow.Workflow, caller: domain.Caller, course_id: str, enrolment_id: str
) -> AsyncIterator[Enrolment]:
    """A change of one of the course's enrolments (a :func:`course_change`): yields the enrolment."""
    async with course_change(w, caller, course_id):
        enrolment = await w.session.get(Enrolment, enrolment_id)
        if enrolment is None or enrolment.course_id != course_id:
            raise Problem(404, f"No enrolment {enrolment_id} in this course.", kind="not-found")
        yield enrolment


async def enrolment_read(w: workflow.Workflow, e: Enrolment) -> EnrolmentRead:
    position = None
    if e.status == domain.EnrolmentStatus.WAITLISTED.value:
        position = [x.id for x in await workflow.waiting_line(w, e.course_id)].index(e.id) + 1
    return EnrolmentRead(
        enrolment_id=e.id,
        course_id=e.course_id,
        person_id=e.person_id,
        status=e.status,
        position=position,
        priority_flags=e.priority_flags,
        referral_id=e.referral_id,
        requested_at=as_utc(e.requested_at),
        offer_expires_at=as_utc(e.offer_expires_at),
        cancel_reason=e.cancel_reason,
        result=e.result,
        certificate=e.certificate,
        completed_on=e.completed_on,
    )


# --- catalogue ----------------------------------------------------------------------------


@router.get("/courses", response_model=Page[CourseRead])
async def list_courses(
    w: WorkflowDep,
    category: domain.CourseCategory | None = None,
    target_level: GermanLevel | None = None,
    women_only: bool | None = None,
    childcare_offered: bool | None = None,
    language: str | None = Query(None, max_length=35, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$"),
    district: District | None = None,
    status: domain.CourseStatus | None = domain.CourseStatus.SCHEDULED,
    provider_id: str | None = Query(None, max_length=64),
    page: int = Query(1, ge=1, le=10_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[CourseRead]:
    """The public, filterable course catalogue: no personal data, only free seats and waiting counts."""
    filters = []
    for column, value in (
        (Course.category, category),
        (Course.target_level, target_level),
        (Course.women_only, women_only),
        (Course.childcare_offered, childcare_offered),
        (Course.language_of_instruction, language),
        (Course.status, status),
        (Course.provider_id, provider_id),
        (Course.district, district),
    ):
        if value is not None:
            filters.append(column == (value.value if hasattr(value, "value") else value))
    rows, total = await page_of_rows(w.session, Course, filters, (Course.created_at, Course.id), page, page_size)
    return Page(items=[await course_read(w, c) for c in rows], total=total, page=page, page_size=page_size)


@router.post("/courses", status_code=201, response_model=CourseRead, responses=RULE_REFUSALS)
async def schedule_course(body: CourseCreate, w: WorkflowDep, caller: CallerDep) -> CourseRead:
    """A new course of the course admin's own provider (an admin names any provider)."""
    provider = body.provider_id
    if caller.unrestricted:
        provider = provider or DEFAULT_PROVIDER
    elif not caller.has(domain.COURSE_ADMIN):
        raise forbidden("Courses are scheduled by course admins.")
    elif caller.provider_id is None:
        raise forbidden("Your sign-in names no course provider (partner_id); an admin of the sign-in gives it.")
    elif provider not in (None, caller.provider_id):
        raise forbidden("Course admins schedule their own provider's courses only.")
    else:
        provider = caller.provider_id
    fields = {
        k: v.value if isinstance(v, Enum) else v
        for k, v in body.model_dump(exclude={"sessions", "provider_id"}).items()
    }
    with refusals():
        course = await workflow.schedule_course(w, provider, fields, [session_plan(s) for s in body.sessions])
    await w.uow.commit()
    return await course_read(w, course)


def session_plan(body: SessionCreate) -> workflow.SessionPlan:
    return workflow.SessionPlan(body.starts_at, body.ends_at, body.place)


@router.get("/courses/{course_id}", response_model=CourseRead)
async def read_course(course_id: str, w: WorkflowDep) -> CourseRead:
    return await course_read(w, await load_course(w, course_id))


@router.patch("/courses/{course_id}", response_model=CourseRead, responses=RULE_REFUSALS)
async def update_course(course_id: str, body: CourseUpdate, w: WorkflowDep, caller: CallerDep) -> CourseRead:
    async with course_change(w, caller, course_id):
        course = await workflow.change_course(w, course_id, body.model_dump(exclude_unset=True))
    return await course_read(w, course)


@router.post("/courses/{course_id}/cancel", response_model=CourseRead, responses=RULE_REFUSALS)
async def cancel_course(course_id: str, w: WorkflowDep, caller: CallerDep) -> CourseRead:
    """Cancel a course; the enrolled and waiting hear of it by event."""
    async with course_change(w, caller, course_id):
        course = await workflow.cancel_course(w, course_id)
    return await course_read(w, course)


@router.post("/courses/{course_id}/sessions", status_code=201, response_model=CourseRead, responses=RULE_REFUSALS)
async def add_session(course_id: str, body: SessionCreate, w: WorkflowDep, caller: CallerDep) -> CourseRead:
    """One more session of a scheduled course; it must not overlap the others."""
    async with course_change(w, caller, course_id):
        course = await workflow.add_session(w, course_id, session_plan(body))
    return await course_read(w, course)


@router.delete("/courses/{course_id}/sessions/{session_id}", response_model=CourseRead, responses=RULE_REFUSALS)
async def remove_session(course_id: str, session_id: str, w: WorkflowDep, caller: CallerDep) -> CourseRead:
    """Take a session off a scheduled course: not its last one, and not one with attendance recorded (that
    attendance is part of the participants' record)."""
    async with course_change(w, caller, course_id):
        course = await workflow.remove_session(w, course_id, session_id)
    return await course_read(w, course)


@router.get("/courses/{course_id}/participants", response_model=ParticipantList)
async def participants(course_id: str, request: Request, w: WorkflowDep, caller: CallerDep) -> ParticipantList:
    """The enrolled and completed participants of the caller's own course with their registered names (one read
    from registration for the whole list, which logs it per person) and their attendance per session."""
    await managed_course(w, caller, course_id)
    rows = (
        await w.session.scalars(
            select(Enrolment)
            .where(
                Enrolment.course_id == course_id,
                Enrolment.status.in_([domain.EnrolmentStatus.ENROLLED.value, domain.EnrolmentStatus.COMPLETED.value]),
            )
            .order_by(Enrolment.requested_at, Enrolment.id)
        )
    ).all()
    attendance: dict[str, dict[str, bool]] = {row.id: {} for row in rows}
    if rows:
        marks = await w.session.scalars(select(Attendance).where(Attendance.enrolment_id.in_(list(attendance))))
        for mark in marks:
            attendance[mark.enrolment_id][mark.session_id] = mark.present
    names = await registered_names(
        request, course_id, [row.person_id for row in rows], chassis_caller(request).actor_or_unauthenticated
    )
    return ParticipantList(
        participants=[
            Participant(
                enrolment_id=row.id,
                person_id=row.person_id,
                name=(names or {}).get(row.person_id),
                status=row.status,
                attendance=attendance[row.id],
                result=row.result,
                certificate=row.certificate,
                completed_on=row.completed_on,
            )
            for row in rows
        ],
        names_available=names is not None,
    )


async def registered_names(
    request: Request, course_id: str, person_ids: list[str], caller_actor: str
) -> dict[str, str] | None:
    """Person id -> name as registered, asked of registration in one call in this service's own signed name (it
    logs the read as the staff member's); None while registration cannot answer, so that the list still shows."""
    if not person_ids:
        return {}
    runtime = request.app.state.runtime
    signer = courses_of(runtime).identity
    url, transport = runtime.settings.registration_url, courses_of(runtime).registration_transport
    params: list[tuple[str, str | int | float | bool | None]] = [("person_id", p) for p in sorted(set(person_ids))]
    params += [("on_behalf_of", caller_actor), ("course_id", course_id)]
    try:
        async with httpx.AsyncClient(
            base_url=url, timeout=3, transport=transport, verify=runtime.settings.http_verify()
        ) as client:
            reply = await client.get(
                "/api/internal/persons/participant-names",
                params=params,
                headers={HEADER: signer.as_itself("registration")},
            )
    except httpx.HTTPError:
        log.warning("registration unreachable for a participant list")
        return None
    if reply.status_code != 200:
        log.warning("registration answered %s for a participant list", reply.status_code)
        return None
    return {str(p["person_id"]): " ".join(str(p[k]).strip() for k in HOLDER_FIELDS if p.get(k)) for p in reply.json()}


# --- enrolments ---------------------------------------------------------------------------


@router.post("/courses/{course_id}/enrolments", status_code=201, response_model=EnrolmentRead, responses=RULE_REFUSALS)
async def enrol(course_id: str, body: EnrolmentCreate, w: WorkflowDep, caller: CallerDep) -> EnrolmentRead:
    """Enrol a person (the provider's course admin, or a caseworker of the person's case); a full course puts them
    on the waiting list in the documented order."""
    course = await load_course(w, course_id)
    if not caller.manages(course.provider_id):
        people = workflow.caseworker_people(caller)
        if people is None:
            raise forbidden("Course admins enrol in their own provider's courses only.")
        if await w.session.scalar(workflow.reaches(people, body.person_id).limit(1)) is None:
            raise Problem(404, f"No person {body.person_id} among your team's open cases.", kind="not-found")
    with refusals():
        enrolment = await workflow.request_enrolment(
            w, course_id, body.person_id, obligation=body.integration_course_obligation, referral_id=body.referral_id
        )
    await w.uow.commit()
    return await enrolment_read(w, enrolment)


@router.get("/courses/{course_id}/enrolments", response_model=list[EnrolmentRead])
async def list_enrolments(
    course_id: str,
    request: Request,
    w: WorkflowDep,
    caller: CallerDep,
    status: domain.EnrolmentStatus | None = None,
) -> list[EnrolmentRead]:
    """Staff view: enrolled first, then the waiting list in its order (positions count everyone waiting). A
    caseworker sees the people of their team's open cases only."""
    course = await load_course(w, course_id)
    query = select(Enrolment).where(Enrolment.course_id == course_id)
    if not caller.manages(course.provider_id):
        people = workflow.caseworker_people(caller)
        if people is None:
            raise forbidden("Course admins see their own provider's enrolments only.")
        query = query.where(Enrolment.person_id.in_(people))
    if status:
        query = query.where(Enrolment.status == status.value)
    rows = (await w.session.scalars(query.order_by(Enrolment.requested_at, Enrolment.id))).all()
    line = {e.id: i for i, e in enumerate(await workflow.waiting_line(w, course_id))}
    rows = sorted(rows, key=lambda e: (e.status == domain.EnrolmentStatus.WAITLISTED.value, line.get(e.id, -1)))
    answer = [await enrolment_read(w, e) for e in rows]
    await log_read(w, request, "list_enrolments", (e.person_id for e in rows))
    return answer


@router.post(
    "/courses/{course_id}/enrolments/{enrolment_id}/cancel", response_model=EnrolmentRead, responses=RULE_REFUSALS
)
async def cancel(
    course_id: str, enrolment_id: str, body: Cancellation, w: WorkflowDep, caller: CallerDep
) -> EnrolmentRead:
    """Cancellation by the person or staff; a freed seat is offered to the first in line."""
    async with enrolment_change(w, caller, course_id, enrolment_id) as enrolment:
        await workflow.cancel_enrolment(w, enrolment, body.reason)
    return await enrolment_read(w, enrolment)


@router.post(
    "/courses/{course_id}/enrolments/{enrolment_id}/accept-offer", response_model=EnrolmentRead, responses=RULE_REFUSALS
)
async def accept_offer(course_id: str, enrolment_id: str, w: WorkflowDep, caller: CallerDep) -> EnrolmentRead:
    async with enrolment_change(w, caller, course_id, enrolment_id) as enrolment:
        await workflow.accept_offer(w, enrolment)
    return await enrolment_read(w, enrolment)


@router.post("/courses/{course_id}/enrolments/{enrolment_id}/attendance", status_code=201, responses=RULE_REFUSALS)
async def record_attendance(
    course_id: str, enrolment_id: str, body: AttendanceCreate, w: WorkflowDep, caller: CallerDep
) -> dict[str, Any]:
    async with enrolment_change(w, caller, course_id, enrolment_id) as enrolment:
        await workflow.record_attendance(w, enrolment, body.session_id, body.present)
    return {"enrolment_id": enrolment.id, "session_id": body.session_id, "present": body.present}


@router.post(
    "/courses/{course_id}/enrolments/{enrolment_id}/completion", response_model=EnrolmentRead, responses=RULE_REFUSALS
)
async def complete(
    course_id: str, enrolment_id: str, body: CompletionCreate, w: WorkflowDep, caller: CallerDep
) -> EnrolmentRead:
    """Completion with result and certificate (e.g. "DTZ B1", "Leben in Deutschland"); fills the pass."""
    async with enrolment_change(w, caller, course_id, enrolment_id) as enrolment:
        await workflow.complete(w, enrolment, body.result, body.certificate, body.completed_on)
    return await enrolment_read(w, enrolment)


async def learner_view(w: workflow.Workflow, caller: domain.Caller, person_id: str, *roles: str) -> str:
    """What of the learner's records the caller sees ("all" or "provider"); 403 for a role these routes are not
    for (the gateway's policy stops it first), 404 for another's learner."""
    if not caller.has(*roles):
        raise forbidden(f"This needs one of the roles {', '.join(sorted({domain.ADMIN, *roles}))}.")
    view = await workflow.learner_view(w, caller, person_id)
    if view is None:
        raise not_a_learner_of(person_id)
    return view


@router.get("/learners/{person_id}/enrolments", response_model=list[EnrolmentRead])
async def person_enrolments(person_id: str, request: Request, w: WorkflowDep, caller: CallerDep) -> list[EnrolmentRead]:
    """A learner's enrolments: all of them for the caseworkers of their case, a provider's for its course admins."""
    view = await learner_view(w, caller, person_id, domain.COURSE_ADMIN, domain.CASEWORKER)
    query = select(Enrolment).where(Enrolment.person_id == person_id)
    courses = workflow.provider_courses(caller)
    if view == "provider" and courses is not None:
        query = query.where(Enrolment.course_id.in_(courses))
    rows = (await w.session.scalars(query.order_by(Enrolment.requested_at))).all()
    answer = [await enrolment_read(w, e) for e in rows]
    await log_read(w, request, "read_enrolments", [person_id])
    return answer


# --- the education pass (Bildungspass) -------------------------------------------------------


@router.get("/education-passes/public-key", tags=["education pass"])
async def public_key(request: Request) -> dict[str, Any]:
    """The keys of education passes (JWK set): with them anyone can verify a pass offline. The first signs new
    passes; during a key rotation the others verify passes signed before (each proof names its key's ``kid``)."""
    keys = courses_of(request.app.state.runtime).pass_keys
    return {
        # The signing key's first, then those that still verify (a rotation's previous key) or soon will (the next).
        "keys": [domain.public_jwk(key, key_id) for key, key_id in keys.verifying],
        "issuer": request.app.state.runtime.settings.pass_issuer,
    }


@router.get("/learners/{person_id}/education-pass/entries", response_model=list[PassEntryRead], tags=["education pass"])
async def pass_entries(person_id: str, request: Request, w: WorkflowDep, caller: CallerDep) -> list[PassEntryRead]:
    await learner_view(w, caller, person_id, domain.COURSE_ADMIN, domain.CASEWORKER)
    await log_read(w, request, "read_pass_entries", [person_id])
    rows = (
        await w.session.scalars(
            select(PassEntry).where(PassEntry.person_id == person_id).order_by(PassEntry.at, PassEntry.id)
        )
    ).all()
    return [PassEntryRead(entry_id=r.id, kind=r.kind, details=r.details, at=as_utc(r.at)) for r in rows]


#: What registration answers on its pass-holder route (its ``PassHolder``).
HOLDER_FIELDS = ("given_names", "family_name")


async def registered_holder_name(request: Request, person_id: str, caller_actor: str) -> str:
    """The holder's name as registered, asked of registration in this service's own signed name; registration
    logs the read as the staff member's, through this service. Nothing is issued without it: 404 for a person
    registration does not know, 410 for one erased, 503 while registration cannot answer."""
    runtime = request.app.state.runtime
    signer = courses_of(runtime).identity
    unavailable = Problem(
        503,
        "The registration service, which holds the holder's name, cannot answer now; nothing was issued. "
        "Try again shortly.",
        kind="registration-unavailable",
        headers={"Retry-After": "30"},
    )
    url, transport = runtime.settings.registration_url, courses_of(runtime).registration_transport
    try:
        async with httpx.AsyncClient(
            base_url=url, timeout=3, transport=transport, verify=runtime.settings.http_verify()
        ) as client:
            reply = await client.get(
                f"/api/internal/persons/{quote(person_id, safe='')}/pass-holder",
                params={"on_behalf_of": caller_actor},
                headers={HEADER: signer.as_itself("registration")},
            )
    except httpx.HTTPError as exc:
        raise unavailable from exc
    if reply.status_code == 404:
        raise Problem(404, f"Registration knows no person {person_id}.", kind="not-found")
    if reply.status_code == 410:
        raise Problem(410, "This person's data has been erased (GDPR Art. 17).", kind="erased")
    if reply.status_code in (401, 403):
        # Not the caller's doing: the identity keys of courses and registration do not match (deploy/README.md).
        problem_type = reply.json().get("type", "") if reply.headers.get("content-type") == PROBLEM_JSON else ""
        log.warning("registration refused courses' identity (%s %s)", reply.status_code, problem_type)
    if reply.status_code != 200:
        raise unavailable
    holder = reply.json()
    return " ".join(str(holder[k]).strip() for k in HOLDER_FIELDS if holder.get(k))


@router.post(
    "/learners/{person_id}/education-pass",
    status_code=201,
    response_model=IssuedPassRead,
    tags=["education pass"],
    responses={
        503: {
            "description": "Registration, which holds the holder's name, cannot answer: nothing issued",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
async def issue_pass(
    person_id: str,
    request: Request,
    w: WorkflowDep,
    caller: CallerDep,
    body: Annotated[PassIssue | None, Body()] = None,
) -> IssuedPassRead:
    """Issue a signed education pass: a W3C-shaped verifiable credential and a printable page. The holder's name is
    the one registered; the credential names its place in the public revocation list."""
    await learner_view(w, caller, person_id, domain.COURSE_ADMIN, domain.CASEWORKER)
    runtime = request.app.state.runtime
    rows = (
        await w.session.scalars(
            select(PassEntry).where(PassEntry.person_id == person_id).order_by(PassEntry.at, PassEntry.id)
        )
    ).all()
    if not rows:
        raise Problem(404, "This person has no entries for an education pass yet.", kind="not-found")
    holder_name = await registered_holder_name(request, person_id, chassis_caller(request).actor_or_unauthenticated)
    keys = courses_of(runtime).pass_keys
    pass_id = str(uuid.uuid4())
    issuer = runtime.settings.pass_issuer
    index = await workflow.place_in_status_list(w)
    credential = domain.sign(
        domain.education_pass(
            pass_id=pass_id,
            issuer=issuer,
            person_id=person_id,
            holder_name=holder_name,
            entries=[{"kind": r.kind, **r.details} for r in rows],
            issued_at=w.now,
            status=domain.status_entry(f"{issuer}{STATUS_PATH}", index),
        ),
        keys.private,
        f"{issuer}/keys#{keys.key_id}",
        w.now,
    )
    code = domain.verification_code(credential)
    w.session.add(IssuedPass(id=pass_id, person_id=person_id, code=code, credential=credential, issued_at=w.now))
    w.session.add(PassStatus(pass_id=pass_id, status_index=index, code=code, issued_at=w.now))
    await log_read(w, request, "issue_pass", [person_id])
    return IssuedPassRead(
        pass_id=pass_id, code=code, credential=credential, html_url=f"/api/v1/education-passes/{pass_id}/page"
    )


async def readable_pass(w: workflow.Workflow, caller: domain.Caller, pass_id: str) -> IssuedPass:
    """An issued pass the caller may see: a registrar's or an admin's any, others' their learners' (else 404)."""
    issued = await w.session.get(IssuedPass, pass_id)
    if issued is None or not (
        caller.has(domain.REGISTRAR) or await workflow.learner_view(w, caller, issued.person_id) is not None
    ):
        raise Problem(404, f"No education pass {pass_id}.", kind="not-found")
    return issued


@router.post("/education-passes/{pass_id}/revoke", response_model=PassStatusRead, tags=["education pass"])
async def revoke_pass(pass_id: str, body: PassRevocation, w: WorkflowDep, caller: CallerDep) -> PassStatusRead:
    """Revoke a pass (issued in error, superseded, at the holder's request): the status list marks it from now on,
    and verification says so. Revoking twice keeps the first reason."""
    if not caller.has(domain.COURSE_ADMIN):
        raise forbidden("Passes are revoked by course admins and admins.")
    issued = await w.session.get(IssuedPass, pass_id)
    if issued is None or await workflow.learner_view(w, caller, issued.person_id) is None:
        raise Problem(404, f"No education pass {pass_id}.", kind="not-found")
    status = await w.session.get(PassStatus, issued.id)
    if status is None:  # not expected: every pass gets its status row when it is issued
        status = PassStatus(pass_id=issued.id, code=issued.code, issued_at=issued.issued_at)
        w.session.add(status)
    await workflow.revoke(w, status, body.reason)
    await w.uow.commit()
    return PassStatusRead(
        pass_id=issued.id, revoked=True, revoked_at=as_utc(status.revoked_at), reason=status.revocation_reason
    )


@router.get("/education-passes/{pass_id}/page", response_class=HTMLResponse, tags=["education pass"])
async def pass_page(pass_id: str, request: Request, w: WorkflowDep, caller: CallerDep) -> HTMLResponse:
    """The printable pass, carrying its verification code."""
    issued = await readable_pass(w, caller, pass_id)
    await log_read(w, request, "read_pass", [issued.person_id])
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


def revoked_answer(status: PassStatus, **known: Any) -> Verification:
    revoked_on = as_utc(status.revoked_at)
    on = f" on {revoked_on.date().isoformat()}" if revoked_on else ""
    return Verification(valid=False, revoked=True, reason=f"revoked by the issuer{on}", **known)


@router.get("/education-passes/status", tags=["education pass"])
async def status_list(request: Request, w: WorkflowDep) -> JSONResponse:
    """The revocation list of all passes (a W3C Bitstring Status List credential, signed with the pass key): a pass
    names its place in it (``credentialStatus.statusListIndex``), and the bit there is 1 once it is revoked. An
    offline verifier checks the pass's proof and this list's with the public key, then the bit."""
    runtime = request.app.state.runtime
    keys = courses_of(runtime).pass_keys
    issuer = runtime.settings.pass_issuer
    highest = await w.session.scalar(select(func.max(PassStatus.status_index)))
    revoked = (
        await w.session.scalars(
            select(PassStatus.status_index).where(
                PassStatus.status_index.is_not(None), PassStatus.revoked_at.is_not(None)
            )
        )
    ).all()
    document = domain.sign(
        domain.status_list_credential(
            list_url=f"{issuer}{STATUS_PATH}",
            issuer=issuer,
            revoked=[i for i in revoked if i is not None],
            length_bits=domain.status_list_length(highest),
            valid_from=w.now,
        ),
        keys.private,
        f"{issuer}/keys#{keys.key_id}",
        w.now,
    )
    # Verifiers may keep it a few minutes: a revocation reaches them within that time.
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


@router.post("/education-passes/verify", response_model=Verification, tags=["education pass"])
async def verify_pass(credential: dict[str, Any], request: Request, w: WorkflowDep) -> Verification:
    """Check a pass (the credential JSON) against this issuer's key and its revocation status."""
    keys = courses_of(request.app.state.runtime).pass_keys
    valid = domain.verify_with_any(credential, keys.public_keys)
    credential_id = credential.get("id") if isinstance(credential.get("id"), str) else None
    if not valid:
        return Verification(
            valid=False, reason="signature does not match this content and issuer", credential_id=credential_id
        )
    pass_id = domain.pass_id_of(credential)
    status = await w.session.get(PassStatus, pass_id) if pass_id else None
    if status is not None and status.revoked_at is not None:
        return revoked_answer(status, credential_id=credential_id)
    return Verification(valid=True, reason="signature valid, not revoked", credential_id=credential_id)


@router.get("/education-passes/verify/{code}", response_model=Verification, tags=["education pass"])
async def verify_code(code: str, request: Request, w: WorkflowDep) -> Verification:
    """Check the code printed on a pass page."""
    status = await w.session.scalar(select(PassStatus).where(PassStatus.code == code.upper()))
    if status is not None and status.revoked_at is not None:
        return revoked_answer(status, code=code, credential_id=f"urn:uuid:{status.pass_id}")
    issued = await w.session.scalar(select(IssuedPass).where(IssuedPass.code == code.upper()))
    if issued is None:
        return Verification(valid=False, reason="no pass with this code", code=code)
    valid = domain.verify_with_any(issued.credential, courses_of(request.app.state.runtime).pass_keys.public_keys)
    return Verification(
        valid=valid,
        reason="issued by this office, not revoked" if valid else "signature invalid",
        code=code,
        credential_id=issued.credential["id"],
    )


# --- a person's access log and export (GDPR Art. 15), for the gateway -----------------------------------------
# Under /api/v1/persons/, which the gateway forwards to registration: only the gateway's own merge of the log and
# the export calls these, with the caller's signed identity, after registration answered that the caller reaches
# the person. Not in the public API document.


async def person_in_reach(
    w: workflow.Workflow, caller: domain.Caller, request: Request, person_id: str, *, export: bool
) -> None:
    """Privacy officers and admins reach anyone; a caseworker (for the log only) the people of the team's open
    cases (404 otherwise, as for an unknown person); anyone else is refused."""
    roles = chassis_caller(request).roles
    if roles is None or roles & access.DATA_PROTECTION_ROLES:
        return
    if export or domain.CASEWORKER not in roles:
        raise forbidden("This needs the privacy officer's or the admin's role.")
    people = workflow.caseworker_people(caller)
    if people is None or await w.session.scalar(workflow.reaches(people, person_id).limit(1)) is None:
        raise not_a_learner_of(person_id)


@router.get("/persons/{person_id}/access-log", response_model=list[access.AccessLogEntry], include_in_schema=False)
async def person_access_log(
    person_id: str, request: Request, w: WorkflowDep, caller: CallerDep
) -> list[access.AccessLogEntry]:
    """Who read this person's data in this service, newest first (the gateway logs the read at registration)."""
    await person_in_reach(w, caller, request, person_id, export=False)
    return await access.entries_for(w.session, "courses", person_id)


@router.get("/persons/{person_id}/export", response_model=access.ServiceExport, include_in_schema=False)
async def person_export(person_id: str, request: Request, w: WorkflowDep, caller: CallerDep) -> access.ServiceExport:
    """Everything this service holds on the person: what registration's events told it, enrolments with their
    attendance, pass entries and issued passes (with their revocation state); and its access log."""
    await person_in_reach(w, caller, request, person_id, export=True)
    await log_read(w, request, "export", [person_id])
    session = w.session
    mine = select(Enrolment).where(Enrolment.person_id == person_id)
    enrolments = (await session.scalars(mine.order_by(Enrolment.requested_at))).all()

    rows = functools.partial(access.rows_of, session)

    passes = (await session.scalars(select(IssuedPass).where(IssuedPass.person_id == person_id))).all()
    statuses = {
        s.pass_id: s
        for s in (await session.scalars(select(PassStatus).where(PassStatus.pass_id.in_([p.id for p in passes])))).all()
    }
    data = {
        "learner": await rows(select(Learner).where(Learner.person_id == person_id)),
        "enrolments": [access.row_dict(e) for e in enrolments],
        "attendance": await rows(
            select(Attendance)
            .where(Attendance.enrolment_id.in_([e.id for e in enrolments]))
            .order_by(Attendance.recorded_at)
        ),
        "pass_entries": await rows(select(PassEntry).where(PassEntry.person_id == person_id).order_by(PassEntry.at)),
        "issued_passes": [
            access.row_dict(p)
            | {
                "revoked": p.id in statuses and statuses[p.id].revoked_at is not None,
                "revocation_reason": statuses[p.id].revocation_reason if p.id in statuses else None,
            }
            for p in passes
        ],
    }
    return access.ServiceExport(
        service="courses",
        person_id=person_id,
        data=data,
        access_log=await access.entries_for(session, "courses", person_id),
    )
