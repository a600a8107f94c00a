"""Service-to-service identity through the real registration and referral apps, both requiring signed
identities as in production: a token is good for its own audience only, referral's own identity opens
registration's contact route and nothing else, and registration checks the consent itself and logs the read."""

from __future__ import annotations

import types
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import identity as internal
from chassis.embedded_broker import EmbeddedBroker
from services.referral import api as referral_api
from services.referral.app import create_app as create_referral
from services.referral.runtime import referral_of
from services.registration.app import create_app as create_registration
from tests.conftest import (
    GATEWAY_IDENTITY_KEY,
    REFERRAL_IDENTITY_KEY,
    case_with_referrals,
    eventually,
    referral_settings,
    register_with_needs,
    registration_settings,
    running_app,
    signed_by_gateway,
)

VHS = "vhs-landsberg"
ADULT_EDUCATION_CONSENT = {"partner_category": "adult_education", "purpose": "course_enrolment"}
ADMIN = internal.Identity("admin", frozenset({"admin"}))
VHS_STAFF = internal.Identity("vhs-partner", frozenset({"partner"}), partner_id=VHS)


def signing_each_call(client: httpx.AsyncClient, identity: internal.Identity, audience: str) -> None:
    """Every call of ``client`` that carries no identity gets a fresh one from the gateway for ``audience``."""

    async def sign(request: httpx.Request) -> None:
        if internal.HEADER not in request.headers:
            request.headers[internal.HEADER] = internal.sign(identity, GATEWAY_IDENTITY_KEY, audience=audience)

    client.event_hooks["request"].append(sign)


