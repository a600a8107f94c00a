"""Events of the referral service (Integrationslotse): cases, plan goals and referrals.

Partner-facing events name the partner, so that the partners service can route
them to that partner's webhooks and nobody else's. No personal data.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import Field

from contracts.base import IntegrationEvent, event_type, topic
from contracts.registration import Identifier
from contracts.vocabulary import ConsentPurpose, EsserDimension, PartnerCategory, ServiceType

SERVICE = "referral"
CASES_TOPIC = topic(SERVICE, "cases")
REFERRALS_TOPIC = topic(SERVICE, "referrals")
#: The namespace of the referral events' fact ids (:meth:`_ReferralEvent.fact_id`).
FACT_NAMESPACE = uuid.UUID("6f4d1d2e-4a0b-5c59-9a64-3f0d5c1e7a21")


class _CaseEvent(IntegrationEvent):
    topic: ClassVar[str] = CASES_TOPIC
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    person_id: Identifier


class CaseOpened(_CaseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "case_opened")

    household_id: Identifier
    opened_at: datetime


class CaseAssigned(_CaseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "case_assigned")

    caseworker_id: Identifier | None = Field(description="None: nobody on the roster has room; the team lead assigns")
    team: str | None = None
    assigned_by: str = Field(max_length=200, description="'routing' or the staff member who reassigned")


class CaseClosed(_CaseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "case_closed")

    reason: str = Field(max_length=40)
    closed_at: datetime
    closed_by: str | None = Field(
        None, max_length=200, description="The staff member who closed it; none when a move away or erasure did"
    )


class CaseReopened(_CaseEvent):
    """A closed case is worked again (the person came back in touch); the team that had it has it again."""

    event_type: ClassVar[str] = event_type(SERVICE, "case_reopened")

    reopened_at: datetime
    reopened_by: str = Field(max_length=200, description="The staff member who reopened it")
    caseworker_id: Identifier | None = None
    team: str | None = None


class _GoalEvent(_CaseEvent):
    goal_id: Identifier
    dimension: EsserDimension
    status: str = Field(max_length=20)
    due_on: date | None = None


class GoalSet(_GoalEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "goal_set")


class GoalUpdated(_GoalEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "goal_updated")


class _ReferralEvent(IntegrationEvent):
    topic: ClassVar[str] = REFERRALS_TOPIC
    key_field: ClassVar[str] = "referral_id"

    referral_id: Identifier
    case_id: Identifier
    person_id: Identifier
    service_type: ServiceType
    partner_id: Identifier | None = None
    partner_category: PartnerCategory | None = None
    at: datetime

    def fact_id(self) -> str:
        """The fact this event tells, whatever CloudEvent carries it: a UUID of its type, its referral and the moment
        of the change (``at``). A copy published again under a new ce_id has the same one; two different facts never
        do, since a referral makes a change of one type at most once at one moment (its state machine).

        Consumers whose effect is outside the inbox's reach (a webhook sent, a referral counted) key it by this."""
        return str(uuid.uuid5(FACT_NAMESPACE, f"{self.event_type} {self.referral_id} {self.at.isoformat()}"))


class ReferralProposed(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_proposed")

    rule_id: str = Field(max_length=64)
    matched_facts: dict[str, Any] = Field(description="The pseudonymous facts that made the rule match")
    purpose: ConsentPurpose
    blocked_reason: str | None = Field(None, max_length=300, description="e.g. consent missing, no capacity")


class ReferralSent(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_sent")

    purpose: ConsentPurpose
    response_due_at: datetime


class ReferralAccepted(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_accepted")


class ReferralDeclined(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_declined")

    reason: str = Field(max_length=40)


class ReferralStarted(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_started")


class ReferralCompleted(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_completed")

    outcome: str = Field(max_length=20)
    reason: str | None = Field(None, max_length=40)


class ReferralRevoked(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_revoked")


class ReferralReferredElsewhere(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_referred_elsewhere")

    target_partner_id: Identifier | None = Field(
        None, description="The partner the person goes to instead (a new referral); none: not said"
    )
    reason: str | None = Field(None, max_length=40, description="Why, as a code: better_fit, no_capacity, ...")


class ReferralEscalated(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_escalated")

    response_due_at: datetime


class ReferralExpired(_ReferralEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "referral_expired")


EVENTS: list[type[IntegrationEvent]] = [
    CaseOpened,
    CaseAssigned,
    CaseClosed,
    CaseReopened,
    GoalSet,
    GoalUpdated,
    ReferralProposed,
    ReferralSent,
    ReferralAccepted,
    ReferralDeclined,
    ReferralStarted,
    ReferralCompleted,
    ReferralRevoked,
    ReferralReferredElsewhere,
    ReferralEscalated,
    ReferralExpired,
]
