"""What the partners service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chassis.service import ServiceRuntime
from services.partners.delivery import Deliverer, SecretBox


@dataclass
class PartnersRuntime:
    #: Seals and opens the webhooks' signing secrets at rest.
    secret_box: SecretBox
    #: Delivers signed webhooks; woken when a delivery waits.
    deliverer: Deliverer
    #: Keys API keys' hashes (kept outside the database: ``PARTNERS_API_KEY_PEPPER``).
    api_key_pepper: bytes
    #: Webhooks to private addresses and over plain http (development and tests only).
    webhook_allow_private_addresses: bool
    #: How long a rotated-out webhook secret keeps signing.
    webhook_secret_grace: timedelta


def partners_of(runtime: ServiceRuntime) -> PartnersRuntime:
    return runtime.own_as(PartnersRuntime)
