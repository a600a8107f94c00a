"""HTTP routes of the referral service: caseworkers' side and partners' side.

Object-level checks (issue 6), from the identity the gateway forwards signed: a partner sees only the
referrals sent to it (issue 12: one proposed, or revoked before it was ever sent, was never shared and does not
exist for the partner), and of those only what its service needs (``schemas.PartnerReferral``); a caseworker only
the cases of their team (one without a team only the cases assigned to them) and the referrals of those cases; an
admin every case. What is out of the caller's scope answers 404, exactly like what does not exist: the caller
learns nothing of it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as FastApiPath
from pydantic import StringConstraints, ValidationError
from sqlalchemy import ColumnElement, func, select

from chassis import audit as access
from chassis.clock import as_utc as aware
from chassis.db import page_of_rows
from chassis.deps import (
    ActorDep,
    CallerDep,
    ClockDep,
    PartnerDep,
    RuntimeDep,
    UnitOfWorkDep,
    caller_of,
    log_callers_read,
    require_role,
)
from chassis.errors import PROBLEM_JSON, Problem, validation_errors
from chassis.identity import HEADER
from chassis.schemas import Page
from contracts.calendar import local_day
from services.referral import directory, domain, workflow
from services.referral.models import (
    Case,
    CaseMember,
    CaseNote,
    CaseTask,
    CaseworkerRow,
    Goal,
    KnownConsent,
    KnownPerson,
    Referral,
    RuleSetVersion,
    TimelineEntry,
)
from services.referral.runtime import referral_of
from services.referral.schemas import (
    Assignment,
    BlockedRead,
    BulkResult,
    BulkSend,
    CaseClosing,
    CaseDetail,
    CaseMemberRead,
    CaseRead,
    CaseworkerEntry,
    CaseworkerRead,
    Completion,
    Decline,
    DueGoalRead,
    GoalCreate,
    GoalRead,
    GoalUpdate,
    NoteCreate,
    NoteRead,
    PartnerReferral,
    PartnerReferralRead,
    ReferElsewhere,
    ReferralRead,
    RuleSetRead,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    TimelineRead,
)

if TYPE_CHECKING:
    from services.referral.runtime import ReferralSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

router = APIRouter(prefix="/api/v1", tags=["referral"])
partner_router = APIRouter(prefix="/api/v1/partner", tags=["partner"])


async def get_workflow(
    runtime: RuntimeDep, uow: UnitOfWorkDep, clock: ClockDep, caller: CallerDep
) -> workflow.Workflow:
    settings = cast("ReferralSettings", runtime.settings)  # the settings this service's app was created with
    return workflow.Workflow(
        uow=uow,
        now=clock(),
        expiry_days=settings.referral_expiry_days,
        actor=caller.actor,  # the timeline: who acted
    )


WorkflowDep = Annotated[workflow.Workflow, Depends(get_workflow)]


async def get_scope(caller: CallerDep) -> workflow.CaseScope:
    """The caller's cases, as the signed identity says (chassis.deps)."""
    try:
        return workflow.case_scope(caller.roles_header, caller.team, caller.actor)
    except workflow.NotACaseReader as exc:
        # The gateway's role policy never lets such a caller through; this is the second line.
        raise Problem(403, "Cases and referrals are for caseworkers and admins.", kind="forbidden") from exc


ScopeDep = Annotated[workflow.CaseScope, Depends(get_scope)]


STAFF_READERS = require_role("caseworker", "admin")


async def log_read(w: workflow.Workflow, request: Request, action: str, person_ids: Any) -> None:
    """Log the read of these persons' data (``chassis.audit``) as the caller's, and commit it."""
    await log_callers_read(w.uow, request, action, person_ids)


# --- read models ---------------------------------------------------------------------------


def referral_read(r: Referral) -> ReferralRead:
    blocked = workflow.blocked_of(r)
    return ReferralRead(
        referral_id=r.id,
        case_id=r.case_id,
        person_id=r.person_id,
        service_type=r.service_type,
        partner_id=r.partner_id,
        partner_category=r.partner_category,
        status=r.status,
        rule_id=r.rule_id,
        rule_set_version=r.rule_set_version,
        matched_facts=r.matched_facts,
        purpose=r.purpose,
        blocked_reason=blocked.english(r.service_type) if blocked else None,
        blocked=BlockedRead(code=blocked.code, partner_ids=list(blocked.partner_ids)) if blocked else None,
        decline_reason=r.decline_reason,
        outcome=r.outcome,
        unsuccessful_reason=r.unsuccessful_reason,
        consent_withdrawn=r.consent_withdrawn,
        escalated=r.escalated,
        sent_at=aware(r.sent_at),
        response_due_at=aware(r.response_due_at),
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
    )


def partner_read(r: Referral) -> PartnerReferral:
    """The partner's view: what the staff see, less the routing internals and the facts not its service's."""
    staff = referral_read(r).model_dump(exclude={"rule_id", "rule_set_version", "blocked_reason", "blocked"})
    return PartnerReferral.model_validate(
        staff | {"matched_facts": domain.partner_facts(r.service_type, r.matched_facts)}
    )


