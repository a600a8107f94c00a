"""What the monitoring service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chassis.service import ServiceRuntime


@dataclass
class MonitoringRuntime:
    #: One rebuild of the read model at a time.
    rebuild_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def monitoring_of(runtime: ServiceRuntime) -> MonitoringRuntime:
    return runtime.own_as(MonitoringRuntime)
