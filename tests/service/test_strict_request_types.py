"""Request models take a date only as a date (issue 12): a number is refused, not read as seconds since 1970."""

from __future__ import annotations

import httpx

from tests.conftest import newcomer


async def test_a_number_for_a_birth_date_is_refused_and_nothing_is_stored(registration: httpx.AsyncClient) -> None:
    body = newcomer(birth_date=631152000)  # 1990-01-01 in seconds, which lax parsing used to accept
    reply = await registration.post("/api/v1/registrations", json=body, headers={"X-Role": "registrar"})
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    [error] = reply.json()["errors"]
    assert error["location"] == ["body", "birth_date"]
    assert "ISO 8601" in error["message"]
    persons = await registration.get("/api/v1/persons", headers={"X-Role": "registrar"})
    assert persons.json()["total"] == 0

    accepted = await registration.post(
        "/api/v1/registrations", json=newcomer(birth_date="1990-01-01"), headers={"X-Role": "registrar"}
    )
    assert accepted.status_code == 201, accepted.text
