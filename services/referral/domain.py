"""Referral rules: the referral state machine, routing rules as data, partner and caseworker choice,
consent, response clocks. Pure: no I/O, no framework.

The integration navigator (Integrationslotse) refers a newcomer to the right
service. A referral is proposed by a routing rule, sent to a partner when a
consent covers it, and closed by the partner's answer; an unanswered referral
escalates and later expires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts.calendar import CITY_TIME, local_day
from contracts.vocabulary import STAFF_CLOSE_REASONS as STAFF_CLOSE_REASONS
from contracts.vocabulary import (
    AgeBand,
    ConsentPurpose,
    EmploymentSituation,
    Gender,
    GermanLevel,
    NeedCategory,
    PartnerCategory,
    ResidenceStatusGroup,
    ServiceType,
)

# The reasons and statuses staff and partners choose from (and STAFF_CLOSE_REASONS above) are the platform's
# vocabulary, which the UI offers; re-exported under their names here, where the rules use them.
from contracts.vocabulary import CaseCloseReason as CaseCloseReason
from contracts.vocabulary import DeclineReason as DeclineReason
from contracts.vocabulary import ElsewhereReason as ElsewhereReason
from contracts.vocabulary import GoalStatus as GoalStatus
from contracts.vocabulary import UnsuccessfulReason as UnsuccessfulReason


class ReferralError(ValueError):
    """A rule of referral was broken; the message says which."""


class InvalidTransition(ReferralError):
    pass


class CannotSend(ReferralError):
    """A proposed referral cannot be sent yet; ``blocked`` says why."""

    def __init__(self, blocked: Blocked, service_type: ServiceType | str) -> None:
        super().__init__(f"the referral cannot be sent: {blocked.english(service_type)}")
        self.blocked = blocked


class ElsewhereRefused(ReferralError):
    """The partner named to refer on to cannot take the referral (the same partner, or not offering the service)."""


# --- the referral lifecycle ---------------------------------------------------------------


class ReferralStatus(StrEnum):
    PROPOSED = "proposed"
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REFERRED_ELSEWHERE = "referred_elsewhere"


TERMINAL = frozenset(
    {
        ReferralStatus.DECLINED,
        ReferralStatus.COMPLETED,
        ReferralStatus.REVOKED,
        ReferralStatus.EXPIRED,
        ReferralStatus.REFERRED_ELSEWHERE,
    }
)


class ReferralAction(StrEnum):
    SEND = "send"
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    REVOKE = "revoke"
    EXPIRE = "expire"
    REFER_ELSEWHERE = "refer_elsewhere"


S, A = ReferralStatus, ReferralAction
TRANSITIONS: dict[tuple[ReferralStatus, ReferralAction], ReferralStatus] = {
    (S.PROPOSED, A.SEND): S.SENT,
    (S.PROPOSED, A.REVOKE): S.REVOKED,
    (S.SENT, A.ACCEPT): S.ACCEPTED,
    (S.SENT, A.DECLINE): S.DECLINED,
    (S.SENT, A.REVOKE): S.REVOKED,
    (S.SENT, A.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, A.START): S.IN_PROGRESS,
    (S.ACCEPTED, A.REVOKE): S.REVOKED,
    (S.ACCEPTED, A.REFER_ELSEWHERE): S.REFERRED_ELSEWHERE,
    (S.IN_PROGRESS, A.COMPLETE): S.COMPLETED,
    (S.IN_PROGRESS, A.REVOKE): S.REVOKED,
    (S.IN_PROGRESS, A.REFER_ELSEWHERE): S.REFERRED_ELSEWHERE,
}


class Outcome(StrEnum):
    SUCCESSFUL = "successful"
    UNSUCCESSFUL = "unsuccessful"


@dataclass(frozen=True)
class ReferralState:
    status: ReferralStatus = ReferralStatus.PROPOSED
    decline_reason: DeclineReason | None = None
    outcome: Outcome | None = None
    unsuccessful_reason: UnsuccessfulReason | None = None


@dataclass(frozen=True)
class ReferralMoved:
    """The fact a lifecycle action produces: the referral moved on by ``action`` (its event says so)."""

    action: ReferralAction
    status: ReferralStatus
    decline_reason: DeclineReason | None = None
    outcome: Outcome | None = None
    unsuccessful_reason: UnsuccessfulReason | None = None


def transition(
    state: ReferralState,
    action: ReferralAction,
    *,
    decline_reason: DeclineReason | None = None,
    outcome: Outcome | None = None,
    unsuccessful_reason: UnsuccessfulReason | None = None,
) -> tuple[ReferralState, list[ReferralMoved]]:
    """The state after ``action`` and the fact that it happened, or :class:`InvalidTransition` (or
    :class:`ReferralError` for a missing reason). Terminal states never change."""
    action = ReferralAction(action)  # plain strings from the API or events work the same
    target = TRANSITIONS.get((state.status, action))
    if target is None:
        raise InvalidTransition(f"a {state.status.value} referral cannot {action.value.replace('_', ' ')}")
    after = replace(state, status=target)
    if action == A.DECLINE:
        if decline_reason is None:
            raise ReferralError("a decline needs a reason")
        after = replace(after, decline_reason=decline_reason)
    if action == A.COMPLETE:
        if outcome is None:
            raise ReferralError("a completion needs an outcome")
        if outcome == Outcome.UNSUCCESSFUL and unsuccessful_reason is None:
            raise ReferralError("an unsuccessful completion needs a reason")
        reason = unsuccessful_reason if outcome == Outcome.UNSUCCESSFUL else None
        after = replace(after, outcome=outcome, unsuccessful_reason=reason)
    fact = ReferralMoved(action, target, after.decline_reason, after.outcome, after.unsuccessful_reason)
    return after, [fact]


def apply(
    state: ReferralState,
    action: ReferralAction,
    *,
    decline_reason: DeclineReason | None = None,
    outcome: Outcome | None = None,
    unsuccessful_reason: UnsuccessfulReason | None = None,
) -> ReferralState:
    """The state after ``action`` alone (:func:`transition` without its fact)."""
    state, _ = transition(
        state, action, decline_reason=decline_reason, outcome=outcome, unsuccessful_reason=unsuccessful_reason
    )
    return state


# --- what is known of a person --------------------------------------------------------------

_GERMAN_ORDER = list(GermanLevel)


class PersonFacts(BaseModel):
    """The pseudonymous facts routing may use (from registration's events)."""

    model_config = ConfigDict(frozen=True)

    age_band: AgeBand
    gender: Gender
    residence_status_group: ResidenceStatusGroup
    languages: tuple[str, ...] = ()
    preferred_language: str = "de"
    district: str | None = None
    german_level: GermanLevel | None = None
    need_categories: frozenset[NeedCategory] = frozenset()
    employment_situation: EmploymentSituation | None = None
    childcare_needed: bool = False
    has_children: bool = False


# --- routing rules as data ------------------------------------------------------------------


class Condition(BaseModel):
    """All given parts must hold; an omitted part does not restrict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    need_any: list[NeedCategory] | None = Field(None, min_length=1)
    german_below: GermanLevel | None = None
    residence_status_in: list[ResidenceStatusGroup] | None = Field(None, min_length=1)
    age_band_in: list[AgeBand] | None = Field(None, min_length=1)
    gender_in: list[Gender] | None = Field(None, min_length=1)
    childcare_needed: bool | None = None
    has_children: bool | None = None
    language_any: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_dump(exclude_none=True):
            raise PydanticCustomError("rule-without-condition", "a rule needs at least one condition")
        return self


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")
    description: str = Field(min_length=1, max_length=300)
    when: Condition
    service_type: ServiceType
    purpose: ConsentPurpose
    shares_personal_data: bool = True


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RoutingRule] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        # Each repeat of an id is an error located at that rule's id, so that the rules editor can point at it.
        seen: set[str] = set()
        repeated = []
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                error = PydanticCustomError("duplicate-rule-id", "rule ids must be unique: {id}", {"id": rule.id})
                repeated.append(InitErrorDetails(type=error, loc=("rules", index, "id"), input=rule.id))
            seen.add(rule.id)
        if repeated:
            raise ValidationError.from_exception_data(type(self).__name__, repeated)
        return self


#: The parts of a condition that list the values a fact may have, with that fact (in the order ``matched_facts`` names
#: them), and the yes-or-no facts a condition may ask for as they are.
_ONE_OF = (("residence_status_in", "residence_status_group"), ("age_band_in", "age_band"), ("gender_in", "gender"))
_YES_OR_NO = ("childcare_needed", "has_children")


def matched_facts(condition: Condition, facts: PersonFacts) -> dict[str, Any] | None:
    """The facts that made ``condition`` hold, or None when it does not."""
    used: dict[str, Any] = {}
    if condition.need_any is not None:
        hit = sorted(set(condition.need_any) & facts.need_categories)
        if not hit:
            return None
        used["need_categories"] = hit
    if condition.german_below is not None:
        if facts.german_level is None or _GERMAN_ORDER.index(facts.german_level) >= _GERMAN_ORDER.index(
            condition.german_below
        ):
            return None
        used["german_level"] = facts.german_level.value
    for part, fact in _ONE_OF:
        allowed = getattr(condition, part)
        if allowed is not None:
            value = getattr(facts, fact)
            if value not in allowed:
                return None
            used[fact] = value.value
    for fact in _YES_OR_NO:
        wanted = getattr(condition, fact)
        if wanted is not None:
            if getattr(facts, fact) != wanted:
                return None
            used[fact] = wanted
    if condition.language_any is not None:
        spoken = sorted(set(condition.language_any) & {lang.split("-")[0] for lang in facts.languages})
        if not spoken:
            return None
        used["languages"] = spoken
    return used


@dataclass(frozen=True)
class Proposal:
    rule_id: str
    service_type: ServiceType
    purpose: ConsentPurpose
    shares_personal_data: bool
    matched_facts: dict[str, Any]


def propose(rules: RuleSet, facts: PersonFacts) -> list[Proposal]:
    """One proposal per service type, from the first rule (in order) that matches."""
    proposals: dict[ServiceType, Proposal] = {}
    for rule in rules.rules:
        if rule.service_type in proposals:
            continue
        used = matched_facts(rule.when, facts)
        if used is not None:
            proposals[rule.service_type] = Proposal(
                rule.id, rule.service_type, rule.purpose, rule.shares_personal_data, used
            )
    return list(proposals.values())


# --- what a partner learns of why -------------------------------------------------------------

#: The facts (of ``matched_facts``) a partner of each service may read (data minimisation, GDPR Art. 5(1)(c)):
#: those its service works with. Need categories are kept only where the service works on them
#: (``PARTNER_NEEDS``): health needs (Art. 9 data) reach a health service alone; gender, residence status and
#: the like only a service for which they are the point (a course for mothers, asylum social counselling).
PARTNER_FACTS: dict[ServiceType, frozenset[str]] = {
    ServiceType.ASYLUM_SOCIAL_COUNSELLING: frozenset({"residence_status_group", "languages", "need_categories"}),
    ServiceType.MIGRATION_COUNSELLING: frozenset(
        {"age_band", "residence_status_group", "languages", "need_categories"}
    ),
    ServiceType.YOUTH_MIGRATION_SERVICE: frozenset({"age_band", "languages", "need_categories"}),
    ServiceType.INTEGRATION_COURSE: frozenset({"german_level", "age_band", "languages", "need_categories"}),
    ServiceType.COURSE_WITH_CHILDCARE: frozenset(
        {"german_level", "gender", "childcare_needed", "has_children", "languages", "need_categories"}
    ),
    ServiceType.JOB_PLACEMENT: frozenset({"german_level", "age_band", "languages", "need_categories"}),
    ServiceType.QUALIFICATION_RECOGNITION: frozenset({"languages", "need_categories"}),
    ServiceType.HOUSING_ADVICE: frozenset({"languages", "need_categories"}),
    ServiceType.HEALTH_ADVICE: frozenset({"languages", "need_categories"}),
    # Return counselling is for people without a right to stay: the status is its point.
    ServiceType.RETURN_COUNSELLING: frozenset({"residence_status_group", "languages", "need_categories"}),
    ServiceType.RECOGNITION_COUNSELLING: frozenset({"residence_status_group", "languages", "need_categories"}),
    ServiceType.JOB_SPECIFIC_GERMAN: frozenset(
        {"german_level", "residence_status_group", "languages", "need_categories"}
    ),
    ServiceType.EU_JOB_MOBILITY: frozenset({"residence_status_group", "languages", "need_categories"}),
    ServiceType.MEETING_OFFER: frozenset({"languages", "need_categories"}),
}
_N = NeedCategory
PARTNER_NEEDS: dict[ServiceType, frozenset[NeedCategory]] = {
    ServiceType.ASYLUM_SOCIAL_COUNSELLING: frozenset({_N.COUNSELLING, _N.HOUSING, _N.CHILDCARE, _N.PARTICIPATION}),
    ServiceType.MIGRATION_COUNSELLING: frozenset(
        {_N.COUNSELLING, _N.HOUSING, _N.CHILDCARE, _N.PARTICIPATION, _N.RECOGNITION, _N.EMPLOYMENT}
    ),
    ServiceType.YOUTH_MIGRATION_SERVICE: frozenset(
        {_N.COUNSELLING, _N.EDUCATION, _N.LANGUAGE, _N.EMPLOYMENT, _N.PARTICIPATION}
    ),
    ServiceType.INTEGRATION_COURSE: frozenset({_N.LANGUAGE, _N.EDUCATION}),
    ServiceType.COURSE_WITH_CHILDCARE: frozenset({_N.LANGUAGE, _N.CHILDCARE}),
    ServiceType.JOB_PLACEMENT: frozenset({_N.EMPLOYMENT, _N.RECOGNITION, _N.LANGUAGE}),
    ServiceType.QUALIFICATION_RECOGNITION: frozenset({_N.RECOGNITION}),
    ServiceType.HOUSING_ADVICE: frozenset({_N.HOUSING}),
    ServiceType.HEALTH_ADVICE: frozenset({_N.HEALTH}),
    ServiceType.RETURN_COUNSELLING: frozenset({_N.COUNSELLING, _N.EDUCATION, _N.EMPLOYMENT, _N.LANGUAGE}),
    ServiceType.RECOGNITION_COUNSELLING: frozenset({_N.RECOGNITION}),
    ServiceType.JOB_SPECIFIC_GERMAN: frozenset({_N.LANGUAGE, _N.EMPLOYMENT, _N.RECOGNITION}),
    ServiceType.EU_JOB_MOBILITY: frozenset({_N.EMPLOYMENT, _N.RECOGNITION}),
    ServiceType.MEETING_OFFER: frozenset({_N.PARTICIPATION, _N.LANGUAGE}),
}


def partner_facts(service_type: ServiceType | str, matched: dict[str, Any]) -> dict[str, Any]:
    """Of the facts that made a routing rule match, those the partner of ``service_type`` may read."""
    service = ServiceType(service_type)
    allowed = PARTNER_FACTS.get(service, frozenset())
    shown = {key: value for key, value in matched.items() if key in allowed and key != "need_categories"}
    needs = PARTNER_NEEDS.get(service, frozenset())
    kept = [category for category in matched.get("need_categories") or () if category in needs]
    if "need_categories" in allowed and kept:
        shown["need_categories"] = kept
    return shown


# --- partners and caseworkers -----------------------------------------------------------------


@dataclass(frozen=True)
class PartnerOffer:
    """A partner's service as referral knows it (from partner events or the seeded directory)."""

    partner_id: str
    partner_category: PartnerCategory
    service_type: ServiceType
    free_places: int | None  # None: no limit announced
    languages: frozenset[str] = frozenset()
    response_days: int = 5


class Waiting(StrEnum):
    """Why a proposed referral waits (codes: the pages word them, ``Blocked.english`` says them to API clients)."""

    CONSENT_MISSING = "consent-missing"
    NO_CAPACITY = "no-capacity"  # every partner offering the service is full (``partner_ids``)
    NO_PARTNER = "no-partner"  # nobody offers the service
    PARTNER_NOT_OFFERING = "partner-not-offering"  # the partner named (``partner_ids``) no longer offers it


_LEGACY_BLOCKED = (
    (re.compile(r"^consent missing$"), Waiting.CONSENT_MISSING),
    (re.compile(r"^no capacity: (.+) full$"), Waiting.NO_CAPACITY),
    (re.compile(r"^no partner offers .+$"), Waiting.NO_PARTNER),
    (re.compile(r"^partner (\S+) does not offer .+$"), Waiting.PARTNER_NOT_OFFERING),
)


@dataclass(frozen=True)
class Blocked:
    """Why a proposed referral waits: a code and the partners it concerns, by id."""

    code: Waiting
    partner_ids: tuple[str, ...] = ()

    def stored(self) -> str:
        """As the referral keeps it: ``no-capacity:vhs,caritas``."""
        return f"{self.code.value}:{','.join(self.partner_ids)}" if self.partner_ids else self.code.value

    @classmethod
    def read(cls, stored: str) -> Blocked:
        """What ``stored`` keeps; also the English sentences kept before the codes were (``english``)."""
        code, _, ids = stored.partition(":")
        try:
            return cls(Waiting(code), tuple(i for i in ids.split(",") if i))
        except ValueError:
            pass
        for pattern, waiting in _LEGACY_BLOCKED:
            if (found := pattern.match(stored)) is not None:
                return cls(waiting, tuple(found.group(1).split(", ")) if found.groups() else ())
        raise ValueError(f"not a reason a referral waits for: {stored!r}")

    def english(self, service_type: ServiceType | str) -> str:
        """The English sentence API clients have read in ``blocked_reason`` (the same words as before the codes)."""
        service = ServiceType(service_type).value
        match self.code:
            case Waiting.CONSENT_MISSING:
                return "consent missing"
            case Waiting.NO_CAPACITY:
                return f"no capacity: {', '.join(self.partner_ids)} full"
            case Waiting.NO_PARTNER:
                return f"no partner offers {service}"
            case Waiting.PARTNER_NOT_OFFERING:
                return f"partner {', '.join(self.partner_ids)} does not offer {service}"


class Chosen(StrEnum):
    """Why routing chose a partner among equivalent ones."""

    SPEAKS_LANGUAGE = "speaks-language"
    HAS_PLACES = "has-places"


@dataclass(frozen=True)
class PartnerChoice:
    """The partner chosen and why, or why none could be (``blocked``)."""

    offer: PartnerOffer | None
    why: Chosen | None = None
    blocked: Blocked | None = None


def choose_partner(
    offers: Iterable[PartnerOffer], service_type: ServiceType, languages: Iterable[str]
) -> PartnerChoice:
    """Among equivalent partners: one with free places, speaking the person's language, with most room."""
    service_type = ServiceType(service_type)
    candidates = [o for o in offers if o.service_type == service_type]
    if not candidates:
        return PartnerChoice(None, blocked=Blocked(Waiting.NO_PARTNER))
    open_ = [o for o in candidates if o.free_places is None or o.free_places > 0]
    if not open_:
        return PartnerChoice(
            None, blocked=Blocked(Waiting.NO_CAPACITY, tuple(sorted(o.partner_id for o in candidates)))
        )
    spoken = {lang.split("-")[0] for lang in languages}

    def rank(o: PartnerOffer) -> tuple[int, int, str]:
        room = o.free_places if o.free_places is not None else 10**6
        return (0 if o.languages & spoken else 1, -room, o.partner_id)

    best = min(open_, key=rank)
    return PartnerChoice(best, Chosen.SPEAKS_LANGUAGE if best.languages & spoken else Chosen.HAS_PLACES)


def elsewhere_target(
    offers: Iterable[PartnerOffer], service_type: ServiceType | str, current: str | None, target: str
) -> PartnerOffer:
    """The offer a referral is referred on to: another partner offering the same service (else ReferralError)."""
    if target == current:
        raise ElsewhereRefused("the referral is with this partner already")
    service = ServiceType(service_type)
    for offer in offers:
        if offer.partner_id == target and offer.service_type == service:
            return offer
    raise ElsewhereRefused(f"partner {target} does not offer {service.value}")


@dataclass(frozen=True)
class Caseworker:
    """An integration navigator (Integrationslotse) on a team roster."""

    id: str
    team: str
    languages: frozenset[str]
    max_cases: int
    open_cases: int


def assign_caseworker(
    roster: Iterable[Caseworker], languages: Iterable[str], preferred_language: str | None = None
) -> Caseworker | None:
    """The person's preferred language first, then any language they share, then the lightest
    workload (relative to capacity); None when everyone is full."""
    spoken = {lang.split("-")[0] for lang in languages}
    preferred = preferred_language.split("-")[0] if preferred_language else None
    available = [c for c in roster if c.open_cases < c.max_cases]
    if not available:
        return None

    def rank(c: Caseworker) -> tuple[int, float, int, str]:
        match = 0 if preferred in c.languages else 1 if c.languages & spoken else 2
        return (match, c.open_cases / c.max_cases, c.open_cases, c.id)

    return min(available, key=rank)


# --- consent --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRecord:
    consent_id: str
    partner_id: str | None
    partner_category: PartnerCategory | None
    purpose: ConsentPurpose
    given_at: datetime
    expires_on: date | None = None
    withdrawn_at: datetime | None = None


def consent_covers(
    consents: Iterable[ConsentRecord],
    *,
    partner_id: str,
    partner_category: PartnerCategory,
    purpose: ConsentPurpose,
    at: datetime,
) -> ConsentRecord | None:
    """The consent in force that lets data go to this partner for this purpose, if any (GDPR Art. 6/9)."""
    for consent in consents:
        addressed = consent.partner_id == partner_id or (
            consent.partner_id is None and consent.partner_category == partner_category
        )
        in_force = (
            consent.given_at <= at
            and (consent.withdrawn_at is None or consent.withdrawn_at > at)
            and (consent.expires_on is None or local_day(at) <= consent.expires_on)
        )
        if addressed and in_force and consent.purpose == purpose:
            return consent
    return None


# --- response clocks ------------------------------------------------------------------------


def add_working_days(start: datetime, days: int, holidays: frozenset[date] = frozenset()) -> datetime:
    """``start`` moved on by ``days`` working days (Monday to Friday, not a holiday), counted in the city's days."""
    moment = start.astimezone(CITY_TIME) if start.tzinfo else start
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)  # the same time of day in the city, across a change to or from summer time
        if moment.weekday() < 5 and moment.date() not in holidays:
            remaining -= 1
    return moment.astimezone(start.tzinfo) if start.tzinfo else moment


