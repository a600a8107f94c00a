"""What the registration service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

from chassis.service import ServiceRuntime
from services.registration.blocks import BlockIndex


@dataclass(frozen=True)
class RegistrationRuntime:
    #: The city's districts (Ortsteile): an address names one of them.
    districts: tuple[str, ...]
    #: The city's residential blocks: an address enters events only as its block (Baublock).
    block_index: BlockIndex


def registration_of(runtime: ServiceRuntime) -> RegistrationRuntime:
    return runtime.own_as(RegistrationRuntime)
