"""Object-level authorisation in the referral service (issue 6): a caseworker sees and acts only on the
cases of their own team (and their referrals); another team's case answers 404 as if it did not exist;
an admin sees all. Through the real referral app on SQLite and PostgreSQL, and once through the gateway
with signed identities of two caseworkers of different teams."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from chassis.embedded_broker import EmbeddedBroker
from gateway.app import create_app as create_gateway
from services.referral import workflow
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    ADMIN,
    LOTSE_NORD,
    LOTSE_SUED,
    NORD,
    SUED,
    case_with_referrals,
    eventually,
    gateway_settings,
    ok,
    referral_settings,
    register_with_needs,
    registration_settings,
    running_app,
)
from tests.service.conftest import Services

ALL_PAGES = {"page_size": 200}


def not_found(reply: httpx.Response) -> None:
    """404 Problem Details, the same as for an id that does not exist."""
    assert reply.status_code == 404, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["type"].endswith("not-found")


# --- the scope rule itself ---------------------------------------------------------------------


def test_the_scope_follows_the_forwarded_roles_team_and_subject() -> None:
    assert workflow.case_scope(None, None, None).everything, "no identity forwarded: development and tests"
    assert workflow.case_scope(None, NORD, "user:lotse").everything, "a team alone is no identity"
    assert workflow.case_scope("admin", None, "user:admin").everything
    assert workflow.case_scope("admin,caseworker", NORD, "user:x").everything, "admin wins"
    assert workflow.case_scope("caseworker", NORD, "user:lotse") == workflow.CaseScope(team=NORD)
    assert workflow.case_scope("caseworker,registrar", NORD, None) == workflow.CaseScope(team=NORD)
    assert workflow.case_scope("caseworker", None, "user:lotse-a.berger") == workflow.CaseScope(
        caseworker_id="lotse-a.berger"
    )
    assert workflow.case_scope("caseworker", "", "api_key:x") == workflow.CaseScope(), "sees nothing"
    for roles in ("analyst", "partner", "registrar", ""):
        with pytest.raises(workflow.NotACaseReader):
            workflow.case_scope(roles, NORD, "user:x")


# --- through the referral app ------------------------------------------------------------------


async def two_cases(
    registration: httpx.AsyncClient, referral: httpx.AsyncClient
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two newcomers' cases with their proposed referrals (no consents given), the first moved by an admin to
    team Nord's Anna Berger, the second to team Süd's Maria Wagner."""
    nord_person = await register_with_needs(registration, [])
    sued_person = await register_with_needs(registration, [], languages=["ru"], preferred_language="ru")
    cases = []
    for person, worker in ((nord_person, "lotse-a.berger"), (sued_person, "lotse-m.wagner")):
        case = await eventually(lambda p=person: case_with_referrals(referral, p, 4))
        assignment = f"/api/v1/cases/{case['case_id']}/assignment"
        moved = ok(await referral.post(assignment, json={"caseworker_id": worker}, headers=ADMIN))
        assert moved["caseworker_id"] == worker
        cases.append(case | {"caseworker_id": worker, "team": moved["team"]})
    assert (cases[0]["team"], cases[1]["team"]) == (NORD, SUED), "an admin moves cases across teams"
    return cases[0], cases[1]


def proposed(case: dict[str, Any]) -> str:
    return str(next(r["referral_id"] for r in case["referrals"] if r["status"] == "proposed"))


