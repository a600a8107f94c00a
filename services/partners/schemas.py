"""API models of the partners service (Create / Update / Read kept apart).

Field names follow Open Referral HSDS where there is one (organization, service, location,
contact, language, eligibility). Contact points are functional (an office, a hotline): there
is no field for a person's name, so the public directory cannot carry personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator, model_validator

from chassis.schemas import Strict
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from contracts.registration import LanguageTag
from contracts.vocabulary import PartnerCategory, ServiceType
from services.partners.domain import ApiScope, DeliveryStatus, MeetingAudience, MeetingKind

#: What a partner can subscribe to: referrals addressed to it and its own directory entry.
DELIVERABLE_EVENT_TYPES: frozenset[str] = frozenset(
    model.event_type
    for model in [*referral_events.EVENTS, *partner_events.EVENTS, *course_events.EVENTS]
    if model.topic in (referral_events.REFERRALS_TOPIC, partner_events.PARTNERS_TOPIC, course_events.COURSES_TOPIC)
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
Languages = Annotated[list[LanguageTag], Field(min_length=1, max_length=30)]
#: An Ortsteil as people write it ("Weststadt", "Pitzling mit Pöring"): letters first, then letters, spaces, hyphens.
District = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\W\d_][\w .'()-]*$")
]
FreePlaces = Annotated[int | None, Field(ge=0, le=100_000, description="None: no limit")]


# --- directory ------------------------------------------------------------------------------


class Location(Strict):
    """HSDS ``location`` with its physical address; opening hours as the HSDS schedule description."""

    name: Name
    address_1: ShortText | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    postal_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z -]{3,10}$")] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "DE"
    opening_hours: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    district: District | None = Field(None, description="The Ortsteil, e.g. 'Altstadt', for the public filter")


class ContactPoint(Strict):
    """HSDS ``contact`` as a functional contact point: an office or hotline, never a named person."""

    title: Name = Field(description="e.g. 'Beratungsstelle'")
    department: ShortText | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()/-]{4,40}$")] | None = None


class ServiceRead(BaseModel):
    service_type: ServiceType
    name: str
    description: str | None
    eligibility: str | None
    languages: list[str]
    response_days: int
    free_places: int | None
    updated_at: datetime


class PartnerRead(BaseModel):
    partner_id: str
    name: str
    alternate_name: str | None
    category: PartnerCategory
    description: str | None
    website: str | None
    languages: list[str]
    locations: list[Location]
    contacts: list[ContactPoint]
    services: list[ServiceRead]
    version: int
    updated_at: datetime


#: A partner's id: lower-case letters, digits and hyphens (the gateway's accounts name partners so).
NewPartnerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]


class PartnerUpdate(Strict):
    """What a partner (or an admin) changes in an entry; fields left out stay as they are."""

    name: Name | None = None
    category: PartnerCategory | None = Field(
        None, description="Only an admin changes it: consents are given per category of partner"
    )
    alternate_name: Name | None = None
    description: LongText | None = None
    website: Url | None = None
    languages: Languages | None = None
    locations: Annotated[list[Location], Field(max_length=20)] | None = None
    contacts: Annotated[list[ContactPoint], Field(max_length=20)] | None = None


class ServiceOffer(Strict):
    """Offer a service, or change its terms (PUT: the whole offer)."""

    name: Name
    description: LongText | None = None
    eligibility: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] | None = None
    languages: Languages
    response_days: int = Field(5, ge=1, le=365)
    free_places: FreePlaces = None


class ServiceEntry(ServiceOffer):
    """A service as part of a new partner's entry."""

    service_type: ServiceType


