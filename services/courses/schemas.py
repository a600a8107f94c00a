"""API models of the courses service (Create / Update / Read kept apart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from chassis.schemas import Strict
from contracts.vocabulary import GermanLevel
from services.courses import domain

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
#: An Ortsteil as people write it ("Weststadt", "Pitzling mit Pöring"): letters, spaces, hyphens, dots.
District = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\W\d_][\w .'()-]*$")
]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SessionCreate(Strict):
    starts_at: datetime
    ends_at: datetime
    place: Title = "VHS Landsberg am Lech"


class SessionRead(BaseModel):
    session_id: str
    starts_at: datetime
    ends_at: datetime
    place: str


class CourseFields(Strict):
    title: Title
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    category: domain.CourseCategory
    target_level: GermanLevel | None = None
    language_of_instruction: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] = "de"
    provider_id: Identifier | None = Field(
        None, description="The course provider (its partner id); a course admin's own provider, which is the default"
    )
    capacity: int = Field(ge=1, le=500)
    childcare_offered: bool = False
    women_only: bool = False
    min_age: int | None = Field(None, ge=0, le=130)
    max_age: int | None = Field(None, ge=0, le=130)
    funding: domain.Funding = domain.Funding.CITY
    fee_euro: int | None = Field(None, ge=0, le=10_000)
    enrolment_opens_on: date | None = None
    enrolment_closes_on: date | None = None
    location: Title = "VHS Landsberg am Lech"
    district: District | None = Field(None, description="The Ortsteil it is held in, e.g. 'Altstadt'")

    @model_validator(mode="after")
    def _consistent(self) -> CourseFields:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        if self.enrolment_opens_on and self.enrolment_closes_on and self.enrolment_opens_on > self.enrolment_closes_on:
            raise ValueError("the enrolment window closes before it opens")
        if (self.funding is domain.Funding.FEE) != (self.fee_euro is not None):
            raise ValueError("a fee is given exactly when funding is 'fee'")
        return self


class CourseCreate(CourseFields):
    sessions: list[SessionCreate] = Field(min_length=1, max_length=200)


class CourseUpdate(Strict):
    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    capacity: int | None = Field(None, ge=1, le=500)
    childcare_offered: bool | None = None
    enrolment_closes_on: date | None = None
    location: Title | None = None
    district: District | None = None


class CourseRead(BaseModel):
    """Public: no personal data, only counts."""

    course_id: str
    title: str
    description: str | None
    category: domain.CourseCategory
    target_level: GermanLevel | None
    language_of_instruction: str
    provider_id: str
    capacity: int
    free_seats: int
    waiting: int
    childcare_offered: bool
    women_only: bool
    min_age: int | None
    max_age: int | None
    funding: domain.Funding
    fee_euro: int | None
    enrolment_opens_on: date | None
    enrolment_closes_on: date | None
    location: str
    district: str | None
    status: domain.CourseStatus
    sessions: list[SessionRead]


class EnrolmentCreate(Strict):
    person_id: Identifier
    integration_course_obligation: bool = Field(False, description="Verpflichtung zum Integrationskurs")
    referral_id: Identifier | None = None


class EnrolmentRead(BaseModel):
    enrolment_id: str
    course_id: str
    person_id: str
    status: domain.EnrolmentStatus
    position: int | None = Field(None, description="Place in the waiting list, 1 = next")
    priority_flags: list[str]
    referral_id: str | None = None
    requested_at: datetime
    offer_expires_at: datetime | None
    cancel_reason: str | None
    result: str | None
    certificate: str | None
    completed_on: date | None


class Participant(BaseModel):
    """An enrolled (or completed) participant with the registered name, for the course's own admin."""

    enrolment_id: str
    person_id: str
    name: str | None = Field(description="As registered; None when registration could not say (erased, or down)")
    status: domain.EnrolmentStatus
    attendance: dict[str, bool] = Field(description="Session id -> present, for the sessions recorded so far")
    result: str | None
    certificate: str | None
    completed_on: date | None


class ParticipantList(BaseModel):
    participants: list[Participant]
    names_available: bool = Field(description="False while registration, which holds the names, cannot answer")


class Cancellation(Strict):
    reason: Annotated[str, StringConstraints(pattern=r"^(by_person|by_staff)$")] = "by_person"


class AttendanceCreate(Strict):
    session_id: Identifier
    present: bool


class CompletionCreate(Strict):
    result: domain.CompletionResult
    certificate: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    completed_on: date


class PassIssue(Strict):
    """Nothing to say: the holder's name comes from registration, never from the request (a name sent is refused)."""


class PassRevocation(Strict):
    reason: Annotated[str, StringConstraints(pattern=r"^(issued_in_error|superseded|holder_request)$")]


class PassStatusRead(BaseModel):
    pass_id: str
    revoked: bool
    revoked_at: datetime | None
    reason: str | None


class PassEntryRead(BaseModel):
    entry_id: str
    kind: str
    details: dict[str, Any]
    at: datetime


class IssuedPassRead(BaseModel):
    pass_id: str
    code: str
    credential: dict[str, Any]
    html_url: str


class Verification(BaseModel):
    valid: bool
    reason: str
    revoked: bool = Field(False, description="The issuer revoked the pass (it is in the public status list)")
    code: str | None = None
    credential_id: str | None = None