async def test_a_caseworker_reads_and_acts_only_on_the_cases_of_their_team(referral_under_test: Services) -> None:
    registration, referral = referral_under_test
    mine, theirs = await two_cases(registration, referral)
    theirs_id, theirs_referral = theirs["case_id"], proposed(theirs)

    # Lists: only the team's cases and their referrals; asking for another team narrows to nothing.
    listed = ok(await referral.get("/api/v1/cases", params=ALL_PAGES, headers=LOTSE_NORD))
    assert mine["case_id"] in {c["case_id"] for c in listed["items"]}
    assert {c["team"] for c in listed["items"]} == {NORD} and listed["total"] == len(listed["items"])
    for params in ({"team": SUED}, {"caseworker_id": "lotse-m.wagner"}, {"person_id": theirs["person_id"]}):
        assert ok(await referral.get("/api/v1/cases", params=params, headers=LOTSE_NORD))["total"] == 0, params
        assert ok(await referral.get("/api/v1/cases", params=params, headers=ADMIN))["total"] >= 1, params
    within = ok(await referral.get("/api/v1/cases", params={"caseworker_id": "lotse-a.berger"}, headers=LOTSE_NORD))
    assert mine["case_id"] in {c["case_id"] for c in within["items"]}
    referrals = ok(await referral.get("/api/v1/referrals", params=ALL_PAGES, headers=LOTSE_NORD))["items"]
    assert {r["referral_id"] for r in mine["referrals"]} <= {r["referral_id"] for r in referrals}
    assert theirs_id not in {r["case_id"] for r in referrals}
    by_case = ok(await referral.get("/api/v1/referrals", params={"case_id": theirs_id}, headers=LOTSE_NORD))
    assert by_case["total"] == 0 and by_case["items"] == []

    # Another team's case and its referrals: 404, like ids that do not exist; nothing changes.
    case_url = f"/api/v1/cases/{theirs_id}"
    not_found(await referral.get(case_url, headers=LOTSE_NORD))
    not_found(await referral.get(f"{case_url}/timeline", headers=LOTSE_NORD))
    goal_body = {"dimension": "placement", "title": "Nursing job"}
    not_found(await referral.post(f"{case_url}/notes", json={"text": "peeking"}, headers=LOTSE_NORD))
    not_found(await referral.post(f"{case_url}/goals", json=goal_body, headers=LOTSE_NORD))
    handed = {"caseworker_id": "lotse-a.berger"}
    not_found(await referral.post(f"{case_url}/assignment", json=handed, headers=LOTSE_NORD))
    goal = ok(await referral.post(f"{case_url}/goals", json=goal_body, headers=LOTSE_SUED), 201)
    goal_url = f"{case_url}/goals/{goal['goal_id']}"
    not_found(await referral.patch(goal_url, json={"status": "achieved"}, headers=LOTSE_NORD))
    for action in ("", "/send", "/revoke", "/refer-elsewhere"):
        method = referral.get if not action else referral.post
        not_found(await method(f"/api/v1/referrals/{theirs_referral}{action}", headers=LOTSE_NORD))
    bulk_body = {"referral_ids": [theirs_referral]}
    bulk = ok(await referral.post("/api/v1/referrals/bulk-send", json=bulk_body, headers=LOTSE_NORD))
    assert bulk == {"sent": [], "not_sent": {theirs_referral: "not found"}}
    untouched = ok(await referral.get(case_url, headers=ADMIN))
    assert untouched["notes"] == [] and untouched["caseworker_id"] == "lotse-m.wagner"
    assert [g["status"] for g in untouched["goals"]] == ["open"]
    assert next(r for r in untouched["referrals"] if r["referral_id"] == theirs_referral)["status"] == "proposed"

    # Their own team's case: everything works as before.
    own_url = f"/api/v1/cases/{mine['case_id']}"
    assert ok(await referral.get(own_url, headers=LOTSE_NORD))["team"] == NORD
    assert ok(await referral.get(f"{own_url}/timeline", headers=LOTSE_NORD))
    note = ok(await referral.post(f"{own_url}/notes", json={"text": "Called."}, headers=LOTSE_NORD), 201)
    assert note["author"] == "user:lotse"
    own_referral = proposed(mine)
    assert ok(await referral.get(f"/api/v1/referrals/{own_referral}", headers=LOTSE_NORD))["case_id"] == mine["case_id"]
    revoked = ok(await referral.post(f"/api/v1/referrals/{own_referral}/revoke", headers=LOTSE_NORD))
    assert revoked["status"] == "revoked"
    # The other team sees the same from its side.
    not_found(await referral.get(own_url, headers=LOTSE_SUED))
    not_found(await referral.post(f"/api/v1/referrals/{own_referral}/revoke", headers=LOTSE_SUED))
    assert ok(await referral.get(case_url, headers=LOTSE_SUED))["case_id"] == theirs_id

    # An admin reads and acts on every team's case.
    assert ok(await referral.post(f"{case_url}/notes", json={"text": "Checked."}, headers=ADMIN), 201)
    assert ok(await referral.post(f"/api/v1/referrals/{theirs_referral}/revoke", headers=ADMIN))["status"] == "revoked"
    everything = ok(await referral.get("/api/v1/cases", params=ALL_PAGES, headers=ADMIN))
    assert {mine["case_id"], theirs_id} <= {c["case_id"] for c in everything["items"]}

    # Other roles never read cases here (the gateway refuses them first; this is the second line).
    for role in ("analyst", "partner", "registrar"):
        refused = await referral.get("/api/v1/cases", headers={"X-Role": role, "X-Actor": "user:x"})
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")


