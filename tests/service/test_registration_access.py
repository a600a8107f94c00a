"""Object-level authorisation in the registration service (issue 12): a caseworker reaches a person's data only
while the person's case is open in the caseworker's team, as registration learns from referral's case events;
another team's person answers 404 as if they did not exist; registrars keep the register but read no needs or
access log; privacy officers and admins alone erase and record a move away, naming a reason the access log keeps.

Registration (under test) on the parametrized database, referral on its own SQLite file with the demo roster,
both on the session's broker; the services are called directly with the plain identity headers the identity
middleware leaves after verifying the gateway's token (the gateway tests check that part).
"""

from __future__ import annotations

import httpx

from contracts.calendar import today as city_today
from tests.conftest import (
    ADMIN,
    LOTSE_NORD,
    LOTSE_SUED,
    NORD,
    REFERRAL_NEEDS,
    eventually,
    newcomer,
    ok,
    problem,
)
from tests.service.conftest import Services, case_in_team, reaches

REGISTRAR = {"X-Role": "registrar", "X-Actor": "user:registrar"}
PRIVACY = {"X-Role": "privacy_officer", "X-Actor": "user:datenschutz"}
ALL = {"page_size": 200}
CONSENT = {"partner_id": "jobcenter-landsberg", "purpose": "job_placement"}
GROUND = {"reason": "Antrag der Person nach Art. 17 DSGVO, Schreiben vom 1. Dezember"}


def not_found(reply: httpx.Response) -> None:
    """404 Problem Details, the same as for an id that does not exist."""
    problem(reply, 404, "not-found")


