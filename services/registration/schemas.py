"""API request and response models of the registration service (Create / Update / Read kept apart)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

import langcodes
import pycountry
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from chassis import clock
from chassis.audit import AccessLogEntry
from chassis.schemas import Strict
from contracts.calendar import local_day
from contracts.vocabulary import (
    AgeBand,
    ConsentPurpose,
    EmploymentSituation,
    Gender,
    GermanLevel,
    NeedCategory,
    PartnerCategory,
    ResidenceStatusGroup,
    Schooling,
)
from services.registration import domain


def _today() -> date:
    """The city's day by the request's clock (a body's validators run before any handler takes the clock)."""
    return local_day(clock.now())


def _country(code: str) -> str:
    code = code.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"'{code}' is not an ISO 3166-1 alpha-2 country code")
    return code


#: language, optional script, optional region: what information and routing need (no extensions).
_SIMPLE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")


def _language(tag: str) -> str:
    if not langcodes.tag_is_valid(tag):
        raise ValueError(f"'{tag}' is not a valid BCP 47 language tag")
    standard: str = langcodes.standardize_tag(tag)
    if not _SIMPLE_TAG.match(standard):
        raise ValueError(f"'{tag}': give a language with optional script and region, e.g. 'ar', 'sr-Latn', 'pt-BR'")
    return standard


def _birth_date(value: date) -> date:
    domain.check_birth_date(value, _today())
    return value


def _not_in_future(value: date) -> date:
    if value > _today():
        raise ValueError("the date lies in the future")
    return value


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
CountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
LanguageTag = Annotated[str, StringConstraints(min_length=2, max_length=35), AfterValidator(_language)]
BirthDate = Annotated[date, AfterValidator(_birth_date)]
PastDate = Annotated[date, AfterValidator(_not_in_future)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9 ()/-]{4,31}$")]
Notes = Annotated[str, StringConstraints(max_length=4000)]


class Address(Strict):
    street: Text
    house_number: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    postal_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    city: Text = "Landsberg am Lech"
    district: Text = Field(description="Ortsteil; one of the city's configured districts")


class PersonFields(Strict):
    given_names: Text
    family_name: Text
    birth_date: BirthDate
    gender: Gender
    nationality: CountryCode
    languages: list[LanguageTag] = Field(min_length=1, max_length=10)
    preferred_language: LanguageTag
    residence_status_group: ResidenceStatusGroup
    arrival_date: PastDate | None = None
    phone: Phone | None = None
    email: Email | None = None


class HouseholdMemberCreate(PersonFields):
    """A family member registered together with the main applicant, at the same address."""


class RegistrationCreate(PersonFields):
    registration_date: PastDate | None = Field(None, description="Defaults to today")
    address: Address
    household_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="Join an existing household instead of starting a new one"
    )
    household_members: list[HouseholdMemberCreate] = Field(default_factory=list, max_length=20)
    confirm_new_person: bool = Field(
        False, description="Set after a 409 duplicate warning when this is a different person"
    )


class PersonUpdate(Strict):
    """Fields that may change; omitted fields stay as they are."""

    given_names: Text | None = None
    family_name: Text | None = None
    gender: Gender | None = None
    nationality: CountryCode | None = None
    languages: list[LanguageTag] | None = Field(None, min_length=1, max_length=10)
    preferred_language: LanguageTag | None = None
    residence_status_group: ResidenceStatusGroup | None = None
    address: Address | None = None
    household_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    phone: Phone | None = None
    email: Email | None = None


class InfoPackRef(BaseModel):
    lang: str
    url: str


class RegisteredPerson(BaseModel):
    person_id: str
    household_id: str
    info_pack: InfoPackRef


class RegistrationRead(BaseModel):
    person_id: str
    household_id: str
    info_pack: InfoPackRef
    household_members: list[RegisteredPerson]


class PersonRead(BaseModel):
    person_id: str
    household_id: str
    status: domain.PersonStatus
    version: int
    given_names: str
    family_name: str
    birth_date: date
    age_band: AgeBand
    gender: Gender
    nationality: str
    languages: list[str]
    preferred_language: str
    residence_status_group: ResidenceStatusGroup
    arrival_date: date | None
    registration_date: date
    address: Address
    phone: str | None
    email: str | None
    moved_away_on: date | None
    created_at: datetime
    updated_at: datetime


class PersonLookup(Strict):
    """The persons of one page (a caseworker's case list): read in one call, not one per row."""

    person_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=200
    )


