"""A partner's working day in headless Chromium, in front of the real stack.

Two newcomers consent to the Jobcenter and have their needs recorded; their job placement referrals go out.
The Jobcenter's user sees the organisation's name and the persons' names on the list, opens the first referral
and reads the contact data the consent allows, accepts, starts and completes it with an outcome; the second person
withdraws the consent, and its page and the list say so instead of showing contact data or the name. The user then
reports free places and changes the organisation's directory entry. axe fails on serious violations; the
screenshots go to docs/screenshots/.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import Browsing, Stack, launch_args
from tests.browser.showcase import document, registration_reachable, strictly_accessible
from tests.conftest import REFERRAL_NEEDS, eventually, newcomer

JOBCENTER = "jobcenter-landsberg"
__all__ = ["registration_reachable"]  # the fixture, used by name


async def person_referred(api: httpx.AsyncClient, stack: Stack, **person: Any) -> tuple[str, str, str]:
    """Register a newcomer with a consent for the Jobcenter and their needs: (person, consent, referral sent)."""
    as_registrar, as_caseworker = await stack.bearer(api, "registrar"), await stack.bearer(api, "lotse")
    reply = await api.post("/api/v1/registrations", json=newcomer(**person), headers=as_registrar)
    assert reply.status_code == 201, reply.text
    person_id = reply.json()["person_id"]
    consent = await api.post(
        f"/api/v1/persons/{person_id}/consents",
        headers=as_registrar,
        json={"partner_id": JOBCENTER, "purpose": "job_placement"},
    )
    assert consent.status_code == 201, consent.text

    async def needs_recorded() -> bool:
        reply = await api.post(
            f"/api/v1/persons/{person_id}/needs-assessments", json=REFERRAL_NEEDS, headers=as_caseworker
        )
        return reply.status_code == 201

    await eventually(needs_recorded, timeout_s=30)

    async def sent() -> str | None:
        cases = (await api.get("/api/v1/cases", params={"person_id": person_id}, headers=as_caseworker)).json()
        if not cases["items"]:
            return None
        case = (await api.get(f"/api/v1/cases/{cases['items'][0]['case_id']}", headers=as_caseworker)).json()
        jobs = [r for r in case["referrals"] if r["service_type"] == "job_placement" and r["status"] == "sent"]
        return str(jobs[0]["referral_id"]) if jobs else None

    return person_id, consent.json()["consent_id"], await eventually(sent, timeout_s=30)


async def test_a_partner_reads_the_contact_data_completes_the_referral_and_keeps_its_entry(
    registration_reachable: None, stack: Stack
) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        _, _, first = await person_referred(
            api,
            stack,
            given_names="Leyla",
            family_name="Demir",
            phone="+49 8191 123456",
            email="leyla.demir@example.org",
        )
        second_person, second_consent, second = await person_referred(api, stack, family_name="Karimi")
        browser = await p.chromium.launch(**launch_args())
        try:
            partner = await browser.new_page()
            await browsing.sign_in(partner, "jobcenter")
            assert partner.url.endswith("/ui/partner")
            heading = await partner.get_by_role("heading", level=1).inner_text()
            assert "Jobcenter" in heading and JOBCENTER not in heading, "the organisation's name, not its id"
            assert await partner.locator("#partner-referrals tbody tr").count() == 2
            # The list names each person while the consent for the Jobcenter is in force: one audited read.
            listed = await partner.locator("#partner-referrals").inner_text()
            assert "Leyla Demir" in listed and "Karimi" in listed, listed
            log = await api.get(
                f"/api/v1/persons/{second_person}/access-log", headers=await stack.bearer(api, "datenschutz")
            )
            assert any(
                e["action"] == "read_contact_name" and "partner:jobcenter-landsberg" in e["actor"] for e in log.json()
            ), log.text
            await document(browsing, partner, "partner-referrals")
            await strictly_accessible(browsing, partner, "partner referrals")

            # --- the first referral: the contact data under the consent, and the answers -------------------
            opening = f"Vermittlung öffnen: Arbeitsvermittlung, Leyla Demir {first[:8]}"
            await partner.get_by_role("link", name=opening).click()
            await partner.wait_for_load_state()
            contact = await partner.locator("#contact").inner_text()
            assert "Leyla Demir" in contact and "+49 8191 123456" in contact and "leyla.demir@example.org" in contact
            assert "Arabisch" in contact, "languages as names, not codes"
            assert "Schwaighofstraße 12" in contact
            assert "Bedarfe\nArbeit" in await partner.locator("#facts").inner_text(), "needs as words"
            await document(browsing, partner, "partner-referral")
            await strictly_accessible(browsing, partner, "partner referral with contact data")

            await partner.get_by_role("button", name=f"Annehmen: Arbeitsvermittlung {first[:8]}").click()
            await partner.wait_for_load_state()
            assert await partner.locator("#referral").get_attribute("data-status") == "accepted"
            assert "/ui/partner/referrals/" in partner.url, "back on the referral's page"
            await partner.get_by_role("button", name=f"Beginnen: Arbeitsvermittlung {first[:8]}").click()
            await partner.wait_for_load_state()
            assert await partner.locator("#referral").get_attribute("data-status") == "in_progress"
            await partner.get_by_label("Ergebnis", exact=True).select_option("successful")
            await partner.get_by_role("button", name=f"Abschließen: Arbeitsvermittlung {first[:8]}").click()
            await partner.wait_for_load_state()
            assert await partner.locator("#referral").get_attribute("data-status") == "completed"
            assert "erfolgreich" in await partner.locator("#referral").inner_text()

            # --- the second: declined? No: the person withdraws the consent, and the page says so ----------
            as_registrar = await stack.bearer(api, "registrar")
            withdrawn = await api.post(
                f"/api/v1/persons/{second_person}/consents/{second_consent}/withdrawal", headers=as_registrar
            )
            assert withdrawn.status_code == 200, withdrawn.text

            async def noted() -> bool:
                await partner.goto(f"{stack.url}/ui/partner/referrals/{second}")
                return await partner.locator("#consent-withdrawn").count() == 1

            await eventually(noted, timeout_s=30, interval_s=0.5)
            assert await partner.locator("#contact").count() == 0
            assert "Karimi" not in await partner.content()
            await partner.goto(f"{stack.url}/ui/partner")
            row = await partner.locator(f"#referral-{second}").inner_text()
            assert "Einwilligung widerrufen: bitte keinen Kontakt mehr aufnehmen" in row, row
            assert "Karimi" not in await partner.content(), "the list no longer names the person"
            await partner.goto(f"{stack.url}/ui/partner/referrals/{second}")
            await document(browsing, partner, "partner-consent-withdrawn")
            await strictly_accessible(browsing, partner, "partner referral, consent withdrawn")

            # --- another organisation's referral: not found --------------------------------------------------
            caritas = await browser.new_page()
            await browsing.sign_in(caritas, "caritas")
            refused = await caritas.goto(f"{stack.url}/ui/partner/referrals/{first}")
            assert refused is not None and refused.status == 404
            assert "Leyla" not in await caritas.content()

            # --- free places and the directory entry ---------------------------------------------------------
            await (
                partner.get_by_role("navigation", name="Bereiche des Partnerportals")
                .get_by_role("link", name="Unser Eintrag")
                .click()
            )
            await partner.wait_for_load_state()
            await strictly_accessible(browsing, partner, "partner entry")
            await partner.get_by_label("Freie Plätze: Arbeitsvermittlung").fill("7")
            await partner.get_by_role("button", name="Speichern: Arbeitsvermittlung").click()
            await partner.wait_for_load_state()
            assert "Die freien Plätze sind gespeichert." in await partner.get_by_role("status").inner_text()
            capacity = partner.locator("#capacity tr[data-service=job_placement]")
            assert await capacity.get_attribute("data-free-places") == "7"
            listed = (await api.get(f"/api/v1/partners/{JOBCENTER}")).json()
            assert [s["free_places"] for s in listed["services"] if s["service_type"] == "job_placement"] == [7]

            await partner.locator("#f-description").fill("Arbeitsvermittlung und Beratung, auch auf Arabisch.")
            await partner.get_by_role("button", name="Speichern", exact=True).click()
            await partner.wait_for_load_state()
            assert "Der Eintrag ist gespeichert." in await partner.get_by_role("status").inner_text()
            listed = (await api.get(f"/api/v1/partners/{JOBCENTER}")).json()
            assert listed["description"] == "Arbeitsvermittlung und Beratung, auch auf Arabisch."
            assert await partner.locator("#f-category").count() == 0, "only an admin changes the category"
            await document(browsing, partner, "partner-entry")
        finally:
            await browser.close()
    browsing.report()