class PartnerCreate(Strict):
    """A new partner organisation with the services it offers (an admin's act)."""

    partner_id: NewPartnerId = Field(description="2 to 64 lower-case letters, digits, hyphens; e.g. caritas-kaufering")
    name: Name
    alternate_name: Name | None = None
    category: PartnerCategory
    description: LongText | None = None
    website: Url | None = None
    languages: Languages
    locations: Annotated[list[Location], Field(max_length=20)] = []
    contacts: Annotated[list[ContactPoint], Field(max_length=20)] = []
    services: Annotated[list[ServiceEntry], Field(max_length=len(ServiceType))] = []

    @field_validator("partner_id")
    @classmethod
    def _not_a_route(cls, value: str) -> str:
        # /api/v1/partners/meeting-offers is the public list of meeting offers, not a partner's entry.
        if value == "meeting-offers":
            raise ValueError("meeting-offers is reserved")
        return value

    @model_validator(mode="after")
    def _one_offer_per_service_type(self) -> PartnerCreate:
        types = [s.service_type for s in self.services]
        if len(set(types)) != len(types):
            raise ValueError("each service type at most once")
        return self


class CapacityUpdate(Strict):
    free_places: FreePlaces


# --- meeting offers (Begegnung) -------------------------------------------------------------


Schedule = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class MeetingOfferCreate(Strict):
    """A meeting place or recurring offer: where, when, in which languages, for whom. A public notice: an
    organiser's office may be named, never a person."""

    kind: MeetingKind
    title: Name
    description: LongText | None = None
    languages: Languages
    audience: MeetingAudience = MeetingAudience.EVERYONE
    schedule: Schedule | None = Field(None, description="When it meets, e.g. 'jeden Dienstag, 18 bis 20 Uhr'")
    place_name: Name
    address: ShortText | None = None
    district: District | None = Field(None, description="The Ortsteil, e.g. 'Weststadt'")
    childcare: bool = False
    free_of_charge: bool = True


class MeetingOfferUpdate(Strict):
    """What changes in an offer; fields left out stay as they are."""

    kind: MeetingKind | None = None
    title: Name | None = None
    description: LongText | None = None
    languages: Languages | None = None
    audience: MeetingAudience | None = None
    schedule: Schedule | None = None
    place_name: Name | None = None
    address: ShortText | None = None
    district: District | None = None
    childcare: bool | None = None
    free_of_charge: bool | None = None


class MeetingOfferRead(BaseModel):
    offer_id: str
    partner_id: str
    partner_name: str
    kind: MeetingKind
    title: str
    description: str | None
    languages: list[str]
    audience: MeetingAudience
    schedule: str | None
    place_name: str
    address: str | None
    district: str | None
    childcare: bool
    free_of_charge: bool
    updated_at: datetime


# --- API keys -------------------------------------------------------------------------------


def _unique(values: list[ApiScope]) -> list[ApiScope]:
    return sorted(set(values))


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: Annotated[list[ApiScope], Field(min_length=1, max_length=10), AfterValidator(_unique)]
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2027-01-31T00:00:00Z)")
        return value


class ApiKeyRead(BaseModel):
    key_id: str
    name: str
    prefix: str
    scopes: list[ApiScope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="Shown once: store it now; the platform keeps only a hash")


class KeyVerify(Strict):
    key: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class KeyVerified(BaseModel):
    partner_id: str
    key_id: str
    scopes: list[ApiScope]
    expires_at: datetime | None


# --- webhooks -------------------------------------------------------------------------------


def _deliverable(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - DELIVERABLE_EVENT_TYPES)
    if unknown:
        raise ValueError(f"not a deliverable event type: {unknown}; choose from {sorted(DELIVERABLE_EVENT_TYPES)}")
    return sorted(set(values))


class WebhookCreate(Strict):
    url: Url
    event_types: Annotated[
        list[Annotated[str, StringConstraints(max_length=200)]],
        Field(min_length=1, max_length=50),
        AfterValidator(_deliverable),
    ]
    description: ShortText | None = None


class WebhookRead(BaseModel):
    webhook_id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime
    previous_secret_valid_until: datetime | None


class WebhookCreated(WebhookRead):
    secret: str = Field(description="Shown once: verify signatures with it (Standard Webhooks, whsec_...)")


class SecretRotated(BaseModel):
    webhook_id: str
    secret: str = Field(description="The new secret, shown once")
    previous_secret_valid_until: datetime = Field(description="Until then deliveries carry both signatures")


class DeliveryRead(BaseModel):
    delivery_id: str = Field(description="The webhook-id header of every attempt")
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    replays: int
    created_at: datetime
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
