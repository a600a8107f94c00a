"""Limits on guessing at the gateway (gateway/throttle.py): sign-in per client address, per user name and for all
names, a bounded password hashing, and failed bearer tokens and API keys per client address.

The real gateway over ASGI with its real limiter, in memory and in Redis; the limiter's clock is moved instead of
waiting for a window to pass. The test client stands for the ingress: the gateway trusts 127.0.0.1 as a proxy,
and X-Forwarded-For names the client address of each request."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import pytest
import redis.asyncio as redis
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.app import create_app
from gateway.ratelimit import MemoryLimiter, RedisLimiter
from services.partners.app import create_app as create_partners
from services.registration.app import create_app as create_registration
from tests.conftest import (
    gateway_settings,
    partners_settings,
    registration_settings,
    running_app,
    sqlite_url,
    token_claims,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Small budgets, so that a test reaches them quickly.
BUDGETS: dict[str, Any] = {
    "sign_in_failures_per_address": 5,
    "sign_in_failures_per_username": 5,
    "sign_in_failures_per_minute": 40,
    "auth_failures_per_address": 5,
    "trusted_proxies": ["127.0.0.1"],
}
HOME = "198.51.100.10"  # where the admin signs in every day


class Clock:
    """The limiter's clock: one second into a one-minute window, moved by the test."""

    def __init__(self) -> None:
        self.now = (int(time.time()) // 60 + 1) * 60 + 1.0

    def __call__(self) -> float:
        return self.now

    def next_window(self) -> None:
        self.now += 60


class Gateway:
    def __init__(self, app: Any, client: httpx.AsyncClient, clock: Clock) -> None:
        self.app = app
        self.client = client
        self.clock = clock

    def password(self, username: str) -> str:
        return str(self.app.state.demo_credentials[username])

    async def sign_in(self, username: str, password: str, address: str, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/auth/token",
            json={"username": username, "password": password},
            headers={"X-Forwarded-For": address, **headers},
        )

    async def get(self, path: str, address: str, **headers: str) -> httpx.Response:
        return await self.client.get(path, headers={"X-Forwarded-For": address, **headers})


@pytest.fixture(scope="session")
async def redis_reachable() -> bool:
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError):
        if os.environ.get("CI") or "TEST_REDIS_URL" in os.environ:
            pytest.fail(f"Redis is not reachable at {REDIS_URL}; CI must run the Redis tests")
        return False
    finally:
        await client.aclose()
    return True


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, redis_reachable: bool) -> str:
    if request.param == "redis" and not redis_reachable:
        pytest.skip(f"no Redis at {REDIS_URL} (set TEST_REDIS_URL); CI runs these")
    return str(request.param)


@asynccontextmanager
async def open_gateway(
    tmp_path: Path, limiter: str, *, services: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Gateway]:
    """The gateway with demo accounts and the small budgets; ``services`` are ASGI apps by host name."""
    values = {"demo_data": True, **BUDGETS, **overrides}
    if limiter == "redis":
        values["REDIS_URL"] = REDIS_URL
    app = create_app(gateway_settings(tmp_path, **values))
    prefix = f"test-{uuid.uuid4().hex}:"
    async with running_app(app) as client:
        clock = Clock()
        app.state.limiter.clock = clock
        if limiter == "redis":
            app.state.limiter.prefix = prefix  # this test's keys only, on a Redis others use too
        if services:
            await app.state.client.aclose()
            app.state.client = httpx.AsyncClient(
                mounts={f"http://{host}": httpx.ASGITransport(app=a) for host, a in services.items()}
            )
            app.state.api_keys.client = app.state.client
        try:
            yield Gateway(app, client, clock)
        finally:
            if limiter == "redis":
                keys = [key async for key in app.state.limiter.client.scan_iter(f"{prefix}*")]
                if keys:
                    await app.state.limiter.client.delete(*keys)
            if services:
                await app.state.client.aclose()


def assert_throttled(reply: httpx.Response) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/rate-limited")
    assert 1 <= int(reply.headers["retry-after"]) <= 60


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting its verifications."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


# --- sign-in --------------------------------------------------------------------------------------------------------


