"""The web UI in headless Chromium (Playwright driving Debian's ``chromium``), in front of the real stack.

The gateway runs in a real uvicorn server on a free port; the registration, referral, courses and
partners apps are the real apps on SQLite with the session's broker, reached over ASGI mounts. A
registrar registers a newcomer in the UI; the caseworker sees the proposed referrals, tries to send
one without a consent (and is told why), records the consent (the referral goes out), revokes another;
the Jobcenter's user accepts in the partner portal. Screenshots go to the test's tmp dir; axe-core
checks the main pages for serious or critical violations.
"""

from __future__ import annotations

from tests.browser.conftest import PHONE, Stack, chromium
from tests.conftest import REFERRAL_NEEDS, eventually


async def test_register_refer_and_accept_in_the_browser(stack: Stack) -> None:
    async with chromium(stack) as (browser, browsing, api):
        shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
        # --- the public pages: no sign-in; the information pack right to left in Arabic ---------------
        public = await browser.new_page()
        await public.goto(f"{stack.url}/ui/info/ar")
        assert await public.locator("article#info-pack").get_attribute("dir") == "rtl"
        assert await public.locator("article#info-pack").get_attribute("lang") == "ar"
        await shot(public, "01-info-pack-ar")
        await accessible(public, "info pack (ar)")
        await public.goto(f"{stack.url}/ui/courses?lang=en")
        assert await public.locator("html").get_attribute("lang") == "en"
        assert await public.get_by_role("columnheader", name="Free seats").count() == 1
        await accessible(public, "courses")
        await public.goto(f"{stack.url}/ui/partners")  # the language stays English (cookie)
        assert await public.get_by_role("heading", level=1).inner_text() == "Partner directory"
        directory = await public.locator("main").inner_text()
        assert "Arabic" in directory and ", ar" not in directory, "languages by name, in English"
        await shot(public, "02-partners-en")
        await accessible(public, "partners")
        await public.goto(f"{stack.url}/api/v1/docs")  # the API reference, readable without script
        assert public.url.endswith("/ui/api")
        assert await public.get_by_role("heading", name="POST /api/v1/registrations").count() == 1
        await accessible(public, "API reference")

        # --- CSRF: a form post without the session's token is refused -----------------------------
        forged = await api.post("/ui/sign-in", data={"username": "registrar", "password": "x"})
        assert forged.status_code == 403

        # --- the registrar registers a newcomer: German validation messages, then success ----------
        registrar = await browser.new_page(viewport=PHONE)  # a phone
        await sign_in(registrar, "registrar")
        cookies = {c["name"]: c for c in await registrar.context.cookies()}
        session = cookies["lip_session"]
        assert session["httpOnly"] and session["sameSite"] == "Lax" and session["secure"]
        await registrar.goto(f"{stack.url}/ui/register")
        await accessible(registrar, "register")
        await registrar.get_by_label("Vornamen").fill("Amina")
        await registrar.get_by_role("button", name="Anmelden und speichern").click()
        await registrar.wait_for_load_state()
        assert "Bitte ausfüllen." in await registrar.locator("#e-family_name").inner_text()
        await shot(registrar, "03-register-errors")
        await accessible(registrar, "register with errors")
        fields = {
            "given_names": "Amina",
            "family_name": "Haddad",
            "birth_date": "1991-03-14",
            "street": "Schwaighofstraße",
            "house_number": "12",
            "postal_code": "86899",
            "district": "Schwaighofsiedlung",
            "email": "amina@example.org",
        }

        async def named_choices() -> None:
            """Countries and languages by name, not codes (issue 14)."""
            await registrar.get_by_label("Staatsangehörigkeit").select_option(label="Syrien")
            await registrar.get_by_role("checkbox", name="Arabisch").check()
            await registrar.get_by_role("checkbox", name="Englisch").check()
            await registrar.get_by_label("Bevorzugte Sprache").select_option(label="Arabisch")

        for name, value in fields.items():
            await registrar.locator(f"#f-{name}").fill(value)
        await named_choices()
        await registrar.get_by_label("Geschlecht").select_option("female")
        await registrar.get_by_label("Aufenthaltsstatus").select_option("recognised_refugee")
        await registrar.get_by_role("button", name="Anmelden und speichern").click()
        await registrar.wait_for_load_state()
        assert "Die Person ist angemeldet." in await registrar.get_by_role("status").inner_text()
        person = registrar.url.split("/ui/persons/")[1].split("?")[0]
        kept = (await api.get(f"/api/v1/persons/{person}", headers=await stack.bearer(api, "registrar"))).json()
        chosen = (sorted(kept["languages"]), kept["preferred_language"], kept["nationality"])
        assert chosen == (["ar", "en"], "ar", "SY"), kept
        await shot(registrar, "04-registered")
        # The same person again: the duplicate warning with a "different person" confirmation.
        await registrar.goto(f"{stack.url}/ui/register")
        for name, value in fields.items():
            await registrar.locator(f"#f-{name}").fill(value)
        await named_choices()
        await registrar.get_by_role("button", name="Anmelden und speichern").click()
        await registrar.wait_for_load_state()
        assert await registrar.locator("#duplicate").is_visible()
        await registrar.get_by_role("button", name="Das ist eine andere Person: trotzdem anmelden").is_visible()
        await shot(registrar, "05-duplicate-warning")

        # A consent for the VHS (the registrar) and the needs (the caseworker, once registration knows the case
        # is the team's: issue 12) through the public API.
        as_registrar = await stack.bearer(api, "registrar")
        consent = {"partner_category": "adult_education", "purpose": "course_enrolment"}
        assert (
            await api.post(f"/api/v1/persons/{person}/consents", json=consent, headers=as_registrar)
        ).status_code == 201
        as_caseworker = await stack.bearer(api, "lotse")

        async def needs_recorded() -> bool:
            reply = await api.post(
                f"/api/v1/persons/{person}/needs-assessments", json=REFERRAL_NEEDS, headers=as_caseworker
            )
            return reply.status_code == 201

        await eventually(needs_recorded, timeout_s=30)

        async def case_id() -> str | None:
            cases = (await api.get("/api/v1/cases", params={"person_id": person}, headers=as_caseworker)).json()
            if not cases["items"]:
                return None
            case = (await api.get(f"/api/v1/cases/{cases['items'][0]['case_id']}", headers=as_caseworker)).json()
            return str(case["case_id"]) if len(case["referrals"]) >= 4 else None

        case = await eventually(case_id, timeout_s=30)

        # --- the caseworker: dashboard, the case, send (refused: no consent), consent, revoke --------
        lotse = await browser.new_page()
        await sign_in(lotse, "lotse")
        assert await lotse.get_by_role("link", name="Amina Haddad", exact=True).is_visible(), "named"
        assert await lotse.locator("#proposed-h").is_visible()
        await shot(lotse, "06-caseworker-dashboard")
        await accessible(lotse, "caseworker dashboard")
        await lotse.get_by_role("link", name="Amina Haddad", exact=True).click()
        await lotse.wait_for_load_state()
        job = lotse.locator("tr[data-service=job_placement]")
        assert await job.get_attribute("data-status") == "proposed"
        assert "Einwilligung fehlt" in await job.inner_text()
        await shot(lotse, "07-case-proposed")
        await accessible(lotse, "case")
        await job.get_by_role("button", name="Senden").click()
        await lotse.wait_for_load_state()
        # The catalogue's sentence for the Problem type consent-missing, not the service's English detail.
        refusal = await lotse.get_by_role("alert").inner_text()
        assert "Die Vermittlung kann nicht gesendet werden: Einwilligung fehlt." in refusal
        assert "cannot be sent" not in refusal
        await shot(lotse, "07b-send-refused")
        await lotse.get_by_label("Partner", exact=True).select_option("jobcenter-landsberg")
        await lotse.get_by_label("Zweck").select_option("job_placement")
        await lotse.get_by_role("button", name="Erfassen").click()
        await lotse.wait_for_load_state()

        async def job_sent() -> bool:
            await lotse.reload()
            return await lotse.locator("tr[data-service=job_placement]").get_attribute("data-status") == "sent"

        await eventually(job_sent, timeout_s=20, interval_s=0.5)
        ihk = lotse.locator("tr[data-service=qualification_recognition]")
        await ihk.get_by_role("button", name="Zurückziehen").click()
        await lotse.wait_for_load_state()
        assert await ihk.get_attribute("data-status") == "revoked"
        await shot(lotse, "08-case-sent-and-revoked")

        # --- the Jobcenter's user accepts in the partner portal -------------------------------------
        partner = await browser.new_page()
        await sign_in(partner, "jobcenter")
        assert partner.url.endswith("/ui/partner")
        await accessible(partner, "partner portal")
        assert await partner.locator("script").count() == 0, "the pages work without JavaScript"
        row = partner.locator("tr[data-service=job_placement]")
        assert await row.count() == 1, "the Jobcenter sees only its own referral"
        await row.get_by_role("button", name="Annehmen").click()
        await partner.wait_for_load_state()
        assert await partner.locator("tr[data-service=job_placement]").get_attribute("data-status") == "accepted"
        await shot(partner, "09-partner-accepted")

        await lotse.reload()
        assert await job.get_attribute("data-status") == "accepted"
        await shot(lotse, "10-case-accepted")
        # The analyst's page: the council report and its figures, no person in sight.
        analyst = await browser.new_page()
        await sign_in(analyst, "statistik")
        await analyst.goto(f"{stack.url}/ui/statistics?period=2026-11")
        assert await analyst.get_by_role("heading", name="Statistik").count() == 1
        await accessible(analyst, "statistics")
        async with analyst.expect_navigation():
            await analyst.get_by_role("link", name="Bericht an den Stadtrat (HTML, druckbar als PDF)").click()
        assert await analyst.locator("svg").count() > 0, "the report draws its charts"
        await shot(analyst, "11-council-report")
        assert "Haddad" not in await analyst.content()
        csv = await analyst.request.get(f"{stack.url}/ui/statistics/report?period=2026-11&format=csv")
        assert csv.ok and csv.headers["content-type"].startswith("text/csv")
        await analyst.goto(f"{stack.url}/ui/statistics?period=last-year")
        assert await analyst.get_by_role("alert").count() >= 1
        denied = await lotse.request.get(f"{stack.url}/ui/statistics/report?period=2026-11&format=csv")
        assert denied.status == 403, "a caseworker does not read statistics"

        # Signing out ends the session.
        await lotse.get_by_role("button", name="Abmelden").click()
        await lotse.goto(f"{stack.url}/ui/cases/{case}")
        assert "/ui/sign-in" in lotse.url