async def cases_read(w: workflow.Workflow, cases: list[Case]) -> list[CaseRead]:
    """The cases with the pseudonymous facts of their persons, read in one query for the page."""
    persons = (
        await w.session.scalars(select(KnownPerson).where(KnownPerson.person_id.in_([c.person_id for c in cases])))
    ).all()
    profiles = {p.person_id: p.profile or {} for p in persons}
    tasks = {
        row.case_id: (row.open, row.next_due)
        for row in (
            await w.session.execute(
                select(CaseTask.case_id, func.count().label("open"), func.min(CaseTask.due_on).label("next_due"))
                .where(CaseTask.case_id.in_([c.id for c in cases]), CaseTask.done_at.is_(None))
                .group_by(CaseTask.case_id)
            )
        ).all()
    }
    members: dict[str, list[str]] = {}
    for member in (
        await w.session.scalars(
            select(CaseMember).where(CaseMember.case_id.in_([c.id for c in cases])).order_by(CaseMember.joined_at)
        )
    ).all():
        members.setdefault(member.case_id, []).append(member.person_id)
    return [
        CaseRead(
            **case_read(c),
            member_ids=lead_first(members.get(c.id, [c.person_id]), c.person_id),
            age_band=profiles.get(c.person_id, {}).get("age_band"),
            preferred_language=profiles.get(c.person_id, {}).get("preferred_language"),
            open_tasks=tasks.get(c.id, (0, None))[0],
            next_due_on=tasks.get(c.id, (0, None))[1],
        )
        for c in cases
    ]


def lead_first(person_ids: list[str], lead: str) -> list[str]:
    return sorted(person_ids, key=lambda person_id: person_id != lead)


def task_read(t: CaseTask) -> TaskRead:
    return TaskRead(
        task_id=t.id,
        title=t.title,
        due_on=t.due_on,
        done=t.done_at is not None,
        created_by=t.created_by,
        created_at=aware(t.created_at),
        done_at=aware(t.done_at),
        done_by=t.done_by,
    )


def case_read(c: Case) -> dict[str, Any]:
    return {
        "case_id": c.id,
        "person_id": c.person_id,
        "household_id": c.household_id,
        "status": c.status,
        "caseworker_id": c.caseworker_id,
        "team": c.team,
        "opened_at": aware(c.opened_at),
        "closed_at": aware(c.closed_at),
        "close_reason": c.close_reason,
    }


def goal_read(g: Goal) -> GoalRead:
    return GoalRead(
        goal_id=g.id, person_id=g.person_id, dimension=g.dimension, title=g.title, status=g.status, due_on=g.due_on
    )


def member_read(case: Case, person_id: str, person: KnownPerson | None) -> CaseMemberRead:
    profile = (person.profile if person is not None else None) or {}
    return CaseMemberRead(
        person_id=person_id,
        lead=person_id == case.person_id,
        age_band=profile.get("age_band"),
        preferred_language=profile.get("preferred_language"),
        status=person.status if person else "registered",
    )


async def load_case(
    w: workflow.Workflow,
    case_id: str,
    scope: workflow.CaseScope,
    *,
    open_only: bool = False,
    unassigned_too: bool = False,
) -> Case:
    case = await w.session.get(Case, case_id)
    # Another team's case is as unknown as one that does not exist (and checked before "closed"). A case no team
    # has (the roster was full) is in every caseworker's queue, to be taken: ``unassigned_too``.
    unassigned = unassigned_too and case is not None and case.team is None and case.caseworker_id is None
    if case is None or not (scope.admits(case) or unassigned):
        raise Problem(404, f"No case with id {case_id}.", kind="not-found")
    if open_only and case.status != domain.CaseStatus.OPEN.value:
        raise Problem(409, f"The case is closed ({case.close_reason}); it takes no more changes.", kind="case-closed")
    return case


async def load_referral(
    w: workflow.Workflow,
    referral_id: str,
    *,
    partner_id: str | None = None,
    scope: workflow.CaseScope | None = None,
) -> Referral:
    referral = await w.session.get(Referral, referral_id)
    # A partner learns nothing of referrals addressed to others, not even that they exist, nor of one never sent
    # to it (proposed, or revoked while it waited for a consent); a caseworker nothing of the referrals of another
    # team's cases.
    if (
        referral is None
        or (partner_id is not None and (referral.partner_id != partner_id or referral.sent_at is None))
        or (scope is not None and not await in_scope(w, referral, scope))
    ):
        raise Problem(404, f"No referral with id {referral_id}.", kind="not-found")
    return referral


async def in_scope(w: workflow.Workflow, referral: Referral, scope: workflow.CaseScope) -> bool:
    if scope.everything:
        return True
    case = await w.session.get(Case, referral.case_id)
    return case is not None and scope.admits(case)


