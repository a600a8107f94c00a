"""A partner never sees a referral that was never sent to it (issue 12): one revoked while it waited for a consent
is in no partner's list, answers 404 to the partner routing had chosen, and its events name no partner, so the
partners service's webhook fan-out gives that partner nothing. A partner sees, of why the person was referred, only
the facts its service works with.

Registration on the parametrized database; referral (demo roster and directory) and partners (demo directory,
webhooks to a local address) on their own SQLite files; all on the session's broker.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from chassis.embedded_broker import EmbeddedBroker
from contracts.referral import ReferralRevoked, ReferralSent
from services.partners.app import create_app as create_partners
from services.partners.models import WebhookDelivery
from services.partners.models import messaging as partners_messaging
from services.referral.app import create_app as create_referral
from services.referral.models import messaging as referral_messaging
from services.registration.app import create_app as create_registration
from tests.conftest import (
    eventually,
    newcomer,
    ok,
    partners_settings,
    referral_settings,
    register_with_needs,
    registration_settings,
    running_app,
)
from tests.service.test_referral_api import IHK, JOBCENTER, JOBCENTER_CONSENT, as_partner, referrals_of

PARTNER_REFERRALS = "/api/v1/partner/referrals"


def not_found(reply: httpx.Response) -> None:
    assert reply.status_code == 404, reply.text
    assert reply.json()["type"].endswith("/not-found")


@pytest.fixture
async def stack(
    database_url: str, broker: EmbeddedBroker, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]]:
    bootstrap = broker.bootstrap_servers
    registration_app = create_registration(registration_settings(database_url, bootstrap))
    referral_app = create_referral(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", bootstrap, demo_data=True)
    )
    partners_app = create_partners(
        partners_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'partners.db'}",
            bootstrap,
            demo_data=True,
            webhook_allow_private_addresses=True,
        )
    )
    async with (
        running_app(registration_app) as registration,
        running_app(referral_app) as referral,
        running_app(partners_app) as partners,
    ):
        registration.app, referral.app, partners.app = registration_app, referral_app, partners_app  # type: ignore[attr-defined]
        yield registration, referral, partners


def closed_port_url() -> str:
    """A local address where nobody listens: deliveries are written (what this test looks at) and fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"


async def outbox_event(referral: httpx.AsyncClient, event_type: str, referral_id: str) -> tuple[str, dict[str, Any]]:
    """(ce_id, data) of the referral service's event of ``event_type`` about ``referral_id``."""
    outbox = referral_messaging.outbox
    async with referral.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        rows = (
            await session.execute(
                select(outbox.c.event_id, outbox.c.data).where(
                    outbox.c.event_type == event_type, outbox.c.partition_key == referral_id
                )
            )
        ).all()
    ((event_id, data),) = rows
    return event_id, json.loads(data)


async def handled_by_partners(partners: httpx.AsyncClient, event_id: str) -> bool:
    inbox = partners_messaging.inbox
    async with partners.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        return await session.scalar(select(inbox.c.event_id).where(inbox.c.event_id == event_id)) is not None


async def deliveries_of(partners: httpx.AsyncClient, partner_id: str, event_id: str) -> list[WebhookDelivery]:
    async with partners.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        query = select(WebhookDelivery).where(
            WebhookDelivery.partner_id == partner_id, WebhookDelivery.event_id == event_id
        )
        return list((await session.scalars(query)).all())


