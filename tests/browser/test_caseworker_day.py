"""A caseworker's day in headless Chromium, in front of the real stack (issue 14).

The integration navigator (lotse, team Nord) finds a newcomer on the dashboard by name, searches for her by
name, birth date and case number, records her needs, reads why routing proposed each referral, records a
consent with the partner chosen from the directory (the referral goes out), refers her on to another partner,
adds a note, a follow-up and a plan goal due soon (both shown on the dashboard), hands the case to a colleague,
corrects her phone number and languages (by name), closes the case for "no contact" and reopens it; the timeline
says who did what, also for what was recorded in registration. Dates are German ("07.12.2026"). Every page passes
axe-core without serious or critical violations; the screenshots of the pages are written to
docs/screenshots/caseworker-*.png, so that they stay current.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from contracts.calendar import today as city_today
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import eventually, newcomer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def test_a_caseworkers_day(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    sign_in = browsing.sign_in
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def look(page: Any, name: str) -> None:
        """axe without serious or critical violations, and the page's screenshot for the docs."""
        await browsing.accessible(page, name)
        await page.screenshot(path=str(SCREENSHOTS / f"caseworker-{name}.png"), full_page=True)

    family = f"Haddad-{uuid.uuid4().hex[:4]}"
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        # A newcomer registered at the residents' office; routing gives her case to team Nord (Arabic speakers).
        as_registrar = await stack.bearer(api, "registrar")
        body = newcomer(given_names="Leyla", family_name=family, birth_date="1990-05-17")
        registered = await api.post("/api/v1/registrations", json=body, headers=as_registrar)
        assert registered.status_code == 201, registered.text
        person = registered.json()["person_id"]
        as_lotse = await stack.bearer(api, "lotse")

        async def reachable() -> bool:  # registration learns the case's team from referral's events
            return (await api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

        await eventually(reachable, timeout_s=30)
        # A second partner placing people in jobs: the target of "refer elsewhere" later.
        kolping = {
            "partner_id": "kolping-landsberg",
            "name": "Kolping-Bildungswerk Landsberg",
            "category": "charity",
            "languages": ["de", "ar"],
            "services": [
                {"service_type": "job_placement", "name": "Jobcoaching", "languages": ["de", "ar"], "free_places": 8}
            ],
        }
        added = await api.post("/api/v1/partners", json=kolping, headers=await stack.bearer(api, "admin"))
        assert added.status_code == 201, added.text
        cases = (await api.get("/api/v1/cases", params={"person_id": person}, headers=as_lotse)).json()
        case = cases["items"][0]["case_id"]

        browser = await p.chromium.launch(**launch_args())
        try:
            lotse = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(lotse, "lotse")
            # --- the dashboard: names, languages and age bands, one audited read -------------------------------
            row = lotse.locator(f"#case-{case}")
            assert await row.get_by_role("link", name=f"Leyla {family}", exact=True).count() == 1
            text = await row.inner_text()
            assert "Arabisch" in text and "27\u201344 Jahre" in text and "offen" in text, text
            await browsing.accessible(lotse, "dashboard")
            log = (await api.get(f"/api/v1/persons/{person}/access-log", headers=as_lotse)).json()
            assert any(e["action"] == "lookup" and e["actor"] == "user:lotse" for e in log), "the read is audited"

            # --- search by birth date, case number and name ------------------------------------------------------
            for query in ("17.05.1990", case[:8]):
                await lotse.get_by_label("Name, Geburtsdatum oder Fallnummer").fill(query)
                await lotse.get_by_role("button", name="Suchen").click()
                await lotse.wait_for_load_state()
                assert await lotse.get_by_role("link", name=f"Leyla {family}", exact=True).count() == 1, query
            await lotse.get_by_label("Name, Geburtsdatum oder Fallnummer").fill(f"leyla {family.lower()}")
            await lotse.get_by_role("button", name="Suchen").click()
            await lotse.wait_for_load_state()
            await look(lotse, "search")
            await lotse.get_by_role("link", name=f"Leyla {family}", exact=True).click()
            await lotse.wait_for_load_state()
            assert await lotse.get_by_role("heading", level=1).inner_text() == f"Leyla {family}"
            facts = await lotse.locator("#case-facts").inner_text()
            assert "Syrien" in facts and "Arabisch" in facts and "SY" not in facts, facts

            # --- needs: German A1, seeking work, a foreign diploma -> referrals with their reasons --------------
            await lotse.get_by_label("Deutschkenntnisse").select_option("A1")
            await lotse.get_by_label("Schulbildung").select_option("secondary")
            await lotse.get_by_label("Erwerbssituation").select_option("job_seeking")
            await lotse.get_by_label("Ausländischer Abschluss soll anerkannt werden").check()
            await lotse.get_by_role("button", name="Bedarf speichern").click()
            await lotse.wait_for_load_state()
            job = lotse.locator("tr[data-service=job_placement]")

            async def proposed() -> bool:
                await lotse.reload()
                return await job.count() == 1

            await eventually(proposed, timeout_s=30, interval_s=0.5)
            why = await job.locator("td.why").inner_text()
            assert "Arbeitssuche: Jobcenter" in why and "Job seeking" not in why and "Bedarfe: Arbeit" in why, why
            assert "Einwilligung fehlt" in await job.inner_text()

            # --- the consent, the partner chosen from the directory: the referral goes out ----------------------
            await lotse.get_by_label("Partner", exact=True).select_option(label="Jobcenter Landsberg am Lech")
            await lotse.get_by_label("Zweck").select_option("job_placement")
            await lotse.get_by_role("button", name="Erfassen").click()
            await lotse.wait_for_load_state()
            consents = await lotse.locator("#consent-list").inner_text()
            assert "Jobcenter Landsberg am Lech: Arbeitsvermittlung (gültig" in consents, consents

            async def sent() -> bool:
                await lotse.reload()
                if await job.get_attribute("data-status") == "proposed":
                    await job.get_by_role("button", name="Senden").click()
                    await lotse.wait_for_load_state()
                return await job.get_attribute("data-status") == "sent"

            await eventually(sent, timeout_s=30, interval_s=0.5)
            assert "Jobcenter Landsberg am Lech" in await job.inner_text(), "the partner by name, not its id"

            # --- the Jobcenter accepts; the caseworker refers her on to Kolping, which fits better ---------------
            job_id = (await job.get_attribute("id") or "").removeprefix("referral-")
            as_jobcenter = await stack.bearer(api, "jobcenter")
            accepted = await api.post(f"/api/v1/partner/referrals/{job_id}/accept", headers=as_jobcenter)
            assert accepted.status_code == 200, accepted.text
            await lotse.reload()
            job = lotse.locator(f"#referral-{job_id}")
            await job.get_by_label("An").select_option(label="Kolping-Bildungswerk Landsberg")
            await job.get_by_label("Warum").select_option("better_fit")
            await job.get_by_role("button", name="Weitervermitteln: Arbeitsvermittlung").click()
            await lotse.wait_for_load_state()
            assert await job.get_attribute("data-status") == "referred_elsewhere"
            jobs = lotse.locator("tr[data-service=job_placement]")
            assert await jobs.count() == 2
            assert "Kolping-Bildungswerk Landsberg" in await jobs.nth(1).inner_text()
            timeline = await lotse.locator("#timeline").inner_text()
            assert "weitervermittelt an Kolping-Bildungswerk Landsberg: passt dort besser" in timeline, timeline
            referred = lotse.locator("#timeline tr", has_text="weitervermittelt an Kolping")
            assert (await referred.locator("td").last.inner_text()).strip() == "lotse", "who referred her on"
            for recorded in ("Einwilligung erteilt", "Bedarf erhoben"):  # recorded in registration, by her
                row = lotse.locator("#timeline tr", has_text=recorded)
                assert (await row.locator("td").last.inner_text()).strip() == "lotse", f"who acted: {recorded}"

            # --- a note, and the case handed to a colleague ------------------------------------------------------
            await lotse.get_by_label("Notiz", exact=True).fill("Termin beim Jobcenter am Donnerstag besprochen.")
            await lotse.get_by_role("button", name="Notiz speichern").click()
            await lotse.wait_for_load_state()
            assert "Termin beim Jobcenter" in await lotse.locator("#notes").inner_text()
            await lotse.locator("#task-form").get_by_label("Aufgabe").fill("Zeugnisse übersetzen lassen")
            await lotse.locator("#task-form").get_by_label("Fällig am").fill("2026-12-01")
            await lotse.get_by_role("button", name="Aufgabe anlegen").click()
            await lotse.wait_for_load_state()
            tasks = await lotse.locator("#tasks").inner_text()
            assert "Zeugnisse übersetzen lassen" in tasks and "überfällig" in tasks, tasks
            # A goal of her plan due in three days: the dashboard reminds of it with the follow-ups.
            await lotse.locator("#goal-dimension").select_option("placement")
            await lotse.locator("#goal-title").fill("Bewerbungsunterlagen fertig")
            soon = city_today() + timedelta(days=3)
            await lotse.locator("#goal-due_on").fill(soon.isoformat())
            await lotse.get_by_role("button", name="Ziel hinzufügen").click()
            await lotse.wait_for_load_state()
            await lotse.get_by_role("link", name="Start").click()
            await lotse.wait_for_load_state()
            reminder = await lotse.locator("#goals-due").inner_text()
            assert f"Leyla {family}" in reminder and "Bewerbungsunterlagen fertig" in reminder, reminder
            assert soon.strftime("%d.%m.%Y") in reminder and "Bildung und Arbeit" in reminder, reminder
            due = await lotse.locator(f"#case-{case} td.tasks").inner_text()
            assert "1 offen, nächste fällig 01.12.2026" in due and "überfällig" in due, due
            opened = await lotse.locator(f"#case-{case} td").nth(4).inner_text()
            berlin_today = city_today()  # the page's day, not the server's
            assert opened == berlin_today.strftime("%d.%m.%Y"), f"dates as written in German, not ISO: {opened}"
            await look(lotse, "dashboard")
            await lotse.get_by_role("link", name=f"Leyla {family}", exact=True).click()
            await lotse.wait_for_load_state()
            await lotse.get_by_label("Neue Zuständigkeit").select_option("lotse-k.yildiz")
            await lotse.get_by_role("button", name="Übergeben").click()
            await lotse.wait_for_load_state()
            assert "Kemal Yildiz" in await lotse.locator("#case-facts").inner_text()
            await look(lotse, "case")

            # --- her new phone number, on the person page: codes as names there too -------------------------------
            await lotse.get_by_role("link", name="Personendaten").click()
            await lotse.wait_for_load_state()
            data = await lotse.locator("dl.facts").first.inner_text()
            assert "Syrien" in data and "Arabisch" in data and "angemeldet" in data, data
            await lotse.get_by_text("Personendaten ändern", exact=True).first.click()
            await lotse.get_by_label("Telefon").fill("+49 8191 123456")
            # Languages by name, as on the register form: she also speaks French.
            edit = lotse.locator("#edit-person")
            assert await edit.get_by_label("Arabisch", exact=True).is_checked()
            await edit.get_by_label("Französisch", exact=True).check()
            assert "Sprachcodes" not in await edit.inner_text()
            await lotse.get_by_role("button", name="Änderungen speichern").click()
            await lotse.wait_for_load_state()
            data = await lotse.locator("dl.facts").first.inner_text()
            assert "+49 8191 123456" in data and "Französisch" in data and "17.05.1990" in data, data
            await look(lotse, "person")
            await lotse.goto(f"{stack.url}/ui/cases/{case}")

            # --- close for "no contact", then reopen -------------------------------------------------------------
            await lotse.get_by_label("Grund des Abschlusses").select_option("no_contact")
            await lotse.get_by_role("button", name="Fall schließen").click()
            await lotse.wait_for_load_state()
            status = await lotse.locator("#case-facts").inner_text()
            assert "geschlossen" in status and "kein Kontakt mehr" in status, status
            assert await jobs.nth(1).get_attribute("data-status") == "revoked", "nobody is contacted for a closed case"
            timeline = await lotse.locator("#timeline").inner_text()
            assert "Fall geschlossen (kein Kontakt mehr)" in timeline, timeline
            await look(lotse, "case-closed")
            await lotse.get_by_role("button", name="Fall wieder öffnen").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#case-status").get_attribute("data-status") == "open"
            timeline = await lotse.locator("#timeline").inner_text()
            assert "Fall wieder geöffnet" in timeline and "Fall zugewiesen → Kemal Yildiz" in timeline, timeline

            # --- the same case in English: codes as English names -------------------------------------------------
            await lotse.goto(f"{stack.url}/ui/cases/{case}?lang=en")
            facts = await lotse.locator("#case-facts").inner_text()
            assert "Arabic" in facts and "Syria" in facts, facts
            await browsing.accessible(lotse, "case (en)")
        finally:
            await browser.close()
    browsing.report()
