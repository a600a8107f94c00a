"""Housing need through the real broker: registration's needs assessments reach the monitoring, the newest
assessment wins, an erasure takes the person's need out."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from contracts import registration as reg
from contracts.base import IntegrationEvent
from tests.conftest import eventually, needs_assessed, person_registered
from tests.service.test_monitoring_api import ANALYST, broker, monitoring, produce, table

__all__ = ["broker", "monitoring"]


def assessed(person_id: str, version: int, needs: list[str]) -> reg.NeedsAssessed:
    return needs_assessed(person_id, assessment_version=version, need_categories=needs)


async def test_housing_need_from_needs_assessments(monitoring: httpx.AsyncClient, broker: Any) -> None:
    """Six adults in one Weststadt household: five name housing, published as five in the "5+" column. One of
    them then names only language in a newer assessment (an older one arriving late changes nothing), another
    is erased: three remain, below k = 5, so the cell and the totals are withheld."""
    household = f"h-{uuid.uuid4().hex[:8]}"
    people = [f"p{i}-{uuid.uuid4().hex[:8]}" for i in range(6)]
    events: list[IntegrationEvent] = [person_registered(p, household_id=household) for p in people]
    events += [assessed(p, 1, ["housing", "language"]) for p in people[:5]]
    await produce(broker.bootstrap_servers, [(str(uuid.uuid4()), e) for e in events])

    async def housing(expected: Any) -> dict[str, Any] | None:
        reply = await monitoring.get("/api/v1/monitoring/indicators", params={"period": "2026-11"}, headers=ANALYST)
        found = table(reply.json(), "housing_need")
        return found if found["total"] == expected else None

    first = await eventually(lambda: housing({"value": 5, "suppressed": False}))
    assert first["rows"][0]["label"] == "Weststadt"
    assert first["rows"][0]["cells"]["5+"] == {"value": 5, "suppressed": False}

    later = [
        assessed(people[0], 2, ["language"]),
        assessed(people[0], 1, ["housing"]),
        reg.PersonErased(person_id=people[1], erased_at="2026-11-20T10:00:00Z"),
    ]
    await produce(broker.bootstrap_servers, [(str(uuid.uuid4()), e) for e in later])
    second = await eventually(lambda: housing({"value": None, "suppressed": True}))
    assert second["rows"][0]["cells"]["5+"]["suppressed"]  # three persons: withheld
