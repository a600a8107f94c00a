"""What the referral service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

from chassis.identity import Signer
from chassis.service import ServiceRuntime


@dataclass
class ReferralRuntime:
    #: Signs this service's own calls to registration (a partner's contact data under consent).
    identity: Signer


def referral_of(runtime: ServiceRuntime) -> ReferralRuntime:
    return runtime.own_as(ReferralRuntime)
