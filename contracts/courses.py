"""Events of the courses service (VHS): catalogue, enrolments, education pass. No personal data."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import Field

from contracts.base import IntegrationEvent, event_type, topic
from contracts.registration import Identifier
from contracts.vocabulary import GermanLevel

SERVICE = "courses"
COURSES_TOPIC = topic(SERVICE, "courses")
ENROLMENTS_TOPIC = topic(SERVICE, "enrolments")
PASSES_TOPIC = topic(SERVICE, "passes")


class _CourseEvent(IntegrationEvent):
    topic: ClassVar[str] = COURSES_TOPIC
    key_field: ClassVar[str] = "course_id"

    course_id: Identifier
    provider_id: Identifier
    category: str = Field(max_length=40)
    capacity: int = Field(ge=0)
    women_only: bool
    childcare_offered: bool
    target_level: GermanLevel | None = None
    starts_on: date | None = None
    ends_on: date | None = None


class CourseScheduled(_CourseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "course_scheduled")


class CourseUpdated(_CourseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "course_updated")


class CourseCancelled(_CourseEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "course_cancelled")


class _EnrolmentEvent(IntegrationEvent):
    """Keyed by course, so that a course's seats, waiting list and offers stay in order."""

    topic: ClassVar[str] = ENROLMENTS_TOPIC
    key_field: ClassVar[str] = "course_id"

    enrolment_id: Identifier
    course_id: Identifier
    person_id: Identifier
    category: str = Field(max_length=40)
    at: datetime
    referral_id: Identifier | None = None


class EnrolmentRequested(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "enrolment_requested")


class Enrolled(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "enrolled")


class Waitlisted(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "waitlisted")

    position: int = Field(ge=1)


class SeatOffered(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "seat_offered")

    expires_at: datetime


class OfferExpired(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "offer_expired")


class EnrolmentCancelled(_EnrolmentEvent):
    """Also sent to everyone enrolled when the course is cancelled (reason course_cancelled),
    so that referral can route them again."""

    event_type: ClassVar[str] = event_type(SERVICE, "enrolment_cancelled")

    reason: str = Field(max_length=40)


class AttendanceRecorded(_EnrolmentEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "attendance_recorded")

    session_id: Identifier
    present: bool


class CourseCompleted(_EnrolmentEvent):
    """One learner completed a course."""

    event_type: ClassVar[str] = event_type(SERVICE, "course_completed")

    result: str = Field(max_length=20)
    certificate: str | None = Field(None, max_length=100)
    level_reached: GermanLevel | None = None


class PassEntryAdded(IntegrationEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "pass_entry_added")
    topic: ClassVar[str] = PASSES_TOPIC
    key_field: ClassVar[str] = "person_id"

    person_id: Identifier
    entry_id: Identifier
    kind: str = Field(max_length=40, description="course, certificate, language_level or recognition")
    at: datetime


EVENTS: list[type[IntegrationEvent]] = [
    CourseScheduled,
    CourseUpdated,
    CourseCancelled,
    EnrolmentRequested,
    Enrolled,
    Waitlisted,
    SeatOffered,
    OfferExpired,
    EnrolmentCancelled,
    AttendanceRecorded,
    CourseCompleted,
    PassEntryAdded,
]