async def test_reassignment_stays_in_the_team_and_a_caseworker_without_a_team_sees_their_own_cases(
    referral_under_test: Services,
) -> None:
    registration, referral = referral_under_test
    mine, theirs = await two_cases(registration, referral)
    assignment = f"/api/v1/cases/{mine['case_id']}/assignment"

    # Without a team: exactly the cases assigned to the caller's own subject.
    berger = {"X-Role": "caseworker", "X-Actor": "user:lotse-a.berger"}
    listed = ok(await referral.get("/api/v1/cases", params=ALL_PAGES, headers=berger))["items"]
    assert mine["case_id"] in {c["case_id"] for c in listed}
    assert {c["caseworker_id"] for c in listed} == {"lotse-a.berger"}
    assert ok(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=berger))["case_id"] == mine["case_id"]
    not_found(await referral.get(f"/api/v1/cases/{theirs['case_id']}", headers=berger))
    nobody = {"X-Role": "caseworker", "X-Actor": "user:lotse-x.nobody"}
    assert ok(await referral.get("/api/v1/cases", headers=nobody))["total"] == 0
    assert ok(await referral.get("/api/v1/referrals", headers=nobody))["total"] == 0
    not_found(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=nobody))

    # Within the team: yes; to another team: only an admin.
    refused = await referral.post(assignment, json={"caseworker_id": "lotse-m.wagner"}, headers=LOTSE_NORD)
    assert refused.status_code == 403, refused.text
    assert ok(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=ADMIN))["team"] == NORD
    refused = await referral.post(assignment, json={"caseworker_id": "lotse-s.rahimi"}, headers=berger)
    assert refused.status_code == 403, "a caseworker without a team hands on within the case's team"
    moved = ok(await referral.post(assignment, json={"caseworker_id": "lotse-k.yildiz"}, headers=LOTSE_NORD))
    assert (moved["caseworker_id"], moved["team"]) == ("lotse-k.yildiz", NORD)
    not_found(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=berger))  # handed on: no longer hers
    moved = ok(await referral.post(assignment, json={"caseworker_id": "lotse-m.wagner"}, headers=ADMIN))
    assert moved["team"] == SUED
    not_found(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=LOTSE_NORD))
    assert ok(await referral.get(f"/api/v1/cases/{mine['case_id']}", headers=LOTSE_SUED))["team"] == SUED


# --- through the gateway, with signed identities ---------------------------------------------------


@pytest.fixture
async def gateway(
    database_url: str, broker: EmbeddedBroker, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, httpx.AsyncClient]]:
    """The gateway in front of registration and referral; referral refuses calls without the signed identity,
    as in production. Yields (gateway client, gateway app, registration client)."""
    registration_app = create_registration(
        registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", broker.bootstrap_servers)
    )
    referral_app = create_referral(
        referral_settings(database_url, broker.bootstrap_servers, demo_data=True, require_internal_identity=True)
    )
    app = create_gateway(gateway_settings(tmp_path, demo_data=True))
    async with (
        running_app(registration_app) as registration,
        running_app(referral_app),
        running_app(app) as client,
    ):
        await app.state.client.aclose()
        app.state.client = httpx.AsyncClient(
            mounts={
                "http://registration": httpx.ASGITransport(app=registration_app),
                "http://referral": httpx.ASGITransport(app=referral_app),
            }
        )
        yield client, app, registration
        await app.state.client.aclose()


