"""The admins' dead-letter page in headless Chromium, in front of the whole stack: a poison event (a partner's
service offered before its directory entry) shows with its reason and the open count; once the entry arrives,
the Replay button handles it; another is discarded with a reason. axe-core checks each state of the page."""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import eventually, produce_events
from tests.service.test_dead_letters import offered, registered


async def test_admin_replays_one_dead_letter_and_discards_another(stack: Stack, broker: Any) -> None:
    from playwright.async_api import async_playwright

    bootstrap = broker.bootstrap_servers
    browsing = Browsing(stack)
    shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
    partner, other = f"caritas-{uuid.uuid4().hex[:8]}", f"caritas-{uuid.uuid4().hex[:8]}"
    await produce_events(bootstrap, [(str(uuid.uuid4()), offered(partner))])

    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_args())
        try:
            admin = await browser.new_page()
            await sign_in(admin, "admin")
            await admin.goto(f"{stack.url}/ui/admin")
            await admin.get_by_role("link", name="Unzustellbare Ereignisse").first.click()
            await admin.wait_for_load_state()
            assert admin.url.endswith("/ui/admin/dead-letters")

            async def listed() -> bool:
                await admin.reload()
                return await admin.locator("#dead-letters tbody tr").count() >= 1

            await eventually(listed)
            row = admin.locator("#dead-letters tbody tr", has_text="service offered")
            assert await row.count() == 1
            assert "whose directory entry is unknown" in await row.inner_text()
            assert await admin.locator("#dl-open").inner_text() == "1"
            await shot(admin, "01-dead-letters-open")
            await accessible(admin, "dead letters")

            # The cause fixed: the partner's directory entry arrives; Replay handles the event.
            await produce_events(bootstrap, [(str(uuid.uuid4()), registered(partner))])

            async def replayed() -> bool:
                await row.get_by_role("button", name="Erneut verarbeiten").click()
                await admin.wait_for_load_state()
                status = admin.get_by_role("status")
                return await status.count() > 0 and "erneut verarbeitet" in await status.first.inner_text()

            # Until the entry has reached the referral service, a replay fails again and the row stays open.
            await eventually(replayed, timeout_s=30)
            assert await admin.locator("#dl-open").inner_text() == "0"
            await shot(admin, "02-dead-letter-replayed")
            await accessible(admin, "dead letter replayed")

            # Another one, given up with a reason.
            await produce_events(bootstrap, [(str(uuid.uuid4()), offered(other))])

            async def open_again() -> bool:
                await admin.goto(f"{stack.url}/ui/admin/dead-letters")
                return await admin.locator("#dl-open").inner_text() == "1"

            await eventually(open_again)
            row = admin.locator("#dead-letters tbody tr", has_text="service offered")
            await row.get_by_label("Grund für das Verwerfen").fill("Testpartner, nie im Verzeichnis")
            await row.get_by_role("button", name="Verwerfen").click()
            await admin.wait_for_load_state()
            assert "verworfen" in await admin.get_by_role("status").first.inner_text()
            assert await admin.locator("#dl-open").inner_text() == "0"
            await admin.goto(f"{stack.url}/ui/admin/dead-letters?status=discarded&lang=en")
            assert "Testpartner, nie im Verzeichnis" in await admin.locator("#dead-letters").inner_text()
            await shot(admin, "03-dead-letter-discarded")
            await accessible(admin, "dead letters discarded (English)")
        finally:
            await browser.close()
    browsing.report()
