"""Tables of the referral service: cases, plans, referrals, and what it learned from events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.audit import define_access_log_table
from chassis.db import new_metadata
from chassis.outbox import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)
#: Who read which person's data, what and why (``chassis.audit``).
access_log = define_access_log_table(Base.metadata)


class KnownPerson(Base):
    """What registration's events told us: pseudonymous facts, no personal data."""

    __tablename__ = "known_persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str | None] = mapped_column(String(64))
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    profile_version: Mapped[int] = mapped_column(Integer, default=0)
    needs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    needs_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="registered")  # registered | moved_away | erased


class KnownConsent(Base):
    __tablename__ = "known_consents"

    consent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    partner_id: Mapped[str | None] = mapped_column(String(64))
    partner_category: Mapped[str | None] = mapped_column(String(40))
    purpose: Mapped[str | None] = mapped_column(String(40))
    given_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_on: Mapped[date | None] = mapped_column(Date)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PartnerOfferRow(Base):
    """A partner's service with its capacity (seeded directory, updated by partner events)."""

    __tablename__ = "partner_offers"

    partner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_name: Mapped[str] = mapped_column(String(200))
    partner_category: Mapped[str] = mapped_column(String(40))
    free_places: Mapped[int | None] = mapped_column(Integer)
    languages: Mapped[list[str]] = mapped_column(JSON)
    response_days: Mapped[int] = mapped_column(Integer, default=5)


class KnownPartner(Base):
    """A partner organisation as its directory events describe it (to file its offered services)."""

    __tablename__ = "known_partners"

    partner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40))
    languages: Mapped[list[str]] = mapped_column(JSON)


class CaseworkerRow(Base):
    """An integration navigator on the roster."""

    __tablename__ = "caseworkers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(64))
    languages: Mapped[list[str]] = mapped_column(JSON)
    max_cases: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), unique=True)
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    caseworker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    team: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(String(40))


class CaseMember(Base):
    """A person whose integration the case works: a household has one case and every member belongs to it (the
    case's ``person_id`` is its lead, the household's first adult). A person belongs to one case at a time."""

    __tablename__ = "case_members"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseNote(Base):
    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseTask(Base):
    """A follow-up the caseworker set themselves, with a due date (a call back, a document to bring)."""

    __tablename__ = "case_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    due_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(200))


class TimelineEntry(Base):
    """One event about the person, whichever service published it (no personal data)."""

    __tablename__ = "timeline"
    __table_args__ = (UniqueConstraint("event_id", name="uq_timeline_event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class Goal(Base):
    """A goal of the integration plan, in one of Esser's four dimensions."""

    __tablename__ = "goals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    #: The member the goal is for (a child's Kita place, a parent's course); none: the whole household's.
    person_id: Mapped[str | None] = mapped_column(String(64))
    dimension: Mapped[str] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    due_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Referral(Base):
    __tablename__ = "referrals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    service_type: Mapped[str] = mapped_column(String(40))
    partner_id: Mapped[str | None] = mapped_column(String(64), index=True)
    partner_category: Mapped[str | None] = mapped_column(String(40))
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_set_version: Mapped[int] = mapped_column(Integer)
    matched_facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(40))
    shares_personal_data: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), index=True)
    blocked_reason: Mapped[str | None] = mapped_column(String(300))
    decline_reason: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(20))
    unsuccessful_reason: Mapped[str | None] = mapped_column(String(40))
    consent_id: Mapped[str | None] = mapped_column(String(64))
    consent_withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    response_days: Mapped[int] = mapped_column(Integer, default=5)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RuleSetVersion(Base):
    """Routing rules are versioned: every save is a new version; the newest is in force."""

    __tablename__ = "rule_set_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
