"""What the courses service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from chassis.identity import Signer
from chassis.service import ServiceRuntime
from chassis.settings import DEVELOPMENT_SECRET, ServiceSettings
from services.courses import domain


@dataclass(frozen=True)
class PassKeys:
    """The key that signs passes now, and every key (its own first) that verifies them: during and after a
    rotation a pass signed with the previous key stays valid until that key is removed from the settings."""

    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    key_id: str
    verifying: tuple[tuple[Ed25519PublicKey, str], ...] = ()

    @property
    def public_keys(self) -> list[Ed25519PublicKey]:
        return [key for key, _ in self.verifying] or [self.public]


@dataclass
class CoursesRuntime:
    #: Signs this service's own calls to registration (a pass holder's name, a participant list's names).
    identity: Signer
    #: Signs and verifies education passes (Bildungspass).
    pass_keys: PassKeys
    #: How registration is reached: None over the network at the settings' ``registration_url``; tests route it
    #: in-process.
    registration_transport: httpx.AsyncBaseTransport | None = None


def courses_of(runtime: ServiceRuntime) -> CoursesRuntime:
    return runtime.own_as(CoursesRuntime)


class CoursesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COURSES_", extra="ignore")

    service_name: str = "courses"
    port: int = 8003
    database_url: str = "sqlite+aiosqlite:///var/courses.db"
    #: Hours a freed seat is held for the first in line before it passes on.
    offer_hours: float = 72.0
    waitlist_priorities: list[domain.PriorityCriterion] = list(domain.DEFAULT_PRIORITIES)
    offer_check_interval_seconds: float = 60.0
    pass_issuer: str = "https://integration.landsberg.de"  # noqa: S105 - an issuer URL, not a secret
    #: Base64 of the 32-byte Ed25519 private key (from a Secret). In development a key is made
    #: once and kept in ``dev_signing_key_file``.
    pass_signing_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    dev_signing_key_file: Path = Path("var/courses-pass-signing.key")
    #: Public keys that verify passes beside the signing key's own (base64 of the raw 32 bytes, comma-separated):
    #: the key before a rotation, so that passes it signed stay valid, and the next one announced before the
    #: switch (deploy/README.md, section 12). Published with the signing key's at /education-passes/public-key.
    pass_verify_public_keys: str | None = None
    #: Registration holds the pass holder's name (``COURSES_REGISTRATION_URL``).
    registration_url: str = "http://127.0.0.1:8001"

    OTHER_ED25519_KEYS = ("pass_signing_key", "pass_verify_public_keys")
    KEY_LISTS = ServiceSettings.KEY_LISTS | {"pass_verify_public_keys"}
    #: Courses signs as itself when it asks registration for a pass holder's name
    #: (``COURSES_INTERNAL_IDENTITY_SIGNING_KEY``).
    NEEDED_OUTSIDE_DEVELOPMENT = (*ServiceSettings.NEEDED_OUTSIDE_DEVELOPMENT, "internal_identity_signing_key")
