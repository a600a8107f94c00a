"""Signed webhooks through the real broker to real HTTP receivers: a referral for a partner reaches that
partner's receiver within seconds (verified by the `standardwebhooks` library) and nobody else's; a
receiver that is down, then failing, then back gets every event exactly once per webhook-id; after
24 hours a delivery is marked failed, and a replay sends it again."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from chassis.cloudevents import binary_headers, encode_data
from contracts.referral import ReferralRevoked, ReferralSent
from contracts.registration import PersonErased
from services.partners.app import create_app
from services.partners.models import WebhookDelivery
from tests.conftest import ManualClock, eventually, partners_settings, produce_events, running_app
from tests.service.test_partners_api import REFERRAL_SENT

VHS, JOBCENTER = "vhs-landsberg", "jobcenter-landsberg"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def referral_id(self) -> str:
        return str(json.loads(self.body)["data"].get("referral_id"))


@dataclass
class Receiver:
    """A partner's webhook endpoint: a real HTTP server (uvicorn) on a port of its own.

    Until ``start`` the port is bound but not listening: connections are refused, as for a receiver
    that is down. ``failing`` makes it answer 503.
    """

    sock: socket.socket = field(default_factory=lambda: _bound_socket())
    failing: bool = False
    requests: list[Received] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/webhooks/landsberg"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status = 503 if self.failing else 200
        self.requests.append(Received({k.decode(): v.decode() for k, v in scope["headers"]}, body, status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"busy"})

    async def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(self, lifespan="off", log_level="warning", access_log=False))
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        await eventually(lambda: _true(self._server is not None and self._server.started), timeout_s=10)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        self.sock.close()

    def about(self, referral_ids: set[str]) -> list[Received]:
        # The referral topic is shared by the whole test session: look only at this test's referrals.
        return [r for r in self.requests if r.referral_id in referral_ids]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    made = {VHS: Receiver(), JOBCENTER: Receiver()}
    yield made
    for receiver in made.values():
        await receiver.stop()


async def produce_referrals_sent(bootstrap: str, partner_id: str, count: int) -> dict[str, str]:
    """ReferralSent events straight onto referral.referrals.v1, as the referral service publishes them.

    Returns referral_id -> ce_id.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: dict[str, str] = {}
    try:
        for _ in range(count):
            now = datetime.now(UTC)
            event = ReferralSent(
                referral_id=str(uuid.uuid4()),
                case_id=str(uuid.uuid4()),
                person_id=str(uuid.uuid4()),
                service_type="integration_course",
                partner_id=partner_id,
                partner_category="adult_education",
                at=now,
                purpose="course_enrolment",
                response_due_at=now + timedelta(days=7),
            )
            ce_id = str(uuid.uuid4())
            headers = binary_headers(
                event_id=ce_id,
                event_type=event.event_type,
                source="/services/referral",
                subject=event.subject(),
                time=now,
            )
            await producer.send_and_wait(
                event.topic,
                encode_data(event.model_dump(mode="json")),
                key=event.partition_key().encode(),
                headers=headers,
            )
            sent[event.referral_id] = ce_id
    finally:
        await producer.stop()
    return sent


async def subscribe(client: httpx.AsyncClient, partner_id: str, url: str) -> str:
    reply = await client.post(
        f"/api/v1/partners/{partner_id}/webhooks",
        headers={"X-Partner-Id": partner_id},
        json={"url": url, "event_types": [REFERRAL_SENT]},
    )
    assert reply.status_code == 201, reply.text
    secret: str = reply.json()["secret"]
    return secret


async def deliveries(client: httpx.AsyncClient, partner_id: str, event_id: str) -> list[dict[str, Any]]:
    reply = await client.get(
        f"/api/v1/partners/{partner_id}/webhooks/deliveries",
        headers={"X-Partner-Id": partner_id},
        params={"event_id": event_id},
    )
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def webhook_settings(database_url: str, broker: Any, **overrides: Any) -> Any:
    """The partners service with the demo directory, delivering to the tests' receivers on 127.0.0.1."""
    return partners_settings(
        database_url, broker.bootstrap_servers, demo_data=True, webhook_allow_private_addresses=True, **overrides
    )


#: Retries within a test's patience: the first after 0.2 s, the due deliveries looked for every 0.1 s.
QUICK_RETRIES = {"webhook_backoff_initial_seconds": 0.2, "webhook_poll_seconds": 0.1}


