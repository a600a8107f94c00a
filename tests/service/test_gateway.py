"""The gateway: who may call what, tokens and API keys, identity forwarded signed, rate limits,
clear errors when a service is down. The services behind it are the real apps, over ASGI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis.embedded_broker import free_port
from gateway.app import create_app
from gateway.auth import main as auth_main
from services.partners.app import create_app as create_partners
from services.registration.app import create_app as create_registration
from tests.conftest import (
    gateway_settings,
    newcomer,
    partners_settings,
    registration_settings,
    running_app,
    token_claims,
)
from tests.scrape import parse, value


class Platform:
    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    async def token(self, username: str) -> dict[str, str]:
        password = self.app.state.demo_credentials[username]
        reply = await self.client.post("/auth/token", json={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}


@pytest.fixture
async def gateway(database_url: str, broker: Any, tmp_path: Any) -> AsyncIterator[Platform]:
    """The gateway in front of the real registration and partners apps."""
    registration_app = create_registration(registration_settings(database_url, broker.bootstrap_servers))
    partners_app = create_partners(
        partners_settings(f"sqlite+aiosqlite:///{tmp_path / 'partners.db'}", broker.bootstrap_servers, demo_data=True)
    )
    app = create_app(gateway_settings(tmp_path, demo_data=True, rate_limit_per_minute_user=40))
    async with running_app(registration_app), running_app(partners_app), running_app(app) as client:
        await app.state.client.aclose()
        app.state.client = httpx.AsyncClient(
            mounts={
                "http://registration": httpx.ASGITransport(app=registration_app),
                "http://partners": httpx.ASGITransport(app=partners_app),
            }
        )
        app.state.api_keys.client = app.state.client
        yield Platform(client, app)
        await app.state.client.aclose()


async def test_roles_reach_exactly_their_routes(gateway: Platform) -> None:
    c = gateway.client
    anonymous = await c.post("/api/v1/registrations", json=newcomer())
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert (await c.get("/api/v1/info-packs")).status_code == 200, "public without sign-in"
    assert (await c.get("/api/v1/partners")).status_code == 200, "the public directory"

    registrar, analyst, partner = (
        await gateway.token("registrar"),
        await gateway.token("statistik"),
        await gateway.token("caritas"),
    )
    created = await c.post("/api/v1/registrations", json=newcomer(), headers=registrar)
    assert created.status_code == 201, created.text
    person = created.json()["person_id"]
    assert (await c.get(f"/api/v1/persons/{person}", headers=registrar)).status_code == 200
    for caller in (analyst, partner):  # an analyst never sees a person; nor does a partner here
        denied = await c.get(f"/api/v1/persons/{person}", headers=caller)
        assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    assert (await c.post("/api/v1/registrations", json=newcomer(), headers=analyst)).status_code == 403

    # The service saw who acted, from the signed identity, not from a header the client made up.
    spoofed = {**registrar, "X-Actor": "someone-else", "X-Partner-Id": "vhs-landsberg"}
    assert (await c.get(f"/api/v1/persons/{person}", headers=spoofed)).status_code == 200
    # The access log is the privacy officers' (and admins'), not the registrars' (issue 12).
    assert (await c.get(f"/api/v1/persons/{person}/access-log", headers=registrar)).status_code == 403
    log = (await c.get(f"/api/v1/persons/{person}/access-log", headers=await gateway.token("datenschutz"))).json()
    # Reading the log is logged too (as the privacy officer's); every other read was the registrar's.
    assert {entry["actor"] for entry in log if entry["action"] != "read_access_log"} == {"user:registrar"}
    assert [(e["action"], e["actor"]) for e in log if e["action"] == "read_access_log"] == [
        ("read_access_log", "user:datenschutz")
    ]


@pytest.mark.parametrize("forgery", ["expired", "foreign_key", "alg_none", "wrong_issuer", "wrong_audience", "garbage"])
async def test_forged_and_stale_tokens_are_refused(gateway: Platform, forgery: str) -> None:
    issuer = gateway.app.state.issuer
    claims = token_claims(issuer, "admin", ["admin"], issued_s_ago=4000 if forgery == "expired" else 0)
    key, headers = issuer.key, {"kid": issuer.kid}
    if forgery == "foreign_key":
        key = Ed25519PrivateKey.generate()
    elif forgery == "wrong_issuer":
        claims["iss"] = "https://evil.example/realms/landsberg"
    elif forgery == "wrong_audience":
        claims["aud"] = "another-client"
    if forgery == "alg_none":
        token = jwt.encode(claims, "", algorithm="none", headers=headers)
    elif forgery == "garbage":
        token = "not.a.token"
    else:
        token = jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
    reply = await gateway.client.get("/api/v1/persons", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401, reply.text


async def test_partner_api_keys_work_and_a_revoked_key_stops_within_five_seconds(gateway: Platform) -> None:
    c = gateway.client
    caritas = await gateway.token("caritas")
    created = await c.post(
        "/api/v1/partners/caritas-landsberg/api-keys",
        headers=caritas,
        json={"name": "case system", "scopes": ["capacity:write"]},
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    capacity = "/api/v1/partners/{}/services/{}/capacity"
    own = capacity.format("caritas-landsberg", "asylum_social_counselling")
    assert (await c.put(own, json={"free_places": 20}, headers=key)).status_code == 200
    other = await c.put(capacity.format("vhs-landsberg", "integration_course"), json={"free_places": 0}, headers=key)
    assert other.status_code == 403, "a key acts for its own partner only"
    # A key does what its scopes say, and managing keys takes a signed-in person.
    unscoped = await c.get("/api/v1/partners/caritas-landsberg/webhooks", headers=key)
    assert unscoped.status_code == 403 and "scopes" in unscoped.json()["detail"]
    assert (await c.get("/api/v1/partners/caritas-landsberg/api-keys", headers=key)).status_code == 403
    hooks = await c.post(
        "/api/v1/partners/caritas-landsberg/api-keys",
        headers=caritas,
        json={"name": "webhook admin", "scopes": ["webhooks:manage"]},
    )
    hooks_key = {"Authorization": f"Bearer {hooks.json()['key']}"}
    assert (await c.get("/api/v1/partners/caritas-landsberg/webhooks", headers=hooks_key)).status_code == 200
    assert (await c.put(own, json={"free_places": 19}, headers=hooks_key)).status_code == 403

    revoked = await c.delete(f"/api/v1/partners/caritas-landsberg/api-keys/{created.json()['key_id']}", headers=caritas)
    assert revoked.status_code == 204
    gateway.app.state.api_keys.ttl = 5.0
    started = time.monotonic()
    while (await c.put(own, json={"free_places": 18}, headers=key)).status_code != 401:
        assert time.monotonic() - started < 5.5, "a revoked key must stop within 5 seconds"
        await asyncio.sleep(0.25)
    assert (
        await c.get("/api/v1/partners/caritas-landsberg/api-keys", headers={"X-API-Key": "lip_nonsense"})
    ).status_code == 401


async def test_past_the_limit_the_answer_is_429_with_retry_after(gateway: Platform) -> None:
    registrar = await gateway.token("registrar")
    statuses = [(await gateway.client.get("/api/v1/persons", headers=registrar)).status_code for _ in range(45)]
    assert statuses[:40] == [200] * 40
    limited = await gateway.client.get("/api/v1/persons", headers=registrar)
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 60


async def test_one_openapi_for_the_public_api(gateway: Platform) -> None:
    spec = (await gateway.client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/registrations" in spec["paths"] and "/api/v1/partners" in spec["paths"]
    assert not any(p.startswith("/internal") for p in spec["paths"])
    header_params = {
        p["name"].lower()
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p["in"] == "header"
    }
    assert "idempotency-key" in header_params and not header_params & {"x-actor", "x-partner-id", "x-role"}

    # The docs page: every operation of the document, with who may call it, readable without script.
    docs = await gateway.client.get("/api/v1/docs")
    assert docs.status_code == 307 and docs.headers["location"] == "/ui/api"
    page = await gateway.client.get("/ui/api?lang=en")
    assert page.status_code == 200 and "<script" not in page.text
    operations = sum(
        1 for item in spec["paths"].values() for method in item if method in ("get", "post", "put", "patch", "delete")
    )
    assert page.text.count('<article class="card" aria-labelledby="op-') == operations
    registering = page.text.split('id="op-post-api-v1-registrations"')[1].split("</article>")[0]
    assert "Who may: admin, registrar" in registering and 'href="#schema-RegistrationRegistrationCreate"' in registering
    assert 'id="schema-RegistrationRegistrationCreate"' in page.text
    assert "X-Actor" not in page.text, "headers only the gateway sets are not part of the public API"
    catalogue = page.text.split('id="op-get-api-v1-partners"')[1].split("</article>")[0]
    assert "Who may: public" in catalogue


async def test_without_demo_data_only_an_operators_accounts_sign_in(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = gateway_settings(tmp_path)
    app = create_app(settings)
    async with running_app(app) as client:
        assert app.state.issuer.accounts() == [] and app.state.demo_credentials == {}, "no demo accounts"
        refused = await client.post("/auth/token", json={"username": "admin", "password": "admin"})
        assert refused.status_code == 401
    assert list(tmp_path.iterdir()) == [], "no users file, no demo passwords beside it"

    # The first admin, as the README says: made with the gateway stopped, read when it starts.
    assert (
        auth_main(["create-user", "amt.admin", "--role", "admin", "--users-file", str(settings.local_users_file)]) == 0
    )
    password = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
    app = create_app(settings)
    async with running_app(app) as client:
        signed_in = await client.post("/auth/token", json={"username": "amt.admin", "password": password})
        assert signed_in.status_code == 200, signed_in.text
        assert [a["username"] for a in app.state.issuer.accounts()] == ["amt.admin"]


async def test_a_service_that_is_down_gives_503_problem_details_at_once(tmp_path: Any) -> None:
    app = create_app(gateway_settings(tmp_path, registration_url=f"http://127.0.0.1:{free_port()}"))
    async with running_app(app) as client:
        reply = await client.get("/api/v1/info-packs")
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/upstream-unavailable") and reply.headers["retry-after"] == "5"


async def test_ready_with_upstreams_away_and_says_which(gateway: Platform) -> None:
    """Services away (referral, courses, monitoring are not running here) do not take the gateway out of its
    Service: /readyz is 200 and its body names each upstream's state."""
    reply = await gateway.client.get("/readyz")
    assert reply.status_code == 200, reply.text
    upstreams = reply.json()["checks"]["upstreams"]
    assert set(upstreams) == {"registration", "referral", "courses", "partners", "monitoring"}
    assert upstreams["registration"] == upstreams["partners"] == "ok"
    assert upstreams["referral"] == upstreams["courses"] == upstreams["monitoring"] == "unavailable"
    # The same in the gateway's metrics, one series per upstream.
    series = parse((await gateway.client.get("/metrics")).text)
    for name, state in upstreams.items():
        assert value(series, "dependency_up", service="gateway", dependency=name) == (state == "ok"), name


async def test_unknown_resource_is_404_and_oversized_bodies_413(tmp_path: Any) -> None:
    app = create_app(gateway_settings(tmp_path))
    async with running_app(app) as client:
        assert (await client.get("/api/v1/nothing-here")).json()["detail"] == "No API resource '/api/v1/nothing-here'."
        big = await client.post(
            "/api/v1/registrations", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
