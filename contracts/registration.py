"""Events of the registration service (Einwohnermeldeamt): pseudonymous facts only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from contracts.base import IntegrationEvent, event_type, topic
from contracts.vocabulary import (
    AgeBand,
    ConsentPurpose,
    EmploymentSituation,
    Gender,
    GermanLevel,
    NeedCategory,
    PartnerCategory,
    ResidenceStatusGroup,
)

SERVICE = "registration"
PERSONS_TOPIC = topic(SERVICE, "persons")

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
LanguageTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _PersonEvent(IntegrationEvent):
    topic: ClassVar[str] = PERSONS_TOPIC
    key_field: ClassVar[str] = "person_id"

    person_id: Identifier = Field(description="Pseudonymous person id; no meaning outside the platform.")


class _Recorded(IntegrationEvent):
    #: Who recorded it (``user:<name>`` or ``api_key:<id>``, as the gateway signed the caller): a staff account, never
    #: the newcomer; the case's timeline names them. None where the call carried no identity (development).
    recorded_by: str | None = Field(None, max_length=200, description="The staff account that recorded it")


class PersonProfile(IntegrationEvent):
    """The attributes other services may know about a person: none identifies them."""

    household_id: Identifier
    age_band: AgeBand
    gender: Gender
    nationality: CountryCode = Field(description="ISO 3166-1 alpha-2")
    languages: list[LanguageTag] = Field(description="BCP 47 tags of the languages the person speaks")
    preferred_language: LanguageTag
    residence_status_group: ResidenceStatusGroup
    district: str = Field(max_length=80, description="Ortsteil of Landsberg am Lech")
    block_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Residential block (Baublock) of the address in the city's block reference, never the street "
        "or house number; absent when no block covers the address or the city has no block reference.",
    )
    registered_on: date
    arrived_on: date | None = None


class PersonRegistered(_PersonEvent, PersonProfile, _Recorded):
    event_type: ClassVar[str] = event_type(SERVICE, "person_registered")


class PersonUpdated(_PersonEvent, PersonProfile, _Recorded):
    event_type: ClassVar[str] = event_type(SERVICE, "person_updated")
    version: int = Field(ge=1)


class NeedsAssessed(_PersonEvent, _Recorded):
    event_type: ClassVar[str] = event_type(SERVICE, "needs_assessed")

    assessment_version: int = Field(ge=1)
    german_level: GermanLevel
    need_categories: list[NeedCategory]
    employment_situation: EmploymentSituation
    foreign_qualification_to_recognise: bool
    childcare_needed: bool
    children_age_bands: list[AgeBand] = Field(default_factory=list)
    age_band: AgeBand
    gender: Gender
    residence_status_group: ResidenceStatusGroup
    preferred_language: LanguageTag


class ConsentGiven(_PersonEvent, _Recorded):
    event_type: ClassVar[str] = event_type(SERVICE, "consent_given")

    consent_id: Identifier
    partner_id: Identifier | None = None
    partner_category: PartnerCategory | None = None
    purpose: ConsentPurpose
    given_at: datetime
    expires_on: date | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> ConsentGiven:
        if (self.partner_id is None) == (self.partner_category is None):
            raise ValueError("a consent names exactly one of partner_id or partner_category")
        return self


class ConsentWithdrawn(_PersonEvent, _Recorded):
    event_type: ClassVar[str] = event_type(SERVICE, "consent_withdrawn")

    consent_id: Identifier
    withdrawn_at: datetime


class PersonMovedAway(_PersonEvent, _Recorded):
    """Abmeldung: the person left Landsberg am Lech."""

    event_type: ClassVar[str] = event_type(SERVICE, "person_moved_away")

    household_id: Identifier
    moved_away_on: date


class PersonErased(_PersonEvent):
    """GDPR Art. 17: personal data was deleted; services drop what they hold about the person."""

    event_type: ClassVar[str] = event_type(SERVICE, "person_erased")

    erased_at: datetime


EVENTS: list[type[IntegrationEvent]] = [
    PersonRegistered,
    PersonUpdated,
    NeedsAssessed,
    ConsentGiven,
    ConsentWithdrawn,
    PersonMovedAway,
    PersonErased,
]
