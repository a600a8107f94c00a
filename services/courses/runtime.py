"""What the courses service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chassis.identity import Signer
from chassis.service import ServiceRuntime


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