async def test_a_referral_reaches_only_its_partners_receiver_signed(
    database_url: str, broker: Any, receivers: dict[str, Receiver]
) -> None:
    app = create_app(webhook_settings(database_url, broker))
    for receiver in receivers.values():
        await receiver.start()
    async with running_app(app) as client:
        secrets = {p: await subscribe(client, p, r.url) for p, r in receivers.items()}
        started = asyncio.get_running_loop().time()
        sent = await produce_referrals_sent(broker.bootstrap_servers, VHS, 1)
        (referral_id, ce_id), *_ = sent.items()

        arrived = await eventually(lambda: _true(bool(receivers[VHS].about({referral_id}))), timeout_s=20)
        elapsed = asyncio.get_running_loop().time() - started
        assert arrived and elapsed < 15, elapsed  # ~5 s here, most of it the consumer joining its group
        (request,) = receivers[VHS].about({referral_id})
        # Not our code: the Standard Webhooks library checks the signature and the timestamp.
        payload = Webhook(secrets[VHS]).verify(request.body, request.headers)
        assert payload["type"] == REFERRAL_SENT and payload["id"] == ce_id
        assert payload["data"]["partner_id"] == VHS and payload["data"]["referral_id"] == referral_id
        assert request.headers["webhook-id"].startswith("msg_")

        async def recorded() -> list[dict[str, Any]]:
            # The receiver answers before the service records the delivery: wait for the record.
            rows = await deliveries(client, VHS, ce_id)
            return rows if rows and rows[0]["status"] == "delivered" else []

        (row,) = await eventually(recorded)
        assert (row["status"], row["attempts"], row["delivery_id"]) == ("delivered", 1, request.headers["webhook-id"])
        # The handler wrote every delivery for this event in one transaction: none is for the Jobcenter.
        assert await deliveries(client, JOBCENTER, ce_id) == []
        await asyncio.sleep(1.0)
        assert receivers[JOBCENTER].about({referral_id}) == []
        # Another partner cannot read the VHS's deliveries.
        other = await client.get(f"/api/v1/partners/{VHS}/webhooks/deliveries", headers={"X-Partner-Id": JOBCENTER})
        assert other.status_code == 403


async def test_a_receiver_down_then_failing_gets_every_event_once_it_is_back(
    database_url: str, broker: Any, receivers: dict[str, Receiver]
) -> None:
    receiver = receivers[VHS]  # not started: connection refused
    app = create_app(webhook_settings(database_url, broker, webhook_backoff_max_seconds=0.8, **QUICK_RETRIES))
    async with running_app(app) as client:
        secret = await subscribe(client, VHS, receiver.url)
        sent = await produce_referrals_sent(broker.bootstrap_servers, VHS, 3)

        async def all_tried(min_attempts: int, code: int | None) -> bool:
            rows = [row for ce_id in sent.values() for row in await deliveries(client, VHS, ce_id)]
            return len(rows) == 3 and all(
                r["status"] == "pending"
                and r["attempts"] >= min_attempts
                and r["last_status_code"] == code
                and r["last_error"]
                for r in rows
            )

        await eventually(lambda: all_tried(2, None), timeout_s=30)  # down: refused connections, retried
        receiver.failing = True
        await receiver.start()
        await eventually(lambda: all_tried(3, 503), timeout_s=30)  # up but failing: 503, retried
        receiver.failing = False

        async def all_delivered() -> bool:
            rows = [row for ce_id in sent.values() for row in await deliveries(client, VHS, ce_id)]
            return len(rows) == 3 and all(r["status"] == "delivered" for r in rows)

        await eventually(all_delivered, timeout_s=30)
        await asyncio.sleep(1.5)  # time for any stray repeat to show up

    mine = receiver.about(set(sent))
    by_id: dict[str, list[Received]] = {}
    for request in mine:
        by_id.setdefault(request.headers["webhook-id"], []).append(request)
    assert len(by_id) == 3, "one webhook-id per event, the same on every retry"
    for requests in by_id.values():
        assert [r.status for r in requests].count(200) == 1, "delivered exactly once"
        assert requests[-1].status == 200 and len(requests) >= 2
        assert len({r.body for r in requests}) == 1, "every retry sends the same body"
        Webhook(secret).verify(requests[-1].body, requests[-1].headers)
    assert {json.loads(reqs[0].body)["id"] for reqs in by_id.values()} == set(sent.values()), "nothing lost"


