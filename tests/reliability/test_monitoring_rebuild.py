"""The monitoring read model rebuilt from the topics gives the same figures as the one built incrementally.

A broker of its own (real Tansu), so that "from the start" means exactly the events of this test. Events
arrive in an order unlike the one a replay reads them in (enrolments and referrals before the registrations
they refer to, duplicates, an erasure), then the read model is wiped and every topic replayed with a fresh
consumer group from "earliest".
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from chassis.embedded_broker import EmbeddedBroker
from services.monitoring.app import create_app
from services.monitoring.models import EnrolmentFact, Person, ReferralFact
from tests.conftest import ManualClock, eventually, running_app
from tests.service.test_monitoring_api import ADMIN, ANALYST, NOW, REFERENCE, monitoring_settings, produce, scenario


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


async def figures(client: httpx.AsyncClient) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for period in ("2026-10", "2026-11", "2026-Q4", "2026"):
        reply = await client.get("/api/v1/monitoring/indicators", params={"period": period}, headers=ANALYST)
        assert reply.status_code == 200
        found[period] = reply.json()
    found["planning"] = (await client.get("/api/v1/monitoring/planning", headers=ANALYST)).json()
    for fmt in ("csv", "html"):
        params = {"period": "2026-11", "format": fmt}
        found[fmt] = (await client.get("/api/v1/monitoring/report", params=params, headers=ANALYST)).text
    return found


async def row_counts(app: Any) -> list[int]:
    counts = []
    async with app.state.runtime.session_factory() as session:
        for model in (Person, ReferralFact, EnrolmentFact):
            counts.append(int(await session.scalar(select(func.count()).select_from(model)) or 0))
    return counts


async def caught_up(app: Any, expected: int) -> bool:
    consumer = app.state.runtime.consumer
    return consumer is not None and consumer.handled_total == expected


async def test_rebuilt_read_model_gives_the_same_figures(
    database_url: str, own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    bootstrap = own_broker.bootstrap_servers
    app = create_app(monitoring_settings(database_url, bootstrap), clock=ManualClock(NOW))
    events = scenario() + scenario()
    registrations = [e for e in events if e[1].topic == "registration.persons.v1"]
    others = [e for e in events if e[1].topic != "registration.persons.v1"]
    random.Random(7).shuffle(others)
    async with running_app(app) as client:
        assert (await client.put("/api/v1/monitoring/reference/districts", json=REFERENCE, headers=ANALYST)).is_success
        # Courses, enrolments and referrals first (with some twice), the registrations they refer to after.
        await produce(bootstrap, others[:20] + others[:5] + others[20:])
        await produce(bootstrap, registrations + registrations[:3])
        await eventually(lambda: caught_up(app, len(events)))
        incremental, incremental_rows = await figures(client), await row_counts(app)
        first_group = app.state.runtime.consumer.group_id

        reply = await client.post("/api/v1/monitoring/rebuild", headers=ADMIN)
        assert reply.status_code == 202
        group = reply.json()["consumer_group"]
        assert group != first_group and app.state.runtime.consumer.group_id == group
        # A fresh consumer handles every event again from the wiped read model (duplicates still count once).
        await eventually(lambda: caught_up(app, len(events)))
        rebuilt, rebuilt_rows = await figures(client), await row_counts(app)

    assert rebuilt_rows == incremental_rows
    assert rebuilt == incremental
    # Not a trivial sameness: the figures hold the seeded events (two scenarios of 20 registrations, 2 erased).
    nationality = next(
        t for g in rebuilt["2026-11"]["groups"] for t in g["indicators"] if t["id"] == "registrations_by_nationality"
    )
    assert nationality["column_totals"]["count"]["value"] == 38
    assert "<svg" in rebuilt["html"]

    # A restart continues with the rebuilt group (kept in the database), not the configured one.
    again = create_app(monitoring_settings(database_url, bootstrap), clock=ManualClock(NOW))
    async with running_app(again) as client:
        assert again.state.runtime.consumer.group_id == group
        assert await figures(client) == incremental
