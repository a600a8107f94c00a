"""Registration gives an address its residential block (Baublock) and publishes only the block id: at registration
and at an address change, on a real database and broker, with the shipped Landsberg reference."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select

from chassis.embedded_broker import EmbeddedBroker
from services.registration.app import create_app
from services.registration.models import messaging
from tests.conftest import newcomer, registration_settings, running_app
from tests.service.test_registration_api import read, register


async def published(client: httpx.AsyncClient, person_id: str) -> list[dict[str, Any]]:
    """The person's events as the outbox holds them (what goes onto the topic), oldest first."""
    outbox = messaging.outbox
    async with client.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        rows = (
            await session.execute(
                select(outbox.c.event_type, outbox.c.data)
                .where(outbox.c.partition_key == person_id)
                .order_by(outbox.c.id)
            )
        ).all()
    return [{"type": row.event_type, **json.loads(row.data)} for row in rows]


async def test_the_block_id_and_never_the_address_goes_into_the_events(registration: httpx.AsyncClient) -> None:
    # The default newcomer lives at Schwaighofstraße 12, Schwaighofsiedlung: the block "schwaighof-ost".
    person_id = (await register(registration))["person_id"]
    (registered,) = await published(registration, person_id)
    assert registered["type"].endswith("person_registered.v1")
    assert (registered["district"], registered["block_id"]) == ("Schwaighofsiedlung", "schwaighof-ost")
    text = json.dumps(registered)
    assert "Schwaighofstraße" not in text and "street" not in text and "house_number" not in text

    url = f"/api/v1/persons/{person_id}"
    moves = [
        ({"street": "Iglinger Str.", "house_number": "15b", "district": "Weststadt"}, "weststadt-iglinger-ungerade"),
        ({"street": "Iglinger Straße", "house_number": "16", "district": "Weststadt"}, "weststadt-iglinger-gerade"),
        ({"street": "Am Wiesenweg", "house_number": "3", "district": "Weststadt"}, None),  # in no block
    ]
    for address, block in moves:
        _, etag = await read(registration, person_id)
        body = {"address": {**address, "postal_code": "86899"}}
        reply = await registration.patch(url, json=body, headers={"If-Match": etag})
        assert reply.status_code == 200, reply.text
        updated = (await published(registration, person_id))[-1]
        assert updated["type"].endswith("person_updated.v1")
        assert updated["block_id"] == block
        assert address["street"] not in json.dumps(updated)


async def test_without_a_block_reference_no_block_is_published(database_url: str, broker: EmbeddedBroker) -> None:
    app = create_app(registration_settings(database_url, broker.bootstrap_servers, blocks_file=""))
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        reply = await client.post("/api/v1/registrations", json=newcomer())
        assert reply.status_code == 201, reply.text
        (registered,) = await published(client, reply.json()["person_id"])
        assert registered["block_id"] is None and registered["district"] == "Schwaighofsiedlung"
