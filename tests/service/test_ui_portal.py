"""The partner portal's API keys, webhooks and delivery log, through the gateway's web UI without a browser.

The gateway (real app) in front of the real partners app on the parametrized database, with webhooks to
this machine allowed so that a real receiver on 127.0.0.1 gets the deliveries. The pages are read as a
browser gets them: cookies (Secure, so over https), CSRF tokens, redirects. A new key or secret is shown
once and appears in no URL, cookie or log line; one partner cannot touch another's keys or deliveries.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from contracts.calendar import today as city_today
from gateway.app import create_app
from gateway.ui.portal import EVENT_TYPES, SCOPES
from services.partners.app import create_app as create_partners
from services.partners.domain import ApiScope
from services.partners.schemas import DELIVERABLE_EVENT_TYPES
from tests.conftest import eventually, gateway_settings, partners_settings, running_app
from tests.reliability.test_partner_webhooks import Receiver

CAPACITY_CHANGED = "de.landsberg.integration.partners.partner_capacity_changed.v1"
REFERRAL_SENT = "de.landsberg.integration.referral.referral_sent.v1"


class Browser:
    """What a browser does with the UI: keeps cookies, sends the CSRF token with each form."""

    def __init__(self, client: httpx.AsyncClient, gateway: Any) -> None:
        self.client = client
        self.gateway = gateway

    async def sign_in(self, username: str) -> None:
        await self.client.get("/ui/sign-in")
        password = self.gateway.state.demo_credentials[username]
        reply = await self.post("/ui/sign-in", {"username": username, "password": password, "next": "/ui/partner"})
        assert reply.status_code == 303, reply.text

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.client.cookies.get("lip_csrf", "")
        return await self.client.post(path, data=form)

    async def follow(self, reply: httpx.Response) -> httpx.Response:
        assert reply.status_code == 303, reply.text
        return await self.client.get(reply.headers["location"])


class Platform:
    def __init__(self, gateway: Any, api: httpx.AsyncClient, receiver: Receiver) -> None:
        self.gateway = gateway
        self.api = api
        self.receiver = receiver

    def browser(self) -> Browser:
        # https: the session cookies are Secure (environment "test"), and a client sends those over https only.
        transport = httpx.ASGITransport(app=self.gateway)
        return Browser(httpx.AsyncClient(transport=transport, base_url="https://testserver", timeout=30), self.gateway)

    async def token(self, username: str) -> dict[str, str]:
        password = self.gateway.state.demo_credentials[username]
        reply = await self.api.post("/auth/token", json={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}


@pytest.fixture
async def platform(database_url: str, broker: Any, tmp_path: Any) -> AsyncIterator[Platform]:
    partners = create_partners(
        partners_settings(database_url, broker.bootstrap_servers, demo_data=True, webhook_allow_private_addresses=True)
    )
    gateway = create_app(gateway_settings(tmp_path, demo_data=True))
    receiver = Receiver()
    await receiver.start()
    try:
        async with running_app(partners), running_app(gateway) as api:
            await gateway.state.client.aclose()
            gateway.state.client = httpx.AsyncClient(mounts={"http://partners": httpx.ASGITransport(app=partners)})
            gateway.state.api_keys.client = gateway.state.client
            yield Platform(gateway, api, receiver)
            await gateway.state.client.aclose()
    finally:
        await receiver.stop()


def text(page: httpx.Response) -> str:
    """The page's text with tags and entities resolved, whitespace collapsed: what a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def row_of(page: httpx.Response, row_id: str) -> str:
    found = re.search(rf'<tr id="{re.escape(row_id)}".*?</tr>', page.text, re.S)
    assert found, f"no row {row_id}"
    return found.group(0)


def test_the_forms_offer_exactly_what_the_partners_service_accepts() -> None:
    assert set(SCOPES) == {scope.value for scope in ApiScope}
    assert EVENT_TYPES == DELIVERABLE_EVENT_TYPES


