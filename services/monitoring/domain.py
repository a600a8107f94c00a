"""The core shapes of the monitoring service: the *facts* the read model keeps and hands to the rules.

Pseudonymous and minimal (Fakten, kein Personenbezug über die Pseudonyme hinaus). Pure: no I/O, no framework.
The rules live beside it by concern: :mod:`~services.monitoring.periods`, :mod:`~services.monitoring.tables`,
:mod:`~services.monitoring.indicators`, :mod:`~services.monitoring.segregation`,
:mod:`~services.monitoring.protection`, :mod:`~services.monitoring.proposals`, :mod:`~services.monitoring.planning`
and :mod:`~services.monitoring.housing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from contracts.vocabulary import AgeBand, Gender, GermanLevel, ResidenceStatusGroup, ServiceType

if TYPE_CHECKING:
    from services.monitoring.blocks import BlockReference

SURVEY_ANSWERS = ("very_satisfied", "satisfied", "less_satisfied", "dissatisfied")


@dataclass(frozen=True)
class PersonFact:
    """The latest pseudonymous profile of a registered newcomer; erased persons are not handed in."""

    person_id: str
    household_id: str
    registered_on: date
    nationality: str
    age_band: AgeBand
    gender: Gender
    residence_status_group: ResidenceStatusGroup
    district: str
    moved_away_on: date | None = None
    #: The day of the latest needs assessment when it names a housing need (else None).
    housing_need_since: date | None = None
    #: The residential block (Baublock) registration found for the address, if any.
    block: str | None = None

    def lives_here_on(self, day: date) -> bool:
        return self.registered_on <= day and (self.moved_away_on is None or self.moved_away_on > day)


@dataclass(frozen=True)
class ReferralFact:
    """One referral event: kind is sent, accepted, declined, completed or escalated."""

    referral_id: str
    kind: str
    at: datetime
    partner: str
    service_type: ServiceType
    outcome: str | None = None
    #: Only on 'sent' of a counselling referral: links it to the registration day.
    person_id: str | None = None


@dataclass(frozen=True)
class CourseFact:
    course_id: str
    category: str
    capacity: int
    women_only: bool = False
    ends_on: date | None = None
    cancelled_on: date | None = None

    def open_on(self, day: date) -> bool:
        return (self.cancelled_on is None or self.cancelled_on > day) and (self.ends_on is None or self.ends_on >= day)


@dataclass(frozen=True)
class EnrolmentFact:
    """One enrolment event: kind is waitlisted, seat_offered, enrolled, offer_expired, cancelled or completed."""

    enrolment_id: str
    course_id: str
    category: str
    kind: str
    at: datetime
    #: Only on 'enrolled': links the enrolment to the gender for the share of women.
    person_id: str | None = None
    level_reached: GermanLevel | None = None
    result: str | None = None


@dataclass(frozen=True)
class PassFact:
    kind: str
    at: datetime


@dataclass(frozen=True)
class Survey:
    """The citizens' survey (Bürgerbefragung): percentages per question, entered by an analyst."""

    year: int
    source: str
    german_citizens_percent: float | None
    #: question -> answer (SURVEY_ANSWERS) -> percent
    questions: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class DistrictReference:
    population: Mapping[str, int]
    source: str
    illustrative: bool


@dataclass(frozen=True)
class Facts:
    persons: Sequence[PersonFact] = ()
    referrals: Sequence[ReferralFact] = ()
    courses: Sequence[CourseFact] = ()
    enrolments: Sequence[EnrolmentFact] = ()
    passes: Sequence[PassFact] = ()
    surveys: Sequence[Survey] = ()
    reference: DistrictReference | None = None
    blocks: BlockReference | None = None