async def test_spraying_user_names_from_one_address_ends_at_its_budget(tmp_path: Path, limiter: str) -> None:
    async with open_gateway(tmp_path, limiter) as gw:
        hasher = CountingHasher()
        gw.app.state.issuer.hasher = hasher
        attacker = "203.0.113.66"
        # What the client itself puts in X-Forwarded-For stands left of what the proxy appends: never believed.
        spoofed = [f"192.0.2.{i}, {attacker}" for i in range(10)]
        names = ["admin", "registrar", "lotse", "vhs", "caritas", "statistik", "jobcenter", "nobody", "root", "x"]
        statuses = [(await gw.sign_in(name, "Sommer2024!", spoofed[i])).status_code for i, name in enumerate(names)]
        assert statuses == [401] * 5 + [429] * 5
        assert hasher.verified == 5, "a refused attempt costs no password hashing"
        right_password = await gw.sign_in("registrar", gw.password("registrar"), attacker)
        assert_throttled(right_password)  # the address's budget holds for every name
        # Elsewhere nothing changed; the next minute the address may try again.
        assert (await gw.sign_in("registrar", gw.password("registrar"), "198.51.100.20")).status_code == 200
        gw.clock.next_window()
        assert (await gw.sign_in("admin", "Herbst2024!", attacker)).status_code == 401


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path: Path) -> None:
    async with open_gateway(tmp_path, "memory", trusted_proxies=[]) as gw:
        statuses = [(await gw.sign_in(f"user{i}", "wrong", f"192.0.2.{i}")).status_code for i in range(6)]
        assert statuses == [401] * 5 + [429], "every attempt is the socket peer's, whatever the header says"


async def test_a_flood_on_one_name_does_not_lock_the_user_out_of_their_own_address(
    tmp_path: Path, limiter: str
) -> None:
    async with open_gateway(tmp_path, limiter) as gw:
        password = gw.password("admin")
        assert (await gw.sign_in("admin", password, HOME)).status_code == 200
        for minute in range(2):  # the flood goes on, minute after minute, from ever new addresses
            floods = [
                (await gw.sign_in("admin", "Passwort1", f"203.0.113.{minute * 10 + i}")).status_code for i in range(8)
            ]
            assert floods == [401] * 5 + [429] * 3, "the name's budget ends the guessing"
            assert_throttled(await gw.sign_in("admin", password, "192.0.2.77"))  # not from an unknown address...
            assert (await gw.sign_in("admin", password, HOME)).status_code == 200  # ...but from the admin's own
            gw.clock.next_window()
        # The flood is over: the unknown address signs in, and is known from now on.
        assert (await gw.sign_in("admin", password, "192.0.2.77")).status_code == 200


async def test_spraying_from_many_addresses_ends_at_the_global_budget(tmp_path: Path, limiter: str) -> None:
    async with open_gateway(tmp_path, limiter, sign_in_failures_per_minute=12) as gw:
        assert (await gw.sign_in("admin", gw.password("admin"), HOME)).status_code == 200
        # Two guesses per address and per name: neither budget is reached, all of them together is.
        statuses = [(await gw.sign_in(f"user{i // 2}", "wrong", f"203.0.113.{i // 2}")).status_code for i in range(16)]
        assert statuses == [401] * 12 + [429] * 4
        assert_throttled(await gw.sign_in("registrar", gw.password("registrar"), "198.51.100.30"))
        assert (await gw.sign_in("admin", gw.password("admin"), HOME)).status_code == 200, "known pairs go on"
        gw.clock.next_window()
        assert (await gw.sign_in("registrar", gw.password("registrar"), "198.51.100.30")).status_code == 200