async def test_api_keys_shown_once_revoked_in_seconds_and_never_another_partners(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = platform.api
    async with platform.browser().client as client:
        anonymous = Browser(client, platform.gateway)
        assert (await anonymous.get("/ui/partner/api-keys")).status_code == 303, "sign in first"

        # A signed-in user without a partner organisation gets a clear 403 page, for reading and writing.
        await anonymous.sign_in("lotse")
        refused = await anonymous.get("/ui/partner/api-keys")
        assert refused.status_code == 403 and "nur für Mitarbeitende einer Partnerorganisation" in text(refused)
        posted = await anonymous.post("/ui/partner/api-keys", {"name": "x", "scopes": ["referrals:read"]})
        assert posted.status_code == 403

    async with platform.browser().client as client:
        jobcenter = Browser(client, platform.gateway)
        await jobcenter.sign_in("jobcenter")
        empty = await jobcenter.get("/ui/partner/api-keys")
        assert empty.status_code == 200 and "Noch keine API-Schlüssel." in text(empty)
        assert 'aria-current="page">API-Schlüssel</a>' in empty.text, "the sub-navigation marks the page"

        forged = await jobcenter.post(
            "/ui/partner/api-keys", {"name": "forged", "scopes": ["referrals:read"]}, csrf=False
        )
        assert forged.status_code == 403
        assert "Noch keine API-Schlüssel." in text(await jobcenter.get("/ui/partner/api-keys")), "nothing was made"

        # Refusals in German on the form, with what the user typed kept.
        no_scope = await jobcenter.post("/ui/partner/api-keys", {"name": "Fachverfahren OK.JUG"})
        assert no_scope.status_code == 422
        assert "Bitte mindestens eine Berechtigung wählen." in text(no_scope)
        assert 'value="Fachverfahren OK.JUG"' in no_scope.text
        past = await jobcenter.post(
            "/ui/partner/api-keys",
            {"name": "Fachverfahren OK.JUG", "scopes": ["referrals:write"], "expires_on": "2020-01-31"},
        )
        assert past.status_code == 422 and "Bitte ein Datum ab heute angeben." in text(past)
        assert re.search(r'value="referrals:write" checked', past.text) and 'value="2020-01-31"' in past.text
        garbled = await jobcenter.post(
            "/ui/partner/api-keys", {"name": "Fachverfahren", "scopes": ["referrals:read"], "expires_on": "31.12.2030"}
        )
        assert garbled.status_code == 422 and "Bitte ein gültiges Datum angeben." in text(garbled)
        english = await jobcenter.post("/ui/partner/api-keys?lang=en", {"name": " "})
        assert "Please choose at least one scope." in text(english) and "Please fill this in." in text(english)
        await jobcenter.get("/ui/partner/api-keys?lang=de")  # the language cookie: back to German

        # Created: the whole key once, on the answer to the POST, kept by no cache.
        through = (city_today() + timedelta(days=30)).isoformat()
        created = await jobcenter.post(
            "/ui/partner/api-keys",
            {"name": "Fachverfahren OK.JUG", "scopes": ["referrals:read", "webhooks:manage"], "expires_on": through},
        )
        assert created.status_code == 200, created.text
        assert created.headers["cache-control"] == "no-store"
        assert "Nur jetzt sichtbar" in text(created) and "nie wieder angezeigt" in text(created)
        found = re.search(
            r'id="new-key" readonly autocomplete="off" spellcheck="false" value="(lip_[^"]+)"', created.text
        )
        assert found, created.text
        key = found.group(1)
        assert "location" not in created.headers
        assert all(key not in cookie for cookie in created.headers.get_list("set-cookie"))
        assert all(key not in value for value in client.cookies.values())

        works = await api.get(
            "/api/v1/partners/jobcenter-landsberg/webhooks", headers={"Authorization": f"Bearer {key}"}
        )
        assert works.status_code == 200, "the new key works (within its scopes)"
        listed = await jobcenter.get("/ui/partner/api-keys")
        assert key not in listed.text, "the list never shows the key again"
        own = await api.get("/api/v1/partners/jobcenter-landsberg/api-keys", headers=await platform.token("jobcenter"))
        mine = own.json()[0]
        row = row_of(listed, f"key-{mine['key_id']}")
        assert mine["prefix"] in row and 'data-state="active"' in row
        assert "Vermittlungen lesen" in row and "Webhooks verwalten" in row
        assert row.count("<time ") == 3, "created, expires and (the key was just used) last used"

        # Another partner's key: not on the page, and revoking it through the UI fails and leaves it working.
        caritas_token = await platform.token("caritas")
        theirs = await api.post(
            "/api/v1/partners/caritas-landsberg/api-keys",
            headers=caritas_token,
            json={"name": "Caritas", "scopes": ["webhooks:manage"]},
        )
        assert theirs.status_code == 201
        caritas_key = {"Authorization": f"Bearer {theirs.json()['key']}"}
        assert theirs.json()["prefix"] not in (await jobcenter.get("/ui/partner/api-keys")).text
        attempt = await jobcenter.post(f"/ui/partner/api-keys/{theirs.json()['key_id']}/revoke")
        assert attempt.headers["location"] == "/ui/partner/api-keys?error=gone"
        told = await jobcenter.follow(attempt)
        assert "Nicht gefunden: Das gehört nicht zu Ihrer Organisation" in text(told)
        assert (await api.get("/api/v1/partners/caritas-landsberg/webhooks", headers=caritas_key)).status_code == 200
        still = await api.get("/api/v1/partners/caritas-landsberg/api-keys", headers=caritas_token)
        assert still.status_code == 200 and still.json()[0]["revoked_at"] is None

        # A crafted link cannot put words of its own on the page.
        crafted = await jobcenter.get("/ui/partner/api-keys?error=Call+0800+now&notice=Call+0800+now")
        assert "0800" not in text(crafted)

        # Revoked: the page says so, and the key stops working within seconds (the gateway caches 4 s).
        revoked = await jobcenter.follow(await jobcenter.post(f"/ui/partner/api-keys/{mine['key_id']}/revoke"))
        assert "Der API-Schlüssel ist widerrufen" in text(revoked)
        assert 'data-state="revoked"' in row_of(revoked, f"key-{mine['key_id']}")
        assert f"/ui/partner/api-keys/{mine['key_id']}/revoke" not in revoked.text, "no button for a revoked key"

        async def refused_now() -> bool:
            reply = await api.get(
                "/api/v1/partners/jobcenter-landsberg/api-keys", headers={"Authorization": f"Bearer {key}"}
            )
            return reply.status_code == 401

        await eventually(refused_now, timeout_s=5, interval_s=0.25)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert key not in logged and key[len("lip_") :] not in logged, "the key never reaches a log"


async def test_webhooks_secrets_once_and_the_delivery_log_with_replay(platform: Platform) -> None:
    api, receiver = platform.api, platform.receiver
    async with platform.browser().client as client:
        jobcenter = Browser(client, platform.gateway)
        await jobcenter.sign_in("jobcenter")
        page = await jobcenter.get("/ui/partner/webhooks")
        assert page.status_code == 200 and "Noch keine Webhooks." in text(page)

        # Refusals on the form, in German, with the typed URL and the chosen events kept.
        unsafe = await jobcenter.post(
            "/ui/partner/webhooks", {"url": "ftp://fachverfahren.example/hook", "event_types": [CAPACITY_CHANGED]}
        )
        assert unsafe.status_code == 422
        assert "Diese Adresse kann keine Webhooks empfangen." in text(unsafe)
        assert 'value="ftp://fachverfahren.example/hook"' in unsafe.text
        assert re.search(rf'value="{re.escape(CAPACITY_CHANGED)}" checked', unsafe.text)
        no_events = await jobcenter.post("/ui/partner/webhooks", {"url": receiver.url})
        assert no_events.status_code == 422 and "Bitte mindestens ein Ereignis wählen." in text(no_events)
        assert f'value="{receiver.url}"' in no_events.text

        chosen = {"url": receiver.url, "event_types": [CAPACITY_CHANGED, REFERRAL_SENT], "description": "Testempfänger"}
        created = await jobcenter.post("/ui/partner/webhooks", chosen)
        assert created.status_code == 200, created.text
        assert created.headers["cache-control"] == "no-store"
        secret = re.search(
            r'id="new-secret" readonly autocomplete="off" spellcheck="false" value="(whsec_[^"]+)"', created.text
        )
        assert secret, created.text
        assert "Der Webhook ist angelegt" in text(created) and "Freie Plätze geändert" in text(created)
        listed = await jobcenter.get("/ui/partner/webhooks")
        assert secret.group(1) not in listed.text and "whsec_" not in listed.text
        hook = (
            await api.get("/api/v1/partners/jobcenter-landsberg/webhooks", headers=await platform.token("jobcenter"))
        ).json()[0]
        row = row_of(listed, f"webhook-{hook['webhook_id']}")
        assert receiver.url in row and "Freie Plätze geändert" in row and "Vermittlung gesendet" in row

        # A real event for the Jobcenter (it reports free places through the API) reaches the receiver.
        change = await api.put(
            "/api/v1/partners/jobcenter-landsberg/services/job_placement/capacity",
            headers=await platform.token("jobcenter"),
            json={"free_places": 7},
        )
        assert change.status_code == 200, change.text
        await eventually(lambda: _has(receiver.requests, 1), timeout_s=20)

        async def delivered() -> httpx.Response | None:
            log = await jobcenter.get("/ui/partner/webhooks/deliveries")
            return log if 'data-status="delivered"' in log.text else None

        log = await eventually(delivered, timeout_s=10)
        delivery_id = receiver.requests[0].headers["webhook-id"]
        row = row_of(log, f"delivery-{delivery_id}")
        assert "Freie Plätze geändert" in row and "HTTP 200" in row and receiver.url in row and "zugestellt" in row

        # Replay: the same webhook-id goes out once more; the log counts it.
        replayed = await jobcenter.post(
            f"/ui/partner/webhooks/deliveries/{delivery_id}/replay", {"status": "delivered", "page": "1"}
        )
        assert replayed.headers["location"] == "/ui/partner/webhooks/deliveries?notice=replayed&status=delivered&page=1"
        assert "Die Zustellung wird erneut gesendet." in text(await jobcenter.follow(replayed))
        await eventually(lambda: _has(receiver.requests, 2), timeout_s=10)
        assert receiver.requests[1].headers["webhook-id"] == delivery_id

        async def counted() -> bool:
            log = await jobcenter.get("/ui/partner/webhooks/deliveries")
            return "1\N{MULTIPLICATION SIGN} erneut gesendet" in row_of(log, f"delivery-{delivery_id}")

        await eventually(counted, timeout_s=10)
        filtered = await jobcenter.get("/ui/partner/webhooks/deliveries?status=failed")
        assert "Noch keine Zustellungen." in text(filtered)
        unknown = await jobcenter.post("/ui/partner/webhooks/deliveries/msg_not-ours/replay")
        assert unknown.headers["location"] == "/ui/partner/webhooks/deliveries?error=gone"

        # Another partner sees none of it.
        async with platform.browser().client as other_client:
            caritas = Browser(other_client, platform.gateway)
            await caritas.sign_in("caritas")
            assert delivery_id not in (await caritas.get("/ui/partner/webhooks/deliveries")).text
            assert receiver.url not in (await caritas.get("/ui/partner/webhooks")).text
            theirs = await caritas.post(f"/ui/partner/webhooks/deliveries/{delivery_id}/replay")
            assert theirs.headers["location"] == "/ui/partner/webhooks/deliveries?error=gone"
            gone = await caritas.post(f"/ui/partner/webhooks/{hook['webhook_id']}/delete")
            assert gone.headers["location"] == "/ui/partner/webhooks?error=gone"

        # A new secret, shown once, with the time the old one keeps signing.
        rotated = await jobcenter.post(f"/ui/partner/webhooks/{hook['webhook_id']}/rotate-secret")
        assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
        renewed = re.search(r'id="new-secret"[^>]*value="(whsec_[^"]+)"', rotated.text)
        assert renewed and renewed.group(1) != secret.group(1)
        assert "Das bisherige Geheimnis gilt noch bis" in text(rotated)
        assert "altes Geheimnis gültig bis" in text(await jobcenter.get("/ui/partner/webhooks"))

        deleted = await jobcenter.follow(await jobcenter.post(f"/ui/partner/webhooks/{hook['webhook_id']}/delete"))
        assert "Der Webhook ist gelöscht." in text(deleted) and "Noch keine Webhooks." in text(deleted)
        history = await jobcenter.get("/ui/partner/webhooks/deliveries")
        row = row_of(history, f"delivery-{delivery_id}")
        assert "gelöschter Webhook" in row and "/replay" not in row, "the history stays; no replay to a deleted hook"


async def _has(items: list[Any], count: int) -> bool:
    return len(items) >= count
