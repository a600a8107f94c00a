"""The partner portal's API keys, webhooks and delivery log in headless Chromium, in front of the real stack.

The Jobcenter's user creates an API key (shown once; it then works against the public API), revokes it
(refused within 5 s), cannot revoke the Caritas's key, and is told in German why a loopback webhook URL is
refused, with the URL kept. With webhooks to this machine allowed (as ``make run`` does), a webhook to a
real receiver on 127.0.0.1 gets a delivery that shows in the log and is sent again with "Erneut senden";
the secret is renewed and the webhook deleted. axe-core checks every new page; screenshots go to the
test's tmp dir.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import conftest as browser_conftest
from tests.browser.conftest import PHONE, Stack, chromium
from tests.conftest import eventually, partners_settings
from tests.reliability.test_partner_webhooks import Receiver

SECTIONS = "Bereiche des Partnerportals"


async def open_section(page: Any, name: str) -> None:
    await page.get_by_role("navigation", name=SECTIONS).get_by_role("link", name=name).click()
    await page.wait_for_load_state()


async def test_api_keys_are_shown_once_revoked_and_kept_to_their_own_partner(stack: Stack) -> None:
    async with chromium(stack) as (browser, browsing, api):
        shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
        # --- a user of no partner organisation: a clear 403 page --------------------------------------
        lotse = await browser.new_page()
        await sign_in(lotse, "lotse")
        refused = await lotse.goto(f"{stack.url}/ui/partner/api-keys")
        assert refused is not None and refused.status == 403
        assert "nur für Mitarbeitende einer Partnerorganisation" in await lotse.get_by_role("heading").inner_text()

        # --- the Jobcenter's user, on a phone: the sub-navigation to the API keys ---------------------
        partner = await browser.new_page(viewport=PHONE)
        await sign_in(partner, "jobcenter")
        await open_section(partner, "API-Schlüssel")
        assert partner.url == f"{stack.url}/ui/partner/api-keys"
        assert await partner.get_by_text("Noch keine API-Schlüssel.").is_visible()
        assert await partner.locator("script").count() == 0, "the pages work without JavaScript"
        await shot(partner, "01-api-keys-empty")
        await accessible(partner, "api keys")

        await partner.get_by_label("Bezeichnung").fill("Fachverfahren OK.JUG")
        await partner.get_by_label("Vermittlungen lesen").check()
        await partner.get_by_role("button", name="Schlüssel anlegen").click()
        await partner.wait_for_load_state()
        assert await partner.get_by_role("heading", level=1).inner_text() == "Der API-Schlüssel ist angelegt"
        assert "nie wieder angezeigt" in await partner.locator("#shown-once").inner_text()
        key = await partner.get_by_label("Ihr API-Schlüssel").input_value()
        assert key.startswith("lip_")
        assert key not in partner.url and all(key not in c["value"] for c in await partner.context.cookies())
        await shot(partner, "02-api-key-shown-once")
        await accessible(partner, "api key shown once")

        as_key = {"Authorization": f"Bearer {key}"}
        assert (await api.get("/api/v1/partner/referrals", headers=as_key)).status_code == 200

        # --- another partner's key: not listed, and revoking it through the UI fails --------------------
        as_caritas = await stack.bearer(api, "caritas")
        theirs = await api.post(
            "/api/v1/partners/caritas-landsberg/api-keys",
            headers=as_caritas,
            json={"name": "Caritas Fachverfahren", "scopes": ["referrals:read"]},
        )
        assert theirs.status_code == 201, theirs.text
        caritas_key = {"Authorization": f"Bearer {theirs.json()['key']}"}
        await partner.goto(f"{stack.url}/ui/partner/api-keys")
        keys = partner.locator("#api-keys tbody tr")
        assert await keys.count() == 1 and theirs.json()["prefix"] not in await keys.inner_text()
        csrf = {c["name"]: c["value"] for c in await partner.context.cookies()}["lip_csrf"]
        forged = await partner.request.post(  # the form a tampering user would send, with a valid CSRF token
            f"{stack.url}/ui/partner/api-keys/{theirs.json()['key_id']}/revoke", form={"csrf_token": csrf}
        )
        assert forged.url.endswith("/ui/partner/api-keys?error=gone")
        assert "Das gehört nicht zu Ihrer Organisation" in await forged.text()
        assert (await api.get("/api/v1/partner/referrals", headers=caritas_key)).status_code == 200

        # --- revoking the own key: it stops working within 5 s ------------------------------------------
        row = partner.locator("#api-keys tbody tr").first
        assert await row.get_attribute("data-state") == "active"
        await row.get_by_role("button", name="Widerrufen").click()
        await partner.wait_for_load_state()
        assert "Der API-Schlüssel ist widerrufen" in await partner.get_by_role("status").inner_text()
        assert await partner.locator("#api-keys tbody tr").first.get_attribute("data-state") == "revoked"
        await shot(partner, "03-api-key-revoked")

        async def key_refused() -> bool:
            return (await api.get("/api/v1/partner/referrals", headers=as_key)).status_code == 401

        await eventually(key_refused, timeout_s=5, interval_s=0.25)

        # --- a webhook to a loopback address: refused in German, the typed URL and events kept ----------
        await open_section(partner, "Webhooks")
        await accessible(partner, "webhooks")
        await partner.get_by_label("Empfangsadresse (https)").fill("https://127.0.0.1:9000/hook")
        await partner.get_by_label("Vermittlung gesendet").check()
        await partner.get_by_role("button", name="Webhook anlegen").click()
        await partner.wait_for_load_state()
        assert "Diese Adresse kann keine Webhooks empfangen" in await partner.get_by_role("alert").inner_text()
        assert await partner.get_by_label("Empfangsadresse (https)").input_value() == "https://127.0.0.1:9000/hook"
        assert await partner.get_by_label("Empfangsadresse (https)").get_attribute("aria-invalid") == "true"
        assert await partner.get_by_label("Vermittlung gesendet").is_checked()
        assert await partner.get_by_text("Noch keine Webhooks.").is_visible()
        await shot(partner, "04-webhook-refused")
        await accessible(partner, "webhook refused")

        # --- the delivery log, still empty --------------------------------------------------------------
        await open_section(partner, "Zustellprotokoll")
        assert await partner.get_by_text("Noch keine Zustellungen.").is_visible()
        await shot(partner, "05-deliveries-empty")
        await accessible(partner, "delivery log (empty)")


@pytest.fixture
def loopback_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the ``stack`` requested after it: webhooks to this machine allowed, as ``make run`` has them."""

    def allowing(database_url: str, bootstrap: str, **overrides: Any) -> Any:
        return partners_settings(database_url, bootstrap, **{"webhook_allow_private_addresses": True, **overrides})

    monkeypatch.setattr(browser_conftest, "partners_settings", allowing)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    await made.stop()


