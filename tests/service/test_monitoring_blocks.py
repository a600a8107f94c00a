"""Segregation per residential block through the real broker: registration's events carry the block id, the
monitoring keeps it per person and publishes the coarsened block table and index; the block reference is
uploaded like the districts' (bad uploads are Problem Details), and an erasure takes the person's block out."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from contracts import registration as reg
from services.monitoring.app import LANDSBERG_BLOCKS, create_app
from tests.conftest import ManualClock, eventually, running_app
from tests.service.test_monitoring_api import (
    ADMIN,
    ANALYST,
    NOW,
    REFERENCE,
    broker,
    monitoring,
    monitoring_settings,
    produce,
    table,
)

__all__ = ["broker", "monitoring"]

BLOCKS: dict[str, Any] = {
    "source": "test blocks",
    "illustrative": True,
    "blocks": [
        {"block_id": "w-1", "name": "Spöttinger Straße", "district": "Weststadt", "population": 2000},
        {"block_id": "w-2", "name": "Iglinger Straße", "district": "Weststadt", "population": 1000},
        {"block_id": "a-1", "name": "Hauptplatz", "district": "Altstadt", "population": 1000},
    ],
}


def registered(person_id: str, district: str, block: str | None) -> reg.PersonRegistered:
    return reg.PersonRegistered(
        person_id=person_id,
        household_id=f"h-{person_id}",
        age_band="27-44",
        gender="female",
        nationality="SY",
        languages=["ar"],
        preferred_language="ar",
        residence_status_group="recognised_refugee",
        district=district,
        block_id=block,
        registered_on="2026-11-03",
    )


async def test_the_block_reference_is_uploaded_and_checked(monitoring: httpx.AsyncClient) -> None:
    url = "/api/v1/monitoring/reference/blocks"
    assert (await monitoring.get(url, headers=ANALYST)).json()["blocks"] == []
    reply = await monitoring.put(url, json=BLOCKS, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert [b["block_id"] for b in reply.json()["blocks"]] == ["a-1", "w-1", "w-2"]
    assert reply.json()["illustrative"] is True
    twice = {**BLOCKS, "blocks": [BLOCKS["blocks"][0], BLOCKS["blocks"][0]]}
    streets = {**BLOCKS, "blocks": [{**BLOCKS["blocks"][0], "streets": [{"street": "Spöttinger Straße"}]}]}
    for bad in (twice, streets, {**BLOCKS, "blocks": []}):
        refused = await monitoring.put(url, json=bad, headers=ADMIN)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert (await monitoring.put(url, json=BLOCKS, headers={"X-Role": "caseworker"})).status_code == 403
    assert len((await monitoring.get(url, headers=ANALYST)).json()["blocks"]) == 3


async def test_newcomers_per_block_through_the_events(monitoring: httpx.AsyncClient, broker: Any) -> None:
    """Weststadt: 7 in w-1, 6 in w-2 (one erased later), 5 in no block: each is a unit. Altstadt: 6 in a-1 and 2 in
    no block: a rest of 2 would be a small cell, so a-1 joins it and the Altstadt is one unit of 8."""
    assert (await monitoring.put("/api/v1/monitoring/reference/districts", json=REFERENCE, headers=ADMIN)).is_success
    assert (await monitoring.put("/api/v1/monitoring/reference/blocks", json=BLOCKS, headers=ADMIN)).is_success
    tag = uuid.uuid4().hex[:8]
    people: list[tuple[str, str, str | None]] = [(f"w1-{i}-{tag}", "Weststadt", "w-1") for i in range(7)]
    people += [(f"w2-{i}-{tag}", "Weststadt", "w-2") for i in range(6)]
    people += [(f"wx-{i}-{tag}", "Weststadt", None) for i in range(5)]
    people += [(f"a1-{i}-{tag}", "Altstadt", "a-1") for i in range(6)] + [
        (f"ax-{i}-{tag}", "Altstadt", None) for i in range(2)
    ]
    await produce(broker.bootstrap_servers, [(str(uuid.uuid4()), registered(*p)) for p in people])

    async def blocks(expected: int) -> dict[str, Any] | None:
        """The table once it counts ``expected`` newcomers in all (events of both districts may arrive in any
        order: they are on different partitions)."""
        reply = await monitoring.get("/api/v1/monitoring/indicators", params={"period": "2026-11"}, headers=ANALYST)
        found = table(reply.json(), "newcomers_by_block")
        rows = {row["label"]: row["cells"] for row in found["rows"]}
        shown = sum(c["newcomers"]["value"] or 0 for c in rows.values())
        return (
            {"rows": rows, "index": table(reply.json(), "dissimilarity_index_by_block")} if shown == expected else None
        )

    first = await eventually(lambda: blocks(26))
    rows = first["rows"]
    newcomers = {label: cells["newcomers"]["value"] for label, cells in rows.items()}
    assert newcomers == {
        "Spöttinger Straße (Weststadt)": 7,
        "Iglinger Straße (Weststadt)": 6,
        "Weststadt, other addresses": 5,
        "Altstadt": 8,
        "Schwaighofsiedlung": 0,
    }
    assert rows["Weststadt, other addresses"]["residents"]["value"] == 6000 - 2000 - 1000
    assert rows["Altstadt"]["residents"]["value"] == 2000
    d = first["index"]["rows"][0]["cells"]["D"]
    assert d["suppressed"] is False and 0 <= d["value"] <= 1

    # One of w-2's six is erased: five stay, still shown; nobody's block outlives their profile.
    await produce(
        broker.bootstrap_servers,
        [(str(uuid.uuid4()), reg.PersonErased(person_id=people[7][0], erased_at="2026-11-20T10:00:00Z"))],
    )
    second = await eventually(lambda: blocks(25))
    assert second["rows"]["Iglinger Straße (Weststadt)"]["newcomers"]["value"] == 5


async def test_the_shipped_blocks_only_with_demo_data(database_url: str, broker: Any) -> None:
    async def blocks(**overrides: Any) -> dict[str, Any]:
        settings = monitoring_settings(database_url, broker.bootstrap_servers, **overrides)
        async with running_app(create_app(settings, clock=ManualClock(NOW))) as client:
            found: dict[str, Any] = (await client.get("/api/v1/monitoring/reference/blocks", headers=ANALYST)).json()
            return found

    assert (await blocks())["blocks"] == [], "nothing made up"
    seeded = await blocks(demo_data=True)
    shipped = json.loads(LANDSBERG_BLOCKS.read_text(encoding="utf-8"))
    assert seeded["illustrative"] is True and seeded["source"] == shipped["source"]
    assert {b["block_id"] for b in seeded["blocks"]} == {b["block_id"] for b in shipped["blocks"]}