async def test_a_caseworker_reaches_only_the_persons_of_the_teams_open_cases(
    registration_under_test: Services,
) -> None:
    registration, referral = registration_under_test
    # Routing hands a Russian speaker's case to team Süd (the demo roster): Nord never reaches that person.
    body = newcomer(languages=["ru"], preferred_language="ru")
    early = (await registration.post("/api/v1/registrations", json=body)).json()["person_id"]
    await eventually(lambda: reaches(registration, early, LOTSE_SUED))
    not_found(await registration.get(f"/api/v1/persons/{early}", headers=LOTSE_NORD))

    mine, mine_case = await case_in_team(registration, referral, "lotse-a.berger", LOTSE_NORD)
    theirs, _ = await case_in_team(
        registration, referral, "lotse-m.wagner", LOTSE_SUED, languages=["ru"], preferred_language="ru"
    )
    assert mine_case["team"] == NORD
    ok(await registration.post(f"/api/v1/persons/{theirs}/consents", json=CONSENT, headers=LOTSE_SUED), 201)
    consent_id = ok(await registration.get(f"/api/v1/persons/{theirs}/consents", headers=ADMIN))[0]["consent_id"]

    # Another team's person: every route answers as for an unknown id, and nothing is changed or logged.
    url = f"/api/v1/persons/{theirs}"
    for reply in (
        await registration.get(url, headers=LOTSE_NORD),
        await registration.get(f"{url}/needs-assessments", headers=LOTSE_NORD),
        await registration.get(f"{url}/consents", headers=LOTSE_NORD),
        await registration.get(f"{url}/access-log", headers=LOTSE_NORD),
        await registration.patch(url, json={"phone": "+49 1"}, headers=LOTSE_NORD | {"If-Match": '"1"'}),
        await registration.post(f"{url}/needs-assessments", json=REFERRAL_NEEDS, headers=LOTSE_NORD),
        await registration.post(f"{url}/consents", json=CONSENT, headers=LOTSE_NORD),
        await registration.post(f"{url}/consents/{consent_id}/withdrawal", headers=LOTSE_NORD),
    ):
        not_found(reply)
    log = ok(await registration.get(f"{url}/access-log", headers=ADMIN))
    assert "user:lotse" not in {entry["actor"] for entry in log}
    assert ok(await registration.get(f"{url}/consents", headers=ADMIN))[0]["in_force"] is True
    assert len(ok(await registration.get(f"{url}/needs-assessments", headers=ADMIN))) == 1

    # Their own team's person: everything a caseworker does.
    own = f"/api/v1/persons/{mine}"
    reply = await registration.get(own, headers=LOTSE_NORD)
    assert ok(reply)["person_id"] == mine
    changed = ok(
        await registration.patch(
            own, json={"phone": "+49 8191 1"}, headers=LOTSE_NORD | {"If-Match": reply.headers["etag"]}
        )
    )
    assert changed["phone"] == "+49 8191 1"
    assert ok(await registration.post(f"{own}/needs-assessments", json=REFERRAL_NEEDS, headers=LOTSE_NORD), 201)
    assert [n["version"] for n in ok(await registration.get(f"{own}/needs-assessments", headers=LOTSE_NORD))] == [
        2,
        1,
    ]
    given = ok(await registration.post(f"{own}/consents", json=CONSENT, headers=LOTSE_NORD), 201)
    withdrawn = await registration.post(f"{own}/consents/{given['consent_id']}/withdrawal", headers=LOTSE_NORD)
    assert ok(withdrawn)["in_force"] is False
    assert "user:lotse" in {
        entry["actor"] for entry in ok(await registration.get(f"{own}/access-log", headers=LOTSE_NORD))
    }

    # The list: only the team's persons; filters narrow, never widen; the other team sees its own.
    listed = {
        p["person_id"] for p in ok(await registration.get("/api/v1/persons", params=ALL, headers=LOTSE_NORD))["items"]
    }
    assert mine in listed and theirs not in listed and early not in listed
    page = ok(await registration.get("/api/v1/persons", params=ALL, headers=LOTSE_NORD))
    assert page["total"] == len(page["items"])
    household = ok(await registration.get(url, headers=ADMIN))["household_id"]
    narrowed = await registration.get("/api/v1/persons", params={"household_id": household}, headers=LOTSE_NORD)
    assert ok(narrowed)["total"] == 0
    sued = {
        p["person_id"] for p in ok(await registration.get("/api/v1/persons", params=ALL, headers=LOTSE_SUED))["items"]
    }
    assert theirs in sued and mine not in sued
    for everyone in (REGISTRAR, PRIVACY, ADMIN):
        found = {
            p["person_id"] for p in ok(await registration.get("/api/v1/persons", params=ALL, headers=everyone))["items"]
        }
        assert {mine, theirs, early} <= found

    # A caseworker without a team: the persons of the cases assigned to them.
    berger = {"X-Role": "caseworker", "X-Actor": "user:lotse-a.berger"}
    assert ok(await registration.get(own, headers=berger))["person_id"] == mine
    not_found(await registration.get(url, headers=berger))
    nobody = {"X-Role": "caseworker", "X-Actor": "api_key:x"}
    assert ok(await registration.get("/api/v1/persons", headers=nobody))["total"] == 0

    # A case handed to the other team moves the person with it.
    await referral.post(
        f"/api/v1/cases/{mine_case['case_id']}/assignment", json={"caseworker_id": "lotse-m.wagner"}, headers=ADMIN
    )

    async def moved_to_sued() -> bool:
        return bool((await registration.get(own, headers=LOTSE_SUED)).status_code == 200)

    await eventually(moved_to_sued)
    not_found(await registration.get(own, headers=LOTSE_NORD))

    # Roles that never see a person here (the gateway refuses them first; this is the second line): 403.
    for role in ("analyst", "partner", "course_admin", ""):
        problem(await registration.get(own, headers={"X-Role": role, "X-Actor": "user:x"}), 403, "forbidden")