class ClockAction(StrEnum):
    ESCALATE = "escalate"
    EXPIRE = "expire"


def clock_action(
    *,
    status: ReferralStatus,
    sent_at: datetime | None,
    escalated: bool,
    response_days: int,
    expiry_days: int,
    now: datetime,
    holidays: frozenset[date] = frozenset(),
) -> ClockAction | None:
    """What the clock demands of an unanswered referral: escalate after the partner's response time,
    expire ``expiry_days`` working days after that."""
    if status is not ReferralStatus.SENT or sent_at is None:
        return None
    due = add_working_days(sent_at, response_days, holidays)
    if now >= add_working_days(due, expiry_days, holidays):
        return ClockAction.EXPIRE
    if now >= due and not escalated:
        return ClockAction.ESCALATE
    return None


# --- cases and integration plans ------------------------------------------------------------


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CaseError(ValueError):
    """A rule of cases was broken; the message says which."""


@dataclass(frozen=True)
class CaseState:
    status: CaseStatus = CaseStatus.OPEN
    close_reason: CaseCloseReason | None = None


@dataclass(frozen=True)
class CaseWasClosed:
    """The fact a closing produces: the open referrals are to be revoked, nobody is to be contacted."""

    reason: CaseCloseReason
    at: datetime
    by: str | None


