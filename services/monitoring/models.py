"""Tables of the monitoring service: the read model (facts replayed from the topics) and analyst input.

Only minimal pseudonymous facts, never names, birth dates or addresses (events carry none). A
``person_id`` is kept only where an indicator must link events: the profile (registration day,
demographic groups, household, district) in ``persons``; the counselling referral sent (days from
registration to first counselling) in ``referral_facts``; the enrolment (share of women) in
``enrolment_facts``. An erased person's row becomes a tombstone without attributes and their
pseudonym is removed from the linked facts. Analyst input (district population, survey figures)
is not derived from events and survives a rebuild, as do the planned places and the integration council's
proposals with their history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.db import new_metadata
from chassis.outbox import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class Person(Base):
    """The latest pseudonymous profile of a newcomer (a tombstone once erased)."""

    __tablename__ = "persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str | None] = mapped_column(String(64))
    registered_on: Mapped[date | None] = mapped_column(Date)
    nationality: Mapped[str | None] = mapped_column(String(2))
    age_band: Mapped[str | None] = mapped_column(String(10))
    gender: Mapped[str | None] = mapped_column(String(20))
    residence_status_group: Mapped[str | None] = mapped_column(String(40))
    district: Mapped[str | None] = mapped_column(String(80))
    profile_version: Mapped[int] = mapped_column(Integer, default=0)
    moved_away_on: Mapped[date | None] = mapped_column(Date)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    #: From the latest needs assessment: its version, its day, and whether it names a housing need.
    needs_version: Mapped[int | None] = mapped_column(Integer)
    needs_assessed_on: Mapped[date | None] = mapped_column(Date)
    housing_need: Mapped[bool | None] = mapped_column(Boolean)
    #: The residential block (Baublock) id registration found for the address: never the address itself.
    block: Mapped[str | None] = mapped_column(String(64))


class ReferralFact(Base):
    """One referral event (sent, accepted, declined, completed, escalated), keyed by the fact it tells (``event_id``
    holds :meth:`contracts.referral._ReferralEvent.fact_id`, not the ce_id: a copy under a new ce_id counts once)."""

    __tablename__ = "referral_facts"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    partner: Mapped[str] = mapped_column(String(100))
    service_type: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(20))
    #: Only on a counselling referral's 'sent'.
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)


class CourseFact(Base):
    __tablename__ = "course_facts"

    course_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(40))
    capacity: Mapped[int] = mapped_column(Integer)
    women_only: Mapped[bool] = mapped_column(Boolean, default=False)
    ends_on: Mapped[date | None] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date)


class EnrolmentFact(Base):
    """One enrolment event (waitlisted, seat_offered, enrolled, offer_expired, cancelled, completed)."""

    __tablename__ = "enrolment_facts"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    enrolment_id: Mapped[str] = mapped_column(String(64), index=True)
    course_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Only on 'enrolled'.
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)
    level_reached: Mapped[str | None] = mapped_column(String(4))
    result: Mapped[str | None] = mapped_column(String(20))


class PassFact(Base):
    """An education pass entry: its kind and time only, no person."""

    __tablename__ = "pass_facts"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DistrictPopulation(Base):
    """Reference data an analyst uploads: population per district (Ortsteil)."""

    __tablename__ = "district_population"

    district: Mapped[str] = mapped_column(String(80), primary_key=True)
    population: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300))
    illustrative: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BlockPopulation(Base):
    """Reference data an admin uploads: residents per residential block (Baublock), with its district."""

    __tablename__ = "block_population"

    block_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    district: Mapped[str] = mapped_column(String(80))
    population: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300))
    illustrative: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SurveyFigures(Base):
    """A citizens' survey (Bürgerbefragung) as an analyst entered it."""

    __tablename__ = "surveys"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(300))
    german_citizens_percent: Mapped[float | None] = mapped_column(Float)
    questions: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PlanningCapacity(Base):
    """Places the city plans in Kitas or schools of a district for a school year (analyst input)."""

    __tablename__ = "planning_capacities"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    district: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    places: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CouncilProposal(Base):
    """A proposal before the integration council (Integrationsrat) and where its follow-up stands."""

    __tablename__ = "council_proposals"

    proposal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(String(4000))
    #: The report's rule it came from (e.g. R1-waiting-list), if any, and the period it was derived for.
    rule: Mapped[str | None] = mapped_column(String(40))
    period: Mapped[str | None] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(20), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    due_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CouncilProposalEvent(Base):
    """One step of a proposal's history: who did what, when, with an optional note."""

    __tablename__ = "council_proposal_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    assignee: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(2000))


class MonitoringState(Base):
    """Small settings of the running service, e.g. the consumer group a rebuild switched to."""

    __tablename__ = "monitoring_state"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


#: The tables a rebuild wipes and replays (with the inbox); analyst input stays.
READ_MODEL = (Person, ReferralFact, CourseFact, EnrolmentFact, PassFact)
