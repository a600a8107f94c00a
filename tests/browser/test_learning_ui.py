"""Courses, the integration plan and needs in headless Chromium, in front of the real stack.

The caseworker (lotse) opens a new person's case, adds a goal and marks it achieved, records a needs
assessment (first with mistakes: German messages next to the fields, the typed input kept), enrols the
person in a seeded demo course and then in a full course, which puts them on its waiting list; the
dashboard shows the entry. The course admin (vhs) sees the course's waiting list, cancels the enrolled
person, and the seat is offered to ours, which the caseworker's dashboard shows. axe-core checks each
new page for serious or critical violations; screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.browser.conftest import PHONE, Browsing, Stack, launch_args
from tests.conftest import course_body, newcomer

DEMO_COURSE = "Integrationskurs A1 bis B1 (Vormittag)"
SMALL_COURSE = "Sonntagscafé Deutsch"


def sunday_sessions() -> list[dict[str, str]]:
    """Sunday afternoons: no demo course meets then, so nothing overlaps."""
    today = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0)
    first = today + timedelta(days=(6 - today.weekday()) % 7 + 14)
    return [
        {
            "starts_at": (first + timedelta(weeks=i)).isoformat(),
            "ends_at": (first + timedelta(weeks=i, hours=2)).isoformat(),
        }
        for i in range(4)
    ]


async def test_caseworker_plans_assesses_enrols_and_sees_the_waiting_list(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in

    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        # A newcomer registered through the API; the referral service opens the case.
        her = newcomer()
        person, case = await stack.registered_with_case(api, her)
        # A course with one seat, taken by someone else: the next person waits.
        as_vhs = await stack.bearer(api, "vhs")
        body = course_body(
            capacity=1,
            title=SMALL_COURSE,
            category="german_second_language",
            target_level="A2",
            funding="city",
            sessions=sunday_sessions(),
        )
        small = (await api.post("/api/v1/courses", json=body, headers=as_vhs)).json()["course_id"]
        taken = await api.post(
            f"/api/v1/courses/{small}/enrolments", json={"person_id": f"p-{uuid.uuid4().hex[:8]}"}, headers=as_vhs
        )
        assert taken.json()["status"] == "enrolled"
        catalogue = (await api.get("/api/v1/courses", params={"page_size": 100})).json()["items"]
        demo = next(c["course_id"] for c in catalogue if c["title"] == DEMO_COURSE)

        browser = await p.chromium.launch(**launch_args())
        try:
            lotse = await browser.new_page()
            await sign_in(lotse, "lotse")
            await lotse.goto(f"{stack.url}/ui/cases/{case}")
            assert await lotse.get_by_text("Noch keine Ziele.").is_visible()

            # --- the integration plan: add a goal, then mark it achieved -------------------------------
            goal_form = lotse.locator("#goal-form")
            await goal_form.get_by_label("Dimension").select_option("placement")
            await goal_form.locator("#goal-title").fill("Anerkennung des Pflegediploms")
            await goal_form.get_by_label("Fällig am").fill("2027-03-31")
            await goal_form.get_by_role("button", name="Ziel hinzufügen").click()
            await lotse.wait_for_load_state()
            goal = lotse.locator("#goals tr[data-dimension=placement]")
            assert await goal.get_attribute("data-status") == "open"
            await goal.get_by_label("Status: Anerkennung des Pflegediploms").select_option("achieved")
            await goal.get_by_role("button", name="Ziel ändern: Anerkennung des Pflegediploms").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#goals tr[data-dimension=placement]").get_attribute("data-status") == "achieved"
            assert "erreicht" in await lotse.locator("#goals").inner_text()

            # --- needs: mistakes first (German, next to the fields, input kept), then saved ------------
            needs = lotse.locator("#needs-form")
            await needs.get_by_label("Schulbildung").select_option("secondary")
            await needs.get_by_label("Erwerbssituation").select_option("job_seeking")
            await needs.get_by_label("Berufsabschluss").fill("Pflegediplom (Syrien)")
            await needs.get_by_label("Alter der Kinder").fill("vier")
            await needs.get_by_label("Kinderbetreuung nötig").check()
            await needs.get_by_label("Ausländischer Abschluss soll anerkannt werden").check()
            await needs.get_by_role("button", name="Bedarf speichern").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#needs-german_level-error").inner_text() == "Bitte ausfüllen."
            assert "ganze Zahlen" in await lotse.locator("#needs-children_ages-error").inner_text()
            assert await lotse.locator("#needs-vocational_qualification").input_value() == "Pflegediplom (Syrien)"
            assert await lotse.locator("#needs-childcare_needed").is_checked()
            await shot(lotse, "21-case-needs-errors")
            await accessible(lotse, "case with needs errors")
            await needs.get_by_label("Deutschkenntnisse").select_option("A1")
            await needs.get_by_label("Alter der Kinder").fill("4")
            await needs.get_by_role("button", name="Bedarf speichern").click()
            await lotse.wait_for_load_state()
            latest = await lotse.locator("#latest-needs").inner_text()
            assert "A1" in latest and "Kinderbetreuung" in latest and "Anerkennung" in latest

            # --- courses: a seeded demo course, then the full one (waiting list) -----------------------
            enrol = lotse.locator("#enrol-form")
            await enrol.get_by_label("Kurs (freie Plätze)").select_option(demo)
            await enrol.get_by_role("button", name="Zum Kurs anmelden").click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#enrol-result").inner_text() == f"Angemeldet: {DEMO_COURSE}."
            assert await lotse.locator(f"#enrolments tr[data-course='{demo}']").get_attribute("data-status") == (
                "enrolled"
            )
            # Again the same course: refused, and said so next to the form.
            await enrol.get_by_label("Kurs (freie Plätze)").select_option(demo)
            await enrol.get_by_role("button", name="Zum Kurs anmelden").click()
            await lotse.wait_for_load_state()
            # Said from the refusal's Problem type (course-already-enrolled), not from the service's English.
            refused = await lotse.locator("#enrol-error").inner_text()
            assert refused.endswith(": Die Person ist in diesem Kurs schon angemeldet oder auf der Warteliste."), (
                refused
            )
            await shot(lotse, "21b-case-enrol-refused")
            await enrol.get_by_label("Kurs (freie Plätze)").select_option(small)
            await enrol.get_by_role("button", name="Zum Kurs anmelden").click()
            await lotse.wait_for_load_state()
            assert "auf der Warteliste, Platz 1" in await lotse.locator("#enrol-result").inner_text()
            await shot(lotse, "22-case-plan-needs-courses")
            await accessible(lotse, "case with plan, needs and courses")

            # --- the caseworker's dashboard: the course waiting list ------------------------------------
            await lotse.goto(f"{stack.url}/ui/")
            entry = lotse.locator(f"#course-waiting tr[data-person='{person}']")
            assert await entry.get_attribute("data-status") == "waitlisted"
            assert "Platz 1" in await entry.inner_text()
            await shot(lotse, "23-dashboard-course-waiting")
            await accessible(lotse, "caseworker dashboard with course waiting lists")
            await entry.get_by_role("link", name=SMALL_COURSE).click()
            await lotse.wait_for_load_state()
            assert await lotse.locator("#waiting-list tr").nth(1).get_attribute("data-person") == person
            waiting = await lotse.locator("#waiting-list tr").nth(1).inner_text()
            assert f"{her['given_names']} {her['family_name']}" in waiting, "her name, not 'Person 1a2b'"
            assert await lotse.get_by_role("button", name="Stornieren").count() == 0, "caseworkers do not cancel"
            await accessible(lotse, "course page (caseworker)")

            # --- the course admin: their courses, the course page, cancel: the seat is offered ---------
            vhs = await browser.new_page(viewport=PHONE)  # a phone
            await sign_in(vhs, "vhs")
            row = vhs.locator(f"#my-courses tr#course-{small}")
            assert (await row.get_attribute("data-waiting"), await row.get_attribute("data-free")) == ("1", "0")
            await shot(vhs, "24-course-admin-dashboard")
            await accessible(vhs, "course admin dashboard")
            await row.get_by_role("link", name=SMALL_COURSE).click()
            await vhs.wait_for_load_state()
            await shot(vhs, "25-course-page-full")
            await accessible(vhs, "course page (course admin)")
            await vhs.locator("#enrolled").get_by_role("button", name="Stornieren").click()
            await vhs.wait_for_load_state()
            offer = vhs.locator(f"#offers tr[data-person='{person}']")
            assert await offer.get_attribute("data-status") == "offered"
            assert await vhs.locator("#waiting-list").count() == 0
            await shot(vhs, "26-course-page-offer")
            await accessible(vhs, "course page with an open offer")

            await lotse.goto(f"{stack.url}/ui/")
            assert await entry.get_attribute("data-status") == "offered"
            assert "Platz angeboten" in await entry.inner_text()

            # --- the public course page: the facts and sessions, nobody's enrolment ----------------------
            public = await browser.new_page()
            await public.goto(f"{stack.url}/ui/courses")
            await public.get_by_role("link", name=DEMO_COURSE).click()
            await public.wait_for_load_state()
            assert await public.locator("#sessions tbody tr").count() == 12
            assert await public.locator("#waiting-list, #enrolled").count() == 0
            await shot(public, "27-course-page-public")
            await accessible(public, "course page (public)")
            assert await public.locator("script").count() == 0
        finally:
            await browser.close()
    browsing.report()
