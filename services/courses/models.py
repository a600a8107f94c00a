"""Tables of the courses service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.audit import define_access_log_table
from chassis.db import new_metadata
from chassis.outbox import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)
#: Who read which person's data, what and why (``chassis.audit``).
access_log = define_access_log_table(Base.metadata)


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40), index=True)
    target_level: Mapped[str | None] = mapped_column(String(4))
    language_of_instruction: Mapped[str] = mapped_column(String(35))
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    capacity: Mapped[int] = mapped_column(Integer)
    childcare_offered: Mapped[bool] = mapped_column(Boolean)
    women_only: Mapped[bool] = mapped_column(Boolean)
    min_age: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    funding: Mapped[str] = mapped_column(String(20))
    fee_euro: Mapped[int | None] = mapped_column(Integer)
    enrolment_opens_on: Mapped[date | None] = mapped_column(Date)
    enrolment_closes_on: Mapped[date | None] = mapped_column(Date)
    location: Mapped[str] = mapped_column(String(200))
    #: The Ortsteil the course is held in, for the newcomers' filter (None: not given, e.g. online).
    district: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CourseSession(Base):
    __tablename__ = "course_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    course_id: Mapped[str] = mapped_column(ForeignKey("courses.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    place: Mapped[str] = mapped_column(String(200))


class Learner(Base):
    """Pseudonymous facts from registration's events: enough for eligibility and fair order."""

    __tablename__ = "learners"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The household (one case per household in referral: its team works every member).
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)
    gender: Mapped[str | None] = mapped_column(String(20))
    age_band: Mapped[str | None] = mapped_column(String(10))
    german_level: Mapped[str | None] = mapped_column(String(4))
    childcare_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    profile_version: Mapped[int] = mapped_column(Integer, default=0)
    needs_version: Mapped[int] = mapped_column(Integer, default=0)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)


class Enrolment(Base):
    __tablename__ = "enrolments"
    __table_args__ = (Index("ix_enrolments_course_status", "course_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    course_id: Mapped[str] = mapped_column(ForeignKey("courses.id"))
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))
    priority_flags: Mapped[list[str]] = mapped_column(JSON)
    referral_id: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    offered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    offer_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(40))
    result: Mapped[str | None] = mapped_column(String(20))
    certificate: Mapped[str | None] = mapped_column(String(100))
    completed_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Attendance(Base):
    __tablename__ = "attendance"

    enrolment_id: Mapped[str] = mapped_column(ForeignKey("enrolments.id"), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("course_sessions.id"), primary_key=True)
    present: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PassEntry(Base):
    """One line of a person's education pass (Bildungspass)."""

    __tablename__ = "pass_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_id: Mapped[str | None] = mapped_column(String(200), unique=True)


class IssuedPass(Base):
    """A signed pass as issued; kept so that its printed code can be verified (erased with the person)."""

    __tablename__ = "issued_passes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    credential: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseTeam(Base):
    """Who works a person's case, from referral's case events: a caseworker acts on the people of their team's
    open cases only (or, without a team, on the cases assigned to them). Pseudonymous: ids and a team name."""

    __tablename__ = "case_teams"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The household the case works: its team acts on every member's enrolments.
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)
    team: Mapped[str | None] = mapped_column(String(64))
    caseworker_id: Mapped[str | None] = mapped_column(String(64))
    open: Mapped[bool] = mapped_column(Boolean, default=True)


class PassStatus(Base):
    """The revocation status of an issued pass: its place in the public status list (W3C Bitstring Status List).

    Kept after the person's erasure, when the pass itself is gone: nothing in it names the person (the pass id
    and the code are random to anyone without the pass), and a verifier must still learn that the pass is revoked.
    """

    __tablename__ = "pass_status"

    pass_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: None for a pass issued before the status list existed: it can be checked online (by id or code) only.
    status_index: Mapped[int | None] = mapped_column(Integer, unique=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revocation_reason: Mapped[str | None] = mapped_column(String(40))
