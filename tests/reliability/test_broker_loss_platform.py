"""Registration, referral and monitoring on a broker that is killed mid-flow and started again empty.

People are registered before and after the broker dies (SIGKILL) and comes back empty on the same port: the
registration service publishes again what the broker lost, the referral service and monitoring rejoin and read
it, their inboxes skip what they had. Every person then has exactly one case, monitoring counts every person
once, and a monitoring rebuild (a fresh consumer group from the start of every topic) counts all of them too,
not only those registered since the restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from chassis.embedded_broker import EmbeddedBroker
from services.monitoring.app import create_app as create_monitoring
from services.monitoring.models import Person
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    ManualClock,
    eventually,
    newcomer,
    referral_settings,
    registration_settings,
    running_app,
)
from tests.service.test_monitoring_api import ADMIN, monitoring_settings

BEFORE, AFTER = 6, 6
#: Consumers as in a deployment (a group of their own from the earliest offsets); the broker checked every second.
CHECK = {"kafka_broker_check_seconds": 1.0}
EARLIEST = {"kafka_consumer_offset_reset": "earliest", **CHECK}


async def cases_of(referral: httpx.AsyncClient, person: str) -> int:
    reply = await referral.get("/api/v1/cases", params={"person_id": person})
    assert reply.status_code == 200, reply.text
    total: int = reply.json()["total"]
    return total


async def monitored_persons(app: Any) -> int:
    async with app.state.runtime.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Person)) or 0)


async def register(registration: httpx.AsyncClient) -> str:
    reply = await registration.post("/api/v1/registrations", json=newcomer())
    assert reply.status_code == 201, reply.text
    person: str = reply.json()["person_id"]
    return person


async def test_every_person_has_one_case_after_the_broker_forgot(database_url: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    bootstrap = broker.bootstrap_servers
    registration_app = create_registration(registration_settings(database_url, bootstrap, **CHECK))
    referral_app = create_referral(
        referral_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}",
            bootstrap,
            kafka_consumer_offset_reset="earliest",
            **CHECK,
        ),
        clock=ManualClock(),
    )
    monitoring_app = create_monitoring(
        monitoring_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}",
            bootstrap,
            kafka_consumer_offset_reset="earliest",
            **CHECK,
        )
    )
    try:
        async with (
            running_app(registration_app) as registration,
            running_app(referral_app) as referral,
            running_app(monitoring_app) as monitoring,
        ):
            people = [await register(registration) for _ in range(BEFORE)]
            await eventually(lambda: cases_of(referral, people[0]), timeout_s=30, interval_s=0.05)
            # Mid-flow: some of these events are published, some perhaps consumed, when the broker dies.
            broker.kill()
            broker.start()  # same port, empty
            people += [await register(registration) for _ in range(AFTER)]

            async def everyone_has_a_case() -> bool:
                counts = await asyncio.gather(*(cases_of(referral, person) for person in people))
                return all(count >= 1 for count in counts)

            await eventually(everyone_has_a_case, timeout_s=60, interval_s=0.1)
            await eventually(lambda: counted_all(monitoring_app, len(people)), timeout_s=30, interval_s=0.1)
            cases = [await cases_of(referral, person) for person in people]
            monitored = await monitored_persons(monitoring_app)
            relay = registration_app.state.runtime.relay

            # A rebuilt read model sees the whole history, not only what was registered since the restart.
            reply = await monitoring.post("/api/v1/monitoring/rebuild", headers=ADMIN)
            assert reply.status_code == 202, reply.text
            await eventually(lambda: counted_all(monitoring_app, len(people)), timeout_s=60, interval_s=0.1)
            rebuilt = await monitored_persons(monitoring_app)
    finally:
        broker.stop()

    print(
        f"\nregistered {len(people)} ({BEFORE} before the broker was killed), cases {sum(cases)}, "
        f"persons without a case {cases.count(0)}, with more than one {sum(1 for c in cases if c > 1)}; "
        f"monitoring persons {monitored}, after a rebuild {rebuilt}; "
        f"registration republished {relay.republished_total} events"
    )
    assert cases == [1] * len(people), "every person exactly one case"
    assert monitored == rebuilt == len(people)
    assert relay.republished_total >= 1


async def counted_all(app: Any, expected: int) -> bool:
    return await monitored_persons(app) >= expected
