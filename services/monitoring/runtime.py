"""What the monitoring service adds to the chassis's runtime (``runtime.own``), typed (issue 17)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from chassis.consumer import Handler
from chassis.service import ServiceRuntime


@dataclass
class MonitoringRuntime:
    #: The event handlers and their topics, for the consumer a rebuild starts anew (handed in by the app: the use
    #: cases sit below the handlers that call them).
    make_handlers: Callable[[], Mapping[str, Handler]]
    topics: list[str]
    #: One rebuild of the read model at a time.
    rebuild_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def monitoring_of(runtime: ServiceRuntime) -> MonitoringRuntime:
    return runtime.own_as(MonitoringRuntime)
