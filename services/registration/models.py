"""Tables of the registration service. Personal data lives here and nowhere else."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.db import new_metadata
from chassis.outbox import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class Household(Base):
    __tablename__ = "households"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Person(Base):
    """A registered newcomer; after erasure only the tombstone columns keep values."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    duplicate_key: Mapped[str | None] = mapped_column(String(300), index=True)
    given_names: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(20))
    nationality: Mapped[str | None] = mapped_column(String(2), index=True)
    languages: Mapped[list[str] | None] = mapped_column(JSON)
    preferred_language: Mapped[str | None] = mapped_column(String(35))
    residence_status_group: Mapped[str | None] = mapped_column(String(40), index=True)
    arrival_date: Mapped[date | None] = mapped_column(Date)
    registration_date: Mapped[date] = mapped_column(Date, index=True)
    street: Mapped[str | None] = mapped_column(String(100))
    house_number: Mapped[str | None] = mapped_column(String(16))
    postal_code: Mapped[str | None] = mapped_column(String(5))
    city: Mapped[str | None] = mapped_column(String(100))
    district: Mapped[str | None] = mapped_column(String(80), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    moved_away_on: Mapped[date | None] = mapped_column(Date)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NeedsAssessment(Base):
    __tablename__ = "needs_assessments"
    __table_args__ = (Index("uq_needs_assessments_person_version", "person_id", "version", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    version: Mapped[int] = mapped_column(Integer)
    german_level: Mapped[str] = mapped_column(String(4))
    other_languages: Mapped[list[str]] = mapped_column(JSON)
    schooling: Mapped[str] = mapped_column(String(20))
    vocational_qualification: Mapped[str | None] = mapped_column(String(200))
    recognise_foreign_qualification: Mapped[bool] = mapped_column(Boolean)
    employment_situation: Mapped[str] = mapped_column(String(20))
    childcare_needed: Mapped[bool] = mapped_column(Boolean)
    children_ages: Mapped[list[int]] = mapped_column(JSON)
    housing_need: Mapped[bool] = mapped_column(Boolean)
    counselling_need: Mapped[bool] = mapped_column(Boolean)
    health_need: Mapped[bool] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
    need_categories: Mapped[list[str]] = mapped_column(JSON)
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    partner_id: Mapped[str | None] = mapped_column(String(64))
    partner_category: Mapped[str | None] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(40))
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_on: Mapped[date | None] = mapped_column(Date)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccessLog(Base):
    """Every read of and change to personal data: who, what, when, why (GDPR Art. 5(2) accountability); the
    shape every service's log has (``chassis.audit``), which reads and answers it."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Why: an erasure or a move-away names its ground (GDPR Art. 5(2), 17); a read, what the role reads for.
    purpose: Mapped[str | None] = mapped_column(String(500))


class CaseTeam(Base):
    """Who works a person's case, as the referral service's case events tell it: the object-level rule for
    caseworkers (a caseworker reaches a person only while the person's case is open in the caseworker's team). A
    case is a household's: its team reaches the household's members, whom this service knows.
    Pseudonymous ids and a team name only."""

    __tablename__ = "case_teams"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The household the case works (referral has one case per household): its team reaches every member.
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    caseworker_id: Mapped[str | None] = mapped_column(String(64))
    open: Mapped[bool] = mapped_column(Boolean, default=True)


def as_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