@pytest.fixture
async def guarded(
    database_url: str, broker: EmbeddedBroker, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Registration and referral, each refusing calls without a valid signed identity; referral's calls to
    registration go in-process to the registration app. Staff calls are signed as the gateway signs them."""
    registration_app = create_registration(
        registration_settings(database_url, broker.bootstrap_servers, require_internal_identity=True)
    )
    referral_app = create_referral(
        referral_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}",
            broker.bootstrap_servers,
            require_internal_identity=True,
            demo_data=True,  # the demo roster and directory: a case gets a navigator and referrals a partner
        )
    )
    async with running_app(registration_app) as registration, running_app(referral_app) as referral:
        transport = httpx.ASGITransport(app=registration_app)

        def to_registration(**kwargs: Any) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, **kwargs)

        monkeypatch.setattr(
            referral_api, "httpx", types.SimpleNamespace(AsyncClient=to_registration, HTTPError=httpx.HTTPError)
        )
        assert (await registration.get("/api/v1/persons")).status_code == 401, "no identity, no answer"
        # An admin's: the calls here register, record needs and read the access log, which no registrar does alone.
        signing_each_call(registration, ADMIN, "registration")
        signing_each_call(referral, ADMIN, "referral")
        yield registration, referral


def contact_url(person: str) -> str:
    return f"/api/internal/persons/{person}/contact"


def as_referral(audience: str = "registration", key: Ed25519PrivateKey = REFERRAL_IDENTITY_KEY) -> dict[str, str]:
    return {internal.HEADER: internal.service_token(key, "referral", audience)}


async def test_a_partner_gets_contact_data_through_referrals_own_identity(
    guarded: tuple[httpx.AsyncClient, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    registration, referral = guarded
    given_names = f"Layla {uuid.uuid4().hex[:6]}"
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT], given_names=given_names)
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    course = next(r for r in case["referrals"] if r["service_type"] == "integration_course")
    assert course["status"] == "sent" and course["partner_id"] == VHS

    view = await referral.get(
        f"/api/v1/partner/referrals/{course['referral_id']}", headers=signed_by_gateway(VHS_STAFF, "referral")
    )
    assert view.status_code == 200, view.text
    assert view.json()["personal_data_status"] == "shared under consent"
    assert view.json()["personal_data"]["given_names"] == given_names
    log = (await registration.get(f"/api/v1/persons/{person}/access-log")).json()
    assert [e["action"] for e in log if e["actor"].startswith(f"partner:{VHS} via service:referral")] == [
        "read_contact"
    ]

    # Referral with a key registration does not trust (a mismatched deployment): no data, a clear status, a log line.
    runtime = referral._transport.app.state.runtime  # type: ignore[attr-defined]
    referral_of(runtime).identity = internal.Signer(Ed25519PrivateKey.generate(), "referral")
    with caplog.at_level("WARNING", logger="services.referral.api"):
        view = await referral.get(
            f"/api/v1/partner/referrals/{course['referral_id']}", headers=signed_by_gateway(VHS_STAFF, "referral")
        )
    assert (view.json()["personal_data"], view.json()["personal_data_status"]) == (None, "not available (401)")
    assert "registration refused referral's identity" in caplog.text and given_names not in caplog.text


async def test_each_token_opens_only_its_own_door(guarded: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    registration, referral = guarded
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT])
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    course = next(r for r in case["referrals"] if r["service_type"] == "integration_course")
    consent_id = (await registration.get(f"/api/v1/persons/{person}/consents")).json()[0]["consent_id"]
    params = {
        "partner_id": VHS,
        "partner_category": "adult_education",
        "referral_id": course["referral_id"],
        "consent_id": consent_id,
    }
    url = contact_url(person)

    # The gateway's token for another service is no good here; nor is a service's token on the public API.
    for_referral = signed_by_gateway(ADMIN, "referral")
    assert (await registration.get(f"/api/v1/persons/{person}", headers=for_referral)).status_code == 401
    assert (await registration.get(f"/api/v1/persons/{person}", headers=as_referral())).status_code == 403
    assert (await registration.get(f"/api/v1/persons/{person}")).status_code == 200, "the gateway's token for it"

    # The contact route: referral's own identity, for registration, signed with referral's key, and nothing else.
    contact = await registration.get(url, params=params, headers=as_referral())
    assert contact.status_code == 200, contact.text
    assert set(contact.json()) == set(referral_api.CONTACT_FIELDS)
    refused = {
        "the gateway's token, even an admin's": (signed_by_gateway(ADMIN, "registration"), 403),
        "referral's token for another audience": (as_referral("courses"), 401),
        "referral's name with another key": (as_referral(key=Ed25519PrivateKey.generate()), 401),
        "a service registration does not serve": (
            {internal.HEADER: internal.service_token(Ed25519PrivateKey.generate(), "courses", "registration")},
            401,
        ),
        "the gateway's key claiming to be referral": (
            {internal.HEADER: internal.service_token(GATEWAY_IDENTITY_KEY, "referral", "registration")},
            401,
        ),
    }
    for what, (headers, status) in refused.items():
        reply = await registration.get(url, params=params, headers=headers)
        assert reply.status_code == status, f"{what}: {reply.status_code} {reply.text}"
        assert reply.headers["content-type"] == "application/problem+json"

    # Registration checks the consent itself: another partner, or once withdrawn, gets nothing.
    other = await registration.get(
        url,
        params={**params, "partner_id": "ihk-muenchen-oberbayern", "partner_category": "chamber"},
        headers=as_referral(),
    )
    assert other.status_code == 403 and other.json()["type"].endswith("/consent-missing")
    withdrawal = await registration.post(f"/api/v1/persons/{person}/consents/{consent_id}/withdrawal")
    assert withdrawal.status_code == 200, withdrawal.text
    after = await registration.get(url, params=params, headers=as_referral())
    assert after.status_code == 403 and after.json()["type"].endswith("/consent-missing")
    log = (await registration.get(f"/api/v1/persons/{person}/access-log")).json()
    assert [e["action"] for e in log].count("read_contact") == 1, "only the read that was answered"


async def test_a_partners_list_names_persons_only_under_a_consent_in_force(
    guarded: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """The partner's referral list with ``names=true``: one call from referral to registration's names route,
    which only referral's own identity opens, which checks each consent itself and logs each name it gives."""
    registration, referral = guarded
    given_names = f"Layla {uuid.uuid4().hex[:6]}"
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT], given_names=given_names)
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    course = next(r for r in case["referrals"] if r["service_type"] == "integration_course")
    vhs = signed_by_gateway(VHS_STAFF, "referral")

    async def listed(**params: Any) -> dict[str, Any]:
        reply = await referral.get("/api/v1/partner/referrals", params=params, headers=vhs)
        assert reply.status_code == 200, reply.text
        return {r["referral_id"]: r for r in reply.json()["items"]}

    assert (await listed())[course["referral_id"]]["person_name"] is None, "no names unless asked for"
    rows = await listed(names="true")
    assert rows[course["referral_id"]]["person_name"].startswith(given_names)
    theirs = [r for r in rows.values() if r["person_id"] == person]
    log = (await registration.get(f"/api/v1/persons/{person}/access-log")).json()
    reads = [e for e in log if e["actor"].startswith(f"partner:{VHS} via service:referral")]
    assert [e["action"] for e in reads] == ["read_contact_name"] * len(theirs), "each name given is logged"
    assert {e["actor"].rsplit(" ", 1)[-1] for e in reads} == {r["referral_id"] for r in theirs}, "per referral"

    # The route answers referral's own identity only, and names nobody for a partner the consent does not name.
    consent_id = (await registration.get(f"/api/v1/persons/{person}/consents")).json()[0]["consent_id"]
    asked = {"person_id": person, "referral_id": course["referral_id"], "consent_id": consent_id}
    url = "/api/internal/persons/contact-names"
    gateway = await registration.post(
        url, json={"partner_id": VHS, "referrals": [asked]}, headers=signed_by_gateway(ADMIN, "registration")
    )
    assert gateway.status_code == 403, gateway.text
    other = await registration.post(
        url,
        json={"partner_id": "ihk-muenchen-oberbayern", "referrals": [asked | {"partner_category": "chamber"}]},
        headers=as_referral(),
    )
    assert other.status_code == 200 and other.json() == []

    # Withdrawn: the list names nobody, and says why (consent_withdrawn), once referral has heard of it.
    withdrawal = await registration.post(f"/api/v1/persons/{person}/consents/{consent_id}/withdrawal")
    assert withdrawal.status_code == 200, withdrawal.text

    async def withdrawn() -> bool:
        row = (await listed(names="true"))[course["referral_id"]]
        return bool(row["consent_withdrawn"]) and row["person_name"] is None

    await eventually(withdrawn)
    direct = await registration.post(
        url,
        json={"partner_id": VHS, "referrals": [asked | {"partner_category": "adult_education"}]},
        headers=as_referral(),
    )
    assert direct.status_code == 200 and direct.json() == [], "registration checks the withdrawal itself"