async def test_the_web_ui_form_shares_the_sign_in_budget(tmp_path: Path, limiter: str) -> None:
    async with open_gateway(tmp_path, limiter) as gw:
        browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="https://testserver")
        async with browser:
            attacker = {"X-Forwarded-For": "203.0.113.5"}
            await browser.get("/ui/sign-in", headers=attacker)  # any page hands out the CSRF cookie

            async def form_sign_in(username: str, password: str, address: str) -> httpx.Response:
                form = {
                    "username": username,
                    "password": password,
                    "next": "/ui/",
                    "csrf_token": browser.cookies["lip_csrf"],
                }
                return await browser.post("/ui/sign-in?lang=en", data=form, headers={"X-Forwarded-For": address})

            assert [(await form_sign_in(f"user{i}", "wrong", "203.0.113.5")).status_code for i in range(3)] == [401] * 3
            assert [(await gw.sign_in(f"api{i}", "wrong", "203.0.113.5")).status_code for i in range(2)] == [401] * 2
            page = await form_sign_in("registrar", gw.password("registrar"), "203.0.113.5")
            assert page.status_code == 429 and "Too many attempts" in page.text
            assert 1 <= int(page.headers["retry-after"]) <= 60
            assert "lip_session" not in page.headers.get("set-cookie", "")
            signed_in = await form_sign_in("registrar", gw.password("registrar"), "198.51.100.40")
            assert signed_in.status_code == 303 and "lip_session" in signed_in.headers["set-cookie"]


class GatedHasher(PasswordHasher):
    """The real argon2 hasher, holding each verification until the test opens the gate, and recording how many
    run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.running = 0
        self.most = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.gate.wait(30), "the test never opened the gate"
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


async def test_concurrent_sign_ins_wait_for_a_bounded_hashing_or_get_503(tmp_path: Path, limiter: str) -> None:
    async with open_gateway(
        tmp_path, limiter, password_hashing_concurrency=2, password_hashing_queue=3, sign_in_failures_per_username=100
    ) as gw:
        hasher = GatedHasher()
        issuer = gw.app.state.issuer
        issuer.hasher = hasher
        password = gw.password("lotse")
        attempts = [asyncio.create_task(gw.sign_in("lotse", password, f"198.51.100.{50 + i}")) for i in range(8)]
        # Two hash at once, three wait for them; the other three are told at once to come back.
        await until(
            lambda: hasher.running == 2 and issuer.hashing.waiting == 3 and sum(a.done() for a in attempts) == 3
        )
        busy = [a.result() for a in attempts if a.done()]
        for reply in busy:
            assert reply.status_code == 503 and reply.headers["retry-after"] == "1", reply.text
            assert reply.json()["type"].endswith("/sign-in-busy")
        hasher.gate.set()
        replies = await asyncio.gather(*attempts)
        assert sorted(r.status_code for r in replies) == [200] * 5 + [503] * 3
        assert hasher.most == 2, "never more hashing at once than the bound"


# --- failed bearer tokens and API keys ----------------------------------------------------------------------------


async def test_random_bearer_tokens_from_one_address_end_at_its_budget(
    tmp_path: Path, limiter: str, broker: Any
) -> None:
    registration = create_registration(
        registration_settings(sqlite_url(tmp_path, "registration"), broker.bootstrap_servers)
    )
    async with (
        running_app(registration),
        open_gateway(tmp_path, limiter, services={"registration": registration}) as gw,
    ):
        issuer = gw.app.state.issuer
        attacker = "203.0.113.99"
        token = (await gw.sign_in("registrar", gw.password("registrar"), attacker)).json()["access_token"]
        session = {"Authorization": f"Bearer {token}"}
        assert (await gw.get("/api/v1/persons", attacker, **session)).status_code == 200
        claims = token_claims(issuer, "admin", ["admin"])
        forged = [
            jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": issuer.kid})
            for _ in range(3)
        ] + [secrets.token_urlsafe(40) for _ in range(5)]
        statuses = [
            (await gw.get("/api/v1/persons", attacker, Authorization=f"Bearer {t}")).status_code for t in forged
        ]
        assert statuses == [401] * 5 + [429] * 3
        assert_throttled(await gw.get("/api/v1/persons", attacker, Authorization=f"Bearer {forged[0]}"))
        # A session verified a moment ago costs no check and goes on; other addresses are not concerned.
        assert (await gw.get("/api/v1/persons", attacker, **session)).status_code == 200
        assert (
            await gw.get("/api/v1/persons", "198.51.100.60", Authorization=f"Bearer {forged[1]}")
        ).status_code == 401
        gw.clock.next_window()
        assert (await gw.get("/api/v1/persons", attacker, Authorization=f"Bearer {forged[2]}")).status_code == 401


async def test_expired_sessions_are_not_counted_as_guesses(tmp_path: Path) -> None:
    async with open_gateway(tmp_path, "memory") as gw:
        issuer = gw.app.state.issuer
        registrar = issuer.users["registrar"]["id"]
        claims = token_claims(issuer, registrar, ["registrar"], issued_s_ago=4000, preferred_username="registrar")
        expired = jwt.encode(claims, issuer.key, algorithm="EdDSA", headers={"kid": issuer.kid})
        statuses = [
            (await gw.get("/api/v1/persons", "198.51.100.70", Authorization=f"Bearer {expired}")).status_code
            for _ in range(8)
        ]
        assert statuses == [401] * 8, "signed by the issuer: a session that ended, not a guess"


class CountingApp:
    """An ASGI app in front of another, counting the requests to one path."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            self.calls += 1
        await self.app(scope, receive, send)


