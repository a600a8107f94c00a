"""A database that goes away for a while delays events and loses none of them (issue 13's first loss).

Before, a consumer retried a failing handler three times within a third of a second and then dead-lettered the
event: a database failover of ten seconds sent every event of that window to the DLQ. Now a failure while the
database does not answer is the infrastructure's, retried with back-off for as long as it lasts.

The outage is made the way a failover looks to a client, on the shared server and without restarting it: the
test's database refuses new connections and its open sessions are terminated.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chassis.kafka import dlq_topic
from tests.conftest import consume, fresh_postgres_database
from tests.reliability.test_consumer_delivery import Harness, produce

EVENTS = 20


@pytest.fixture
async def postgres_database(postgres_server: str | None) -> AsyncIterator[tuple[str, str]]:
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    async with fresh_postgres_database(postgres_server) as database:
        yield database


async def database_away(server: str, name: str, away: bool) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if away else "true"}')
        if away:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await admin.close()


async def test_events_of_a_database_outage_are_handled_once_it_is_back_and_none_is_dead_lettered(
    postgres_database: tuple[str, str], postgres_server: str, broker: Any
) -> None:
    url, name = postgres_database
    harness = Harness(url, broker.bootstrap_servers, f"test.outage-{uuid.uuid4().hex[:8]}.v1")
    async with harness.running():
        await asyncio.wait_for(harness.consumer.assigned.wait(), 30)
        await produce(broker.bootstrap_servers, harness.topic, key="k0", data={"person_id": "before"})
        await harness.wait_for("before")

        await database_away(postgres_server, name, away=True)
        people = [f"during-{i}" for i in range(EVENTS)]
        for i, person in enumerate(people):
            await produce(broker.bootstrap_servers, harness.topic, key=f"k{i}", data={"person_id": person})
        # Wait until the consumer has met the outage more often than its bounded retries allow for a bad event:
        # before, every one of these events would now be in the DLQ.
        deadline = asyncio.get_running_loop().time() + 30
        while harness.consumer.infrastructure_failures_total <= harness.settings.kafka_consumer_max_retries + 1:
            assert asyncio.get_running_loop().time() < deadline, "the consumer never met the outage"
            await asyncio.sleep(0.05)
        assert harness.consumer.waiting_since is not None
        assert harness.consumer.waiting_reason

        await database_away(postgres_server, name, away=False)
        for person in people:
            await harness.wait_for(person, timeout_s=30)
        print(
            f"\noutage: {EVENTS} events produced while the database was away, "
            f"{harness.consumer.infrastructure_failures_total} infrastructure failures waited out, "
            f"{harness.consumer.dead_lettered_total} dead-lettered"
        )
        assert all([await harness.times(person) == 1 for person in people]), "each event has exactly one effect"
        assert harness.consumer.dead_lettered_total == 0
        assert harness.consumer.waiting_since is None, "flowing again"
        dead = await consume(broker.bootstrap_servers, dlq_topic(harness.topic), until=lambda rs: False, timeout_s=1)
        assert dead == []
