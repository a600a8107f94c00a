"""Events of the partner network service that other services consume.

The partners service itself is issue 5; referral already reads capacity from
these events so that routing chooses partners that can take a person now.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts.base import IntegrationEvent, event_type, topic
from contracts.registration import Identifier
from contracts.vocabulary import ServiceType

SERVICE = "partners"
PARTNERS_TOPIC = topic(SERVICE, "partners")


class PartnerCapacityChanged(IntegrationEvent):
    event_type: ClassVar[str] = event_type(SERVICE, "partner_capacity_changed")
    topic: ClassVar[str] = PARTNERS_TOPIC
    key_field: ClassVar[str] = "partner_id"

    partner_id: Identifier
    service_type: ServiceType
    free_places: int | None = Field(ge=0, description="None: no limit")


EVENTS: list[type[IntegrationEvent]] = [PartnerCapacityChanged]