async def test_a_webhook_delivers_shows_in_the_log_is_replayed_and_its_secret_renewed(
    loopback_webhooks: None, stack: Stack, receiver: Receiver
) -> None:
    async with chromium(stack) as (browser, browsing, api):
        shot, accessible, sign_in = browsing.shot, browsing.accessible, browsing.sign_in
        partner = await browser.new_page()
        await sign_in(partner, "jobcenter")
        await open_section(partner, "Webhooks")
        await partner.get_by_label("Empfangsadresse (https)").fill(receiver.url)
        await partner.get_by_label("Freie Plätze geändert").check()
        await partner.get_by_label("Vermittlung gesendet").check()
        await partner.get_by_label("Beschreibung (optional)").fill("Testempfänger im Haus")
        await partner.get_by_role("button", name="Webhook anlegen").click()
        await partner.wait_for_load_state()
        assert await partner.get_by_role("heading", level=1).inner_text() == "Der Webhook ist angelegt"
        secret = await partner.get_by_label("Signatur-Geheimnis").input_value()
        assert secret.startswith("whsec_") and secret not in partner.url
        await shot(partner, "06-webhook-secret-shown-once")
        await accessible(partner, "webhook secret shown once")

        await open_section(partner, "Webhooks")
        hook = partner.locator("#webhooks tbody tr")
        assert await hook.count() == 1 and await hook.get_attribute("data-url") == receiver.url
        assert "whsec_" not in await partner.content()
        await shot(partner, "07-webhooks")
        await accessible(partner, "webhooks with one")

        # The Jobcenter reports free places (through the API, as its case system would): an event for it.
        reported = await api.put(
            "/api/v1/partners/jobcenter-landsberg/services/job_placement/capacity",
            headers=await stack.bearer(api, "jobcenter"),
            json={"free_places": 3},
        )
        assert reported.status_code == 200, reported.text

        async def delivered() -> bool:
            await partner.goto(f"{stack.url}/ui/partner/webhooks/deliveries")
            rows = partner.locator("#deliveries tbody tr[data-status=delivered]")
            return await rows.count() == 1

        await eventually(delivered, timeout_s=20, interval_s=0.5)
        row = partner.locator("#deliveries tbody tr").first
        assert "Freie Plätze geändert" in await row.inner_text() and "HTTP 200" in await row.inner_text()
        assert len(receiver.requests) == 1
        await shot(partner, "08-delivery-log")
        await accessible(partner, "delivery log")

        await row.get_by_role("button", name="Erneut senden").click()
        await partner.wait_for_load_state()
        assert "Die Zustellung wird erneut gesendet." in await partner.get_by_role("status").inner_text()
        await eventually(lambda: _has(receiver.requests, 2), timeout_s=10)
        assert receiver.requests[1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]

        # A new secret, shown once; then the webhook goes, and its history stays.
        await open_section(partner, "Webhooks")
        await partner.locator("#webhooks tbody tr").get_by_role("button", name="Neues Geheimnis").click()
        await partner.wait_for_load_state()
        renewed = await partner.get_by_label("Signatur-Geheimnis").input_value()
        assert renewed.startswith("whsec_") and renewed != secret
        assert "Das bisherige Geheimnis gilt noch bis" in await partner.locator("#shown-once").inner_text()
        await shot(partner, "09-secret-renewed")
        await accessible(partner, "secret renewed")

        await open_section(partner, "Webhooks")
        await partner.locator("#webhooks tbody tr").get_by_role("button", name="Löschen").click()
        await partner.wait_for_load_state()
        assert "Der Webhook ist gelöscht." in await partner.get_by_role("status").inner_text()
        assert await partner.get_by_text("Noch keine Webhooks.").is_visible()
        await open_section(partner, "Zustellprotokoll")
        assert "gelöschter Webhook" in await partner.locator("#deliveries tbody tr").first.inner_text()
        assert await partner.get_by_role("button", name="Erneut senden").count() == 0


async def _has(items: list[Any], count: int) -> bool:
    return len(items) >= count