@dataclass(frozen=True)
class CaseWasReopened:
    at: datetime
    by: str


def close_case(
    state: CaseState, reason: CaseCloseReason, *, at: datetime, by: str | None
) -> tuple[CaseState, list[CaseWasClosed]]:
    """Close a case; closing a closed one changes nothing and says nothing (a move away after a manual close)."""
    reason = CaseCloseReason(reason)
    if state.status is CaseStatus.CLOSED:
        return state, []
    return CaseState(CaseStatus.CLOSED, reason), [CaseWasClosed(reason, at, by)]


def reopen_case(
    state: CaseState, *, person_registered: bool, at: datetime, by: str
) -> tuple[CaseState, list[CaseWasReopened]]:
    """Reopen a closed case: the person came back in touch. Not once the person's data is erased, nor while
    the register says the person moved away (a return is a new registration, with a case of its own)."""
    if state.status is not CaseStatus.CLOSED:
        raise CaseError("the case is open already")
    if state.close_reason is CaseCloseReason.ERASED:
        raise CaseError("the person's data is erased; the case stays closed")
    if not person_registered:
        raise CaseError("the person is no longer registered here; the case stays closed")
    return CaseState(CaseStatus.OPEN, None), [CaseWasReopened(at, by)]


class GoalError(ValueError):
    """A goal of the plan cannot be set or changed so; the message says why."""


