"""The admins' pages in headless Chromium, in front of the real stack: the admin reads the routing rules,
is told why an invalid rule set is refused, saves a small valid change as a new version, creates an
account whose one-time password then signs in, and disables it again. axe-core checks every page for
serious or critical violations; screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import json

from tests.browser.conftest import PHONE, Stack, chromium


async def test_admin_edits_the_routing_rules_and_manages_an_account(stack: Stack) -> None:
    async with chromium(stack) as (browser, browsing, _):
        shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
        # --- not for everyone: a caseworker is refused ------------------------------------------
        lotse = await browser.new_page()
        await sign_in(lotse, "lotse")
        assert await lotse.get_by_role("link", name="Verwaltung", exact=True).count() == 0
        refused = await lotse.goto(f"{stack.url}/ui/admin/routing-rules")
        assert refused is not None and refused.status == 403

        # --- the admin's overview and the rules in force -----------------------------------------
        admin = await browser.new_page()
        await sign_in(admin, "admin")
        await admin.get_by_role("link", name="Verwaltung", exact=True).click()
        await admin.wait_for_load_state()
        assert await admin.get_by_role("heading", level=1).inner_text() == "Verwaltung"
        await accessible(admin, "admin overview")
        await admin.get_by_role("link", name="Vermittlungsregeln").first.click()
        await admin.wait_for_load_state()
        assert admin.url.endswith("/ui/admin/routing-rules")
        assert await admin.locator("#current-version").get_attribute("data-version") == "0"
        assert await admin.locator("#rules tbody tr").count() >= 5
        assert "Kurs mit Kinderbetreuung" in await admin.locator("#rule-course-with-childcare").inner_text()
        await shot(admin, "01-routing-rules")
        await accessible(admin, "routing rules")

        # An invalid rule set: the service's reasons next to the textarea, the text kept, nothing saved.
        editor = admin.get_by_label("Regeln als JSON (eine Liste)")
        rules = json.loads(await editor.input_value())
        invalid = json.dumps([{**rules[0], "purpose": "fortune_telling"}, *rules[1:]], indent=2)
        await editor.fill(invalid)
        await admin.get_by_role("button", name="Als neue Version speichern").click()
        await admin.wait_for_load_state()
        errors = await admin.locator("#rules-errors").inner_text()
        assert "nicht gültig" in errors and f"Regel 1 ({rules[0]['id']}), purpose" in errors
        assert "Bitte einen der angebotenen Werte wählen." in errors and "Input should be" not in errors
        assert await editor.input_value() == invalid
        assert await editor.get_attribute("aria-invalid") == "true"
        assert await admin.locator("#current-version").get_attribute("data-version") == "0"
        await shot(admin, "02-routing-rules-invalid")
        await accessible(admin, "routing rules with errors")

        # One small valid change: a clearer explanation of one rule. It becomes version 1.
        changed = [dict(rule) for rule in rules]
        changed[0]["description"] = changed[0]["description"] + " (Stand: geprüft)"
        await editor.fill(json.dumps(changed, indent=2, ensure_ascii=False))
        await admin.get_by_role("button", name="Als neue Version speichern").click()
        await admin.wait_for_load_state()
        assert "Gespeichert als Version 1." in await admin.get_by_role("status").inner_text()
        assert await admin.locator("#current-version").get_attribute("data-version") == "1"
        assert "(Stand: geprüft)" in await admin.locator(f"#rule-{rules[0]['id']}").inner_text()
        assert await admin.locator("#version-1").count() == 1
        await shot(admin, "03-routing-rules-saved")
        await accessible(admin, "routing rules saved")

        # --- a new account: the password shown once signs in ---------------------------------------
        await admin.get_by_role("link", name="Benutzerkonten").click()
        await admin.wait_for_load_state()
        assert await admin.locator("#roster tbody tr").count() == 4, "the referral service's roster"
        await accessible(admin, "user accounts")
        await admin.get_by_label("Benutzername").fill("neue.lotsin")
        await admin.get_by_role("checkbox", name="Integrationslotse (caseworker)").check()
        await admin.get_by_label("Team (optional)").fill("integration-sued")
        await admin.get_by_role("button", name="Anlegen").click()
        await admin.wait_for_load_state()
        password = await admin.get_by_label("Passwort (nur jetzt sichtbar)").input_value()
        assert len(password) >= 16
        row = admin.locator("#account-neue\\.lotsin")
        assert await row.get_attribute("data-active") == "true"
        assert "integration-sued" in await row.inner_text()
        await shot(admin, "04-account-created")
        await accessible(admin, "account created")

        newcomer = await browser.new_page(viewport=PHONE)  # on a phone
        await newcomer.goto(f"{stack.url}/ui/sign-in")
        await newcomer.get_by_label("Benutzername").fill("neue.lotsin")
        await newcomer.get_by_label("Passwort").fill(password)
        await newcomer.get_by_role("button", name="Anmelden").click()
        await newcomer.wait_for_load_state()
        assert "neue.lotsin" in await newcomer.locator(".session").inner_text()
        assert await newcomer.get_by_role("heading", name="Übersicht").count() == 1

        # Disabled by the admin: the session ends with the next page.
        await row.get_by_role("button", name="Sperren: neue.lotsin").click()
        await admin.wait_for_load_state()
        assert await admin.locator("#account-neue\\.lotsin").get_attribute("data-active") == "false"
        await shot(admin, "05-account-disabled")
        await newcomer.reload()
        assert "neue.lotsin" not in await newcomer.locator(".session").inner_text()
        await newcomer.goto(f"{stack.url}/ui/register")
        assert "/ui/sign-in" in newcomer.url
        await shot(newcomer, "06-disabled-user-signed-out")

        # The admin pages on a phone.
        await browsing.on_a_phone(browser, "admin", "/ui/admin/users", "07-accounts-phone", "user accounts (phone)")


async def test_admin_adds_a_partner_with_a_service_and_a_navigator(stack: Stack) -> None:
    """A city sets itself up in the browser: a new partner organisation with a service, its details on its own
    page, and a new integration navigator on the roster, each chosen from lists by label."""
    import httpx

    async with chromium(stack) as (browser, browsing, _):
        shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
        admin = await browser.new_page()
        await sign_in(admin, "admin")
        await admin.get_by_role("link", name="Verwaltung", exact=True).click()
        await admin.wait_for_load_state()
        await admin.get_by_role("link", name="Partnerorganisationen").first.click()
        await admin.wait_for_load_state()
        assert admin.url.endswith("/ui/admin/partners")
        await shot(admin, "11-partners")
        await accessible(admin, "partner organisations")

        # --- a new partner, refused first for a forgotten kind, then added ----------------------
        await admin.get_by_role("textbox", name="Name", exact=True).fill("Caritas Kaufering")
        await admin.get_by_role("textbox", name="Kennung").fill("caritas-kaufering")
        await admin.get_by_role("checkbox", name="Arabisch").check()
        await admin.get_by_role("checkbox", name="Migrationsberatung (MBE)").check()
        await admin.get_by_role("button", name="Hinzufügen").click()
        await admin.wait_for_load_state()
        assert "Bitte eine Art wählen." in await admin.locator("#error-summary").inner_text()
        partner_id = admin.get_by_role("textbox", name="Kennung")
        assert await partner_id.input_value() == "caritas-kaufering", "the form is kept"
        await shot(admin, "12-partner-refused")
        await accessible(admin, "partner refused")
        await admin.get_by_label("Art der Organisation").select_option(label="Wohlfahrtsverband")
        await admin.get_by_role("button", name="Hinzufügen").click()
        await admin.wait_for_load_state()
        assert "/ui/admin/partners/caritas-kaufering?notice=created" in admin.url
        assert "angelegt" in await admin.get_by_role("status").inner_text()

        # Its service: places and answer time; then a location on the entry.
        service = admin.locator("#service-migration_counselling")
        await service.get_by_label("Freie Plätze").fill("6")
        await service.get_by_label("Antwort binnen Arbeitstagen").fill("3")
        await service.get_by_role("button", name="Angebot speichern").click()
        await admin.wait_for_load_state()
        assert "6 freie Plätze" in await admin.locator("#service-migration_counselling h3").inner_text()
        location = admin.locator("#loc-0")
        await location.get_by_label("Bezeichnung").fill("Beratungsstelle Kaufering")
        await location.get_by_label("Ort").fill("Kaufering")
        await admin.get_by_role("button", name="Speichern", exact=True).click()
        await admin.wait_for_load_state()
        assert "Der Eintrag ist gespeichert." in await admin.get_by_role("status").inner_text()
        await shot(admin, "13-partner-page")
        await accessible(admin, "partner page")

        # The public directory shows it at once.
        async with httpx.AsyncClient(base_url=stack.url) as client:
            entry = (await client.get("/api/v1/partners/caritas-kaufering")).json()
        assert entry["category"] == "charity" and entry["locations"][0]["city"] == "Kaufering"
        assert [(s["service_type"], s["free_places"]) for s in entry["services"]] == [("migration_counselling", 6)]

        # --- a new integration navigator on the roster ------------------------------------------
        await admin.get_by_role("link", name="Integrationslotsen").first.click()
        await admin.wait_for_load_state()
        await admin.get_by_label("Benutzername").fill("n.rahimi")
        await admin.get_by_label("Angezeigter Name").fill("Nadia Rahimi")
        await admin.get_by_role("combobox", name="Team", exact=True).fill("integration-nord")
        await admin.get_by_role("checkbox", name="Persisch").check()
        await admin.get_by_label("Höchstzahl offener Fälle").fill("30")
        await admin.get_by_role("button", name="In die Einsatzliste eintragen").click()
        await admin.wait_for_load_state()
        row = admin.locator("#caseworker-n\\.rahimi")
        assert await row.get_attribute("data-active") == "true"
        assert "Deutsch, Persisch" in await row.inner_text() and "0 / 30" in await row.inner_text()
        await shot(admin, "14-roster")
        await accessible(admin, "roster")

        partner_page = "/ui/admin/partners/caritas-kaufering"
        await browsing.on_a_phone(browser, "admin", partner_page, "15-partner-page-phone", "partner page (phone)")