async def bearer(client: httpx.AsyncClient, app: Any, username: str) -> dict[str, str]:
    reply = await client.post(
        "/auth/token", json={"username": username, "password": app.state.demo_credentials[username]}
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def caseworker_account(client: httpx.AsyncClient, app: Any, username: str, team: str) -> dict[str, str]:
    """A second caseworker account in the embedded sign-in (the demo has one caseworker), signed in."""
    password = secrets.token_urlsafe(12)
    app.state.issuer.users[username] = {
        "id": username,
        "username": username,
        "roles": ["caseworker"],
        "team": team,
        "password_hash": PasswordHasher().hash(password),
    }
    reply = await client.post("/auth/token", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def test_through_the_gateway_each_team_sees_only_its_cases_whatever_headers_the_client_adds(
    gateway: Any,
) -> None:
    client: httpx.AsyncClient = gateway[0]
    app, registration = gateway[1], gateway[2]
    admin, lotse = await bearer(client, app, "admin"), await bearer(client, app, "lotse")  # lotse: Nord
    wagner = await caseworker_account(client, app, "lotse-m.wagner", SUED)
    assert (await client.get("/api/v1/cases", headers={"X-Role": "admin"})).status_code == 401

    class ViaGateway:
        """``case_with_referrals`` and the assignments through the gateway, as the admin."""

        async def get(self, url: str, **kwargs: Any) -> httpx.Response:
            return await client.get(url, headers=admin, **kwargs)

        async def post(self, url: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
            return await client.post(url, headers=admin, **kwargs)  # the bearer token, not the plain headers

    nord_case, sued_case = await two_cases(registration, ViaGateway())  # type: ignore[arg-type]
    nord_url, sued_url = f"/api/v1/cases/{nord_case['case_id']}", f"/api/v1/cases/{sued_case['case_id']}"
    sued_referral = proposed(sued_case)

    # Headers a client makes up do not widen its scope: the service takes the identity from the signed token.
    spoofed = {**lotse, "X-Team": SUED, "X-Role": "admin", "X-Actor": "user:admin"}
    for caller in (lotse, spoofed):
        assert ok(await client.get(nord_url, headers=caller))["team"] == NORD
        not_found(await client.get(sued_url, headers=caller))
        not_found(await client.get(f"{sued_url}/timeline", headers=caller))
        not_found(await client.post(f"{sued_url}/notes", json={"text": "x"}, headers=caller))
        not_found(await client.post(f"/api/v1/referrals/{sued_referral}/send", headers=caller))
        not_found(await client.post(f"/api/v1/referrals/{sued_referral}/revoke", headers=caller))
        listed = ok(await client.get("/api/v1/cases", params={"team": SUED}, headers=caller))
        assert listed["total"] == 0
        referrals = ok(await client.get("/api/v1/referrals", params=ALL_PAGES, headers=caller))["items"]
        assert sued_case["case_id"] not in {r["case_id"] for r in referrals}

    # The other team's caseworker, the other way round.
    assert ok(await client.get(sued_url, headers=wagner))["caseworker_id"] == "lotse-m.wagner"
    not_found(await client.get(nord_url, headers=wagner))
    note = ok(await client.post(f"{sued_url}/notes", json={"text": "Called."}, headers=wagner), 201)
    assert note["author"] == "user:lotse-m.wagner"
    revoked = ok(await client.post(f"/api/v1/referrals/{sued_referral}/revoke", headers=wagner))
    assert revoked["status"] == "revoked"

    # The admin sees both.
    assert ok(await client.get(sued_url, headers=admin))["notes"][0]["author"] == "user:lotse-m.wagner"
    assert ok(await client.get(nord_url, headers=admin))["notes"] == []