@contextlib.contextmanager
def refusals(status_now: str | None = None) -> Iterator[None]:
    """The domain's refusals as Problem Details, in one place; ``status_now``: the referral's or case's status."""
    now: dict[str, Any] = {"status_now": status_now} if status_now is not None else {}
    try:
        yield
    except domain.InvalidTransition as exc:
        raise Problem(409, str(exc), kind="invalid-transition", **now) from exc
    except domain.ElsewhereRefused as exc:  # the request named a partner that cannot take it
        raise Problem(422, str(exc), kind="validation", **now) from exc
    except domain.CannotSend as exc:
        missing = exc.blocked.code is domain.Waiting.CONSENT_MISSING
        raise Problem(409, str(exc), kind="consent-missing" if missing else "referral-rule", **now) from exc
    except domain.ReferralError as exc:
        raise Problem(409, str(exc), kind="referral-rule", **now) from exc
    except domain.CaseError as exc:
        raise Problem(409, str(exc), kind="case-rule", **now) from exc
    except domain.GoalError as exc:
        raise Problem(422, str(exc), kind="validation", **now) from exc


async def act(w: workflow.Workflow, referral: Referral, action: domain.ReferralAction, **reasons: Any) -> ReferralRead:
    with refusals(referral.status):
        await workflow.act(w, referral, action, **reasons)
    await w.uow.commit()
    return referral_read(referral)


async def partner_act(
    w: workflow.Workflow, referral: Referral, action: domain.ReferralAction, **reasons: Any
) -> PartnerReferral:
    await act(w, referral, action, **reasons)
    return partner_read(referral)


# --- cases ---------------------------------------------------------------------------------


