"""Every read of a person's data audited in one shape, and the person's export (GDPR Art. 15) (issue 12).

Through the real gateway to the real services: a caseworker reads the person's record (registration), case
(referral) and enrolments (courses); the gateway's merged access log shows each read in the one shape (at,
service, actor, action, person_id, purpose), newest first, and reading the log is itself logged. The caseworker
of another team gets 404 for the log; a registrar, a course admin and a partner are refused; the export is the
privacy officer's and the admin's (a caseworker, even the person's own, gets 403). The export holds a section
per service with what each holds, is itself logged in every service it read from, and after erasure holds
nothing personal.

Registration on the parametrized database; referral, courses and partners on SQLite files of their own; all on
the session's broker, the gateway in front over ASGI.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis.embedded_broker import EmbeddedBroker
from contracts.referral import ReferralSent
from gateway.app import create_app as create_gateway
from gateway.auth import add_account
from gateway.ui.kit import SESSION_COOKIE
from services.courses.app import create_app as create_courses
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    behind_gateway,
    course_body,
    courses_settings,
    eventually,
    gateway_settings,
    newcomer,
    ok,
    partners_settings,
    referral_settings,
    registration_settings,
)

NORD, SUED = "integration-nord", "integration-sued"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "lotse": {"roles": ["caseworker"], "team": NORD},
    "lotse-sued": {"roles": ["caseworker"], "team": SUED},
    "registrar": {"roles": ["registrar"]},
    "vhs": {"roles": ["course_admin"], "partner_id": "vhs-landsberg"},
    "jobcenter": {"roles": ["partner"], "partner_id": "jobcenter-landsberg"},
    "vhs-partner": {"roles": ["partner"], "partner_id": "vhs-landsberg"},
    "datenschutz": {"roles": ["privacy_officer"]},
    "admin": {"roles": ["admin"]},
}
CONSENT = {"partner_category": "adult_education", "purpose": "course_enrolment"}
SHAPE = {"at", "service", "actor", "action", "person_id", "purpose"}
NEEDS = {
    "german_level": "A1",
    "schooling": "secondary",
    "recognise_foreign_qualification": False,
    "employment_situation": "job_seeking",
    "childcare_needed": False,
    "children_ages": [],
}


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def get(self, who: str, path: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/{path}", headers=self.as_(who))


@pytest.fixture
async def world(database_url: str, broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[World]:
    bootstrap = broker.bootstrap_servers

    def db(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    registration = create_registration(registration_settings(database_url, bootstrap))
    apps = {
        "registration": registration,
        "referral": create_referral(referral_settings(db("referral"), bootstrap, demo_data=True)),
        "courses": create_courses(
            courses_settings(db("courses"), bootstrap), registration_transport=httpx.ASGITransport(app=registration)
        ),
        "partners": create_partners(
            partners_settings(db("partners"), bootstrap, demo_data=True, webhook_allow_private_addresses=True)
        ),
    }
    settings = gateway_settings(tmp_path)
    passwords = {name: add_account(settings.local_users_file, name, **account) for name, account in ACCOUNTS.items()}
    gateway = create_gateway(settings)
    async with AsyncExitStack() as stack:
        client = await behind_gateway(stack, gateway, apps)
        tokens = {
            name: ok(await client.post("/auth/token", json={"username": name, "password": password}))["access_token"]
            for name, password in passwords.items()
        }
        yield World(client, tokens)


async def a_newcomer_of_team_nord(world: World) -> tuple[str, dict[str, Any]]:
    """Registered, with needs and a consent for adult education (so the VHS gets the integration course referral,
    and its webhook a delivery), the case handed to team Nord's navigator, enrolled with the VHS; returns the
    person id and what was registered."""
    hook = {"url": "http://127.0.0.1:9/hook", "event_types": [ReferralSent.event_type]}  # nobody listens: kept
    ok(
        await world.client.post("/api/v1/partners/vhs-landsberg/webhooks", json=hook, headers=world.as_("vhs-partner")),
        201,
    )
    body = newcomer()
    person = ok(await world.client.post("/api/v1/registrations", json=body, headers=world.as_("registrar")), 201)
    person_id = person["person_id"]
    ok(
        await world.client.post(f"/api/v1/persons/{person_id}/consents", json=CONSENT, headers=world.as_("registrar")),
        201,
    )
    ok(
        await world.client.post(
            f"/api/v1/persons/{person_id}/needs-assessments", json=NEEDS, headers=world.as_("admin")
        ),
        201,
    )

    async def case() -> Any:
        items = ok(
            await world.client.get("/api/v1/cases", params={"person_id": person_id}, headers=world.as_("admin"))
        )["items"]
        return items[0] if items else None

    found = await eventually(case)
    ok(
        await world.client.post(
            f"/api/v1/cases/{found['case_id']}/assignment",
            json={"caseworker_id": "lotse-a.berger"},
            headers=world.as_("admin"),
        )
    )

    async def reached() -> bool:
        # Registration and courses learn the case's team from referral's events.
        return (await world.get("lotse", f"persons/{person_id}")).status_code == 200 and (
            await world.get("lotse", f"learners/{person_id}/enrolments")
        ).status_code == 200

    await eventually(reached)
    course = ok(await world.client.post("/api/v1/courses", json=course_body(5), headers=world.as_("vhs")), 201)
    ok(
        await world.client.post(
            f"/api/v1/courses/{course['course_id']}/enrolments", json={"person_id": person_id}, headers=world.as_("vhs")
        ),
        201,
    )
    return person_id, body | {"case_id": found["case_id"]}


async def test_every_read_is_in_the_merged_log_in_one_shape_and_only_for_those_who_may(world: World) -> None:
    person_id, person = await a_newcomer_of_team_nord(world)
    ok(await world.get("lotse", f"persons/{person_id}"))
    ok(await world.get("lotse", f"cases/{person['case_id']}"))
    ok(await world.get("lotse", f"cases/{person['case_id']}/timeline"))
    ok(await world.get("lotse", f"learners/{person_id}/enrolments"))

    reply = await world.get("lotse", f"persons/{person_id}/access-log")
    log = ok(reply)
    assert all(set(entry) == SHAPE for entry in log), log[0]
    assert all(entry["person_id"] == person_id for entry in log)
    assert [e["at"] for e in log] == sorted((e["at"] for e in log), reverse=True), "newest first"
    lotse = [(e["service"], e["action"]) for e in log if e["actor"].startswith("user:") and "lotse" in e["actor"]]
    for read in (
        ("registration", "read"),
        ("referral", "read_case"),
        ("referral", "read_timeline"),
        ("courses", "read_enrolments"),
        ("registration", "read_access_log"),
    ):
        assert read in lotse, (read, lotse)
    assert log[0]["action"] == "read_access_log", "reading the log is logged, and is the newest entry"
    assert next(e for e in log if e["action"] == "read_case")["purpose"] == "case work (integration counselling)"
    # Partners knows no team: its part is the privacy officer's, and the answer says it is left out.
    assert reply.headers["access-log-incomplete"] == "partners"
    again = ok(await world.get("lotse", f"persons/{person_id}/access-log"))
    assert [e["action"] for e in again].count("read_access_log") == [e["action"] for e in log].count(
        "read_access_log"
    ) + 1

    # Another team's caseworker: as if there were nobody. Roles that read no log or export: refused.
    other = await world.get("lotse-sued", f"persons/{person_id}/access-log")
    assert other.status_code == 404 and other.headers["content-type"].startswith("application/problem+json")
    for who in ("lotse-sued", "lotse", "registrar", "vhs", "jobcenter"):
        assert (await world.get(who, f"persons/{person_id}/export")).status_code == 403, who
    for who in ("registrar", "vhs", "jobcenter"):
        assert (await world.get(who, f"persons/{person_id}/access-log")).status_code == 403, who
    # Nothing of the refused calls reached the log: only the privacy officer's own read is new.
    after = ok(await world.get("datenschutz", f"persons/{person_id}/access-log"))
    assert [e["action"] for e in after].count("read_access_log") == [e["action"] for e in again].count(
        "read_access_log"
    ) + 1
    assert "export" not in [e["action"] for e in after]
    assert after[0]["purpose"] == "data protection (a data subject's request)"
    assert "access-log-incomplete" not in (await world.get("datenschutz", f"persons/{person_id}/access-log")).headers


async def test_the_export_holds_every_service_is_logged_and_after_erasure_holds_nothing_personal(
    world: World,
) -> None:
    person_id, person = await a_newcomer_of_team_nord(world)
    ok(
        await world.client.post(
            f"/api/v1/cases/{person['case_id']}/notes",
            json={"text": "Erstgespräch geführt"},
            headers=world.as_("lotse"),
        ),
        201,
    )

    async def delivered() -> Any:
        export = ok(await world.get("datenschutz", f"persons/{person_id}/export"))
        return export if export["sections"]["partners"]["data"]["webhook_deliveries"] else None

    export = await eventually(delivered)
    sections = export["sections"]
    assert set(sections) == {"registration", "referral", "courses", "partners", "monitoring"}
    assert sections["registration"]["person"]["family_name"] == person["family_name"]
    assert sections["registration"]["needs_assessments"][0]["german_level"] == "A1"
    assert sections["referral"]["data"]["cases"][0]["id"] == person["case_id"]
    assert sections["referral"]["data"]["notes"][0]["text"] == "Erstgespräch geführt"
    assert sections["courses"]["data"]["enrolments"][0]["person_id"] == person_id
    delivery = sections["partners"]["data"]["webhook_deliveries"][0]
    assert (delivery["partner_id"], delivery["event_type"]) == ("vhs-landsberg", ReferralSent.event_type)
    assert person_id in delivery["payload"]
    assert any(r["partner_id"] == "vhs-landsberg" for r in sections["referral"]["data"]["referrals"])
    assert "anonymous aggregates" in sections["monitoring"]["holds"]
    exported = {e["service"] for e in export["access_log"] if e["action"] == "export"}
    assert exported == {"registration", "referral", "courses", "partners"}, "logged in every service it read"
    assert all(set(e) == SHAPE for e in export["access_log"])
    ok(await world.get("admin", f"persons/{person_id}/export"))

    erased = await world.client.request(
        "DELETE",
        f"/api/v1/persons/{person_id}",
        json={"reason": "Antrag nach Art. 17 DSGVO"},
        headers=world.as_("datenschutz"),
    )
    assert erased.status_code == 204, erased.text
    personal = (person["given_names"], person["family_name"], person["birth_date"], person["address"]["street"])

    async def nothing_personal() -> Any:
        after = ok(await world.get("datenschutz", f"persons/{person_id}/export"))
        text = json.dumps(after, ensure_ascii=False)
        done = not any(value in text for value in personal) and not after["sections"]["referral"]["data"]["notes"]
        return after if done else None

    after = await eventually(nothing_personal)
    assert after["sections"]["registration"]["status"] == "erased"
    assert after["sections"]["registration"]["person"] is None
    assert any(e["action"] == "erase" and e["purpose"] == "Antrag nach Art. 17 DSGVO" for e in after["access_log"])


async def test_the_printable_export_page_is_linked_for_those_who_may_and_speaks_both_languages(world: World) -> None:
    person_id, person = await a_newcomer_of_team_nord(world)

    async def page(who: str, path: str, lang: str = "de") -> httpx.Response:
        world.client.cookies.clear()
        world.client.cookies.set(SESSION_COOKIE, world.tokens[who])
        return await world.client.get(path, params={"lang": lang}, follow_redirects=False)

    person_page = (await page("datenschutz", f"/ui/persons/{person_id}")).text
    assert f'href="/ui/persons/{person_id}/export"' in person_page
    assert "/export" not in (await page("lotse", f"/ui/persons/{person_id}")).text, "not offered to a caseworker"

    german = await page("datenschutz", f"/ui/persons/{person_id}/export")
    assert german.status_code == 200, german.text
    assert "Auskunft nach Art. 15 DSGVO" in german.text and person["family_name"] in german.text
    assert "Zugriffsprotokoll" in german.text and "nur anonyme Summen" in german.text
    english = await page("datenschutz", f"/ui/persons/{person_id}/export", "en")
    assert "Access request under Art. 15 GDPR" in english.text and "Access log" in english.text
    download = await page("admin", f"/ui/persons/{person_id}/export.json")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert json.loads(download.content)["sections"]["registration"]["person"]["given_names"] == person["given_names"]
    for who in ("lotse", "registrar"):
        assert (await page(who, f"/ui/persons/{person_id}/export")).status_code == 403, who
