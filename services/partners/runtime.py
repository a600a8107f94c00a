"""What the partners service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

from chassis.service import ServiceRuntime
from services.partners.delivery import Deliverer, SecretBox


@dataclass
class PartnersRuntime:
    #: Seals and opens the webhooks' signing secrets at rest.
    secret_box: SecretBox
    #: Delivers signed webhooks; woken when a delivery waits.
    deliverer: Deliverer


def partners_of(runtime: ServiceRuntime) -> PartnersRuntime:
    return runtime.own_as(PartnersRuntime)