async def test_a_referral_revoked_before_it_was_sent_never_reaches_the_partner(stack: Any) -> None:
    registration, referral, partners = stack
    hooks = {"url": closed_port_url(), "event_types": [ReferralRevoked.event_type, ReferralSent.event_type]}
    for partner in (IHK, JOBCENTER):
        ok(await partners.post(f"/api/v1/partners/{partner}/webhooks", json=hooks, headers=as_partner(partner)), 201)

    # A consent for the Jobcenter only: its referral is sent; the IHK's waits ("consent missing"), the IHK chosen.
    person = await register_with_needs(registration, [JOBCENTER_CONSENT])
    by_service = await referrals_of(referral, person)
    job, ihk = by_service["job_placement"], by_service["qualification_recognition"]
    assert (job["status"], job["partner_id"]) == ("sent", JOBCENTER)
    assert (ihk["status"], ihk["partner_id"], ihk["blocked_reason"]) == ("proposed", IHK, "consent missing")

    for revoked in (ihk, job):
        assert ok(await referral.post(f"/api/v1/referrals/{revoked['referral_id']}/revoke"))["status"] == "revoked"

    # The never-sent referral's revocation names no partner; the sent one's names its partner.
    ihk_event, ihk_data = await outbox_event(referral, ReferralRevoked.event_type, ihk["referral_id"])
    assert ihk_data["partner_id"] is None and ihk_data["partner_category"] is None, ihk_data
    job_event, job_data = await outbox_event(referral, ReferralRevoked.event_type, job["referral_id"])
    assert job_data["partner_id"] == JOBCENTER

    # The partners service has handled both events: the Jobcenter gets its webhook, the IHK nothing at all.
    await eventually(lambda: handled_by_partners(partners, ihk_event))
    await eventually(lambda: handled_by_partners(partners, job_event))
    assert len(await deliveries_of(partners, JOBCENTER, job_event)) == 1
    assert await deliveries_of(partners, IHK, ihk_event) == []
    async with partners.app.state.runtime.session_factory() as session:
        anything = await session.scalars(select(WebhookDelivery.payload).where(WebhookDelivery.partner_id == IHK))
        assert not [p for p in anything.all() if ihk["referral_id"] in p], "a webhook about the never-sent referral"

    # The partner API: the IHK's list does not show it, and reading or acting on it is as for an unknown id.
    for params in ({}, {"status": "revoked"}, {"status": "proposed"}):
        listed = ok(await referral.get(PARTNER_REFERRALS, params=params | {"page_size": 200}, headers=as_partner(IHK)))
        assert ihk["referral_id"] not in {r["referral_id"] for r in listed["items"]}, params
    url = f"{PARTNER_REFERRALS}/{ihk['referral_id']}"
    not_found(await referral.get(url, headers=as_partner(IHK)))
    for action, body in (("accept", None), ("decline", {"reason": "other"}), ("start", None)):
        not_found(await referral.post(f"{url}/{action}", json=body, headers=as_partner(IHK)))
    # What was sent and then revoked was shared: the Jobcenter still sees it, revoked.
    jobcenter_list = ok(
        await referral.get(
            PARTNER_REFERRALS, params={"status": "revoked", "page_size": 200}, headers=as_partner(JOBCENTER)
        )
    )
    assert job["referral_id"] in {r["referral_id"] for r in jobcenter_list["items"]}


async def test_a_partner_sees_only_the_facts_its_service_works_with(stack: Any) -> None:
    registration, referral, _ = stack
    person = await register_with_needs(registration, [JOBCENTER_CONSENT])
    job = (await referrals_of(referral, person))["job_placement"]
    staff = ok(await referral.get(f"/api/v1/referrals/{job['referral_id']}"))
    assert staff["rule_id"] == "job-seeking" and staff["matched_facts"] == {"need_categories": ["employment"]}

    view = ok(await referral.get(f"{PARTNER_REFERRALS}/{job['referral_id']}", headers=as_partner(JOBCENTER)))
    shown = view["referral"]
    assert shown["matched_facts"] == {"need_categories": ["employment"]}
    assert not {"rule_id", "rule_set_version", "blocked_reason"} & set(shown), "routing internals stay with the city"
    listed = ok(await referral.get(PARTNER_REFERRALS, params={"page_size": 200}, headers=as_partner(JOBCENTER)))
    mine = next(r for r in listed["items"] if r["referral_id"] == job["referral_id"])
    assert mine == shown

    # A city's own rule that matched on health and gender: the Jobcenter learns the employment need only.
    rules = ok(await referral.get("/api/v1/routing-rules", headers={"X-Role": "admin"}))["rules"]
    for rule in rules:
        if rule["id"] == "job-seeking":
            rule["when"] = {"need_any": ["employment", "health"], "gender_in": ["female"]}
    ok(await referral.put("/api/v1/routing-rules", json=rules, headers={"X-Role": "admin", "X-Actor": "user:admin"}))
    registered = await registration.post("/api/v1/registrations", json=newcomer(gender="female"))
    other = ok(registered, 201)["person_id"]
    ok(await registration.post(f"/api/v1/persons/{other}/consents", json=JOBCENTER_CONSENT), 201)
    needs = {"german_level": "B2", "schooling": "secondary", "employment_situation": "job_seeking", "health_need": True}
    ok(await registration.post(f"/api/v1/persons/{other}/needs-assessments", json=needs), 201)

    async def routed() -> dict[str, Any] | None:
        cases = ok(await referral.get("/api/v1/cases", params={"person_id": other}))["items"]
        if not cases:
            return None
        found = ok(await referral.get("/api/v1/referrals", params={"case_id": cases[0]["case_id"]}))["items"]
        return next(
            (
                r
                for r in found
                if r["service_type"] == "job_placement"
                and r["rule_set_version"] == 1
                and "health" in r["matched_facts"].get("need_categories", [])
            ),
            None,
        )

    health_job = await eventually(routed)
    assert health_job["matched_facts"] == {"need_categories": ["employment", "health"], "gender": "female"}
    assert health_job["status"] == "sent"
    view = ok(await referral.get(f"{PARTNER_REFERRALS}/{health_job['referral_id']}", headers=as_partner(JOBCENTER)))
    assert view["referral"]["matched_facts"] == {"need_categories": ["employment"]}
