"""A household's case in headless Chromium, in front of the real stack (issue 14).

A family of three registered together has one case: the case page lists its members by name (one audited
lookup), the daughter among them and not a case of her own; the navigator records the father's needs from his
row (the page says whose needs it shows), and sets a goal of the plan for the daughter. axe finds no serious or
critical violation; the screenshot is docs/screenshots/caseworker-household.png.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import eventually, newcomer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def member(**overrides: Any) -> dict[str, Any]:
    return {k: v for k, v in newcomer(**overrides).items() if k not in ("address", "phone", "email")}


async def test_a_households_case(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    family = f"Nasser-{uuid.uuid4().hex[:4]}"
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = newcomer(given_names="Leyla", family_name=family, birth_date="1990-05-17", household_members=[
            member(given_names="Karim", family_name=family, gender="male", birth_date="1987-03-01"),
            member(given_names="Mira", family_name=family, birth_date="2018-09-09"),
        ])  # fmt: skip
        registered = await api.post("/api/v1/registrations", json=body, headers=await stack.bearer(api, "registrar"))
        assert registered.status_code == 201, registered.text
        mother = registered.json()["person_id"]
        father, daughter = (m["person_id"] for m in registered.json()["household_members"])
        as_lotse = await stack.bearer(api, "lotse")

        async def whole_household() -> str | None:
            """The case's id once the three are its members and registration lets the team reach the daughter."""
            cases = (await api.get("/api/v1/cases", params={"person_id": daughter}, headers=as_lotse)).json()
            if cases.get("total") != 1:
                return None
            case = (await api.get(f"/api/v1/cases/{cases['items'][0]['case_id']}", headers=as_lotse)).json()
            reached = await api.get(f"/api/v1/persons/{daughter}", headers=as_lotse)
            members = {m["person_id"] for m in case.get("members", [])}
            return (
                str(case["case_id"]) if members == {mother, father, daughter} and reached.status_code == 200 else None
            )

        case = await eventually(whole_household, timeout_s=30)

        browser = await p.chromium.launch(**launch_args())
        try:
            lotse = await browser.new_page(viewport={"width": 1280, "height": 900})
            await browsing.sign_in(lotse, "lotse")
            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            rows = lotse.locator("#members tbody tr")
            assert await rows.count() == 3
            names = await lotse.locator("#members").inner_text()
            for given in ("Leyla", "Karim", "Mira"):
                assert f"{given} {family}" in names, names
            mira = lotse.locator(f"#member-{daughter}")
            assert "6\u20139 Jahre" in await mira.inner_text() and "Mitglied" in await mira.inner_text()
            assert await lotse.locator("#members tr[data-lead=true]").count() == 1

            # The father's needs, from his row: the page says whose they are and records them for him.
            await lotse.get_by_role("link", name=f"Bedarf: Karim {family}").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#needs-h").inner_text() == f"Bedarf von Karim {family}"
            await lotse.get_by_label("Deutschkenntnisse").select_option("A2")
            await lotse.get_by_label("Schulbildung").select_option("secondary")
            await lotse.get_by_label("Erwerbssituation").select_option("job_seeking")
            await lotse.get_by_role("button", name="Bedarf speichern").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#needs-h").inner_text() == f"Bedarf von Karim {family}"
            assert "A2" in await lotse.locator("#latest-needs").inner_text()
            recorded = await api.get(f"/api/v1/persons/{father}/needs-assessments", headers=as_lotse)
            assert recorded.status_code == 200 and len(recorded.json()) == 1, recorded.text
            mine = await api.get(f"/api/v1/persons/{mother}/needs-assessments", headers=as_lotse)
            assert mine.json() == [], "the mother's needs are not touched"

            # A goal for the daughter.
            await lotse.locator("#goal-dimension").select_option("culture_and_language")
            await lotse.locator("#goal-title").fill("Schulplatz Grundschule")
            await lotse.get_by_label("Für", exact=True).select_option(label=f"Mira {family}")
            await lotse.get_by_role("button", name="Ziel hinzufügen").click()
            await lotse.wait_for_load_state()
            goal = lotse.locator("#goals tbody tr", has_text="Schulplatz Grundschule")
            assert await goal.locator("td.goal-for").inner_text() == f"Mira {family}"

            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            await browsing.accessible(lotse, "household", serious_too=True)
            await lotse.screenshot(path=str(SCREENSHOTS / "caseworker-household.png"), full_page=True)
        finally:
            await browser.close()
        log = (await api.get(f"/api/v1/persons/{daughter}/access-log", headers=as_lotse)).json()
        assert any(e["action"] == "lookup" and e["actor"] == "user:lotse" for e in log), "the names' read is audited"