async def test_registrars_keep_the_register_but_read_no_needs_or_access_log(
    registration_under_test: Services,
) -> None:
    registration, _ = registration_under_test
    person = ok(await registration.post("/api/v1/registrations", json=newcomer(), headers=REGISTRAR), 201)["person_id"]
    url = f"/api/v1/persons/{person}"
    reply = await registration.get(url, headers=REGISTRAR)
    assert ok(reply)["person_id"] == person
    ok(
        await registration.patch(
            url, json={"email": "neu@example.org"}, headers=REGISTRAR | {"If-Match": reply.headers["etag"]}
        )
    )
    ok(await registration.post(f"{url}/consents", json=CONSENT, headers=REGISTRAR), 201)
    assert len(ok(await registration.get(f"{url}/consents", headers=REGISTRAR))) == 1
    for refused in (
        await registration.get(f"{url}/needs-assessments", headers=REGISTRAR),
        await registration.post(f"{url}/needs-assessments", json=REFERRAL_NEEDS, headers=REGISTRAR),
        await registration.get(f"{url}/access-log", headers=REGISTRAR),
    ):
        problem(refused, 403, "forbidden")
    # Privacy officers read (Art. 15) but do not change; caseworkers do not register.
    assert ok(await registration.get(f"{url}/needs-assessments", headers=PRIVACY)) == []
    assert ok(await registration.get(f"{url}/access-log", headers=PRIVACY))
    problem(await registration.post(f"{url}/consents", json=CONSENT, headers=PRIVACY), 403, "forbidden")
    problem(
        await registration.patch(url, json={"phone": "+49 1"}, headers=PRIVACY | {"If-Match": '"2"'}), 403, "forbidden"
    )
    problem(await registration.post("/api/v1/registrations", json=newcomer(), headers=LOTSE_NORD), 403, "forbidden")


async def test_only_privacy_officers_and_admins_erase_and_record_a_move_with_a_reason(
    registration_under_test: Services,
) -> None:
    registration, referral = registration_under_test
    person, _ = await case_in_team(registration, referral, "lotse-a.berger", LOTSE_NORD)
    other = ok(await registration.post("/api/v1/registrations", json=newcomer()), 201)["person_id"]
    url, other_url = f"/api/v1/persons/{person}", f"/api/v1/persons/{other}"

    # Not the caseworkers' (not even of the person's own team) nor the registrars': 403, with or without a reason.
    for caller in (LOTSE_NORD, LOTSE_SUED, REGISTRAR):
        problem(await registration.request("DELETE", url, json=GROUND, headers=caller), 403, "forbidden")
        problem(await registration.delete(url, headers=caller), 403, "forbidden")
        moved = {"moved_away_on": city_today().isoformat(), "reason": "Abmeldung"}
        problem(await registration.post(f"{url}/move-away", json=moved, headers=caller), 403, "forbidden")

    # A privacy officer names the ground, or is refused with 422 and nothing happens.
    problem(await registration.delete(url, headers=PRIVACY), 422, "validation")
    problem(await registration.request("DELETE", url, json={}, headers=PRIVACY), 422, "validation")
    problem(await registration.request("DELETE", url, json={"reason": " "}, headers=PRIVACY), 422, "validation")
    problem(
        await registration.post(f"{url}/move-away", json={"moved_away_on": city_today().isoformat()}, headers=PRIVACY),
        422,
        "validation",
    )
    assert ok(await registration.get(url, headers=LOTSE_NORD))["status"] == "registered"

    moved = {"moved_away_on": city_today().isoformat(), "reason": "Abmeldung beim Einwohnermeldeamt"}
    assert ok(await registration.post(f"{url}/move-away", json=moved, headers=PRIVACY))["status"] == "moved_away"
    assert (await registration.request("DELETE", url, json=GROUND, headers=PRIVACY)).status_code == 204
    problem(await registration.get(url, headers=REGISTRAR), 410, "erased")
    # The query form for clients that send no body on a DELETE.
    assert (await registration.delete(other_url, params=GROUND, headers=ADMIN)).status_code == 204

    log = ok(await registration.get(f"{url}/access-log", headers=PRIVACY))
    # The log in the shape every service shares (chassis.audit): the ground is the entry's purpose; reading the log
    # is the newest entry.
    assert [(e["action"], e["actor"], e["purpose"]) for e in log[:3]] == [
        ("read_access_log", "user:datenschutz", "data protection (a data subject's request)"),
        ("erase", "user:datenschutz", GROUND["reason"]),
        ("move_away", "user:datenschutz", moved["reason"]),
    ]
    assert ok(await registration.get(f"{other_url}/access-log", headers=ADMIN))[1]["purpose"] == GROUND["reason"]

    # The move closed the case (referral's event): the team's caseworker no longer reaches the person at all.
    async def out_of_reach() -> bool:
        return bool((await registration.get(f"{url}/access-log", headers=LOTSE_NORD)).status_code == 404)

    await eventually(out_of_reach)
    not_found(await registration.get(url, headers=LOTSE_NORD))
