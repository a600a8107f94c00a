"""Dead letters kept in the service's database, seen and handled by admins through the gateway.

The real referral app on the real broker (and the parametrized database) behind the real gateway (over ASGI);
the other services are away, and the gateway's merged list says so. A poison event (a partner's service offered
before the partner's directory entry is known) ends as one open dead letter with its reason; it shows in the
gateway's API, the admin page and the service's ``/metrics``; a replay before the cause is fixed keeps it open
with the new failure; after the partner's entry arrives, the page's Replay button handles it once and marks it
replayed. Another poison event is discarded with a reason. Only admins see or act, at the gateway and in the
service itself.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from chassis import identity as internal
from contracts import partners as partner_events
from gateway.app import create_app
from services.referral.app import create_app as create_referral
from services.referral.models import KnownPartner, PartnerOfferRow
from tests.conftest import (
    eventually,
    gateway_settings,
    produce_events,
    referral_settings,
    running_app,
    signed_by_gateway,
)
from tests.service.test_ui_admin import Stack

TOPIC = partner_events.PARTNERS_TOPIC


def away(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("not running in this test", request=request)


class Platform:
    def __init__(self, stack: Stack, referral: Any, service: httpx.AsyncClient) -> None:
        self.stack = stack
        self.referral = referral
        self.service = service  # the referral app itself, without the gateway

    async def admin_token(self) -> str:
        reply = await self.stack.token("admin", self.stack.password("admin"))
        return str(reply.json()["access_token"])

    async def letters(self) -> list[Any]:
        table = self.referral.state.runtime.tables.dead_letters
        async with self.referral.state.runtime.session_factory() as session:
            return list((await session.execute(select(table).order_by(table.c.first_failed_at))).all())

    async def metric(self, name: str) -> float:
        text = (await self.service.get("/metrics")).text
        found = re.search(rf'^{name}{{service="referral",topic="{re.escape(TOPIC)}"}} (\S+)$', text, re.M)
        assert found, text
        return float(found.group(1))


@pytest.fixture
async def platform(database_url: str, broker: Any, tmp_path: Path) -> AsyncIterator[Platform]:
    referral = create_referral(referral_settings(database_url, broker.bootstrap_servers, demo_data=True))
    settings = gateway_settings(tmp_path, demo_data=True)
    app = create_app(settings)
    async with running_app(referral) as service, running_app(app):
        await app.state.client.aclose()
        app.state.client = httpx.AsyncClient(
            mounts={
                "http://referral": httpx.ASGITransport(app=referral),
                **{
                    f"http://{name}": httpx.MockTransport(away)
                    for name in ("registration", "courses", "partners", "monitoring")
                },
            }
        )
        stack = Stack(app, settings.local_users_file)
        try:
            yield Platform(stack, referral, service)
        finally:
            for agent in stack.agents:
                await agent.client.aclose()
            await app.state.client.aclose()


def offered(partner_id: str) -> partner_events.ServiceOffered:
    return partner_events.ServiceOffered(
        partner_id=partner_id,
        service_type="migration_counselling",
        name="Migrationsberatung",
        languages=["de"],
        response_days=3,
        free_places=5,
    )


def registered(partner_id: str) -> partner_events.PartnerRegistered:
    return partner_events.PartnerRegistered(
        partner_id=partner_id,
        name="Caritas Kaufering",
        category="charity",
        languages=["de"],
        service_types=["migration_counselling"],
    )


def page_text(page: httpx.Response) -> str:
    return unescape(re.sub(r"\s+", " ", page.text))


async def test_a_poison_event_is_kept_shown_replayed_once_and_another_discarded(
    platform: Platform, broker: Any
) -> None:
    partner = f"caritas-{uuid.uuid4().hex[:8]}"
    poison = str(uuid.uuid4())
    assert await platform.metric("dead_letters_open") == 0
    await produce_events(broker.bootstrap_servers, [(poison, offered(partner))])

    async def one_letter() -> list[Any] | None:
        found = await platform.letters()
        return found or None

    [letter] = await eventually(one_letter)
    assert (letter.event_id, letter.status, letter.source_topic) == (poison, "open", TOPIC)
    assert letter.event_type == partner_events.ServiceOffered.event_type
    assert letter.error_class == "ValueError"
    assert "whose directory entry is unknown" in letter.error_message
    assert letter.attempts == 4  # the first try and three retries
    assert await platform.metric("dead_letters_open") == 1
    assert await platform.metric("dead_letters_total") == 1

    # The gateway's merged list, for admins only; the services that are away are named.
    token = await platform.admin_token()
    listed = await platform.stack.api("GET", "/api/v1/admin/dead-letters", token)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["open"], body["total"]) == (1, 1)
    assert sorted(body["unavailable"]) == ["courses", "monitoring", "partners", "registration"]
    [item] = body["items"]
    assert (item["service"], item["id"], item["status"]) == ("referral", letter.id, "open")
    assert item["payload"]["partner_id"] == partner
    assert (await platform.stack.api("GET", "/api/v1/admin/dead-letters?status=replayed", token)).json()["items"] == []
    lotse = (await platform.stack.token("lotse", platform.stack.password("lotse"))).json()["access_token"]
    assert (await platform.stack.api("GET", "/api/v1/admin/dead-letters", lotse)).status_code == 403
    replay_path = f"/api/v1/admin/dead-letters/referral/{letter.id}/replay"
    assert (await platform.stack.api("POST", replay_path, lotse)).status_code == 403
    # The service checks the role itself, whatever reaches it.
    caseworker = internal.Identity(subject="lotse", roles=frozenset({"caseworker"}), team="integration-nord")
    as_caseworker = signed_by_gateway(caseworker, "referral")
    refused = await platform.service.get("/api/v1/admin/dead-letters", headers=as_caseworker)
    assert refused.status_code == 403

    # A replay before the cause is fixed fails again: the letter stays open with the new failure.
    again = await platform.stack.api("POST", replay_path, token)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["attempts"]) == ("open", 5)
    assert "whose directory entry is unknown" in again.json()["error_message"]

    # The admin page shows the count and the reason, in German and in English.
    admin = await platform.stack.agent("admin")
    home = await admin.get("/ui/admin")
    assert 'href="/ui/admin/dead-letters"' in home.text
    page = await admin.get("/ui/admin/dead-letters")
    assert page.status_code == 200
    text = page_text(page)
    assert "Unzustellbare Ereignisse" in text and f'id="letter-referral-{letter.id}"' in page.text
    assert re.search(r'<dd id="dl-open">1</dd>', page.text)
    assert "whose directory entry is unknown" in text and "service offered" in text
    assert "Erneut verarbeiten" in text
    english = await admin.get("/ui/admin/dead-letters?lang=en")
    assert "Dead letters" in english.text and "Replay" in english.text
    lotse_agent = await platform.stack.agent("lotse")
    assert (await lotse_agent.get("/ui/admin/dead-letters")).status_code == 403

    # The cause is fixed (the partner's directory entry arrives); the Replay button applies the effect once.
    await produce_events(broker.bootstrap_servers, [(str(uuid.uuid4()), registered(partner))])

    async def partner_known() -> bool:
        async with platform.referral.state.runtime.session_factory() as session:
            return await session.get(KnownPartner, partner) is not None

    await eventually(partner_known)
    replayed = await admin.post(f"/ui/admin/dead-letters/referral/{letter.id}/replay", {"shown": "all"})
    assert replayed.status_code == 200, replayed.text
    assert "The event has been handled again." in page_text(replayed) or "erneut verarbeitet" in page_text(replayed)
    [letter] = await platform.letters()
    assert (letter.status, letter.resolved_by) == ("replayed", "user:admin")
    assert letter.resolved_at is not None
    async with platform.referral.state.runtime.session_factory() as session:
        offers = await session.scalar(
            select(func.count()).select_from(PartnerOfferRow).where(PartnerOfferRow.partner_id == partner)
        )
        inbox = platform.referral.state.runtime.tables.inbox
        handled = await session.scalar(select(func.count()).select_from(inbox).where(inbox.c.event_id == poison))
    assert (offers, handled) == (1, 1)
    assert await platform.metric("dead_letters_open") == 0
    closed = await platform.stack.api("POST", replay_path, token)
    assert closed.status_code == 409

    # Another poison event, given up with a reason (a reason is needed).
    other = str(uuid.uuid4())
    await produce_events(broker.bootstrap_servers, [(other, offered(f"caritas-{uuid.uuid4().hex[:8]}"))])

    async def two_letters() -> list[Any] | None:
        found = await platform.letters()
        return found if len(found) == 2 else None

    second = next(row for row in await eventually(two_letters) if row.event_id == other)
    assert await platform.metric("dead_letters_open") == 1
    assert await platform.metric("dead_letters_total") == 2
    discard = f"/ui/admin/dead-letters/referral/{second.id}/discard"
    assert (await admin.post(discard, {"reason": "  "})).status_code == 422
    done = await admin.post(discard, {"reason": "Test partner, never in the directory"})
    assert done.status_code == 200, done.text
    found = (await platform.stack.api("GET", "/api/v1/admin/dead-letters?status=discarded", token)).json()
    [item] = found["items"]
    assert (item["id"], item["discard_reason"], item["resolved_by"]) == (
        second.id,
        "Test partner, never in the directory",
        "user:admin",
    )
    assert (found["open"], found["total"]) == (0, 2)
    assert await platform.metric("dead_letters_open") == 0
    # Through the API too: a discarded letter cannot be discarded or replayed again.
    api_discard = f"/api/v1/admin/dead-letters/referral/{second.id}/discard"
    assert (await platform.stack.api("POST", api_discard, token, json={"reason": "again"})).status_code == 409
    assert (await platform.stack.api("POST", api_discard, token, json={})).status_code == 422


async def test_erasure_empties_the_dead_letters_that_name_the_person(database_url: str) -> None:
    """A dead letter about an erased person keeps no data of the event (webhook payloads and stored answers do
    not either): the row stays, emptied, and if it was open it is given up."""
    from sqlalchemy import MetaData

    from chassis import deadletters
    from chassis.db import make_engine, make_session_factory

    metadata = MetaData()
    table = deadletters.define_dead_letter_table(metadata)
    engine = make_engine(database_url)
    person, bystander = str(uuid.uuid4()), str(uuid.uuid4())

    def failure(person_id: str) -> deadletters.Failure:
        return deadletters.Failure(
            event_id=str(uuid.uuid4()),
            event_type="t",
            topic=TOPIC,
            partition=0,
            offset=1,
            consumer_group="g",
            key=person_id.encode(),
            headers=[("ce_id", b"x")],
            value=f'{{"person_id":"{person_id}"}}'.encode(),
            error=ValueError(f"person {person_id} unknown"),
            attempts=4,
        )

    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = make_session_factory(engine)
        async with sessions() as session, session.begin():
            erased = await deadletters.record(session, table, failure(person))
            kept = await deadletters.record(session, table, failure(bystander))
        async with sessions() as session, session.begin():
            assert await deadletters.forget(session, table, [person]) == 1
        async with sessions() as session:
            rows = {r.id: r for r in (await session.execute(select(table))).all()}
    finally:
        await engine.dispose()
    gone = rows[erased]
    assert (gone.payload, gone.record_key, gone.headers) == (None, None, [])
    assert (gone.status, gone.resolved_by) == ("discarded", "erasure")
    assert person not in gone.error_message and "[erased]" in gone.error_message
    assert rows[kept].status == "open" and bystander in str(rows[kept].payload)
