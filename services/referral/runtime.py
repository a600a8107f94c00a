"""What the referral service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_settings import SettingsConfigDict

from chassis.identity import Signer
from chassis.service import ServiceRuntime
from chassis.settings import ServiceSettings


@dataclass
class ReferralRuntime:
    #: Signs this service's own calls to registration (a partner's contact data under consent).
    identity: Signer


def referral_of(runtime: ServiceRuntime) -> ReferralRuntime:
    return runtime.own_as(ReferralRuntime)


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore")

    service_name: str = "referral"
    port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/referral.db"
    #: Working days after escalation until an unanswered referral expires.
    referral_expiry_days: int = 10
    clock_interval_seconds: float = 60.0
    registration_url: str = "http://127.0.0.1:8001"

    #: Referral signs as itself when it asks registration for a person's contact data
    #: (``REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY``).
    NEEDED_OUTSIDE_DEVELOPMENT = (*ServiceSettings.NEEDED_OUTSIDE_DEVELOPMENT, "internal_identity_signing_key")