async def test_after_24_hours_a_delivery_fails_and_a_replay_sends_it_again(
    database_url: str, broker: Any, receivers: dict[str, Receiver]
) -> None:
    receiver = receivers[VHS]  # down
    clock = ManualClock()
    app = create_app(
        webhook_settings(database_url, broker, webhook_backoff_max_seconds=0.5, **QUICK_RETRIES), clock=clock
    )
    async with running_app(app) as client:
        secret = await subscribe(client, VHS, receiver.url)
        sent = await produce_referrals_sent(broker.bootstrap_servers, VHS, 1)
        ce_id = next(iter(sent.values()))

        async def row_where(**expected: Any) -> dict[str, Any] | None:
            rows = await deliveries(client, VHS, ce_id)
            return rows[0] if rows and all(rows[0][k] == v for k, v in expected.items()) else None

        await eventually(lambda: row_where(status="pending", attempts=2), timeout_s=30)
        clock.advance(hours=24, seconds=1)
        failed = await eventually(lambda: row_where(status="failed"), timeout_s=30)
        assert failed["next_attempt_at"] is None and failed["last_error"]
        attempts = failed["attempts"]
        await asyncio.sleep(0.5)
        assert (await row_where(status="failed", attempts=attempts)) is not None, "no more attempts once failed"

        # The partner fixes its endpoint and replays; time runs normally again for the receiver's check.
        clock.offset = timedelta()
        await receiver.start()
        base = f"/api/v1/partners/{VHS}/webhooks/deliveries/{failed['delivery_id']}/replay"
        assert (await client.post(base, headers={"X-Partner-Id": JOBCENTER})).status_code == 403
        replayed = await client.post(base, headers={"X-Partner-Id": VHS})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replays"] == 1
        delivered = await eventually(lambda: row_where(status="delivered"), timeout_s=20)
        assert delivered["delivery_id"] == failed["delivery_id"]
        again = await client.post(base, headers={"X-Partner-Id": VHS})
        assert again.status_code == 200  # a delivered one may be replayed too (the partner lost it)
        await eventually(lambda: row_where(status="delivered", replays=2), timeout_s=20)

    (request, *others) = receiver.about(set(sent))
    assert len(others) == 1 and {r.headers["webhook-id"] for r in [request, *others]} == {failed["delivery_id"]}
    Webhook(secret).verify(request.body, request.headers)


async def produce(bootstrap: str, *events: Any) -> list[str]:
    """Events straight onto their topics, as their services publish them; returns their ce_ids."""
    items = [(str(uuid.uuid4()), event) for event in events]
    await produce_events(bootstrap, items, source="/services/test")
    return [ce_id for ce_id, _ in items]


