"""The person page's move-away and erasure (issue 12), through the gateway's web UI: offered to privacy officers
and admins only, each asking for the reason the access log keeps; a caseworker of another team does not reach the
person's page at all. The same stack as tests/service/test_ui_learning.py (real apps on SQLite, the session's
broker, the gateway over ASGI)."""

from __future__ import annotations

from typing import Any

from contracts.calendar import today as city_today
from tests.conftest import eventually, newcomer
from tests.service import test_ui_learning
from tests.service.test_ui_learning import Site, part

site = test_ui_learning.site  # the same stack as the learning pages' tests

MOVE_AWAY, ERASE = 'id="move-away"', 'id="erase"'


async def test_privacy_officers_record_a_move_away_and_erase_naming_the_reason(site: Site) -> None:
    registrar_token = await site.bearer("registrar")
    registered = await site.api.post("/api/v1/registrations", json=newcomer(), headers=registrar_token)
    person = registered.json()["person_id"]
    other = (await site.api.post("/api/v1/registrations", json=newcomer(), headers=registrar_token)).json()["person_id"]
    as_lotse = await site.bearer("lotse")

    async def reachable() -> bool:  # an Arabic speaker's case goes to team Nord, the demo caseworker's
        return (await site.api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

    await eventually(reachable, timeout_s=20)

    # Registrars and caseworkers see neither form; the privacy officer both, and finds the person by id.
    for username in ("registrar", "lotse"):
        page = (await (await site.visitor(username)).get(f"/ui/persons/{person}")).text
        assert MOVE_AWAY not in page and ERASE not in page, username
    officer = await site.visitor("datenschutz")
    found = await officer.get(f"/ui/persons?person_id={person}")
    assert found.status_code == 303 and found.headers["location"] == f"/ui/persons/{person}"
    page = (await officer.get(f"/ui/persons/{person}")).text
    assert MOVE_AWAY in page and ERASE in page
    assert ("input", "reason") in [(tag, attrs.get("name")) for tag, attrs in part(page, "erase").tags]
    assert 'id="needs-h"' in page, "a privacy officer reads the needs (Art. 15)"
    assert 'id="open-person"' in (await officer.get("/ui/")).text

    # A caseworker's own form post is refused by the role policy, whatever the reason says.
    lotse = await site.visitor("lotse")
    refused = await lotse.post(f"/ui/persons/{person}/erase", {"reason": "weg damit", "confirm": "true"})
    assert refused.status_code == 303 and "error=" in refused.headers["location"]
    assert (await site.api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

    # Moving away: the reason is asked for; given, the status changes and the access log keeps it.
    today = city_today().isoformat()
    no_reason = await officer.post(
        f"/ui/persons/{person}/move-away", {"moved_away_on": today, "reason": ""}, follow=True
    )
    assert 'role="alert"' in no_reason.text and "Grund:" in no_reason.text
    assert (await site.api.get(f"/api/v1/persons/{person}", headers=registrar_token)).json()["status"] == "registered"
    moved = await officer.post(f"/ui/persons/{person}/move-away", {"moved_away_on": today, "reason": "Abmeldung"})
    assert moved.status_code == 303 and "notice=done" in moved.headers["location"]
    page = (await officer.get(f"/ui/persons/{person}")).text
    assert MOVE_AWAY not in page and ERASE in page, "moved away: only the erasure is left"

    # Erasing: without the confirmation or without a reason nothing happens; with both the data is gone.
    unconfirmed = await officer.post(f"/ui/persons/{person}/erase", {"reason": "Antrag nach Art. 17"}, follow=True)
    assert "Bitte bestätigen" in unconfirmed.text
    no_reason = await officer.post(f"/ui/persons/{person}/erase", {"reason": " ", "confirm": "true"}, follow=True)
    assert "Bitte den Grund angeben" in no_reason.text
    assert (await site.api.get(f"/api/v1/persons/{person}", headers=registrar_token)).status_code == 200
    erased = await officer.post(f"/ui/persons/{person}/erase", {"reason": "Antrag nach Art. 17", "confirm": "true"})
    assert erased.status_code == 303 and erased.headers["location"] == "/ui/?notice=erased"
    assert "Die Daten der Person sind gelöscht." in (await officer.get(erased.headers["location"])).text
    assert (await site.api.get(f"/api/v1/persons/{person}", headers=registrar_token)).status_code == 410
    log = (await site.api.get(f"/api/v1/persons/{person}/access-log", headers=await site.bearer("datenschutz"))).json()
    assert [(e["action"], e["purpose"]) for e in log if e["action"] in ("move_away", "erase")] == [
        ("erase", "Antrag nach Art. 17"),
        ("move_away", "Abmeldung"),
    ]

    # An admin has the same forms.
    admin_page = (await (await site.visitor("admin")).get(f"/ui/persons/{other}")).text
    assert MOVE_AWAY in admin_page and ERASE in admin_page


async def test_a_caseworker_of_another_team_does_not_reach_the_persons_page(site: Site) -> None:
    # A Russian speaker's case goes to team Süd (the demo roster); the demo caseworker is in team Nord.
    body: dict[str, Any] = newcomer(languages=["ru"], preferred_language="ru")
    registered = await site.api.post("/api/v1/registrations", json=body, headers=await site.bearer("registrar"))
    person = registered.json()["person_id"]
    admin = await site.bearer("admin")

    async def assigned() -> bool:
        found = (await site.api.get("/api/v1/cases", params={"person_id": person}, headers=admin)).json()
        return bool(found.get("items")) and found["items"][0]["team"] == "integration-sued"

    await eventually(assigned, timeout_s=20)
    lotse = await site.visitor("lotse")
    page = await lotse.get(f"/ui/persons/{person}")
    assert page.status_code == 404 and body["given_names"] not in page.text
    assert (await site.api.get(f"/api/v1/persons/{person}", headers=await site.bearer("lotse"))).status_code == 404
