"""The reference-data loader against the real platform: the gateway in front of the real partners (on the
parametrized database), monitoring, courses and referral apps over ASGI, the session's broker between them.

Loading Landsberg's shipped folder makes the partners with their services, the district population and the
courses, and puts the example roster on; referral learns the directory from the partners' events. A second
run writes nothing; after a partner changed its free places and someone renamed an entry, a third run puts
the name back and leaves the places alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.app import create_app as create_gateway
from gateway.auth import add_account
from reference import HERE as REFERENCE
from scripts import load_reference_data
from services.courses.app import create_app as create_courses
from services.monitoring.app import create_app as create_monitoring
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from services.referral.models import PartnerOfferRow
from tests.conftest import (
    behind_gateway,
    courses_settings,
    eventually,
    gateway_settings,
    partners_settings,
    referral_settings,
)
from tests.service.test_monitoring_api import monitoring_settings

LANDSBERG = REFERENCE / "landsberg"
GATEWAY = "https://gateway.test"


class Platform:
    def __init__(self, gateway: Any, apps: dict[str, Any], tmp_path: Path, passwords: dict[str, str]) -> None:
        self.gateway = gateway
        self.apps = apps
        self.tmp_path = tmp_path
        self.passwords = passwords

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.gateway), base_url=GATEWAY, timeout=30)

    async def admin(self) -> dict[str, str]:
        async with self.client() as c:
            password = self.passwords["admin"]
            reply = await c.post("/auth/token", json={"username": "admin", "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def load(self, *args: str) -> int:
        argv = [str(LANDSBERG), "--gateway", GATEWAY, "--roster", str(LANDSBERG / "roster.example.json"), *args]
        return await load_reference_data.main(argv, transport=httpx.ASGITransport(app=self.gateway))

    async def outbox_size(self) -> int:
        runtime = self.apps["partners"].state.runtime
        async with runtime.session_factory() as session:
            return int(await session.scalar(select(func.count()).select_from(runtime.tables.outbox)) or 0)


@pytest.fixture
async def platform(database_url: str, broker: Any, tmp_path: Path) -> AsyncIterator[Platform]:
    bootstrap = broker.bootstrap_servers

    def db(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    # No demo data anywhere: the loader starts from an empty platform, as a new city does.
    apps = {
        "partners": create_partners(partners_settings(database_url, bootstrap)),
        "monitoring": create_monitoring(monitoring_settings(db("monitoring"), bootstrap)),
        "courses": create_courses(courses_settings(db("courses"), bootstrap)),
        "referral": create_referral(referral_settings(db("referral"), bootstrap)),
    }
    # The accounts a new city makes first, the documented way (python -m gateway.auth create-user).
    settings = gateway_settings(tmp_path, rate_limit_per_minute_user=100_000)
    passwords = {
        "admin": add_account(settings.local_users_file, "admin", ["admin"]),
        "lotse": add_account(settings.local_users_file, "lotse", ["caseworker"], team="integration-nord"),
    }
    gateway = create_gateway(settings)
    async with AsyncExitStack() as stack:
        await behind_gateway(stack, gateway, apps)
        yield Platform(gateway, apps, tmp_path, passwords)


def shipped(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((LANDSBERG / name).read_text(encoding="utf-8"))
    return document


async def test_loading_landsbergs_folder_twice_makes_everything_once(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    password_file = platform.tmp_path / "admin.password"
    password_file.write_text(platform.passwords["admin"])
    assert await platform.load("--username", "admin", "--password-file", str(password_file)) == 0
    first = capsys.readouterr().out

    partners, districts, courses = shipped("partners.json"), shipped("districts.json"), shipped("courses.json")
    admin = await platform.admin()
    async with platform.client() as c:
        directory = {p["partner_id"]: p for p in (await c.get("/api/v1/partners?page_size=200")).json()["items"]}
        assert set(directory) == {p["partner_id"] for p in partners["partners"]}
        for entry in partners["partners"]:
            offered = {s["service_type"]: s["free_places"] for s in directory[entry["partner_id"]]["services"]}
            assert offered == {s["service_type"]: s["free_places"] for s in entry["services"]}, entry["partner_id"]
        city = directory["stadt-landsberg-integration"]
        assert city["locations"][0]["address_1"] == "Katharinenstraße 1" and city["alternate_name"] is None
        assert directory["ihk-muenchen-oberbayern"]["alternate_name"] == "IHK FOSA"

        reference = (await c.get("/api/v1/monitoring/reference/districts", headers=admin)).json()
        assert reference["districts"] == districts["districts"] and reference["total"] == 30_038
        assert reference["illustrative"] is True and "not published" in reference["source"]
        blocks = (await c.get("/api/v1/monitoring/reference/blocks", headers=admin)).json()
        ids = sorted(b["block_id"] for b in shipped("blocks.json")["blocks"])
        assert [b["block_id"] for b in blocks["blocks"]] == ids
        assert blocks["illustrative"] is True and "streets" not in blocks["blocks"][0]

        catalogue = (await c.get("/api/v1/courses", params={"provider_id": "vhs-landsberg"})).json()
        assert sorted(course["title"] for course in catalogue["items"]) == sorted(
            course["title"] for course in courses["courses"]
        )
        integration = next(course for course in catalogue["items"] if course["category"] == "integration_course")
        assert len(integration["sessions"]) == 12 and integration["capacity"] == 20
        # Weekly at 08:30 in Landsberg, in winter (UTC+1): 07:30 UTC.
        assert integration["sessions"][0]["starts_at"].startswith("2027-01-11T07:30:00")

        roster = {w["id"]: w for w in (await c.get("/api/v1/caseworkers", headers=admin)).json()}
        assert roster["lotsin.beispiel"]["team"] == "integration-nord" and roster["lotse.beispiel"]["max_cases"] == 45
    assert "partner caritas-landsberg: created" in first and "7 course created" in first
    offers = shipped("meeting_offers.json")["offers"]
    assert f"{len(offers)} meeting offer created" in first
    async with platform.client() as c:
        published = (await c.get("/api/v1/partners/meeting-offers", params={"page_size": 200})).json()["items"]
    assert sorted((o["partner_id"], o["title"]) for o in published) == sorted(
        (o["partner_id"], o["title"]) for o in offers
    )
    assert all("Beispielangebot" in o["description"] for o in published), "examples say they are examples"

    # Referral learns the directory from the partners' events: it routes to the loaded services.
    async def routable() -> bool:
        async with platform.apps["referral"].state.runtime.session_factory() as session:
            offer = await session.get(PartnerOfferRow, ("caritas-landsberg", "migration_counselling"))
            return offer is not None and offer.partner_category == "charity" and offer.free_places == 20

    await eventually(routable)

    # Twice: nothing is written the second time (token from a file this time: as with the city's Keycloak).
    token_file = platform.tmp_path / "admin.token"
    token_file.write_text(admin["Authorization"].removeprefix("Bearer "))
    events_before = await platform.outbox_size()
    assert await platform.load("--token-file", str(token_file)) == 0
    second = capsys.readouterr().out
    assert " created" not in second and " updated" not in second, second
    assert "11 partner unchanged" in second and "7 course unchanged" in second and "2 caseworker unchanged" in second
    assert f"{len(offers)} meeting offer unchanged" in second
    assert await platform.outbox_size() == events_before, "no event: nothing changed"
    async with platform.client() as c:
        again = {p["partner_id"]: p for p in (await c.get("/api/v1/partners?page_size=200")).json()["items"]}
        assert again == directory
        assert (await c.get("/api/v1/courses", params={"provider_id": "vhs-landsberg"})).json()["total"] == 7

    # A partner keeps its free places; an entry renamed in the meantime is put back; the places stay.
    async with platform.client() as c:
        service = "/api/v1/partners/caritas-landsberg/services/migration_counselling"
        assert (await c.put(f"{service}/capacity", json={"free_places": 3}, headers=admin)).status_code == 200
        renamed = await c.patch("/api/v1/partners/caritas-landsberg", json={"name": "Caritas"}, headers=admin)
        assert renamed.status_code == 200, renamed.text
        cafe = next(o for o in published if o["title"] == "Sprachcafé")
        moved = await c.patch(
            f"/api/v1/partners/{cafe['partner_id']}/meeting-offers/{cafe['offer_id']}",
            json={"schedule": "nie", "childcare": True},
            headers=admin,
        )
        assert moved.status_code == 200, moved.text
    assert await platform.load("--token-file", str(token_file)) == 0
    third = capsys.readouterr().out
    assert "partner caritas-landsberg: updated (name)" in third and "10 partner unchanged" in third
    assert "meeting offer stadt-landsberg-integration 'Sprachcafé': updated (schedule, childcare)" in third, third
    async with platform.client() as c:
        caritas = (await c.get("/api/v1/partners/caritas-landsberg")).json()
    assert caritas["name"] == "Caritasverband Landsberg am Lech"
    assert {s["service_type"]: s["free_places"] for s in caritas["services"]}["migration_counselling"] == 3


async def test_refusals_are_reported_and_a_dry_run_writes_nothing(
    platform: Platform, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text((await platform.admin())["Authorization"].removeprefix("Bearer "))
    folder = tmp_path / "city"
    folder.mkdir()
    good = {
        "partner_id": "caritas-kaufering",
        "name": "Caritas Kaufering",
        "category": "charity",
        "languages": ["de"],
        "services": [],
    }
    bad = {"partner_id": "Caritas Kaufering", "name": "Caritas", "category": "church", "languages": ["de"]}
    (folder / "partners.json").write_text(json.dumps({"partners": [good, bad]}))

    argv = [str(folder), "--gateway", GATEWAY, "--token-file", str(token_file)]
    transport = httpx.ASGITransport(app=platform.gateway)
    assert await load_reference_data.main([*argv, "--dry-run"], transport=transport) == 0
    assert "dry run, nothing written" in capsys.readouterr().out
    async with platform.client() as c:
        assert (await c.get("/api/v1/partners")).json()["total"] == 0

    assert await load_reference_data.main(argv, transport=transport) == 1, "a refusal fails the run"
    out = capsys.readouterr().out
    assert "partner caritas-kaufering: created" in out
    assert "partner Caritas Kaufering: refused (422" in out and "category" in out
    # Not an admin: everything is refused, nothing is made.
    async with platform.client() as c:
        lotse = platform.passwords["lotse"]
        reply = await c.post("/auth/token", json={"username": "lotse", "password": lotse})
    token_file.write_text(reply.json()["access_token"])
    (folder / "partners.json").write_text(json.dumps({"partners": [{**good, "partner_id": "vhs-kaufering"}]}))
    assert await load_reference_data.main(argv, transport=transport) == 1
    assert "refused (403" in capsys.readouterr().out
    assert (
        await load_reference_data.main(
            [str(tmp_path / "nowhere"), "--gateway", GATEWAY, "--token-file", str(token_file)]
        )
        == 2
    )
    # A gateway that does not answer stops the run at once, saying so (not one refusal per object).
    assert (
        await load_reference_data.main(
            [str(folder), "--gateway", "http://127.0.0.1:1", "--token-file", str(token_file)]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "does not answer" in captured.err and captured.out == ""