@router.get("/cases", response_model=Page[CaseRead])
async def list_cases(
    request: Request,
    w: WorkflowDep,
    scope: ScopeDep,
    status: domain.CaseStatus | None = None,
    caseworker_id: str | None = Query(None, max_length=64),
    team: str | None = Query(None, max_length=64),
    person_id: Annotated[
        list[Annotated[str, StringConstraints(max_length=64)]] | None,
        Query(max_length=50, description="The case each of these persons belongs to (their household's)"),
    ] = None,
    number: Annotated[
        str | None, Query(min_length=4, max_length=36, pattern=r"^[0-9a-fA-F-]+$", description="A case number's start")
    ] = None,
    unassigned: Annotated[
        bool, Query(description="The queue: open cases no team has (the roster was full), for any caseworker to take")
    ] = False,
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[CaseRead]:
    """The caller's cases, filtered. The filters narrow the caller's scope, never widen it: a caseworker
    asking for another team's cases gets an empty page (not a 403, which would confirm the team has some).
    ``unassigned`` lists the queue instead: cases of no team, which every caseworker may take."""
    filters: list[ColumnElement[bool]] = (
        [Case.team.is_(None), Case.caseworker_id.is_(None)] if unassigned else [scope.cases()]
    )
    if number:
        filters.append(Case.id.startswith(number.lower(), autoescape=True))
    if status:
        filters.append(Case.status == status.value)
    if caseworker_id:
        filters.append(Case.caseworker_id == caseworker_id)
    if team:
        filters.append(Case.team == team)
    if person_id:  # the cases the persons belong to: their households'
        filters.append(Case.id.in_(select(CaseMember.case_id).where(CaseMember.person_id.in_(person_id))))
    rows, total = await page_of_rows(w.session, Case, filters, (Case.opened_at.desc(), Case.id), page, page_size)
    items = await cases_read(w, rows)
    await log_read(w, request, "list_cases", (c.person_id for c in rows))
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.get("/cases/goals-due", response_model=list[DueGoalRead])
async def goals_due(
    request: Request,
    w: WorkflowDep,
    scope: ScopeDep,
    within_days: Annotated[int, Query(ge=0, le=90, description="Due on or before today plus these days")] = 7,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[DueGoalRead]:
    """Plan goals (open or in progress) of the caller's open cases that are overdue or due within ``within_days``
    days (Wiedervorlage): the dashboard's reminders, earliest first. Declared before ``/cases/{case_id}``."""
    today = local_day(w.now)
    rows = (
        await w.session.execute(
            select(Goal, Case.person_id)
            .join(Case, Case.id == Goal.case_id)
            .where(
                scope.cases(),
                Case.status == domain.CaseStatus.OPEN.value,
                Goal.status.in_([domain.GoalStatus.OPEN.value, domain.GoalStatus.IN_PROGRESS.value]),
                Goal.due_on.is_not(None),
                Goal.due_on <= today + timedelta(days=within_days),
            )
            .order_by(Goal.due_on, Goal.created_at)
            .limit(limit)
        )
    ).all()
    # Goal titles are about the person: the read is logged like a case's.
    await log_read(w, request, "read_goals_due", [goal.person_id or lead for goal, lead in rows])
    return [
        DueGoalRead(
            **goal_read(goal).model_dump(),
            case_id=goal.case_id,
            case_person_id=lead,
            overdue=goal.due_on is not None and goal.due_on < today,
        )
        for goal, lead in rows
    ]


@router.get("/cases/{case_id}", response_model=CaseDetail)
async def read_case(case_id: str, request: Request, w: WorkflowDep, scope: ScopeDep) -> CaseDetail:
    case = await load_case(w, case_id, scope)
    members = await workflow.members_of(w.session, case.id)
    await log_read(w, request, "read_case", [m.person_id for m in members] or [case.person_id])
    known = {p.person_id: p for p in await workflow.known_persons(w.session, [m.person_id for m in members])}
    referrals = (
        await w.session.scalars(select(Referral).where(Referral.case_id == case.id).order_by(Referral.created_at))
    ).all()
    goals = (await w.session.scalars(select(Goal).where(Goal.case_id == case.id).order_by(Goal.created_at))).all()
    notes = (await w.session.scalars(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id))).all()
    tasks = (
        await w.session.scalars(
            select(CaseTask)
            .where(CaseTask.case_id == case.id)
            .order_by(CaseTask.due_on.is_(None), CaseTask.due_on, CaseTask.created_at)
        )
    ).all()
    return CaseDetail(
        **(await cases_read(w, [case]))[0].model_dump(),
        members=[member_read(case, m.person_id, known.get(m.person_id)) for m in members],
        tasks=[task_read(t) for t in tasks],
        referrals=[referral_read(r) for r in referrals],
        goals=[goal_read(g) for g in goals],
        notes=[NoteRead(author=n.author, text=n.text, at=aware(n.at)) for n in notes],
    )


@router.post("/cases/{case_id}/assignment", response_model=CaseRead)
async def reassign(case_id: str, body: Assignment, w: WorkflowDep, scope: ScopeDep, actor: ActorDep) -> CaseRead:
    """A caseworker (or team lead: the same role) hands the case to another integration navigator of
    the same team; only an admin moves a case to another team. A case of no team (the queue) any caseworker
    takes into their own team."""
    case = await load_case(w, case_id, scope, open_only=True, unassigned_too=True)
    worker = await w.session.get(CaseworkerRow, body.caseworker_id)
    if worker is None or not worker.active:
        raise Problem(422, f"No active caseworker {body.caseworker_id}.", kind="validation")
    # The roster is no secret (GET /caseworkers), so naming the rule gives nothing away.
    if not scope.everything and worker.team != (scope.team or case.team):
        raise Problem(
            403, "A caseworker hands a case on within the team; an admin moves it to another team.", kind="forbidden"
        )
    await workflow.assign(w, case, worker.id, worker.team, assigned_by=actor)
    await w.uow.commit()
    return CaseRead(**case_read(case))


@router.post("/cases/{case_id}/closing", response_model=CaseRead)
async def close_case(case_id: str, body: CaseClosing, w: WorkflowDep, scope: ScopeDep, actor: ActorDep) -> CaseRead:
    """Close the case with a reason (goals reached, moved away, no contact, other); its open referrals are
    revoked, and the team no longer reaches the person's data until the case is reopened."""
    case = await load_case(w, case_id, scope, open_only=True)
    await workflow.close(w, case, body.reason, by=actor)
    await w.uow.commit()
    return (await cases_read(w, [case]))[0]


@router.post("/cases/{case_id}/reopening", response_model=CaseRead)
async def reopen_case(case_id: str, w: WorkflowDep, scope: ScopeDep, actor: ActorDep) -> CaseRead:
    """Open a closed case again, with the team it had (not after an erasure or a move away in the register)."""
    case = await load_case(w, case_id, scope)
    with refusals(case.status):
        await workflow.reopen(w, case, by=actor)
    await w.uow.commit()
    return (await cases_read(w, [case]))[0]


@router.post("/cases/{case_id}/notes", status_code=201, response_model=NoteRead)
async def add_note(case_id: str, body: NoteCreate, w: WorkflowDep, scope: ScopeDep, actor: ActorDep) -> NoteRead:
    case = await load_case(w, case_id, scope, open_only=True)
    note = CaseNote(case_id=case.id, author=actor, text=body.text, at=w.now)
    w.session.add(note)
    await w.uow.commit()
    return NoteRead(author=note.author, text=note.text, at=w.now)


@router.post("/cases/{case_id}/tasks", status_code=201, response_model=TaskRead)
async def add_task(case_id: str, body: TaskCreate, w: WorkflowDep, scope: ScopeDep, actor: ActorDep) -> TaskRead:
    """A follow-up with a due date; the dashboard shows each case's open ones and the next due date."""
    case = await load_case(w, case_id, scope, open_only=True)
    task = CaseTask(
        id=str(uuid.uuid4()), case_id=case.id, title=body.title, due_on=body.due_on, created_by=actor, created_at=w.now
    )
    w.session.add(task)
    await w.uow.commit()
    return task_read(task)


@router.patch("/cases/{case_id}/tasks/{task_id}", response_model=TaskRead)
async def update_task(
    case_id: str,
    task_id: str,
    body: TaskUpdate,
    w: WorkflowDep,
    scope: ScopeDep,
    actor: ActorDep,
) -> TaskRead:
    """Mark a follow-up done (or not done after all)."""
    case = await load_case(w, case_id, scope, open_only=True)
    task = await w.session.get(CaseTask, task_id)
    if task is None or task.case_id != case.id:
        raise Problem(404, f"No task {task_id} in this case.", kind="not-found")
    task.done_at, task.done_by = (w.now, actor) if body.done else (None, None)
    await w.uow.commit()
    return task_read(task)


@router.get("/cases/{case_id}/timeline", response_model=list[TimelineRead])
async def timeline(case_id: str, request: Request, w: WorkflowDep, scope: ScopeDep) -> list[TimelineRead]:
    """Every event about the person, whichever service published it, oldest first."""
    case = await load_case(w, case_id, scope)
    members = [m.person_id for m in await workflow.members_of(w.session, case.id)] or [case.person_id]
    await log_read(w, request, "read_timeline", members)
    rows = (
        await w.session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.person_id.in_(members))
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
    ).all()
    return [TimelineRead(at=aware(r.at), event_type=r.event_type, source=r.source, summary=r.summary) for r in rows]


