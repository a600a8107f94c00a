"""Events of the partner network service (directory changes and capacity).

Keyed by ``partner_id`` on ``partners.partners.v1``, so that a partner's events stay in
order. They describe organisations and their services, never people: no personal data.
Referral reads :class:`PartnerCapacityChanged` so that routing chooses partners that can
take a person now.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from contracts.base import IntegrationEvent, event_type, topic
from contracts.registration import Identifier, LanguageTag
from contracts.vocabulary import PartnerCategory, ServiceType

SERVICE = "partners"
PARTNERS_TOPIC = topic(SERVICE, "partners")

OrganisationName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _PartnerEvent(IntegrationEvent):
    topic: ClassVar[str] = PARTNERS_TOPIC
    key_field: ClassVar[str] = "partner_id"

    partner_id: Identifier


class PartnerCapacityChanged(IntegrationEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "partner_capacity_changed")
    topic: ClassVar[str] = PARTNERS_TOPIC
    key_field: ClassVar[str] = "partner_id"

    partner_id: Identifier
    service_type: ServiceType
    free_places: int | None = Field(ge=0, description="None: no limit")


class PartnerRegistered(_PartnerEvent):
    """A partner organisation joined the directory."""

    event_type: ClassVar[str] = event_type(SERVICE, "partner_registered")

    name: OrganisationName
    category: PartnerCategory
    languages: list[LanguageTag] = Field(description="BCP 47 tags of the languages the partner's staff speak")
    service_types: list[ServiceType]


class PartnerUpdated(_PartnerEvent):
    """The organisation's directory entry changed (name, languages, description...)."""

    event_type: ClassVar[str] = event_type(SERVICE, "partner_updated")

    name: OrganisationName
    category: PartnerCategory
    languages: list[LanguageTag]
    version: int = Field(ge=1, description="Grows with every change; a late older event changes nothing")


class ServiceOffered(_PartnerEvent):
    """The partner offers a service (new, or its terms changed)."""

    event_type: ClassVar[str] = event_type(SERVICE, "service_offered")

    service_type: ServiceType
    name: OrganisationName
    languages: list[LanguageTag]
    response_days: int = Field(ge=1, le=365, description="Working days within which the partner answers a referral")
    free_places: int | None = Field(ge=0, description="None: no limit")


class ServiceWithdrawn(_PartnerEvent):
    """The partner no longer offers the service: route no more referrals for it there."""

    event_type: ClassVar[str] = event_type(SERVICE, "service_withdrawn")

    service_type: ServiceType


EVENTS: list[type[IntegrationEvent]] = [
    PartnerCapacityChanged,
    PartnerRegistered,
    PartnerUpdated,
    ServiceOffered,
    ServiceWithdrawn,
]
