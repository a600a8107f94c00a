"""The partners service on a real database and the real broker: the public directory without personal
data, capacity events, object-level checks, API keys that cannot be read back, webhook URL safety."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from contracts.partners import PARTNERS_TOPIC, PartnerCapacityChanged
from services.partners.app import create_app
from services.partners.models import ApiKey
from tests.conftest import ManualClock, consume, partners_settings, running_app

SEEDED = {
    "caritas-landsberg",
    "jmd-landsberg",
    "vhs-landsberg",
    "jobcenter-landsberg",
    "ihk-muenchen-oberbayern",
    "stadt-landsberg-integration",
    "landratsamt-landsberg",
    "iq-netzwerk-bayern",
    "eures-deutschland",
    "beispiel-berufssprachkurs",
    "beispiel-rueckkehrberatung",
}
VHS = {"X-Partner-Id": "vhs-landsberg"}
REFERRAL_SENT = "de.landsberg.integration.referral.referral_sent.v1"


@pytest.fixture
def partners_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def partners(database_url: str, broker: Any, partners_clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """The real partners app (private webhook addresses refused, as in production); ``client.app`` is the app."""
    app = create_app(partners_settings(database_url, broker.bootstrap_servers, demo_data=True), clock=partners_clock)
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def is_problem(reply: httpx.Response, status: int) -> bool:
    return reply.status_code == status and reply.headers["content-type"] == "application/problem+json"


async def test_without_demo_data_the_directory_starts_empty(database_url: str, broker: Any) -> None:
    async with running_app(create_app(partners_settings(database_url, broker.bootstrap_servers))) as partners:
        assert (await partners.get("/api/v1/partners")).json()["total"] == 0


async def test_the_public_directory_and_its_hsds_export_carry_no_personal_data_or_secrets(
    partners: httpx.AsyncClient,
) -> None:
    key = (
        await partners.post(
            "/api/v1/partners/vhs-landsberg/api-keys", headers=VHS, json={"name": "CRM", "scopes": ["referrals:read"]}
        )
    ).json()["key"]
    hook = await partners.post(
        "/api/v1/partners/vhs-landsberg/webhooks",
        headers=VHS,
        json={"url": "https://93.184.215.14/private-hook-path", "event_types": [REFERRAL_SENT]},
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]

    listing = await partners.get("/api/v1/partners", params={"page_size": 200})
    assert listing.status_code == 200
    assert {p["partner_id"] for p in listing.json()["items"]} == SEEDED
    courses = (await partners.get("/api/v1/partners", params={"service_type": "integration_course"})).json()
    assert [p["partner_id"] for p in courses["items"]] == ["vhs-landsberg"]
    vhs = (await partners.get("/api/v1/partners/vhs-landsberg")).json()
    assert {s["service_type"]: s["free_places"] for s in vhs["services"]} == {
        "integration_course": 40,
        "course_with_childcare": 10,
    }
    city = (await partners.get("/api/v1/partners/stadt-landsberg-integration")).json()
    assert city["locations"][0]["address_1"] == "Katharinenstraße 1"
    assert is_problem(await partners.get("/api/v1/partners/nobody-here"), 404)

    export = await partners.get("/api/v1/partners/export/hsds")
    assert export.status_code == 200
    organizations = export.json()["organizations"]
    assert len(organizations) == len(SEEDED)
    vhs_org = next(o for o in organizations if o["identifiers"][0]["identifier"] == "vhs-landsberg")
    course = next(s for s in vhs_org["services"] if s["attributes"][0]["value"] == "integration_course")
    assert course["capacities"][0]["available"] == 40
    assert {"code": "de"} in vhs_org["languages"]
    assert uuid.UUID(vhs_org["id"]) and course["organization_id"] == vhs_org["id"]

    for reply in (listing, export):
        text = reply.text
        for leaked in (key, key.split("_")[1], secret, "whsec_", "lip_", "private-hook-path", "key_hash"):
            assert leaked not in text, leaked
    # Contact points are functional: the model has no place for a person's name.
    contact_fields = {field for o in organizations for c in o["contacts"] for field in c}
    assert contact_fields <= {"id", "title", "department", "email", "phones"}


async def test_a_capacity_update_publishes_partner_capacity_changed_and_only_the_partner_may_make_it(
    partners: httpx.AsyncClient, broker: Any
) -> None:
    places = random.randint(100, 99_999)  # unique enough to find this test's event on the shared topic
    path = "/api/v1/partners/vhs-landsberg/services/integration_course/capacity"
    reply = await partners.put(path, headers=VHS, json={"free_places": places})
    assert reply.status_code == 200, reply.text
    assert reply.json()["free_places"] == places

    def mine(records: list[Any]) -> list[Any]:
        return [
            r
            for r in records
            if r.key == b"vhs-landsberg"
            and dict(r.headers)["ce_type"] == PartnerCapacityChanged.event_type.encode()
            and PartnerCapacityChanged.model_validate_json(r.value).free_places == places
        ]

    records = mine(await consume(broker.bootstrap_servers, PARTNERS_TOPIC, until=lambda rs: bool(mine(rs))))
    assert len(records) == 1
    event = PartnerCapacityChanged.model_validate_json(records[0].value)
    assert (event.partner_id, event.service_type.value) == ("vhs-landsberg", "integration_course")

    # Another partner, no identity, a service not offered, bad input: Problem Details, nothing changes.
    assert is_problem(
        await partners.put(path, headers={"X-Partner-Id": "jobcenter-landsberg"}, json={"free_places": 0}), 403
    )
    assert is_problem(await partners.put(path, json={"free_places": 0}), 401)
    not_offered = "/api/v1/partners/vhs-landsberg/services/job_placement/capacity"
    assert is_problem(await partners.put(not_offered, headers=VHS, json={"free_places": 3}), 404)
    assert is_problem(await partners.put(path, headers=VHS, json={"free_places": -1}), 422)
    assert is_problem(await partners.put(path, headers=VHS, json={"free_places": 3, "extra": 1}), 422)
    vhs = (await partners.get("/api/v1/partners/vhs-landsberg")).json()
    assert {s["service_type"]: s["free_places"] for s in vhs["services"]}["integration_course"] == places


async def test_api_keys_are_shown_once_stored_only_hashed_and_refused_once_revoked_or_expired(
    partners: httpx.AsyncClient, partners_clock: ManualClock
) -> None:
    base = "/api/v1/partners/vhs-landsberg/api-keys"
    created = await partners.post(base, headers=VHS, json={"name": "CRM sync", "scopes": ["referrals:read"]})
    assert created.status_code == 201, created.text
    key, key_id, prefix = created.json()["key"], created.json()["key_id"], created.json()["prefix"]
    assert key.startswith(f"lip_{prefix}_")
    secret_part = key.split("_", 2)[2]

    listed = (await partners.get(base, headers=VHS)).json()
    assert [k["key_id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert key not in (await partners.get(base, headers=VHS)).text
    assert is_problem(await partners.get(base, headers={"X-Partner-Id": "caritas-landsberg"}), 403)

    # The database row holds no key: scan every column.
    async with partners.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        row = (await session.execute(select(ApiKey.__table__).where(ApiKey.id == key_id))).one()
    for value in row:
        assert key not in str(value) and secret_part not in str(value), value

    verified = await partners.post("/internal/api-keys/verify", json={"key": key})
    assert verified.status_code == 200, verified.text
    assert verified.json()["partner_id"] == "vhs-landsberg" and verified.json()["scopes"] == ["referrals:read"]
    assert (await partners.get(base, headers=VHS)).json()[0]["last_used_at"] is not None
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "lip_000000000000_" + "x" * 43, "not a key", ""):
        assert is_problem(await partners.post("/internal/api-keys/verify", json={"key": wrong}), 401 if wrong else 422)

    assert (await partners.delete(f"{base}/{key_id}", headers=VHS)).status_code == 204
    assert is_problem(await partners.post("/internal/api-keys/verify", json={"key": key}), 401), "refused at once"
    assert (await partners.get(base, headers=VHS)).json()[0]["revoked_at"] is not None
    assert is_problem(await partners.delete(f"{base}/{key_id}", headers={"X-Partner-Id": "jmd-landsberg"}), 403)

    expiring = (
        await partners.post(
            base,
            headers=VHS,
            json={
                "name": "short-lived",
                "scopes": ["capacity:write"],
                "expires_at": (partners_clock() + timedelta(hours=1)).isoformat(),
            },
        )
    ).json()
    assert (await partners.post("/internal/api-keys/verify", json={"key": expiring["key"]})).status_code == 200
    partners_clock.advance(hours=2)
    assert is_problem(await partners.post("/internal/api-keys/verify", json={"key": expiring["key"]}), 401)
    past = (partners_clock() - timedelta(minutes=1)).isoformat()
    refused = await partners.post(
        base, headers=VHS, json={"name": "x", "scopes": ["capacity:write"], "expires_at": past}
    )
    assert is_problem(refused, 422)
    assert is_problem(await partners.post(base, headers=VHS, json={"name": "x", "scopes": ["root"]}), 422)


async def test_webhooks_on_loopback_or_plain_http_are_refused_and_secrets_are_shown_once(
    partners: httpx.AsyncClient,
) -> None:
    base = "/api/v1/partners/vhs-landsberg/webhooks"
    for url in (
        "https://127.0.0.1:9000/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest",
        "http://93.184.215.14/hook",
    ):
        reply = await partners.post(base, headers=VHS, json={"url": url, "event_types": [REFERRAL_SENT]})
        assert is_problem(reply, 422), (url, reply.text)
    assert is_problem(
        await partners.post(base, headers=VHS, json={"url": "https://93.184.215.14/h", "event_types": ["x.y.z"]}), 422
    )

    created = await partners.post(
        base, headers=VHS, json={"url": "https://93.184.215.14/h", "event_types": [REFERRAL_SENT]}
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    listed = await partners.get(base, headers=VHS)
    assert [h["webhook_id"] for h in listed.json()] == [hook["webhook_id"]]
    assert hook["secret"] not in listed.text and "whsec_" not in listed.text
    assert is_problem(await partners.get(base, headers={"X-Partner-Id": "jobcenter-landsberg"}), 403)

    rotated = await partners.post(f"{base}/{hook['webhook_id']}/rotate-secret", headers=VHS)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (hook["secret"], None)
    assert (await partners.get(base, headers=VHS)).json()[0]["previous_secret_valid_until"] is not None

    assert (await partners.delete(f"{base}/{hook['webhook_id']}", headers=VHS)).status_code == 204
    assert (await partners.get(base, headers=VHS)).json() == []
    assert is_problem(await partners.delete(f"{base}/{hook['webhook_id']}", headers=VHS), 404)


async def test_a_partner_edits_its_entry_and_offers_and_withdraws_services_with_events_in_the_outbox(
    partners: httpx.AsyncClient,
) -> None:
    base = "/api/v1/partners/jmd-landsberg"
    jmd = {"X-Partner-Id": "jmd-landsberg"}
    patch = {"languages": ["de", "en", "ar", "uk"], "contacts": [{"title": "Beratungsstelle", "phone": "+49 0000"}]}
    assert is_problem(await partners.patch(base, headers=VHS, json=patch), 403)
    updated = await partners.patch(base, headers=jmd, json=patch)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["version"], updated.json()["languages"][-1]) == (2, "uk")
    assert is_problem(await partners.patch(base, headers=jmd, json={"name": None}), 422)
    assert is_problem(await partners.patch(base, headers=jmd, json={"contacts": [{"title": "x", "name": "A"}]}), 422)

    offer = {"name": "Gesundheitslotsen", "languages": ["de", "ar"], "response_days": 3, "free_places": 4}
    assert (await partners.put(f"{base}/services/health_advice", headers=jmd, json=offer)).status_code == 200
    listed = (await partners.get("/api/v1/partners", params={"service_type": "health_advice"})).json()["items"]
    assert [p["partner_id"] for p in listed] == ["jmd-landsberg", "landratsamt-landsberg"]  # the Gesundheitsamt too
    assert (await partners.delete(f"{base}/services/health_advice", headers=jmd)).status_code == 204
    after = (await partners.get("/api/v1/partners", params={"service_type": "health_advice"})).json()["items"]
    assert [p["partner_id"] for p in after] == ["landratsamt-landsberg"]
    assert is_problem(await partners.delete(f"{base}/services/health_advice", headers=jmd), 404)

    runtime = partners.app.state.runtime  # type: ignore[attr-defined]
    outbox = runtime.tables.outbox
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(outbox.c.event_type, outbox.c.data)
                .where(outbox.c.partition_key == "jmd-landsberg")
                .order_by(outbox.c.id)
            )
        ).all()
    names = [row.event_type.split(".")[-2] for row in rows]
    assert names[:2] == ["partner_registered", "service_offered"], "seeded and announced"
    assert names[2:] == [
        "partner_updated",
        "service_offered",
        "partner_capacity_changed",
        "service_withdrawn",
        "partner_capacity_changed",
    ]
    assert all("+49" not in row.data for row in rows), "contact data stays out of events"


ADMIN = {"X-Role": "admin", "X-Actor": "user:admin"}


def new_partner(partner_id: str) -> dict[str, Any]:
    return {
        "partner_id": partner_id,
        "name": "Caritas Kaufering",
        "category": "charity",
        "languages": ["de", "ar"],
        "locations": [{"name": "Beratungsstelle", "city": "Kaufering", "postal_code": "86916"}],
        "services": [
            {
                "service_type": "migration_counselling",
                "name": "Migrationsberatung",
                "languages": ["de", "ar"],
                "response_days": 3,
                "free_places": 5,
            },
            {"service_type": "asylum_social_counselling", "name": "Asylsozialberatung", "languages": ["de"]},
        ],
    }


async def outbox_events(partners: httpx.AsyncClient, partner_id: str) -> list[tuple[str, str]]:
    runtime = partners.app.state.runtime  # type: ignore[attr-defined]
    outbox = runtime.tables.outbox
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(outbox.c.event_type, outbox.c.data)
                .where(outbox.c.partition_key == partner_id)
                .order_by(outbox.c.id)
            )
        ).all()
    return [(row.event_type.split(".")[-2], row.data) for row in rows]


async def test_an_admin_adds_a_partner_with_its_services_announced_through_the_outbox(
    partners: httpx.AsyncClient,
) -> None:
    partner_id = f"caritas-{uuid.uuid4().hex[:8]}"
    body = new_partner(partner_id)
    created = await partners.post("/api/v1/partners", headers=ADMIN, json=body)
    assert created.status_code == 201, created.text
    entry = created.json()
    assert (entry["partner_id"], entry["category"], entry["version"]) == (partner_id, "charity", 1)
    assert {s["service_type"]: (s["free_places"], s["response_days"]) for s in entry["services"]} == {
        "migration_counselling": (5, 3),
        "asylum_social_counselling": (None, 5),
    }
    assert (await partners.get(f"/api/v1/partners/{partner_id}")).json() == entry, "in the public directory"
    events = await outbox_events(partners, partner_id)
    assert [name for name, _ in events] == ["partner_registered", "service_offered", "service_offered"]
    assert all("86916" not in data for _, data in events), "no address in the events"

    # The same id again: a conflict, nothing changed; refused input: Problem Details naming the field.
    again = await partners.post("/api/v1/partners", headers=ADMIN, json={**body, "name": "Other"})
    assert is_problem(again, 409) and partner_id in again.json()["detail"]
    assert (await partners.get(f"/api/v1/partners/{partner_id}")).json()["name"] == "Caritas Kaufering"
    for broken, field in (
        ({**body, "partner_id": "Caritas Kaufering"}, "partner_id"),
        ({**body, "partner_id": "x"}, "partner_id"),
        ({**body, "category": "church"}, "category"),
        ({**body, "services": [body["services"][0], body["services"][0]]}, "body"),
        ({**body, "services": [{**body["services"][0], "service_type": "palm_reading"}]}, "service_type"),
        ({k: v for k, v in body.items() if k != "name"}, "name"),
    ):
        refused = await partners.post("/api/v1/partners", headers=ADMIN, json={**broken})
        assert is_problem(refused, 422), (field, refused.text)
        assert any(field in error["location"] for error in refused.json()["errors"]), (field, refused.json())

    # Only an admin adds one: the service checks it too, not only the gateway.
    other = new_partner(f"caritas-{uuid.uuid4().hex[:8]}")
    assert is_problem(await partners.post("/api/v1/partners", json=other), 401)
    for headers in ({"X-Role": "partner", "X-Partner-Id": partner_id}, {"X-Role": "caseworker"}):
        assert is_problem(await partners.post("/api/v1/partners", headers=headers, json=other), 403)
    assert is_problem(await partners.get(f"/api/v1/partners/{other['partner_id']}"), 404)


async def test_an_admin_keeps_any_entry_a_partner_only_its_own_and_not_its_category(
    partners: httpx.AsyncClient,
) -> None:
    partner_id = f"caritas-{uuid.uuid4().hex[:8]}"
    assert (await partners.post("/api/v1/partners", headers=ADMIN, json=new_partner(partner_id))).status_code == 201
    base = f"/api/v1/partners/{partner_id}"
    own = {"X-Role": "partner", "X-Partner-Id": partner_id}
    stranger = {"X-Role": "partner", "X-Partner-Id": "jmd-landsberg"}

    # The admin edits the entry, its category included; sent again unchanged, nothing more happens.
    change = {
        "name": "Caritas-Beratungsstelle Kaufering",
        "category": "volunteer_group",
        "website": "https://example.org",
    }
    edited = await partners.patch(base, headers=ADMIN, json=change)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["category"]) == (2, "volunteer_group")
    assert (await partners.patch(base, headers=ADMIN, json=change)).json()["version"] == 2, "no change, no version"

    # The partner edits its own entry, but neither its category nor another's entry.
    assert (await partners.patch(base, headers=own, json={"description": "Beratung"})).json()["version"] == 3
    assert is_problem(await partners.patch(base, headers=own, json={"category": "charity"}), 403)
    assert is_problem(await partners.patch(base, headers=stranger, json={"description": "x"}), 403)
    assert is_problem(await partners.patch(base, json={"description": "x"}), 401)
    assert is_problem(await partners.patch(base, headers=ADMIN, json={"category": None}), 422)

    # Services: the admin offers, changes and withdraws them on any entry; a stranger on none.
    offer = {"name": "Wohnberatung", "languages": ["de"], "response_days": 7, "free_places": 2}
    service = f"{base}/services/housing_advice"
    assert is_problem(await partners.put(service, headers=stranger, json=offer), 403)
    assert (await partners.put(service, headers=ADMIN, json=offer)).status_code == 200
    assert (await partners.put(service, headers=ADMIN, json=offer)).status_code == 200  # the same again
    assert (await partners.put(service, headers=own, json={**offer, "free_places": 3})).json()["free_places"] == 3
    assert is_problem(await partners.delete(service, headers=stranger), 403)
    assert (await partners.delete(f"{base}/services/asylum_social_counselling", headers=ADMIN)).status_code == 204
    assert (await partners.put(f"{service}/capacity", headers=ADMIN, json={"free_places": 0})).status_code == 200
    services = (await partners.get(base)).json()["services"]
    assert {s["service_type"]: s["free_places"] for s in services} == {"housing_advice": 0, "migration_counselling": 5}

    # Keys and webhooks stay the partner's own business, even for an admin.
    assert is_problem(await partners.get(f"{base}/api-keys", headers=ADMIN), 401)

    names = [name for name, _ in await outbox_events(partners, partner_id)]
    assert names[3:] == [
        "partner_updated",  # the admin's edit (the unchanged repeat published nothing)
        "partner_updated",  # the partner's description
        "service_offered",
        "partner_capacity_changed",  # housing advice: 0 -> 2 places (the same offer again: nothing)
        "service_offered",
        "partner_capacity_changed",  # 2 -> 3
        "service_withdrawn",
        "partner_capacity_changed",
        "partner_capacity_changed",  # housing advice: 3 -> 0
    ]
