"""With the broker stopped, registrations still succeed; once it is back, every event arrives, in order per
person (the transactional outbox on the real broker). The broker comes back empty (memory only): the event it had
before the outage is published again from the outbox.

Delivery is at least once: a batch the relay sent while the broker was away can reach the restarted broker before
the relay has asked it whether it is the broker it knew; the relay then publishes that row again with the lost
ones (seen once in CI, 2026-12-08). A copy keeps its ce_id, so every consumer's inbox skips it; Tansu refuses the
idempotent producer that would drop it at the broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from chassis.embedded_broker import EmbeddedBroker
from contracts.registration import PERSONS_TOPIC
from services.registration.app import create_app
from tests.conftest import consume, eventually, newcomer, registration_settings, running_app

PERSONS = 5
TYPES = [
    "de.landsberg.integration.registration.person_registered.v1",
    "de.landsberg.integration.registration.needs_assessed.v1",
    "de.landsberg.integration.registration.consent_given.v1",
]


def events_in(records: list[Any]) -> set[bytes]:
    """The events among the records: their ce_ids (a copy has its event's)."""
    return {dict(r.headers)["ce_id"] for r in records}


async def no_backlog(relay: Any) -> bool:
    return bool(await relay.count_backlog() == 0)


async def test_registrations_survive_a_broker_outage(database_url: str, tmp_path: Any) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        # Tansu keeps nothing across a restart, and a producer reconnecting first auto-creates the
        # topic with 4 partitions. Kafka in production keeps its topics; here the topic gets the
        # same 4 partitions whoever creates it, so that a key maps to one partition throughout.
        settings = registration_settings(database_url, broker.bootstrap_servers, kafka_topic_partitions=4)
        app = create_app(settings)
        async with running_app(app) as client:
            relay = app.state.runtime.relay
            # One event before the outage, so that the relay holds a live producer when the broker dies.
            first = await client.post("/api/v1/registrations", json=newcomer())
            assert first.status_code == 201
            while await relay.count_backlog():
                await asyncio.sleep(0.05)
            broker.stop()

            people = []
            for _ in range(PERSONS):
                reply = await client.post("/api/v1/registrations", json=newcomer())
                assert reply.status_code == 201, reply.text
                person = reply.json()["person_id"]
                needs = {"german_level": "A1", "schooling": "secondary", "employment_situation": "job_seeking"}
                assert (await client.post(f"/api/v1/persons/{person}/needs-assessments", json=needs)).status_code == 201
                consent = {"partner_category": "charity", "purpose": "counselling"}
                assert (await client.post(f"/api/v1/persons/{person}/consents", json=consent)).status_code == 201
                people.append(person)
            assert await relay.count_backlog() == 3 * PERSONS, "the events wait in the outbox"
            # Ready all the same (it serves, the outbox holds the work), with the broker's state in the body.
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["broker"] == "unavailable"
            assert ready.json()["checks"]["outbox_backlog"] == 3 * PERSONS

            await asyncio.sleep(1)  # let the relay fail at least once against the stopped broker
            broker.start()  # same port; Tansu starts empty (memory only), the relay re-creates the topics

            records = await consume(
                broker.bootstrap_servers,
                PERSONS_TOPIC,
                until=lambda rs: len(events_in(rs)) >= 3 * PERSONS + 1,
                timeout_s=90,
            )
            # The relay marks rows published once the broker acknowledged them: a reader may see them first.
            await eventually(lambda: no_backlog(relay), timeout_s=10, interval_s=0.05)
    finally:
        broker.stop()

    # Every event, each under its own ce_id; a second record with a ce_id is a copy of the same event (key, type,
    # data), which the consumers' inboxes skip.
    first_of: dict[bytes, Any] = {}
    by_person: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        headers = dict(record.headers)
        seen = first_of.setdefault(headers["ce_id"], record)
        if seen is not record:
            copy = (record.key, headers["ce_type"], record.value)
            assert (seen.key, dict(seen.headers)["ce_type"], seen.value) == copy, "a copy of the same event"
            continue
        by_person[record.key.decode()].append(headers["ce_type"].decode())
    assert len(first_of) == 3 * PERSONS + 1, "every event"
    assert set(by_person) == {*people, first.json()["person_id"]}
    assert by_person[first.json()["person_id"]] == TYPES[:1], "the event the broker lost, published again"
    for person in people:
        assert by_person[person] == TYPES, f"events of {person} out of order"
