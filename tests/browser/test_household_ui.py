"""A household's case in headless Chromium, in front of the real stack (issue 14).

A family of three registered together has one case: the case page lists its members by name (one audited
lookup), the daughter among them and not a case of her own; the navigator records the father's needs from his
row (the page says whose needs it shows), and sets a goal of the plan for the daughter. axe finds no serious or
critical violation; the screenshot is docs/screenshots/caseworker-household.png.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from contracts.calendar import today as city_today
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import course_body, eventually, newcomer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def member(**overrides: Any) -> dict[str, Any]:
    return {k: v for k, v in newcomer(**overrides).items() if k not in ("address", "phone", "email")}


async def test_a_households_case(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    family = f"Nasser-{uuid.uuid4().hex[:4]}"
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = newcomer(
            given_names="Leyla",
            family_name=family,
            birth_date="1990-05-17",
            household_members=[
                member(given_names="Karim", family_name=family, gender="male", birth_date="1987-03-01"),
                member(given_names="Mira", family_name=family, birth_date="2018-09-09"),
            ],
        )
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

            # A goal for the daughter, already overdue: the dashboard reminds of it, naming her.
            await lotse.locator("#goal-dimension").select_option("culture_and_language")
            await lotse.locator("#goal-title").fill("Schulplatz Grundschule")
            await lotse.get_by_label("Für", exact=True).select_option(label=f"Mira {family}")
            await lotse.locator("#goal-due_on").fill((city_today() - timedelta(days=2)).isoformat())
            await lotse.get_by_role("button", name="Ziel hinzufügen").click()
            await lotse.wait_for_load_state()
            goal = lotse.locator("#goals tbody tr", has_text="Schulplatz Grundschule")
            assert await goal.locator("td.goal-for").inner_text() == f"Mira {family}"
            await lotse.get_by_role("link", name="Start").click()
            await lotse.wait_for_load_state()
            reminder = lotse.locator("#goals-due tbody tr", has_text="Schulplatz Grundschule")
            text = await reminder.inner_text()
            shown = (city_today() - timedelta(days=2)).strftime("%d.%m.%Y")
            assert f"Mira {family}" in text and shown in text and "überfällig" in text, text
            await reminder.get_by_role("link").click()
            await lotse.wait_for_load_state()
            assert lotse.url.endswith(f"/ui/cases/{case}#goals-h")

            # Searching the daughter by name leads to the household's case, under her name.
            await lotse.goto(f"{stack.url}/ui/search?q=Mira+{family}")
            link = lotse.locator("#results").get_by_role("link", name=f"Mira {family}", exact=True)
            assert await link.get_attribute("href") == f"/ui/cases/{case}"

            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            await browsing.accessible(lotse, "household")
            await lotse.screenshot(path=str(SCREENSHOTS / "caseworker-household.png"), full_page=True)
        finally:
            await browser.close()
        log = (await api.get(f"/api/v1/persons/{daughter}/access-log", headers=as_lotse)).json()
        assert any(e["action"] == "lookup" and e["actor"] == "user:lotse" for e in log), "the names' read is audited"


async def test_the_newcomers_letter(stack: Stack) -> None:
    """The printable letter from the case page: in Arabic (her language, an information pack exists in it) with the
    German of each heading, her name and address, her caseworker, her course sessions and the answer a partner
    owes; for a member whose language has no pack (Tigrinya), German and English. The reads are audited."""
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    family = f"Haddad-{uuid.uuid4().hex[:4]}"
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = newcomer(
            given_names="Leyla",
            family_name=family,
            household_members=[
                member(
                    given_names="Yonas",
                    family_name=family,
                    gender="male",
                    birth_date="1985-01-01",
                    languages=["ti", "ar"],
                    preferred_language="ti",
                ),
            ],
        )
        registered = await api.post("/api/v1/registrations", json=body, headers=await stack.bearer(api, "registrar"))
        assert registered.status_code == 201, registered.text
        leyla = registered.json()["person_id"]
        yonas = registered.json()["household_members"][0]["person_id"]
        as_lotse = await stack.bearer(api, "lotse")

        async def case_of_both() -> str | None:
            cases = (await api.get("/api/v1/cases", params={"person_id": yonas}, headers=as_lotse)).json()
            reached = await api.get(f"/api/v1/persons/{yonas}", headers=as_lotse)
            return cases["items"][0]["case_id"] if cases.get("total") == 1 and reached.status_code == 200 else None

        case = await eventually(case_of_both, timeout_s=30)
        # Her course (enrolled by the VHS) and a referral sent to the Jobcenter that awaits its answer.
        as_vhs = await stack.bearer(api, "vhs")
        course = (
            await api.post(
                "/api/v1/courses", json=course_body(capacity=5, title="Integrationskurs Abend"), headers=as_vhs
            )
        ).json()["course_id"]
        enrolled = await api.post(f"/api/v1/courses/{course}/enrolments", json={"person_id": leyla}, headers=as_vhs)
        assert enrolled.status_code == 201 and enrolled.json()["status"] == "enrolled", enrolled.text
        consent = {"partner_id": "jobcenter-landsberg", "purpose": "job_placement"}
        assert (await api.post(f"/api/v1/persons/{leyla}/consents", json=consent, headers=as_lotse)).status_code == 201
        needs = {"german_level": "A1", "schooling": "secondary", "employment_situation": "job_seeking"}
        recorded = await api.post(f"/api/v1/persons/{leyla}/needs-assessments", json=needs, headers=as_lotse)
        assert recorded.status_code == 201, recorded.text

        async def job_sent() -> bool:
            detail = (await api.get(f"/api/v1/cases/{case}", headers=as_lotse)).json()
            return any(r["service_type"] == "job_placement" and r["status"] == "sent" for r in detail["referrals"])

        await eventually(job_sent, timeout_s=30)

        browser = await p.chromium.launch(**launch_args())
        try:
            lotse = await browser.new_page(viewport={"width": 1000, "height": 900})
            await browsing.sign_in(lotse, "lotse")
            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            # The facts' link is the lead's letter (whichever adult's event came first); each member's row has theirs.
            assert await lotse.locator("#letter-link").count() == 1
            await lotse.get_by_role("link", name=f"Brief für die Person: Leyla {family}").click()
            await lotse.wait_for_load_state()
            arabic = lotse.locator("#letter-ar")
            assert await arabic.get_attribute("dir") == "rtl" and await lotse.locator("#letter-de").count() == 0
            text = await arabic.inner_text()
            assert "مواعيدكم" in text and "(Ihre Termine)" in text, text
            for expected in ("Anna Berger", "Integrationskurs Abend", "VHS Landsberg am Lech"):
                assert expected in text, (expected, text[:2000])
            assert "Jobcenter Landsberg am Lech" in text, "the answer the Jobcenter owes is an appointment too"
            recipient = await lotse.locator("#recipient").inner_text()
            assert f"Leyla {family}" in recipient and "Schwaighofstraße 12" in recipient, recipient
            await browsing.accessible(lotse, "letter")
            await lotse.screenshot(path=str(SCREENSHOTS / "letter.png"), full_page=True)
            await lotse.emulate_media(media="print")
            assert not await lotse.locator("header.top").is_visible(), "the print shows the letter alone"
            await lotse.emulate_media(media="screen")

            # Yonas speaks Tigrinya, in which there is no pack: German and English, his own appointments (none).
            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            await lotse.get_by_role("link", name=f"Brief für die Person: Yonas {family}").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#letter-de").count() == 1 and await lotse.locator("#letter-en").count() == 1
            assert await lotse.locator("#letter-ar").count() == 0
            assert "Zurzeit keine Termine." in await lotse.locator("#letter-de").inner_text()
            assert f"Yonas {family}" in await lotse.locator("#recipient").inner_text()
            await browsing.accessible(lotse, "letter (de, en)")
        finally:
            await browser.close()
        log = (await api.get(f"/api/v1/persons/{leyla}/access-log", headers=as_lotse)).json()
        assert any(e["action"] == "read" and e["actor"] == "user:lotse" for e in log), "the letter's read is audited"