def goal_for(person_id: str | None, members: Iterable[str]) -> None:
    """A goal is the whole household's (no person) or one member's."""
    if person_id is not None and person_id not in set(members):
        raise GoalError(f"{person_id} is not a member of this case's household.")


def goal_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """What a goal's update sets: enumerations as their values; of its fields only the due date may be removed."""
    for key, value in changes.items():
        if value is None and key != "due_on":
            raise GoalError(f"{key} cannot be removed.")
    return {key: value.value if isinstance(value, Enum) else value for key, value in changes.items()}


def german_level_rank(level: GermanLevel) -> int:
    return _GERMAN_ORDER.index(level)


# --- households --------------------------------------------------------------------------------
#
# One case per household. A family is advised together: one navigator who speaks its language, one address, one
# plan in which the children's Kita and school places are the parents' appointments; several navigators calling
# the same family would confuse it. So every member (a child, and an adult too) belongs to the household's case
# and not to a case of their own, and each keeps their own needs, referrals and goals in it. The case is the
# household's first adult's (its lead, whose languages chose the navigator): a child's registration that arrives
# first (registration's events are keyed by person, so a household's arrive in any order) opens the case for the
# household, which an unaccompanied minor needs anyway, and the first adult who joins takes the lead.

#: Age bands of minors (under 18): members of the household's case, never its lead while an adult is in it.
MINOR_AGE_BANDS = frozenset({"0-2", "3-5", "6-9", "10-17"})


def is_minor(age_band: str | None) -> bool:
    return age_band in MINOR_AGE_BANDS


def takes_the_lead(lead_age_band: str | None, joining_age_band: str | None) -> bool:
    """Whether a member who joins a household's case becomes its lead: an adult where a minor led it."""
    return is_minor(lead_age_band) and joining_age_band is not None and not is_minor(joining_age_band)


def next_lead(members: list[tuple[str, str | None]]) -> str | None:
    """Who leads a household's case when its lead leaves (moved away, erased): the first adult of those who stay
    (in the order they joined), else the first of them; none when nobody stays."""
    for person_id, band in members:
        if not is_minor(band):
            return person_id
    return members[0][0] if members else None
