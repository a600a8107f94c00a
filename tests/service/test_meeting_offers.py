"""Meeting offers (Begegnung) in the partners service, on a real database: published by a partner or the city,
found by newcomers without signing in (filtered by language, kind, audience), kept by their partner alone (and
an admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.partners.app import create_app
from tests.conftest import partners_settings, running_app

CITY = {"X-Partner-Id": "stadt-landsberg-integration"}
CARITAS = {"X-Partner-Id": "caritas-landsberg"}
ADMIN = {"X-Role": "admin"}
CAFE: dict[str, Any] = {
    "kind": "language_cafe",
    "title": "Sprachcafé Weststadt",
    "languages": ["de", "uk-UA"],
    "audience": "everyone",
    "schedule": "jeden Montag, 18 bis 20 Uhr",
    "place_name": "Stadtteiltreff",
    "district": "Weststadt",
}


@pytest.fixture
async def partners(database_url: str, broker: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(partners_settings(database_url, broker.bootstrap_servers, demo_data=True))
    async with running_app(app) as client:
        yield client


def titles(reply: httpx.Response) -> set[str]:
    assert reply.status_code == 200, reply.text
    return {o["title"] for o in reply.json()["items"]}


async def test_a_partner_publishes_and_keeps_its_own_offers_only(partners: httpx.AsyncClient) -> None:
    made = await partners.post("/api/v1/partners/stadt-landsberg-integration/meeting-offers", json=CAFE, headers=CITY)
    assert made.status_code == 201, made.text
    offer = made.json()
    assert offer["partner_name"] == "Stadt Landsberg am Lech: Integrationsstelle" and offer["audience"] == "everyone"
    own = f"/api/v1/partners/stadt-landsberg-integration/meeting-offers/{offer['offer_id']}"

    # Another partner can neither publish in the city's name nor touch the city's offer, under either partner id.
    assert (
        await partners.post("/api/v1/partners/stadt-landsberg-integration/meeting-offers", json=CAFE, headers=CARITAS)
    ).status_code == 403
    assert (await partners.patch(own, json={"title": "Übernommen"}, headers=CARITAS)).status_code == 403
    assert (await partners.delete(own, headers=CARITAS)).status_code == 403
    theirs = f"/api/v1/partners/caritas-landsberg/meeting-offers/{offer['offer_id']}"
    assert (await partners.patch(theirs, json={"title": "Übernommen"}, headers=CARITAS)).status_code == 404
    assert (await partners.delete(theirs, headers=CARITAS)).status_code == 404
    assert (
        await partners.post("/api/v1/partners/stadt-landsberg-integration/meeting-offers", json=CAFE)
    ).status_code == 401

    # The partner itself changes it; an admin changes any partner's.
    changed = await partners.patch(own, json={"schedule": "jeden Montag, 17 bis 19 Uhr"}, headers=CITY)
    assert changed.status_code == 200 and changed.json()["schedule"] == "jeden Montag, 17 bis 19 Uhr"
    by_admin = await partners.patch(own, json={"audience": "women", "childcare": True}, headers=ADMIN)
    assert by_admin.status_code == 200 and by_admin.json()["audience"] == "women" and by_admin.json()["childcare"]
    bad = await partners.patch(own, json={"kind": "disco"}, headers=CITY)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert (await partners.patch(own, json={"title": None}, headers=CITY)).status_code == 422

    listed = await partners.get("/api/v1/partners/meeting-offers", params={"kind": "language_cafe"})
    assert "Sprachcafé Weststadt" in titles(listed)
    assert (await partners.delete(own, headers=CITY)).status_code == 204
    assert "Sprachcafé Weststadt" not in titles(await partners.get("/api/v1/partners/meeting-offers"))
    assert (await partners.patch(own, json={"title": "wieder"}, headers=CITY)).status_code == 404


async def test_newcomers_find_offers_by_language_kind_and_audience(partners: httpx.AsyncClient) -> None:
    reply = await partners.post(
        "/api/v1/partners/caritas-landsberg/meeting-offers",
        headers=CARITAS,
        json={**CAFE, "title": "Ukrainischer Frauentreff", "kind": "womens_group", "audience": "women"},
    )
    assert reply.status_code == 201, reply.text
    everything = await partners.get("/api/v1/partners/meeting-offers")
    seeded = titles(everything)
    assert {"Sprachcafé", "Frauentreff", "Ukrainischer Frauentreff"} <= seeded
    for item in everything.json()["items"]:  # a public notice: places and times, no people
        assert set(item) >= {"partner_name", "place_name", "languages", "schedule"}
    # "uk" finds the offer held in uk-UA; a language nobody offers finds nothing.
    assert "Ukrainischer Frauentreff" in titles(
        await partners.get("/api/v1/partners/meeting-offers", params={"language": "uk"})
    )
    assert "Frauentreff" not in titles(await partners.get("/api/v1/partners/meeting-offers", params={"language": "uk"}))
    assert titles(await partners.get("/api/v1/partners/meeting-offers", params={"language": "ro"})) == {
        "Elterncafé in der Grundschule"
    }
    assert titles(await partners.get("/api/v1/partners/meeting-offers", params={"language": "ku"})) == set()
    women = titles(await partners.get("/api/v1/partners/meeting-offers", params={"audience": "women"}))
    assert women == {"Frauentreff", "Frauen-Schwimmkurs", "Ukrainischer Frauentreff"}
    # Childcare and the Ortsteil narrow further; without childcare is a filter too.
    cared = titles(
        await partners.get("/api/v1/partners/meeting-offers", params={"audience": "women", "childcare": "true"})
    )
    assert cared == {"Frauentreff", "Frauen-Schwimmkurs"}
    west = titles(
        await partners.get("/api/v1/partners/meeting-offers", params={"district": "Weststadt", "childcare": "false"})
    )
    assert west == {"Ukrainischer Frauentreff", "Jugendtreff international"}
    for bad in ({"childcare": "vielleicht"}, {"district": "<script>"}, {"language": "deutsch!"}):
        refused = await partners.get("/api/v1/partners/meeting-offers", params=bad)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"] == "application/problem+json"
    cafes = titles(
        await partners.get("/api/v1/partners/meeting-offers", params={"kind": "language_cafe", "language": "ar"})
    )
    assert cafes == {"Sprachcafé"}
    wrong = await partners.get("/api/v1/partners/meeting-offers", params={"kind": "disco"})
    assert wrong.status_code == 422 and wrong.headers["content-type"] == "application/problem+json"
    own = await partners.get("/api/v1/partners/caritas-landsberg/meeting-offers", headers=CARITAS)
    assert [o["title"] for o in own.json()] == [  # the seeded examples of Caritas, and its new one
        "Interkultureller Treffpunkt",
        "Frauen-Schwimmkurs",
        "Ukrainischer Frauentreff",
    ]
    assert (await partners.get("/api/v1/partners/caritas-landsberg/meeting-offers", headers=CITY)).status_code == 403
    reserved = {"partner_id": "meeting-offers", "name": "Begegnung", "category": "volunteer_group", "languages": ["de"]}
    assert (await partners.post("/api/v1/partners", json=reserved, headers=ADMIN)).status_code == 422


async def test_newcomers_find_partners_by_district_and_language(partners: httpx.AsyncClient) -> None:
    """The directory's public filters: the Ortsteil of one of the partner's places, a language by its primary
    subtag; a malformed value is a Problem, not an empty page."""
    place = {"name": "Beratungsstelle", "city": "Landsberg am Lech", "district": "Weststadt"}
    moved = await partners.patch("/api/v1/partners/caritas-landsberg", headers=CARITAS, json={"locations": [place]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["locations"][0]["district"] == "Weststadt"
    found = await partners.get("/api/v1/partners", params={"district": "Weststadt"})
    assert [p["partner_id"] for p in found.json()["items"]] == ["caritas-landsberg"]
    farsi = {
        p["partner_id"] for p in (await partners.get("/api/v1/partners", params={"language": "fa-IR"})).json()["items"]
    }
    assert "caritas-landsberg" in farsi and "vhs-landsberg" not in farsi
    for bad in ({"district": "1234"}, {"language": "farsi please"}):
        refused = await partners.get("/api/v1/partners", params=bad)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json", bad
    wrong_place = await partners.patch(
        "/api/v1/partners/caritas-landsberg", headers=CARITAS, json={"locations": [{**place, "district": "<b>"}]}
    )
    assert wrong_place.status_code == 422