@router.post("/cases/{case_id}/goals", status_code=201, response_model=GoalRead)
async def set_goal(case_id: str, body: GoalCreate, w: WorkflowDep, scope: ScopeDep) -> GoalRead:
    """A goal of the integration plan (Befähigung zur Selbstständigkeit), in one of Esser's dimensions."""
    case = await load_case(w, case_id, scope, open_only=True)
    with refusals():
        goal = await workflow.set_goal(
            w, case, person_id=body.person_id, dimension=body.dimension, title=body.title, due_on=body.due_on
        )
    await w.uow.commit()
    return goal_read(goal)


@router.patch("/cases/{case_id}/goals/{goal_id}", response_model=GoalRead)
async def update_goal(case_id: str, goal_id: str, body: GoalUpdate, w: WorkflowDep, scope: ScopeDep) -> GoalRead:
    case = await load_case(w, case_id, scope, open_only=True)
    goal = await w.session.get(Goal, goal_id)
    if goal is None or goal.case_id != case.id:
        raise Problem(404, f"No goal {goal_id} in this case.", kind="not-found")
    with refusals():
        await workflow.update_goal(w, case, goal, body.model_dump(exclude_unset=True))
    await w.uow.commit()
    return goal_read(goal)


@router.put("/caseworkers/{caseworker_id}", response_model=CaseworkerRead, dependencies=[require_role("admin")])
async def keep_caseworker(
    caseworker_id: Annotated[str, FastApiPath(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")],
    body: CaseworkerEntry,
    w: WorkflowDep,
) -> CaseworkerRead:
    """Put an integration navigator on the roster, or change their entry: the id is their user name,
    so that a new staff account takes cases (assignment picks from the active roster)."""
    row = await w.session.get(CaseworkerRow, caseworker_id)
    if row is None:
        row = CaseworkerRow(id=caseworker_id)
        w.session.add(row)
    row.name, row.team, row.languages = body.name, body.team, sorted(set(body.languages))
    row.max_cases, row.active = body.max_cases, body.active
    await w.uow.commit()
    open_cases = await w.session.scalar(
        select(func.count())
        .select_from(Case)
        .where(Case.caseworker_id == caseworker_id, Case.status == domain.CaseStatus.OPEN.value)
    )
    return CaseworkerRead(
        id=row.id,
        name=row.name,
        team=row.team,
        languages=row.languages,
        max_cases=row.max_cases,
        open_cases=open_cases or 0,
        active=row.active,
    )


@router.get("/caseworkers", response_model=list[CaseworkerRead], dependencies=[STAFF_READERS])
async def caseworkers(
    w: WorkflowDep,
    include_inactive: Annotated[
        bool, Query(description="Also the navigators who take no new cases (admin's view)")
    ] = False,
) -> list[CaseworkerRead]:
    rows = {r.id: r for r in (await w.session.scalars(select(CaseworkerRow))).all()}
    active = [
        CaseworkerRead(
            id=c.id,
            name=rows[c.id].name,
            team=c.team,
            languages=sorted(c.languages),
            max_cases=c.max_cases,
            open_cases=c.open_cases,
        )
        for c in await workflow.roster(w.session)
    ]
    if not include_inactive:
        return active
    listed = {c.id for c in active}
    open_cases = dict(
        (
            await w.session.execute(
                select(Case.caseworker_id, func.count())
                .where(
                    Case.status == domain.CaseStatus.OPEN.value, Case.caseworker_id.in_(sorted(rows.keys() - listed))
                )
                .group_by(Case.caseworker_id)
            )
        ).all()
    )
    inactive = [
        CaseworkerRead(
            id=r.id,
            name=r.name,
            team=r.team,
            languages=sorted(r.languages),
            max_cases=r.max_cases,
            open_cases=int(open_cases.get(r.id, 0)),
            active=False,
        )
        for r in rows.values()
        if r.id not in listed
    ]
    return sorted(active + inactive, key=lambda c: c.id)


# --- referrals (caseworkers' side) -------------------------------------------------------


@router.get("/referrals", response_model=Page[ReferralRead])
async def list_referrals(
    request: Request,
    w: WorkflowDep,
    scope: ScopeDep,
    status: domain.ReferralStatus | None = None,
    partner_id: str | None = Query(None, max_length=64),
    case_id: str | None = Query(None, max_length=64),
    escalated: bool | None = None,
    blocked: bool | None = Query(None, description="Only proposed referrals waiting for consent or capacity"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[ReferralRead]:
    """The referrals of the caller's cases, filtered (the filters narrow the scope, never widen it)."""
    filters = [scope.referrals()]
    if status:
        filters.append(Referral.status == status.value)
    if partner_id:
        filters.append(Referral.partner_id == partner_id)
    if case_id:
        filters.append(Referral.case_id == case_id)
    if escalated is not None:
        filters.append(Referral.escalated.is_(escalated))
    if blocked is not None:
        filters.append(Referral.blocked_reason.is_not(None) if blocked else Referral.blocked_reason.is_(None))
    found = await page_of(w, filters, page, page_size, referral_read)
    await log_read(w, request, "list_referrals", (r.person_id for r in found.items))
    return found


async def page_of(
    w: workflow.Workflow, filters: list[Any], page: int, page_size: int, read: Callable[[Referral], T]
) -> Page[T]:
    """One page of referrals, newest first, each as ``read`` shows it (staff and partners see different things)."""
    order = (Referral.created_at.desc(), Referral.id)
    rows, total = await page_of_rows(w.session, Referral, filters, order, page, page_size)
    return Page(items=[read(r) for r in rows], total=total, page=page, page_size=page_size)


@router.get("/referrals/{referral_id}", response_model=ReferralRead)
async def read_referral(referral_id: str, request: Request, w: WorkflowDep, scope: ScopeDep) -> ReferralRead:
    referral = await load_referral(w, referral_id, scope=scope)
    await log_read(w, request, "read_referral", [referral.person_id])
    return referral_read(referral)


@router.post("/referrals/{referral_id}/send", response_model=ReferralRead)
async def send(referral_id: str, w: WorkflowDep, scope: ScopeDep) -> ReferralRead:
    """Send a proposed referral (after a consent was recorded or capacity freed)."""
    return await act(w, await load_referral(w, referral_id, scope=scope), domain.ReferralAction.SEND)


@router.post("/referrals/{referral_id}/revoke", response_model=ReferralRead)
async def revoke(referral_id: str, w: WorkflowDep, scope: ScopeDep) -> ReferralRead:
    return await act(w, await load_referral(w, referral_id, scope=scope), domain.ReferralAction.REVOKE)


@router.post("/referrals/{referral_id}/refer-elsewhere", response_model=ReferralRead)
async def refer_elsewhere(
    referral_id: str, w: WorkflowDep, scope: ScopeDep, body: Annotated[ReferElsewhere | None, Body()] = None
) -> ReferralRead:
    """End an accepted or running referral as referred elsewhere; with a body, the same service is proposed at the
    partner it names (and sent when a consent covers it), and the event says where to and why."""
    referral = await load_referral(w, referral_id, scope=scope)
    if body is None:
        return await act(w, referral, domain.ReferralAction.REFER_ELSEWHERE)
    with refusals(referral.status):
        await workflow.refer_elsewhere(w, referral, body.partner_id, body.reason)
    await w.uow.commit()
    return referral_read(referral)


@router.post("/referrals/bulk-send", response_model=BulkResult)
async def bulk_send(body: BulkSend, w: WorkflowDep, scope: ScopeDep) -> BulkResult:
    """Send several proposed referrals; each one that cannot go says why (another team's: "not found")."""
    sent, not_sent = [], {}
    for referral_id in dict.fromkeys(body.referral_ids):
        referral = await w.session.get(Referral, referral_id)
        if referral is None or not await in_scope(w, referral, scope):
            not_sent[referral_id] = "not found"
        elif referral.status != domain.ReferralStatus.PROPOSED.value:
            not_sent[referral_id] = f"is {referral.status}"
        elif await workflow.try_send(w, referral):
            sent.append(referral_id)
        else:
            blocked = workflow.blocked_of(referral)
            not_sent[referral_id] = blocked.english(referral.service_type) if blocked else "not sendable"
    await w.uow.commit()
    return BulkResult(sent=sent, not_sent=not_sent)


# --- routing rules -------------------------------------------------------------------------


@router.get("/routing-rules", response_model=RuleSetRead, dependencies=[STAFF_READERS])
async def rules_in_force(w: WorkflowDep) -> RuleSetRead:
    row = await w.session.scalar(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1))
    if row is None:
        return RuleSetRead(version=0, rules=directory.DEFAULT_RULES.rules)
    return rule_set_read(row)


def rule_set_read(row: RuleSetVersion) -> RuleSetRead:
    return RuleSetRead(
        version=row.version,
        rules=domain.RuleSet.model_validate({"rules": row.rules}).rules,
        created_at=aware(row.created_at),
        created_by=row.created_by,
    )


@router.put("/routing-rules", response_model=RuleSetRead, dependencies=[require_role("admin")])
async def save_rules(body: list[dict[str, Any]], w: WorkflowDep, actor: ActorDep) -> RuleSetRead:
    """Save a new version of the routing rules; invalid rule sets are refused whole."""
    try:
        rules = domain.RuleSet.model_validate({"rules": body})
    except ValidationError as exc:
        raise Problem(
            422,
            "The rule set is not valid; nothing was saved.",
            kind="validation",
            title="Invalid request",
            errors=validation_errors(exc.errors()),
        ) from exc
    version, _ = await workflow.active_rules(w.session)
    row = RuleSetVersion(
        version=version + 1, rules=[r.model_dump(mode="json") for r in rules.rules], created_at=w.now, created_by=actor
    )
    w.session.add(row)
    await w.uow.commit()
    return rule_set_read(row)


@router.get("/routing-rules/versions", response_model=list[RuleSetRead], dependencies=[STAFF_READERS])
async def rule_versions(w: WorkflowDep) -> list[RuleSetRead]:
    rows = (await w.session.scalars(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()))).all()
    return [rule_set_read(r) for r in rows]


# --- the partners' side --------------------------------------------------------------------


@partner_router.get("/referrals", response_model=Page[PartnerReferral])
async def partner_referrals(
    request: Request,
    w: WorkflowDep,
    partner_id: PartnerDep,
    status: domain.ReferralStatus | None = None,
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=200),
    names: Annotated[
        bool, Query(description="Each person's name where the consent for this partner is in force (one audited read)")
    ] = False,
) -> Page[PartnerReferral]:
    """The referrals sent to the calling partner (never one that was not: a proposed one, or one revoked while it
    waited for a consent, was never shared)."""
    filters = [Referral.partner_id == partner_id, Referral.sent_at.is_not(None)]
    if status:
        filters.append(Referral.status == status.value)
    rows: list[Referral] = []

    def keep(referral: Referral) -> PartnerReferral:
        rows.append(referral)
        return partner_read(referral)

    found = await page_of(w, filters, page, page_size, keep)
    await log_read(w, request, "list_referrals", (r.person_id for r in found.items))
    if names:
        named = await fetch_names(request, rows, partner_id)
        found.items = [item.model_copy(update={"person_name": named.get(item.referral_id)}) for item in found.items]
    return found


async def fetch_names(request: Request, referrals: list[Referral], partner_id: str) -> dict[str, str]:
    """Referral id -> the person's name, for the referrals whose consent may still allow it: one call to
    registration, signed as the referral service, which checks each consent and logs each read. Nothing when it
    is down (the list still shows the referrals)."""
    asked = [
        {"person_id": r.person_id, "referral_id": r.id, "consent_id": r.consent_id}
        | ({"partner_category": r.partner_category} if r.partner_category else {})
        for r in referrals
        if r.consent_id is not None and not r.consent_withdrawn
    ]
    if not asked:
        return {}
    settings = request.app.state.runtime.settings
    signer = referral_of(request.app.state.runtime).identity
    try:
        async with httpx.AsyncClient(
            base_url=settings.registration_url, timeout=3, verify=settings.http_verify()
        ) as client:
            reply = await client.post(
                "/api/internal/persons/contact-names",
                json={"partner_id": partner_id, "referrals": asked},
                headers={HEADER: signer.as_itself("registration")},
            )
    except httpx.HTTPError:
        log.warning("registration unreachable: a partner's referral list goes without names")
        return {}
    if reply.status_code != 200:
        log.warning("registration answered %s for a partner's referral names", reply.status_code)
        return {}
    return {n["referral_id"]: f"{n['given_names']} {n['family_name']}".strip() for n in reply.json()}


@partner_router.get("/referrals/{referral_id}", response_model=PartnerReferralRead)
async def partner_referral(
    referral_id: str, request: Request, w: WorkflowDep, partner_id: PartnerDep
) -> PartnerReferralRead:
    """One referral; the person's contact data only while a consent for this partner is in force."""
    referral = await load_referral(w, referral_id, partner_id=partner_id)
    await log_read(w, request, "read_referral", [referral.person_id])
    data, status = None, "no consent in force"
    if not referral.consent_withdrawn and referral.consent_id is not None:
        consents = await workflow.consents_of(w.session, referral.person_id)
        in_force = [c for c in consents if c.consent_id == referral.consent_id]
        if in_force and domain.consent_covers(
            in_force,
            partner_id=partner_id,
            partner_category=in_force[0].partner_category or referral.partner_category,  # type: ignore[arg-type]
            purpose=in_force[0].purpose,
            at=w.now,
        ):
            data, status = await fetch_contact(request, referral, partner_id)
    return PartnerReferralRead(referral=partner_read(referral), personal_data=data, personal_data_status=status)


#: What registration answers on its contact route (its ``PersonContact``): what a partner needs to reach the person.
CONTACT_FIELDS = ("given_names", "family_name", "preferred_language", "languages", "phone", "email", "address")


async def fetch_contact(request: Request, referral: Referral, partner_id: str) -> tuple[dict[str, Any] | None, str]:
    """Ask registration for the contact data, signed as the referral service; registration checks the consent
    again and audits the read. Degrade clearly when it is down."""
    settings = request.app.state.runtime.settings
    signer = referral_of(request.app.state.runtime).identity
    params = {"partner_id": partner_id, "referral_id": referral.id, "consent_id": referral.consent_id or ""}
    if referral.partner_category:
        params["partner_category"] = referral.partner_category
    try:
        async with httpx.AsyncClient(
            base_url=settings.registration_url, timeout=3, verify=settings.http_verify()
        ) as client:
            reply = await client.get(
                f"/api/internal/persons/{quote(referral.person_id, safe='')}/contact",
                params=params,
                headers={HEADER: signer.as_itself("registration")},
            )
    except httpx.HTTPError:
        return None, "registration service unavailable; try again shortly"
    problem_type = reply.json().get("type", "") if reply.headers.get("content-type") == PROBLEM_JSON else ""
    if reply.status_code == 403 and problem_type.endswith("/consent-missing"):
        return None, "no consent in force"  # registration's own check (e.g. a withdrawal not yet seen here)
    if reply.status_code in (401, 403):
        # Not the partner's doing: the identity keys of referral and registration do not match (deploy/README.md).
        log.warning("registration refused referral's identity (%s %s)", reply.status_code, problem_type)
    if reply.status_code != 200:
        return None, f"not available ({reply.status_code})"
    person = reply.json()
    return {k: person.get(k) for k in CONTACT_FIELDS}, "shared under consent"


@partner_router.post("/referrals/{referral_id}/accept", response_model=PartnerReferral)
async def partner_accept(referral_id: str, w: WorkflowDep, partner_id: PartnerDep) -> PartnerReferral:
    return await partner_act(
        w, await load_referral(w, referral_id, partner_id=partner_id), domain.ReferralAction.ACCEPT
    )


@partner_router.post("/referrals/{referral_id}/decline", response_model=PartnerReferral)
async def partner_decline(referral_id: str, body: Decline, w: WorkflowDep, partner_id: PartnerDep) -> PartnerReferral:
    referral = await load_referral(w, referral_id, partner_id=partner_id)
    return await partner_act(w, referral, domain.ReferralAction.DECLINE, decline_reason=body.reason)


@partner_router.post("/referrals/{referral_id}/start", response_model=PartnerReferral)
async def partner_start(referral_id: str, w: WorkflowDep, partner_id: PartnerDep) -> PartnerReferral:
    return await partner_act(w, await load_referral(w, referral_id, partner_id=partner_id), domain.ReferralAction.START)


@partner_router.post("/referrals/{referral_id}/complete", response_model=PartnerReferral)
async def partner_complete(
    referral_id: str, body: Completion, w: WorkflowDep, partner_id: PartnerDep
) -> PartnerReferral:
    referral = await load_referral(w, referral_id, partner_id=partner_id)
    return await partner_act(
        w, referral, domain.ReferralAction.COMPLETE, outcome=body.outcome, unsuccessful_reason=body.reason
    )


# --- a person's access log and export (GDPR Art. 15), for the gateway -----------------------------------------
# Under /api/v1/persons/, which the gateway forwards to registration: only the gateway's own merge of the log and
# the export calls these, with the caller's signed identity, after registration answered that the caller reaches
# the person. Not in the public API document.


async def person_in_reach(w: workflow.Workflow, request: Request, person_id: str, *, export: bool) -> None:
    """Privacy officers and admins reach anyone; a caseworker (for the log only) a person whose case is the team's
    (404 otherwise, as for an unknown person); anyone else is refused."""
    roles = caller_of(request).roles
    if roles is None or roles & access.DATA_PROTECTION_ROLES:
        return
    if export or "caseworker" not in roles:
        raise Problem(403, "This needs the privacy officer's or the admin's role.", kind="forbidden")
    scope = await get_scope(caller_of(request))
    member_of = select(CaseMember.case_id).where(CaseMember.person_id == person_id)
    if await w.session.scalar(select(Case.id).where(Case.id.in_(member_of), scope.cases()).limit(1)) is None:
        raise Problem(404, f"No person {person_id} among your team's cases.", kind="not-found")


@router.get("/persons/{person_id}/access-log", response_model=list[access.AccessLogEntry], include_in_schema=False)
async def person_access_log(person_id: str, request: Request, w: WorkflowDep) -> list[access.AccessLogEntry]:
    """Who read this person's data in this service, newest first (the gateway logs the read at registration)."""
    await person_in_reach(w, request, person_id, export=False)
    return await access.entries_for(w.session, "referral", person_id)


@router.get("/persons/{person_id}/export", response_model=access.ServiceExport, include_in_schema=False)
async def person_export(person_id: str, request: Request, w: WorkflowDep) -> access.ServiceExport:
    """Everything this service holds on the person: what registration's events told it, the case with its notes
    and goals, the referrals with their matched facts, the timeline; and its access log."""
    await person_in_reach(w, request, person_id, export=True)
    await log_read(w, request, "export", [person_id])
    session = w.session
    member_of = select(CaseMember.case_id).where(CaseMember.person_id == person_id)
    cases = (await session.scalars(select(Case).where(Case.id.in_(member_of) | (Case.person_id == person_id)))).all()
    case_ids = [c.id for c in cases]

    rows = functools.partial(access.rows_of, session)

    data = {
        "known_person": await rows(select(KnownPerson).where(KnownPerson.person_id == person_id)),
        "consents": await rows(select(KnownConsent).where(KnownConsent.person_id == person_id)),
        "cases": [access.row_dict(c) for c in cases],
        "notes": await rows(select(CaseNote).where(CaseNote.case_id.in_(case_ids)).order_by(CaseNote.id)),
        "goals": await rows(select(Goal).where(Goal.case_id.in_(case_ids)).order_by(Goal.created_at)),
        "referrals": await rows(select(Referral).where(Referral.person_id == person_id).order_by(Referral.created_at)),
        "timeline": await rows(
            select(TimelineEntry).where(TimelineEntry.person_id == person_id).order_by(TimelineEntry.at)
        ),
    }
    return access.ServiceExport(
        service="referral",
        person_id=person_id,
        data=data,
        access_log=await access.entries_for(session, "referral", person_id),
    )
