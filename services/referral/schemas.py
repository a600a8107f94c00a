"""API models of the referral service (Create / Update / Read kept apart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from chassis.schemas import Strict
from contracts.vocabulary import EsserDimension, ServiceType
from services.referral import domain

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class BlockedRead(BaseModel):
    """Why a proposed referral waits, as a code the pages word (``blocked_reason`` says it in English)."""

    code: domain.Waiting
    #: The partners it concerns: those full (no-capacity), the one no longer offering the service.
    partner_ids: list[str] = []


class ReferralRead(BaseModel):
    referral_id: str
    case_id: str
    person_id: str
    service_type: ServiceType
    partner_id: str | None
    partner_category: str | None
    status: domain.ReferralStatus
    rule_id: str
    rule_set_version: int
    matched_facts: dict[str, Any]
    purpose: str
    #: Why it waits, in English (e.g. "consent missing", "no capacity: vhs full"); ``blocked`` has it as a code.
    blocked_reason: str | None
    blocked: BlockedRead | None = None
    decline_reason: str | None
    outcome: str | None
    unsuccessful_reason: str | None
    consent_withdrawn: bool
    escalated: bool
    sent_at: datetime | None
    response_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


class GoalCreate(Strict):
    dimension: EsserDimension
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    due_on: date | None = None
    #: The household member the goal is for; none: the whole household's.
    person_id: Identifier | None = None


class GoalUpdate(Strict):
    status: domain.GoalStatus | None = None
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None = None
    due_on: date | None = None


class GoalRead(BaseModel):
    goal_id: str
    person_id: str | None = None
    dimension: EsserDimension
    title: str | None
    status: domain.GoalStatus
    due_on: date | None


class DueGoalRead(GoalRead):
    """A goal not reached yet whose due date has passed or comes soon: a reminder on the caseworker's dashboard."""

    case_id: str
    #: The case's lead person (the goal's ``person_id`` names the member it is for, if any).
    case_person_id: str
    overdue: bool


class NoteCreate(Strict):
    text: Text


class NoteRead(BaseModel):
    author: str
    text: str
    at: datetime


class TaskCreate(Strict):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    due_on: date | None = None


class TaskUpdate(Strict):
    done: bool


class TaskRead(BaseModel):
    task_id: str
    title: str
    due_on: date | None
    done: bool
    created_by: str
    created_at: datetime
    done_at: datetime | None
    done_by: str | None


class CaseRead(BaseModel):
    case_id: str
    person_id: str
    household_id: str | None
    status: domain.CaseStatus
    caseworker_id: str | None
    team: str | None
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    #: The pseudonymous facts registration's events told (none before the first one came, or after an erasure):
    #: enough to pick a case from the queue of unassigned ones without reading anyone's personal data.
    age_band: str | None = None
    preferred_language: str | None = None
    #: The caseworker's follow-ups not done yet, and the earliest due date among them (the dashboard's reminders).
    open_tasks: int = 0
    next_due_on: date | None = None
    #: Every member of the household's case, the lead first (pseudonymous ids): a search finds a member's case.
    member_ids: list[str] = []


class CaseClosing(Strict):
    """A caseworker closes a case, saying why; an erasure is registration's to tell, never a caseworker's."""

    reason: domain.CaseCloseReason

    @model_validator(mode="after")
    def _a_staff_reason(self) -> CaseClosing:
        if self.reason not in domain.STAFF_CLOSE_REASONS:
            raise ValueError(f"a caseworker closes a case for one of {', '.join(domain.STAFF_CLOSE_REASONS)}")
        return self


class CaseMemberRead(BaseModel):
    """A member of the household's case: pseudonymous facts only (names come from registration, read audited)."""

    person_id: str
    lead: bool
    age_band: str | None = None
    preferred_language: str | None = None
    status: str = "registered"


class CaseDetail(CaseRead):
    members: list[CaseMemberRead] = []
    referrals: list[ReferralRead]
    goals: list[GoalRead]
    notes: list[NoteRead]
    tasks: list[TaskRead] = []


class Assignment(Strict):
    caseworker_id: Identifier


class CaseworkerEntry(Strict):
    """An integration navigator's roster entry, kept by an admin; the id is their user name."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    team: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]] = Field(max_length=20)
    max_cases: int = Field(ge=0, le=500)
    #: An inactive navigator gets no new cases; their open cases stay theirs until reassigned.
    active: bool = True


class TimelineRead(BaseModel):
    at: datetime
    event_type: str
    source: str
    summary: dict[str, Any]


class Decline(Strict):
    reason: domain.DeclineReason


class Completion(Strict):
    outcome: domain.Outcome
    reason: domain.UnsuccessfulReason | None = None

    @model_validator(mode="after")
    def _reason_when_unsuccessful(self) -> Completion:
        if self.outcome is domain.Outcome.UNSUCCESSFUL and self.reason is None:
            raise ValueError("an unsuccessful completion needs a reason")
        if self.outcome is domain.Outcome.SUCCESSFUL and self.reason is not None:
            raise ValueError("a successful completion takes no reason")
        return self


class ReferElsewhere(Strict):
    """Send the person to another partner for the same service instead, saying why."""

    partner_id: Identifier
    reason: domain.ElsewhereReason


class BulkSend(Strict):
    referral_ids: list[Identifier] = Field(min_length=1, max_length=100)


class BulkResult(BaseModel):
    sent: list[str]
    not_sent: dict[str, str]


class RuleSetRead(BaseModel):
    version: int
    rules: list[domain.RoutingRule]
    #: Who saved this version and when; none for version 0, the shipped defaults.
    created_at: datetime | None = None
    created_by: str | None = None


class CaseworkerRead(BaseModel):
    id: str
    name: str
    team: str
    languages: list[str]
    max_cases: int
    open_cases: int
    #: An inactive navigator gets no new cases (listed only with ``include_inactive``).
    active: bool = True


class PartnerReferral(BaseModel):
    """A referral as the partner it was sent to sees it: no routing internals (rule, rule set, why one waited),
    and of the facts that made the rule match only those its service works with (``domain.partner_facts``)."""

    referral_id: str
    case_id: str
    person_id: str
    service_type: ServiceType
    partner_id: str | None
    partner_category: str | None
    status: domain.ReferralStatus
    matched_facts: dict[str, Any] = Field(description="The pseudonymous facts that concern this service")
    purpose: str
    decline_reason: str | None
    outcome: str | None
    unsuccessful_reason: str | None
    consent_withdrawn: bool
    escalated: bool
    sent_at: datetime | None
    response_due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: Asked for with ``names=true`` on the list: the person's registered name while the consent for this partner
    #: is in force (registration checks it and logs the read), else none.
    person_name: str | None = None


class PartnerReferralRead(BaseModel):
    """What a partner sees: the referral, and personal data only while a consent covers it."""

    referral: PartnerReferral
    personal_data: dict[str, Any] | None
    personal_data_status: str