async def test_an_erased_persons_deliveries_keep_their_log_entry_and_lose_payload_and_person(
    database_url: str, broker: Any, receivers: dict[str, Receiver]
) -> None:
    """Registration's erasure empties the deliveries about the person that are over; the revocation the erasure
    causes still reaches the partner whole, and is emptied once delivered; an emptied one is not replayed."""
    receiver = receivers[VHS]
    await receiver.start()
    app = create_app(webhook_settings(database_url, broker, webhook_poll_seconds=0.1))
    async with running_app(app) as client:
        reply = await client.post(
            f"/api/v1/partners/{VHS}/webhooks",
            headers={"X-Partner-Id": VHS},
            json={"url": receiver.url, "event_types": [REFERRAL_SENT, ReferralRevoked.event_type]},
        )
        assert reply.status_code == 201, reply.text
        person, bystander, now = str(uuid.uuid4()), str(uuid.uuid4()), datetime.now(UTC)

        def referral(person_id: str, kind: type[Any], **extra: Any) -> Any:
            return kind(
                referral_id=f"ref-{person_id}",
                case_id=f"case-{person_id}",
                person_id=person_id,
                service_type="integration_course",
                partner_id=VHS,
                partner_category="adult_education",
                at=now,
                **extra,
            )

        sent = {"purpose": "course_enrolment", "response_due_at": now + timedelta(days=7)}
        first = await produce(
            broker.bootstrap_servers, referral(person, ReferralSent, **sent), referral(bystander, ReferralSent, **sent)
        )
        runtime = app.state.runtime

        async def rows() -> list[WebhookDelivery]:
            async with runtime.session_factory() as session:
                return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))).all())

        async def all_delivered(count: int) -> bool:
            found = await rows()
            return len(found) == count and all(r.status == "delivered" for r in found)

        await eventually(lambda: all_delivered(2))
        about = {r.event_id: r for r in await rows()}
        assert about[first[0]].person_id == person and person in about[first[0]].payload

        await produce(broker.bootstrap_servers, PersonErased(person_id=person, erased_at=now))

        async def emptied(event_id: str) -> WebhookDelivery | None:
            row = next((r for r in await rows() if r.event_id == event_id), None)
            return row if row is not None and row.erased_at is not None else None

        gone = await eventually(lambda: emptied(first[0]))
        assert (gone.payload, gone.person_id, gone.status) == ("", None, "delivered")
        kept = next(r for r in await rows() if r.event_id == first[1])
        assert kept.erased_at is None and bystander in kept.payload, "another person's delivery stays whole"
        log = (await client.get(f"/api/v1/partners/{VHS}/webhooks/deliveries", headers={"X-Partner-Id": VHS})).json()
        assert {d["event_id"] for d in log["items"]} == set(first), "the partner's log keeps the entry"
        replay = await client.post(
            f"/api/v1/partners/{VHS}/webhooks/deliveries/{gone.id}/replay", headers={"X-Partner-Id": VHS}
        )
        assert replay.status_code == 410 and replay.json()["type"].endswith("/erased")

        # The revocation that the erasure causes comes after it: the partner gets it whole, then it is emptied.
        [revoked] = await produce(broker.bootstrap_servers, referral(person, ReferralRevoked))
        await eventually(lambda: emptied(revoked))
        [request] = [r for r in receiver.requests if json.loads(r.body)["id"] == revoked]
        assert json.loads(request.body)["data"]["person_id"] == person
        assert all(person not in r.payload and r.person_id != person for r in await rows())


async def test_a_referral_event_published_again_under_a_new_ce_id_is_one_webhook(
    database_url: str, broker: Any, receivers: dict[str, Receiver]
) -> None:
    """The same fact twice, under two ce_ids (a producer that sent it again): the inbox takes both, the partner gets
    one webhook; a different fact about the same referral (its revocation) is a webhook of its own."""
    receiver = receivers[VHS]
    await receiver.start()
    app = create_app(webhook_settings(database_url, broker))
    async with running_app(app) as client:
        reply = await client.post(
            f"/api/v1/partners/{VHS}/webhooks",
            headers={"X-Partner-Id": VHS},
            json={"url": receiver.url, "event_types": [REFERRAL_SENT, ReferralRevoked.event_type]},
        )
        assert reply.status_code == 201, reply.text
        now = datetime.now(UTC)
        ids = {
            "referral_id": str(uuid.uuid4()),
            "case_id": str(uuid.uuid4()),
            "person_id": str(uuid.uuid4()),
            "service_type": "integration_course",
            "partner_id": VHS,
            "partner_category": "adult_education",
        }
        sent = ReferralSent(**ids, at=now, purpose="course_enrolment", response_due_at=now + timedelta(days=7))
        revoked = ReferralRevoked(**ids, at=now + timedelta(seconds=1))
        first, again, revocation = await produce(broker.bootstrap_servers, sent, sent, revoked)

        runtime = app.state.runtime
        inbox = runtime.tables.inbox

        async def all_handled() -> bool:
            async with runtime.session_factory() as session:
                handled = set(
                    await session.scalars(
                        select(inbox.c.event_id).where(inbox.c.event_id.in_([first, again, revocation]))
                    )
                )
            return handled == {first, again, revocation}

        await eventually(all_handled, timeout_s=20)
        assert len(await deliveries(client, VHS, first)) == 1
        assert await deliveries(client, VHS, again) == []
        assert len(await deliveries(client, VHS, revocation)) == 1
        await eventually(lambda: _true(len(receiver.about({ids["referral_id"]})) == 2), timeout_s=20)
        await asyncio.sleep(1.0)  # time for a stray second webhook to show up
    types = sorted(json.loads(r.body)["type"] for r in receiver.about({ids["referral_id"]}))
    assert types == sorted([REFERRAL_SENT, ReferralRevoked.event_type])
