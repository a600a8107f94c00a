"""A course admin's working day in headless Chromium, in front of the real stack.

The VHS's course admin creates a course in the UI; two newcomers are enrolled (as a navigator would); the admin
sees them by name (courses asks registration once for the list, which logs the read), adds a session, records
attendance for a session on the course page and sees it in the attendance grid, records a completion and issues
the education pass, whose QR code leads to the public verification page. axe fails on serious violations; the
screenshots go to docs/screenshots/.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from contracts.calendar import today as city_today
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.browser.showcase import document, registration_reachable, strictly_accessible
from tests.conftest import newcomer

__all__ = ["registration_reachable"]  # the fixture, used by name
TITLE = "Deutsch im Alltag A2 (Abendkurs)"


async def test_a_course_admin_creates_a_course_records_attendance_and_issues_a_pass(
    registration_reachable: None, stack: Stack
) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        as_registrar = await stack.bearer(api, "registrar")
        people = {}
        for given, family in (("Leyla", "Demir"), ("Omar", "Nasser")):
            reply = await api.post(
                "/api/v1/registrations", headers=as_registrar, json=newcomer(given_names=given, family_name=family)
            )
            assert reply.status_code == 201, reply.text
            people[f"{given} {family}"] = reply.json()["person_id"]
        browser = await p.chromium.launch(**launch_args())
        try:
            vhs = await browser.new_page()
            await browsing.sign_in(vhs, "vhs")
            await (
                vhs.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Kursverwaltung").click()
            )
            await vhs.wait_for_load_state()
            await strictly_accessible(browsing, vhs, "course admin: courses")

            # --- a new course: a mistake first (no title), said next to the field, the input kept --------------
            first_day = (city_today() + timedelta(days=21)).isoformat()
            form = vhs.locator("#new-course")
            await form.get_by_label("Art des Kurses").select_option("german_second_language")
            await form.get_by_label("Ziel-Niveau (optional)").select_option("A2")
            await form.get_by_label("Plätze").fill("12")
            await form.get_by_label("Erster Termin (Datum)").fill(first_day)
            await form.get_by_label("Beginn (Uhrzeit)").fill("18:00")
            await form.get_by_label("Ende (Uhrzeit)").fill("20:00")
            await form.get_by_label("Anzahl der Termine (wöchentlich)").fill("6")
            await form.get_by_role("button", name="Kurs anlegen").click()
            await vhs.wait_for_load_state()
            assert await vhs.locator("#error-summary").count() == 1
            assert await vhs.get_by_label("Plätze").input_value() == "12"
            await vhs.locator("#c-title").fill(TITLE)
            await vhs.get_by_role("button", name="Kurs anlegen").click()
            await vhs.wait_for_load_state()
            assert await vhs.get_by_role("heading", level=1).inner_text() == TITLE
            assert "Der Kurs ist angelegt." in await vhs.get_by_role("status").inner_text()
            assert await vhs.locator("#sessions tbody tr").count() == 6
            course = vhs.url.split("/ui/courses/")[1].split("?")[0]

            # --- two participants (enrolled as a navigator would), shown by name --------------------------------
            as_vhs = await stack.bearer(api, "vhs")
            for person in people.values():
                enrolled = await api.post(
                    f"/api/v1/courses/{course}/enrolments", json={"person_id": person}, headers=as_vhs
                )
                assert enrolled.status_code == 201 and enrolled.json()["status"] == "enrolled", enrolled.text
            await vhs.goto(f"{stack.url}/ui/courses/{course}")
            table = await vhs.locator("#enrolled").inner_text()
            assert "Leyla Demir" in table and "Omar Nasser" in table and "Person " not in table

            # --- one more session, and the capacity changed ---------------------------------------------------------
            extra = (datetime.fromisoformat(first_day) + timedelta(weeks=6)).date().isoformat()
            add = vhs.locator("#add-session")
            await add.get_by_label("Datum").fill(extra)
            await add.get_by_label("Beginn (Uhrzeit)").fill("18:00")
            await add.get_by_label("Ende (Uhrzeit)").fill("20:00")
            await add.get_by_role("button", name="Termin hinzufügen").click()
            await vhs.wait_for_load_state()
            assert "Der Termin ist hinzugefügt." in await vhs.get_by_role("status").inner_text()
            assert await vhs.locator("#sessions tbody tr").count() == 7
            await vhs.locator("#e-capacity").fill("14")
            await vhs.get_by_role("button", name="Änderungen speichern").click()
            await vhs.wait_for_load_state()
            assert "14" in await vhs.locator("#free-seats").inner_text()

            # --- attendance for the first session: Omar was not there ----------------------------------------------
            attendance = vhs.locator("#attendance")
            session = await attendance.get_by_label("Termin").locator("option").first.get_attribute("value")
            await attendance.get_by_label("Termin").select_option(session)
            await attendance.get_by_label("Omar Nasser").uncheck()
            await attendance.get_by_role("button", name="Anwesenheit speichern").click()
            await vhs.wait_for_load_state()
            grid = vhs.locator("#attendance-grid")
            leyla_row = grid.locator("tbody tr", has_text="Leyla Demir")
            omar_row = grid.locator("tbody tr", has_text="Omar Nasser")
            assert await leyla_row.locator(f"td[data-session='{session}']").get_attribute("data-present") == "yes"
            assert await omar_row.locator(f"td[data-session='{session}']").get_attribute("data-present") == "no"
            await document(browsing, vhs, "course-admin-course")
            await strictly_accessible(browsing, vhs, "course admin: course page")

            # --- Leyla passes; her education pass, with the QR code to the verification page ----------------------
            leyla = vhs.locator("#enrolled tbody tr", has_text="Leyla Demir")
            await leyla.get_by_label("Ergebnis: Leyla Demir").select_option("passed")
            await leyla.get_by_label("Zertifikat: Leyla Demir").fill("DTZ A2")
            await leyla.get_by_role("button", name="Abschluss eintragen: Leyla Demir").click()
            await vhs.wait_for_load_state()
            await vhs.get_by_role("button", name="Bildungspass ausstellen: Leyla Demir").click()
            await vhs.wait_for_load_state()
            assert await vhs.get_by_role("heading", level=1).inner_text() == "Bildungspass ausgestellt"
            assert await vhs.locator("#pass-holder").inner_text() == "Leyla Demir", "the name as registered"
            assert "DTZ A2" in await vhs.locator("#pass-entries").inner_text()
            assert await vhs.locator("#pass-qr svg").count() == 1, "the QR code, drawn inline"
            code = await vhs.locator("#pass-code").inner_text()
            await document(browsing, vhs, "course-admin-pass")
            await strictly_accessible(browsing, vhs, "course admin: education pass")

            log = await api.get(
                f"/api/v1/persons/{people['Leyla Demir']}/access-log", headers=await stack.bearer(api, "datenschutz")
            )
            actions = [e["action"] for e in log.json()]
            assert "read_participant_name" in actions and "read_pass_holder" in actions, "every read is logged"

            # --- anyone with the QR code checks the pass; no personal data on that page ------------------------------
            public = await browser.new_page()
            await public.goto(await vhs.get_by_role("link", name="Prüfseite öffnen").get_attribute("href") or "")
            assert await public.locator("#verdict").get_attribute("data-verdict") == "valid"
            assert code in await public.content() and "Leyla" not in await public.content()
            await strictly_accessible(browsing, public, "pass verification")
            await document(browsing, public, "course-admin-pass-verified")
            unknown = await public.goto(f"{stack.url}/ui/verify/AAAA-BBBB-CCCC")
            assert unknown is not None and await public.locator("#verdict").get_attribute("data-verdict") == "unknown"

            # --- cancelling the course takes a confirmation --------------------------------------------------------
            await vhs.goto(f"{stack.url}/ui/courses/{course}")
            await vhs.get_by_label("Ja, ich will diesen Kurs absagen").check()
            await vhs.get_by_role("button", name="Kurs absagen").click()
            await vhs.wait_for_load_state()
            assert "Der Kurs ist abgesagt." in await vhs.get_by_role("status").inner_text()
            assert await vhs.locator("#edit-course").count() == 0
        finally:
            await browser.close()
    browsing.report()
