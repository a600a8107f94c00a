"""Idempotency-Key on writes, through the real referral, partners and registration apps on SQLite and
PostgreSQL: a retry runs once and gets the first answer again; the key belongs to the caller, the method
and the path; a key reused for another request, a key in flight and an invalid key are refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from chassis import idempotency
from chassis import identity as internal
from chassis.db import make_engine
from contracts.partners import PartnerCapacityChanged
from contracts.referral import ReferralAccepted, ReferralDeclined
from services.partners.app import create_app as create_partners
from services.registration.models import Person
from tests.conftest import (
    IDEMPOTENCY_SECRET,
    ManualClock,
    case_with_referrals,
    eventually,
    gateway_settings,
    newcomer,
    partners_settings,
    register_with_needs,
    running_app,
    signed_by_gateway,
)
from tests.service.conftest import Services

PARTNER_REFERRALS = "/api/v1/partner/referrals"
VHS = "vhs-landsberg"
ADULT_EDUCATION_CONSENT = {"partner_category": "adult_education", "purpose": "course_enrolment"}
API_KEYS = f"/api/v1/partners/{VHS}/api-keys"
CAPACITY = f"/api/v1/partners/{VHS}/services/integration_course/capacity"
AS_VHS = {"X-Partner-Id": VHS}
REPLAYED = "idempotent-replayed"


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def problem(reply: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["status"] == status and body["type"].endswith(f"/{kind}"), body
    assert REPLAYED not in reply.headers
    return body


def replayed(reply: httpx.Response, first: httpx.Response) -> None:
    """``reply`` is ``first`` again, as stored: status, content type, body; marked as a replay."""
    assert reply.headers.get(REPLAYED) == "true", reply.headers
    assert REPLAYED not in first.headers
    assert (reply.status_code, reply.headers["content-type"], reply.content) == (
        first.status_code,
        first.headers["content-type"],
        first.content,
    )


# --- the referral service: a partner works its referrals ---------------------------------------------------


async def referral_events(referral: httpx.AsyncClient, referral_id: str, event_type: str) -> int:
    runtime = referral.app.state.runtime  # type: ignore[attr-defined]
    outbox = runtime.tables.outbox
    async with runtime.session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.partition_key == referral_id, outbox.c.event_type == event_type)
        )
    return int(count or 0)


async def test_a_partners_retried_accept_runs_once_and_gets_the_same_answer(
    referral_under_test: Services,
) -> None:
    registration, referral = referral_under_test
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT])
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    by_service = {r["service_type"]: r for r in case["referrals"]}
    course = by_service["integration_course"]["referral_id"]
    childcare = by_service["course_with_childcare"]["referral_id"]
    assert by_service["integration_course"]["status"] == by_service["course_with_childcare"]["status"] == "sent"

    vhs_staff = signed_by_gateway(internal.Identity("vhs-partner", frozenset({"partner"}), partner_id=VHS), "referral")
    accept = f"{PARTNER_REFERRALS}/{course}/accept"
    key = new_key()
    first = await referral.post(accept, headers=vhs_staff | key)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "accepted"
    again = await referral.post(accept, headers=vhs_staff | key)
    replayed(again, first)
    # The replay did not run the accept: one event, and an accept that really runs now is an invalid transition.
    assert await referral_events(referral, course, ReferralAccepted.event_type) == 1
    assert (
        problem(await referral.post(accept, headers=vhs_staff), 409, "invalid-transition")["status_now"] == "accepted"
    )
    replayed(await referral.post(accept, headers=vhs_staff | key), first)  # still, within the day

    # The same key for another request: refused, and nothing runs.
    problem(await referral.post(accept, headers=vhs_staff | key, json={"note": "again"}), 422, "idempotency-key-reused")

    # Another caller of the same partner (its API key) with the same key on the same path: a key of its own.
    vhs_crm = signed_by_gateway(
        internal.Identity("crm-key", frozenset({"partner"}), partner_id=VHS, kind="api_key"), "referral"
    )
    other = await referral.post(accept, headers=vhs_crm | key)
    assert problem(other, 409, "invalid-transition")["status_now"] == "accepted"
    assert await referral_events(referral, course, ReferralAccepted.event_type) == 1

    # A decline with a reason: the same JSON in another spelling is the same request.
    decline = f"{PARTNER_REFERRALS}/{childcare}/decline"
    key = new_key()
    declined = await referral.post(decline, headers=vhs_staff | key, json={"reason": "no_capacity"})
    assert declined.status_code == 200, declined.text
    respelled = await referral.post(
        decline,
        headers=vhs_staff | key | {"content-type": "application/json"},
        content=b'{ "reason" :  "no_capacity" }',
    )
    replayed(respelled, declined)
    problem(
        await referral.post(decline, headers=vhs_staff | key, json={"reason": "other"}), 422, "idempotency-key-reused"
    )
    assert await referral_events(referral, childcare, ReferralDeclined.event_type) == 1
    assert (await referral.get(f"/api/v1/referrals/{childcare}")).json()["decline_reason"] == "no_capacity"


# --- the partners service: API keys and capacity -------------------------------------------------------------


@pytest.fixture
def partners_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def partners(database_url: str, broker: Any, partners_clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_partners(
        partners_settings(database_url, broker.bootstrap_servers, demo_data=True), clock=partners_clock
    )
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def store_of(client: httpx.AsyncClient) -> idempotency.IdempotencyStore:
    store = client.app.state.runtime.idempotency  # type: ignore[attr-defined]
    assert isinstance(store, idempotency.IdempotencyStore)
    return store


async def keys_named(partners: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    reply = await partners.get(API_KEYS, headers=AS_VHS)
    assert reply.status_code == 200, reply.text
    return [k for k in reply.json() if k["name"] == name]


async def stored_rows(client: httpx.AsyncClient) -> list[Any]:
    async with store_of(client).engine.connect() as conn:
        return list((await conn.execute(select(idempotency.TABLE))).all())


async def test_a_retried_api_key_creation_makes_one_key_and_answers_with_it_again(
    partners: httpx.AsyncClient, partners_clock: ManualClock
) -> None:
    body = {"name": "CRM", "scopes": ["referrals:read"]}
    key = new_key()
    first = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    assert first.status_code == 201, first.text
    created = first.json()
    again = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    replayed(again, first)
    assert again.json()["key_id"] == created["key_id"] and again.json()["key"] == created["key"]
    # The draft's quoted form of the same key is the same key.
    replayed(
        await partners.post(API_KEYS, headers=AS_VHS | {"Idempotency-Key": f'"{key["Idempotency-Key"]}"'}, json=body),
        first,
    )
    assert [k["key_id"] for k in await keys_named(partners, "CRM")] == [created["key_id"]]

    # The key shown once is not readable from the stored response: it is sealed.
    [row] = [r for r in await stored_rows(partners) if r.idempotency_key == key["Idempotency-Key"]]
    assert (row.status, row.method, row.path) == (201, "POST", API_KEYS)
    assert created["key"].encode() not in row.body and created["key_id"].encode() not in row.body

    # Without a key, nothing changes: two calls make two keys.
    for _ in range(2):
        assert (await partners.post(API_KEYS, headers=AS_VHS, json=body | {"name": "plain"})).status_code == 201
    assert len(await keys_named(partners, "plain")) == 2
    # Reads ignore the header.
    assert REPLAYED not in (await partners.get(API_KEYS, headers=AS_VHS | key)).headers

    # After 24 hours the stored answer is gone: the sweep deletes it, and the same key is a new request.
    partners_clock.advance(hours=24, seconds=1)
    assert await store_of(partners).purge_expired() >= 1
    assert [r for r in await stored_rows(partners) if r.idempotency_key == key["Idempotency-Key"]] == []
    later = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    assert later.status_code == 201 and REPLAYED not in later.headers
    assert later.json()["key_id"] != created["key_id"]
    assert len(await keys_named(partners, "CRM")) == 2


async def test_capacity_updates_with_a_key_and_what_is_kept_and_what_runs_again(partners: httpx.AsyncClient) -> None:
    key = new_key()
    first = await partners.put(CAPACITY, headers=AS_VHS | key, json={"free_places": 7})
    assert first.status_code == 200 and first.json()["free_places"] == 7, first.text
    replayed(await partners.put(CAPACITY, headers=AS_VHS | key, json={"free_places": 7}), first)
    problem(await partners.put(CAPACITY, headers=AS_VHS | key, json={"free_places": 8}), 422, "idempotency-key-reused")
    # The same key on another path is another key.
    other_path = await partners.put(
        CAPACITY.replace("integration_course", "course_with_childcare"), headers=AS_VHS | key, json={"free_places": 8}
    )
    assert other_path.status_code == 200 and REPLAYED not in other_path.headers

    # Invalid keys are refused before anything runs.
    invalid: list[list[tuple[bytes, bytes]]] = [
        [(b"Idempotency-Key", b"x" * 256)],
        [(b"Idempotency-Key", b'""')],
        [(b"Idempotency-Key", b"schl\xfcssel")],
        [(b"Idempotency-Key", b'"half\\"')],
        [(b"Idempotency-Key", b"one"), (b"Idempotency-Key", b"two")],
    ]
    for headers in invalid:
        reply = await partners.put(
            CAPACITY, headers=[(b"X-Partner-Id", VHS.encode()), *headers], json={"free_places": 1}
        )
        problem(reply, 400, "idempotency-key-invalid")
    longest = await partners.put(CAPACITY, headers=AS_VHS | {"Idempotency-Key": "k" * 255}, json={"free_places": 9})
    assert longest.status_code == 200, longest.text

    # An invalid request is not kept: corrected, it runs under the same key.
    key = new_key()
    problem(await partners.put(CAPACITY, headers=AS_VHS | key, json={"free_places": -1}), 422, "validation")
    corrected = await partners.put(CAPACITY, headers=AS_VHS | key, json={"free_places": 5})
    assert corrected.status_code == 200 and REPLAYED not in corrected.headers
    # A refusal that is final is kept and replayed.
    key = new_key()
    jobcenter = "/api/v1/partners/jobcenter-landsberg/services/job_placement/capacity"
    forbidden = await partners.put(jobcenter, headers=AS_VHS | key, json={"free_places": 1})
    assert forbidden.status_code == 403
    replayed(await partners.put(jobcenter, headers=AS_VHS | key, json={"free_places": 1}), forbidden)

    runtime = partners.app.state.runtime  # type: ignore[attr-defined]
    outbox = runtime.tables.outbox
    async with runtime.session_factory() as session:
        changes = (
            await session.scalars(
                select(outbox.c.data)
                .where(outbox.c.partition_key == VHS, outbox.c.event_type == PartnerCapacityChanged.event_type)
                .order_by(outbox.c.id)
            )
        ).all()
    assert [json.loads(c)["free_places"] for c in changes] == [7, 8, 9, 5]


async def test_a_retry_while_the_first_runs_waits_and_a_dead_first_is_taken_over(
    partners: httpx.AsyncClient, partners_clock: ManualClock
) -> None:
    store = store_of(partners)
    body = {"name": "in flight", "scopes": ["referrals:read"]}
    key = str(uuid.uuid4())
    # The first request holds the key (as the middleware takes it for a request in progress).
    caller = idempotency.caller_of([(b"x-partner-id", VHS.encode())])
    same_request = idempotency.fingerprint("POST", API_KEYS, b"", [], json.dumps(body).encode())
    first = await store.begin(caller, "POST", API_KEYS, key, same_request)
    assert isinstance(first, idempotency.Claimed)
    waiting = await partners.post(API_KEYS, headers=AS_VHS | {"Idempotency-Key": key}, json=body)
    problem(waiting, 409, "idempotency-request-in-flight")
    assert waiting.headers["retry-after"] == "1"
    assert await keys_named(partners, "in flight") == []

    # Its process died: after the lease a retry runs, and the dead one's late answer is not stored over it.
    partners_clock.advance(seconds=idempotency.LEASE.total_seconds() + 1)
    taken_over = await partners.post(API_KEYS, headers=AS_VHS | {"Idempotency-Key": key}, json=body)
    assert taken_over.status_code == 201 and REPLAYED not in taken_over.headers
    await store.finish(first, 201, [("content-type", "application/json")], b'{"stale": true}')
    replayed(await partners.post(API_KEYS, headers=AS_VHS | {"Idempotency-Key": key}, json=body), taken_over)

    # Real concurrent retries: one runs, the others wait or get its answer; one key is made.
    racing = new_key()
    replies = await asyncio.gather(
        *(partners.post(API_KEYS, headers=AS_VHS | racing, json=body | {"name": "racing"}) for _ in range(5))
    )
    ran = [r for r in replies if r.status_code == 201 and REPLAYED not in r.headers]
    assert len(ran) == 1, [(r.status_code, r.headers.get(REPLAYED)) for r in replies]
    assert all(r.status_code == 409 or r.headers.get(REPLAYED) == "true" for r in replies if r is not ran[0])
    assert [k["key_id"] for k in await keys_named(partners, "racing")] == [ran[0].json()["key_id"]]


async def test_a_request_whose_answer_was_not_kept_after_its_commit_never_runs_again(
    partners: httpx.AsyncClient, partners_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies between the effect's commit and keeping the answer (here: keeping it fails, which leaves the
    key as a kill -9 would): the commit marked the key done, so a retry is told to wait while the answer might still
    come, then that the answer is lost; the key is never taken over and the request never runs twice."""
    store = store_of(partners)
    body = {"name": "answer lost", "scopes": ["referrals:read"]}
    key = new_key()

    async def dies_before_keeping(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the process ended here")

    with monkeypatch.context() as patch:
        patch.setattr(store, "finish", dies_before_keeping)
        first = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    assert first.status_code == 201, first.text
    (row,) = [r for r in await stored_rows(partners) if r.idempotency_key == key["Idempotency-Key"]]
    assert row.status == idempotency.EFFECT_COMMITTED and row.body is None

    problem(await partners.post(API_KEYS, headers=AS_VHS | key, json=body), 409, "idempotency-request-in-flight")
    partners_clock.advance(seconds=idempotency.LEASE.total_seconds() + 1)
    lost = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    assert "carried out" in problem(lost, 409, "idempotency-response-lost")["detail"]
    assert "retry-after" not in lost.headers
    assert [k["key_id"] for k in await keys_named(partners, "answer lost")] == [first.json()["key_id"]]
    # Another request under the same key is still refused as such.
    problem(
        await partners.post(API_KEYS, headers=AS_VHS | key, json=body | {"name": "x"}), 422, "idempotency-key-reused"
    )


async def test_a_failed_request_releases_its_key_and_a_large_answer_is_not_kept(partners: httpx.AsyncClient) -> None:
    store = store_of(partners)
    body = {"name": "after failure", "scopes": ["referrals:read"]}
    key = new_key()
    # The database loses the table mid-flight: the request fails (500) and a retry runs again.
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE api_keys RENAME TO api_keys_away"))
    transport = httpx.ASGITransport(app=partners.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post(API_KEYS, headers=AS_VHS | key, json=body)).status_code == 500
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE api_keys_away RENAME TO api_keys"))
    assert [r for r in await stored_rows(partners) if r.idempotency_key == key["Idempotency-Key"]] == []
    retried = await partners.post(API_KEYS, headers=AS_VHS | key, json=body)
    assert retried.status_code == 201 and REPLAYED not in retried.headers

    # An answer over the limit is not kept; the key stays taken and a retry is told so instead of running.
    store.max_body = 64
    try:
        key = new_key()
        big = await partners.post(API_KEYS, headers=AS_VHS | key, json=body | {"name": "big"})
        assert big.status_code == 201 and len(big.content) > 64
        again = await partners.post(API_KEYS, headers=AS_VHS | key, json=body | {"name": "big"})
        assert problem(again, 409, "idempotency-response-not-kept")["original_status"] == 201
        assert "retry-after" not in again.headers
    finally:
        store.max_body = idempotency.MAX_STORED_BODY
    assert len(await keys_named(partners, "big")) == 1


async def test_the_services_openapi_documents_the_header_on_writes(partners: httpx.AsyncClient) -> None:
    spec = (await partners.get("/openapi.json")).json()

    def headers_of(path: str, method: str) -> set[str]:
        return {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p["in"] == "header"}

    assert "Idempotency-Key" in headers_of("/api/v1/partners/{partner_id}/api-keys", "post")
    assert "Idempotency-Key" in headers_of("/api/v1/partners/{partner_id}/services/{service_type}/capacity", "put")
    assert "Idempotency-Key" not in headers_of("/api/v1/partners/{partner_id}/api-keys", "get")
    created = spec["paths"]["/api/v1/partners/{partner_id}/api-keys"]["post"]["responses"]["201"]
    assert "Idempotent-Replayed" in created["headers"]


# --- through the gateway --------------------------------------------------------------------------------------


@pytest.fixture
async def gateway(database_url: str, broker: Any, tmp_path: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The gateway in front of the real partners app; yields its client and app."""
    from gateway.app import create_app as create_gateway

    partners_app = create_partners(partners_settings(database_url, broker.bootstrap_servers, demo_data=True))
    app = create_gateway(gateway_settings(tmp_path, demo_data=True))
    async with running_app(partners_app), running_app(app) as client:
        await app.state.client.aclose()
        app.state.client = httpx.AsyncClient(mounts={"http://partners": httpx.ASGITransport(app=partners_app)})
        yield client, app
        await app.state.client.aclose()


async def test_the_gateway_forwards_the_key_and_the_replay_mark(gateway: tuple[httpx.AsyncClient, Any]) -> None:
    client, app = gateway
    password = app.state.demo_credentials["caritas"]
    token = (await client.post("/auth/token", json={"username": "caritas", "password": password})).json()
    caritas = {"Authorization": f"Bearer {token['access_token']}"}
    path, body = "/api/v1/partners/caritas-landsberg/api-keys", {"name": "via gateway", "scopes": ["referrals:read"]}
    key = new_key()
    first = await client.post(path, headers=caritas | key, json=body)
    assert first.status_code == 201, first.text
    again = await client.post(path, headers=caritas | key, json=body)
    replayed(again, first)
    listed = (await client.get(path, headers=caritas)).json()
    assert [k["key_id"] for k in listed if k["name"] == "via gateway"] == [first.json()["key_id"]]
    # A client cannot pose as another caller to reach someone else's stored answer: the identity is the gateway's.
    spoofed = await client.post(path, headers=caritas | key | {"X-Actor": "user:someone"}, json=body)
    replayed(spoofed, first)

    spec = (await client.get("/api/v1/openapi.json")).json()
    parameters = spec["paths"]["/api/v1/partners/{partner_id}/api-keys"]["post"]["parameters"]
    assert "Idempotency-Key" in {p["name"] for p in parameters if p["in"] == "header"}


# --- the registration service: staff writes benefit too ------------------------------------------------------


async def test_a_registrars_retried_registration_registers_once(registration: httpx.AsyncClient) -> None:
    body = newcomer()
    registrar = signed_by_gateway(internal.Identity("registrar", frozenset({"registrar"})), "registration")
    key = new_key()
    first = await registration.post("/api/v1/registrations", headers=registrar | key, json=body)
    assert first.status_code == 201, first.text
    again = await registration.post("/api/v1/registrations", headers=registrar | key, json=body)
    replayed(again, first)
    assert again.headers["location"] == first.headers["location"]
    async with registration.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        persons = (await session.scalars(select(Person.id).where(Person.given_names == body["given_names"]))).all()
    assert persons == [first.json()["person_id"]]
    # The stored answer holds the person's name and address, sealed.
    [row] = [r for r in await stored_rows(registration) if r.idempotency_key == key["Idempotency-Key"]]
    assert body["given_names"].encode() not in row.body and b"Schwaighof" not in row.body


# --- erasure: a service forgets what it kept about a subject -------------------------------------------------


async def test_forgetting_a_subject_deletes_every_stored_answer_that_names_it(database_url: str) -> None:
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(idempotency.TABLE.metadata.create_all)
    store = idempotency.IdempotencyStore(engine, IDEMPOTENCY_SECRET)
    person, other = str(uuid.uuid4()), str(uuid.uuid4())

    async def kept(path: str, body: bytes | None, headers: list[tuple[str, str]] | None = None) -> str:
        claimed = await store.begin("user:registrar", "POST", path, str(uuid.uuid4()), "fingerprint")
        assert isinstance(claimed, idempotency.Claimed)
        await store.finish(claimed, 201, headers or [], body)
        return claimed.scope

    async def in_flight(path: str) -> str:
        claimed = await store.begin("user:registrar", "PATCH", path, str(uuid.uuid4()), "fingerprint")
        assert isinstance(claimed, idempotency.Claimed)
        return claimed.scope

    try:
        named = {
            await kept(f"/api/v1/persons/{person}/consents", b'{"consent_id": "c-1"}'),  # the path names them
            await kept("/api/v1/registrations", json.dumps({"person_id": person}).encode()),  # the answer does
            await kept("/api/v1/registrations", b"{}", [("location", f"/api/v1/persons/{person}")]),  # a header
            await kept(f"/api/v1/persons/{person}/needs-assessments", None),  # ran, answer too large to keep
            await in_flight(f"/api/v1/persons/{person}"),  # still running: its answer is never stored now
        }
        unrelated = {
            await kept(f"/api/v1/persons/{other}", json.dumps({"person_id": other}).encode()),
            await kept(f"/api/v1/persons/{person}x/consents", b"{}"),  # a segment is the subject, or it is not
        }
        async with engine.connect() as conn:  # a transaction that does not commit forgets nothing
            assert await store.forget(conn, [person]) == len(named)
            await conn.rollback()
        async with engine.begin() as conn:
            assert await store.forget(conn, [person, "not-in-any-answer"]) == len(named)
            assert await store.forget(conn, []) == 0
            with pytest.raises(ValueError, match="match too much"):
                await store.forget(conn, ["p-1"])
        async with engine.connect() as conn:
            left = set((await conn.execute(select(idempotency.TABLE.c.scope))).scalars())
        assert left == unrelated
    finally:
        await engine.dispose()


async def test_erasure_forgets_the_answers_about_the_person_and_keeps_the_others(
    registration: httpx.AsyncClient,
) -> None:
    registrar = signed_by_gateway(internal.Identity("registrar", frozenset({"registrar"})), "registration")
    admin = signed_by_gateway(internal.Identity("admin", frozenset({"admin"})), "registration")
    erased_key, kept_key, change_key = new_key(), new_key(), new_key()
    erased = await registration.post("/api/v1/registrations", headers=registrar | erased_key, json=newcomer())
    other = newcomer()
    kept = await registration.post("/api/v1/registrations", headers=registrar | kept_key, json=other)
    person = erased.json()["person_id"]
    read = await registration.get(f"/api/v1/persons/{person}", headers=registrar)
    change = {"If-Match": read.headers["etag"]} | change_key
    changed = await registration.patch(f"/api/v1/persons/{person}", headers=registrar | change, json={"phone": None})
    assert changed.status_code == 200 and changed.json()["family_name"] == "Haddad"
    assert len(await stored_rows(registration)) == 3

    reply = await registration.delete(
        f"/api/v1/persons/{person}", params={"reason": "the person's request"}, headers=admin | new_key()
    )
    assert reply.status_code == 204, reply.text
    # Nothing kept names the person any more: not their registration, not the change, not the erasure itself.
    bodies = idempotency.SealedBodies(IDEMPOTENCY_SECRET)
    rows = await stored_rows(registration)
    assert [row.idempotency_key for row in rows] == [kept_key["Idempotency-Key"]]
    for row in rows:
        opened = bodies.open(row.scope, row.body) if row.body is not None else b""
        assert person not in row.path and opened is not None and person.encode() not in opened, row.path
    # The change is not replayed with the name and address: it runs again and meets the erased person.
    problem(
        await registration.patch(f"/api/v1/persons/{person}", headers=registrar | change, json={"phone": None}),
        410,
        "erased",
    )
    replayed(await registration.post("/api/v1/registrations", headers=registrar | kept_key, json=other), kept)
