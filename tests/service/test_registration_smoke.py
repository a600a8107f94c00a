from __future__ import annotations

import httpx

from tests.conftest import newcomer


async def test_register_answers_201_with_person_and_info_pack(registration: httpx.AsyncClient) -> None:
    reply = await registration.post("/api/v1/registrations", json=newcomer(preferred_language="uk", languages=["uk"]))
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["info_pack"] == {"lang": "uk", "url": "/api/v1/info-packs/uk"}
    assert reply.headers["location"] == f"/api/v1/persons/{body['person_id']}"