class PersonSummary(BaseModel):
    """What a case list shows of a person: the name, the languages, the age band (not the birth date)."""

    person_id: str
    given_names: str
    family_name: str
    preferred_language: str
    languages: list[str]
    age_band: AgeBand
    status: domain.PersonStatus


class NeedsAssessmentCreate(Strict):
    german_level: GermanLevel
    other_languages: list[LanguageTag] = Field(default_factory=list, max_length=10)
    schooling: Schooling
    vocational_qualification: Annotated[str, StringConstraints(max_length=200)] | None = None
    recognise_foreign_qualification: bool = False
    employment_situation: EmploymentSituation
    childcare_needed: bool = False
    children_ages: list[Annotated[int, Field(ge=0, le=17)]] = Field(default_factory=list, max_length=15)
    housing_need: bool = False
    counselling_need: bool = False
    health_need: bool = False
    notes: Notes | None = None


class NeedsAssessmentRead(BaseModel):
    person_id: str
    version: int
    german_level: GermanLevel
    other_languages: list[str]
    schooling: Schooling
    vocational_qualification: str | None
    recognise_foreign_qualification: bool
    employment_situation: EmploymentSituation
    childcare_needed: bool
    children_ages: list[int]
    housing_need: bool
    counselling_need: bool
    health_need: bool
    notes: str | None
    need_categories: list[NeedCategory]
    assessed_at: datetime


class ConsentCreate(Strict):
    partner_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    partner_category: PartnerCategory | None = None
    purpose: ConsentPurpose
    given_at: datetime | None = Field(None, description="Defaults to now")
    expires_on: date | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> ConsentCreate:
        if (self.partner_id is None) == (self.partner_category is None):
            raise ValueError("name exactly one of partner_id or partner_category")
        if self.expires_on is not None and self.expires_on < _today():
            raise ValueError("expires_on lies in the past")
        return self


class PersonContact(BaseModel):
    """What a partner may know to reach the person, under the person's consent: nothing more."""

    given_names: str
    family_name: str
    preferred_language: str
    languages: list[str]
    phone: str | None
    email: str | None
    address: Address


class ConsentRead(BaseModel):
    consent_id: str
    person_id: str
    partner_id: str | None
    partner_category: PartnerCategory | None
    purpose: ConsentPurpose
    given_at: datetime
    expires_on: date | None
    withdrawn_at: datetime | None
    in_force: bool


#: Why a person's data is erased or the person is recorded as moved away: kept in the access log.
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")
]


class MoveAway(Strict):
    moved_away_on: PastDate
    reason: Reason = Field(description="Why (e.g. the Abmeldung of the residents' office); kept in the access log")


class Erasure(Strict):
    reason: Reason = Field(description="The ground of the erasure (e.g. the person's request under GDPR Art. 17)")


class PersonExport(BaseModel):
    """What registration holds on a person (GDPR Art. 15), its part of the gateway's export."""

    service: str
    person_id: str
    status: str
    #: The record; none after erasure (only the tombstone's status and date are left).
    person: PersonRead | None
    erased_at: datetime | None = None
    moved_away_on: date | None = None
    household: dict[str, Any] | None = None
    needs_assessments: list[NeedsAssessmentRead]
    consents: list[ConsentRead]
    access_log: list[AccessLogEntry]


# --- the other services' questions (internal routes, outside the public API's document) ------------------------

#: How many referrals one call for their persons' names may name (a page of a partner's list).
CONTACT_NAMES_LIMIT = 200
#: How many participants one call for their names may name (a course's list).
PARTICIPANT_LIST_LIMIT = 500


class ContactNameAsked(BaseModel):
    person_id: Annotated[str, Field(min_length=1, max_length=64)]
    referral_id: Annotated[str, Field(min_length=1, max_length=64)]
    consent_id: Annotated[str, Field(min_length=1, max_length=64)]
    partner_category: PartnerCategory | None = None


class ContactNamesAsked(BaseModel):
    partner_id: Annotated[str, Field(min_length=1, max_length=64)]
    referrals: Annotated[list[ContactNameAsked], Field(min_length=1, max_length=CONTACT_NAMES_LIMIT)]


class ContactName(BaseModel):
    """The registered name of a referred person, for the partner the consent names: nothing more."""

    referral_id: str
    person_id: str
    given_names: str
    family_name: str


class PassHolder(BaseModel):
    """The name on an education pass, as registered: nothing more."""

    given_names: str
    family_name: str


class ParticipantName(BaseModel):
    """A participant's name as registered: nothing more."""

    person_id: str
    given_names: str
    family_name: str
