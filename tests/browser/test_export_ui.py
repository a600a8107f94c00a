"""The printable Art. 15 export in headless Chromium, in front of the real stack.

The privacy officer (datenschutz) opens a newcomer's person page, follows the link to the export, finds the
person's record, a section per service and the access log in German and English; printed (print media), the
navigation is gone. axe-core checks the page for serious or critical violations; screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import httpx

from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import newcomer


async def test_the_privacy_officer_opens_and_prints_a_persons_export(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = newcomer()
        registered = await api.post("/api/v1/registrations", json=body, headers=await stack.bearer(api, "registrar"))
        assert registered.status_code == 201, registered.text
        person = registered.json()["person_id"]

        browser = await p.chromium.launch(**launch_args())
        try:
            page = await browser.new_page()
            await browsing.sign_in(page, "datenschutz")
            await page.goto(f"{stack.url}/ui/persons/{person}")
            await page.get_by_role("link", name="Auskunft nach Art. 15 DSGVO").click()
            await page.wait_for_load_state()
            assert page.url.endswith(f"/ui/persons/{person}/export")
            await page.get_by_role("heading", name="Auskunft nach Art. 15 DSGVO", level=1).wait_for()
            assert body["family_name"] in await page.locator("#main").inner_text()
            for heading in (
                "Zugriffsprotokoll",
                "Statistik (Monitoring)",
                "Kursanmeldungen, Anwesenheit und Bildungspass (Kurse)",
            ):
                assert await page.get_by_role("heading", name=heading).is_visible(), heading
            # The export itself is in the log it shows, from every service that was read.
            log = await page.locator("#sec-log + table").inner_text()
            assert log.count("export") >= 4, log
            await browsing.accessible(page, "export")
            await browsing.shot(page, "export")

            await page.emulate_media(media="print")
            assert not await page.locator("header.top").is_visible(), "printed without the navigation"
            assert await page.locator("#sec-log").is_visible()
            await page.emulate_media(media="screen")

            await page.goto(f"{stack.url}/ui/persons/{person}/export?lang=en")
            await page.get_by_role("heading", name="Access request under Art. 15 GDPR", level=1).wait_for()
            await browsing.accessible(page, "export (en)")
        finally:
            await browser.close()
    browsing.report()