def random_key() -> str:
    """Shaped like a partner's API key (services/partners/domain.py), known to nobody."""
    return f"lip_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


async def test_random_api_keys_from_one_address_do_not_reach_the_partners_service_past_the_budget(
    tmp_path: Path, limiter: str, broker: Any
) -> None:
    partners_app = create_partners(
        partners_settings(sqlite_url(tmp_path, "partners"), broker.bootstrap_servers, demo_data=True)
    )
    partners = CountingApp(partners_app, "/internal/api-keys/verify")
    async with running_app(partners_app), open_gateway(tmp_path, limiter, services={"partners": partners}) as gw:
        signed_in = await gw.sign_in("caritas", gw.password("caritas"), HOME)
        caritas = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        created = await gw.client.post(
            "/api/v1/partners/caritas-landsberg/api-keys",
            headers=caritas,
            json={"name": "case system", "scopes": ["capacity:write"]},
        )
        assert created.status_code == 201, created.text
        valid = {"Authorization": f"Bearer {created.json()['key']}"}
        capacity = "/api/v1/partners/caritas-landsberg/services/asylum_social_counselling/capacity"

        attacker = {"X-Forwarded-For": "203.0.113.120"}

        async def guess(key: str) -> int:
            reply = await gw.client.put(capacity, json={"free_places": 1}, headers={**attacker, "X-API-Key": key})
            return reply.status_code

        statuses = [await guess(random_key()) for _ in range(20)]
        assert statuses == [401] * 5 + [429] * 15
        assert partners.calls == 5, "past the budget, no key reaches the partners service"
        assert await guess("lip_x") == 429, "nor does a malformed one get an answer of its own"

        # A valid key from elsewhere works, asking once; a wrong key asked about again and again is asked about once,
        # even by requests at the same moment.
        assert (
            await gw.client.put(capacity, json={"free_places": 3}, headers={**valid, "X-Forwarded-For": HOME})
        ).status_code == 200
        assert partners.calls == 6
        wrong = {"X-API-Key": random_key(), "X-Forwarded-For": "198.51.100.80"}
        replies = await asyncio.gather(
            *(gw.client.put(capacity, json={"free_places": 1}, headers=wrong) for _ in range(3))
        )
        assert [r.status_code for r in replies] == [401] * 3 and partners.calls == 7
        assert (await gw.client.put(capacity, json={"free_places": 1}, headers=wrong)).status_code == 401
        assert partners.calls == 7, "a refusal is kept a while"


# --- the limiter's own promises, in Redis too -------------------------------------------------------------------


async def test_forgiving_gives_no_credit_and_remembered_keys_expire(limiter: str) -> None:
    clock = Clock()
    client = redis.from_url(REDIS_URL) if limiter == "redis" else None
    prefix = f"test-{uuid.uuid4().hex}:"
    store = MemoryLimiter(clock=clock) if client is None else RedisLimiter(client, clock=clock, prefix=prefix)
    try:
        await store.forgive("k")
        assert [await store.hit("k", 1), await store.hit("k", 1)] == [None, 59], "no credit from forgiving"
        await store.forgive("k")
        assert await store.hit("k", 1) == 59, "one taken back, one counted again"
        await store.remember("pair", 1)
        assert await store.recalls("pair") and not await store.recalls("other")
        if client is None:
            clock.now += 2
        else:
            await asyncio.sleep(1.1)  # Redis's own expiry, in real time: the one wait this test needs
        assert not await store.recalls("pair")
        clock.next_window()
        assert await store.hit("k", 1) is None, "a new window starts at zero"
    finally:
        if client is not None:
            keys = [key async for key in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
