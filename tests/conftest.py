"""Shared fixtures: a real Kafka-API broker (Tansu) and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from chassis import identity as internal
from chassis.cloudevents import binary_headers, encode_data
from chassis.embedded_broker import EmbeddedBroker
from contracts import registration as reg
from contracts.base import IntegrationEvent
from scripts.demo_data import registration_body

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
#: Made afresh for each test session, as an operator makes them (deploy/README.md): the gateway's, the referral
#: service's and the courses service's identity key pairs, and strong secrets. The same for the whole session, so
#: that a service restarted in a test still opens what it sealed before.
GATEWAY_IDENTITY_KEY = Ed25519PrivateKey.generate()
REFERRAL_IDENTITY_KEY = Ed25519PrivateKey.generate()
COURSES_IDENTITY_KEY = Ed25519PrivateKey.generate()
IDEMPOTENCY_SECRET = secrets.token_urlsafe(32)
#: What every service's settings need outside development (tests run with environment "test").
SERVICE_SECRETS: dict[str, Any] = {
    "internal_identity_gateway_public_key": internal.encode_public(GATEWAY_IDENTITY_KEY.public_key()),
    "idempotency_secret": IDEMPOTENCY_SECRET,
}
PARTNERS_SECRETS = {"api_key_pepper": secrets.token_urlsafe(32), "webhook_secret_key": secrets.token_urlsafe(32)}
GATEWAY_SECRETS = {
    "internal_identity_signing_key": internal.encode_private(GATEWAY_IDENTITY_KEY),
    "cookie_secret": secrets.token_urlsafe(32),
}


#: Suites that measure time or load the whole machine (the fault suite's restart bound, the production stack, `make
#: run`, broker and webhook outages with their time bounds): `make test` runs them after the others, alone, so that
#: no other test's load shifts what they measure. Everything else runs on several workers (pytest-xdist).
SERIAL_SUITES = ("faults", "production", "e2e", "reliability")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        suite = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if suite in SERIAL_SUITES:
            item.add_marker(pytest.mark.serial)


def ok(reply: httpx.Response, status: int = 200) -> Any:
    """The reply's JSON (None for an empty body) once its status is the one expected."""
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json() if reply.content else None


def problem(reply: httpx.Response, status: int, kind: str) -> None:
    """The reply is an RFC 9457 problem of the given status whose type ends in ``kind``."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["type"].endswith(kind), reply.json()


async def produce_events(
    bootstrap: str, items: Sequence[tuple[str, IntegrationEvent]], *, at: datetime | None = None, source: str = "/tests"
) -> None:
    """Events straight onto their topics as their services publish them: (ce_id, event), stamped ``at`` (now)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ce_id, event in items:
            headers = binary_headers(
                event_id=ce_id,
                event_type=event.event_type,
                source=source,
                subject=event.subject(),
                time=at or datetime.now(UTC),
            )
            await producer.send_and_wait(
                event.topic,
                encode_data(event.model_dump(mode="json")),
                key=event.partition_key().encode(),
                headers=headers,
            )
    finally:
        await producer.stop()


def person_registered(person_id: str, **changes: Any) -> reg.PersonRegistered:
    """Registration's event for a newcomer: a Syrian woman of 27-44 speaking Arabic, a recognised refugee in
    Weststadt (the tests' usual newcomer), with ``changes``."""
    profile: dict[str, Any] = {
        "person_id": person_id,
        "household_id": f"h-{person_id}",
        "age_band": "27-44",
        "gender": "female",
        "nationality": "SY",
        "languages": ["ar"],
        "preferred_language": "ar",
        "residence_status_group": "recognised_refugee",
        "district": "Weststadt",
        "registered_on": "2026-11-03",
    }
    return reg.PersonRegistered(**(profile | changes))


def needs_assessed(person_id: str, **changes: Any) -> reg.NeedsAssessed:
    """Registration's event for the usual newcomer's first needs assessment (German A1, seeking a job, language
    needs only), with ``changes``."""
    assessment: dict[str, Any] = {
        "person_id": person_id,
        "assessment_version": 1,
        "german_level": "A1",
        "need_categories": ["language"],
        "employment_situation": "job_seeking",
        "foreign_qualification_to_recognise": False,
        "childcare_needed": False,
        "age_band": "27-44",
        "gender": "female",
        "residence_status_group": "recognised_refugee",
        "preferred_language": "ar",
    }
    return reg.NeedsAssessed(**(assessment | changes))


def sqlite_url(tmp_path: Path, name: str) -> str:
    """A SQLite database file of the test's own, named for the service it holds."""
    return f"sqlite+aiosqlite:///{tmp_path / name}.db"


#: Identity headers as a service's identity middleware leaves them after verifying a token (teams Nord and Süd).
NORD, SUED = "integration-nord", "integration-sued"
ADMIN = {"X-Role": "admin", "X-Actor": "user:admin"}
LOTSE_NORD = {"X-Role": "caseworker", "X-Team": NORD, "X-Actor": "user:lotse"}
LOTSE_SUED = {"X-Role": "caseworker", "X-Team": SUED, "X-Actor": "user:lotse-m.wagner"}


def signed_by_gateway(identity: internal.Identity, audience: str) -> dict[str, str]:
    """The identity header the gateway sends with a verified caller's call to the service ``audience``."""
    return {internal.HEADER: internal.sign(identity, GATEWAY_IDENTITY_KEY, audience=audience)}


def token_claims(issuer: Any, subject: str, roles: list[str], *, issued_s_ago: int = 0, **more: Any) -> dict[str, Any]:
    """The claims of a ten-minute access token of the gateway's own issuer (its ``app.state.issuer``), issued
    ``issued_s_ago`` seconds ago, with ``more``: what a forger signs with another key, or a test changes one of."""
    issued = int(time.time()) - issued_s_ago
    return {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": subject,
        "iat": issued,
        "exp": issued + 600,
        "realm_access": {"roles": roles},
        **more,
    }


#: The embedded broker holds a joining member for about half the session timeout.
FAST_GROUP_JOIN: dict[str, Any] = {"kafka_session_timeout_ms": 2000, "kafka_heartbeat_interval_ms": 300}
#: Service consumers in tests: a fresh group that starts at the end of each topic, so that a test
#: sees only the events it causes, not the whole session's history on the shared broker.
ISOLATED_CONSUMER: dict[str, Any] = {**FAST_GROUP_JOIN, "kafka_consumer_offset_reset": "latest"}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the session, on a free port."""
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


@pytest.fixture(scope="session")
def openid_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's OpenID provider, shaped like the city's Keycloak realm (tests/oidc_provider.py); each module
    adds its accounts and client."""
    from tests import oidc_provider

    provider = oidc_provider.start(tmp_path_factory.mktemp("openid-provider"))
    try:
        yield provider
    finally:
        provider.stop()


def _postgres_server_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)


async def _postgres_reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
async def postgres_server() -> str | None:
    url = _postgres_server_url()
    if await _postgres_reachable(url):
        return url
    if os.environ.get("CI") or "TEST_POSTGRES_URL" in os.environ:
        pytest.fail(f"PostgreSQL is not reachable at {url}; CI must run the PostgreSQL tests")
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: str | None
) -> AsyncIterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a PostgreSQL database created for it."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    async with fresh_postgres_database(postgres_server) as (url, _name):
        yield url


@asynccontextmanager
async def fresh_postgres_database(server: str) -> AsyncIterator[tuple[str, str]]:
    """A new, empty PostgreSQL database on ``server`` for as long as the block runs: (SQLAlchemy URL, its name)."""
    name = f"itest_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield (
            make_url(server).set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False),
            name,
        )
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # a test may have closed it
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's real lifespan (migrations, relay, consumer) and talk to it over ASGI."""
    async with app.router.lifespan_context(app):
        consumer = getattr(getattr(app.state, "runtime", None), "consumer", None)
        if consumer is not None:
            await asyncio.wait_for(consumer.assigned.wait(), 30)  # events from now on reach it
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            yield client


async def behind_gateway(stack: AsyncExitStack, gateway: FastAPI, apps: Mapping[str, FastAPI]) -> httpx.AsyncClient:
    """Start the services, then the gateway (their lifespans end with ``stack``), the gateway reaching each service
    in-process over ASGI; returns a client of the gateway."""
    for app in apps.values():  # one at a time: Alembic's migration context is process-global
        await stack.enter_async_context(running_app(app))
    client = await stack.enter_async_context(running_app(gateway))
    await gateway.state.client.aclose()
    gateway.state.client = httpx.AsyncClient(
        mounts={f"http://{name}": httpx.ASGITransport(app=app) for name, app in apps.items()}, timeout=30
    )
    gateway.state.api_keys.client = gateway.state.client
    stack.push_async_callback(gateway.state.client.aclose)
    return client


async def consume(
    bootstrap: str, topic: str, *, until: Any, timeout_s: float = 20.0, group_id: str | None = None
) -> list[Any]:
    """Read ``topic`` from the start with a plain aiokafka consumer until ``until(records)`` holds.

    Without a group id the consumer reads every partition and joins no group (faster).
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not until(records):
            if asyncio.get_running_loop().time() > deadline:
                break
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def registration_settings(database_url: str, bootstrap: str, **overrides: Any) -> Any:
    from services.registration.app import RegistrationSettings

    return RegistrationSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        environment="test",
        **SERVICE_SECRETS,
        internal_identity_referral_public_key=internal.encode_public(REFERRAL_IDENTITY_KEY.public_key()),
        internal_identity_courses_public_key=internal.encode_public(COURSES_IDENTITY_KEY.public_key()),
        log_json=False,
        outbox_poll_seconds=0.2,
        **({"kafka_consumer_group": f"registration-{uuid.uuid4().hex[:8]}", **ISOLATED_CONSUMER} | overrides),
    )


@pytest.fixture
async def registration(database_url: str, broker: EmbeddedBroker) -> AsyncIterator[httpx.AsyncClient]:
    """The real registration app on a fresh database and the session's broker; ``client.app`` is the app."""
    from services.registration.app import create_app

    app = create_app(registration_settings(database_url, broker.bootstrap_servers))
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def newcomer(**overrides: Any) -> dict[str, Any]:
    """A valid registration body (the demo data's first newcomer with contact data); names are made unique so
    tests never collide on duplicates."""
    unique = {"given_names": f"Amina {uuid.uuid4().hex[:6]}", "phone": "+49 8191 000000", "email": "amina@example.org"}
    return registration_body(**unique) | overrides


def referral_settings(database_url: str, bootstrap: str, **overrides: Any) -> Any:
    from services.referral.runtime import ReferralSettings

    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "environment": "test",
        **SERVICE_SECRETS,
        "internal_identity_signing_key": internal.encode_private(REFERRAL_IDENTITY_KEY),
        "log_json": False,
        "outbox_poll_seconds": 0.2,
        "kafka_consumer_group": f"referral-{uuid.uuid4().hex[:8]}",
        **ISOLATED_CONSUMER,
        "clock_interval_seconds": 3600,
    }
    values.update(overrides)
    return ReferralSettings(**values)


class ManualClock:
    """A clock the test moves: real time plus an offset the test sets, or frozen at ``start``."""

    def __init__(self, start: Any = None) -> None:
        from datetime import timedelta

        self.start = start
        self.offset = timedelta()

    def __call__(self) -> Any:
        from datetime import UTC, datetime

        return (self.start or datetime.now(UTC)) + self.offset

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.offset += timedelta(**delta)


async def eventually(check: Any, timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll an async ``check`` until it returns something truthy (events take a moment to flow)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s}s; last result: {result!r}")
        await asyncio.sleep(interval_s)


@pytest.fixture
async def platform(
    database_url: str, broker: Any, tmp_path: Any, platform_clock: ManualClock
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Registration on the parametrized database, referral on its own SQLite database (its own DB, as
    designed) with ``platform_clock`` as its clock, and its demo roster and directory to route to.
    ``registration.app`` and ``referral.app`` are the apps."""
    from services.referral.app import create_app as create_referral
    from services.registration.app import create_app as create_registration

    registration_app = create_registration(registration_settings(database_url, broker.bootstrap_servers))
    referral_app = create_referral(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", broker.bootstrap_servers, demo_data=True),
        clock=platform_clock,
    )
    async with running_app(registration_app) as registration, running_app(referral_app) as referral:
        registration.app = registration_app  # type: ignore[attr-defined]
        referral.app = referral_app  # type: ignore[attr-defined]
        yield registration, referral


REFERRAL_NEEDS = {
    "german_level": "A1",
    "schooling": "secondary",
    "vocational_qualification": "Nursing diploma (Syria)",
    "recognise_foreign_qualification": True,
    "employment_situation": "job_seeking",
    "childcare_needed": True,
    "children_ages": [3, 6],
}


async def register_with_needs(registration: httpx.AsyncClient, consents: list[dict[str, str]], **person: Any) -> str:
    """Register a woman (by default) with the seed's example needs: German A1, seeking work, a foreign
    nursing diploma, two children without childcare; give the consents, then assess the needs."""
    reply = await registration.post("/api/v1/registrations", json=newcomer(**({"gender": "female"} | person)))
    assert reply.status_code == 201, reply.text
    person_id: str = reply.json()["person_id"]
    for consent in consents:
        assert (await registration.post(f"/api/v1/persons/{person_id}/consents", json=consent)).status_code == 201
    assert (
        await registration.post(f"/api/v1/persons/{person_id}/needs-assessments", json=REFERRAL_NEEDS)
    ).status_code == 201
    return person_id


async def case_with_referrals(referral: httpx.AsyncClient, person: str, count: int) -> dict[str, Any] | None:
    cases = (await referral.get("/api/v1/cases", params={"person_id": person})).json()["items"]
    if not cases:
        return None
    case: dict[str, Any] = (await referral.get(f"/api/v1/cases/{cases[0]['case_id']}")).json()
    return case if len(case["referrals"]) >= count else None


@pytest.fixture
def platform_clock() -> ManualClock:
    """The referral service's clock in ``platform``: real time, moved on only by the test."""
    return ManualClock()


def courses_settings(database_url: str, bootstrap: str, **overrides: Any) -> Any:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from services.courses.runtime import CoursesSettings

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "environment": "test",
        **SERVICE_SECRETS,
        "pass_signing_key": base64.b64encode(raw).decode(),
        "internal_identity_signing_key": internal.encode_private(COURSES_IDENTITY_KEY),
        "log_json": False,
        "outbox_poll_seconds": 0.2,
        "kafka_consumer_group": f"courses-{uuid.uuid4().hex[:8]}",
        **ISOLATED_CONSUMER,
        "offer_check_interval_seconds": 3600,
    }
    values.update(overrides)
    return CoursesSettings(**values)


def course_body(capacity: int, **overrides: Any) -> dict[str, Any]:
    """A course starting next month: ten weekly sessions on Monday morning."""
    from datetime import UTC, datetime, timedelta

    first = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=30)
    body: dict[str, Any] = {
        "title": "Integrationskurs A1 bis B1",
        "category": "integration_course",
        "target_level": "B1",
        "funding": "bamf",
        "capacity": capacity,
        "sessions": [
            {
                "starts_at": (first + timedelta(weeks=i)).isoformat(),
                "ends_at": (first + timedelta(weeks=i, hours=3)).isoformat(),
            }
            for i in range(10)
        ],
    }
    body.update(overrides)
    return body


def partners_settings(database_url: str, bootstrap: str, **overrides: Any) -> Any:
    from services.partners.app import PartnersSettings

    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "environment": "test",
        **SERVICE_SECRETS,
        **PARTNERS_SECRETS,
        "log_json": False,
        "outbox_poll_seconds": 0.2,
        "webhook_poll_seconds": 0.2,
        # A fresh group per test: tests do not share offsets.
        "kafka_consumer_group": f"partners-{uuid.uuid4().hex[:8]}",
        **ISOLATED_CONSUMER,
    }
    values.update(overrides)
    return PartnersSettings(**values)


def gateway_settings(tmp_path: Path, **overrides: Any) -> Any:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from gateway.app import GatewaySettings

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    values: dict[str, Any] = {
        "environment": "test",
        **GATEWAY_SECRETS,
        "local_signing_key": base64.b64encode(raw).decode(),
        "local_users_file": tmp_path / "gateway-users.json",
        "log_json": False,
        "registration_url": "http://registration",
        "referral_url": "http://referral",
        "courses_url": "http://courses",
        "partners_url": "http://partners",
        "monitoring_url": "http://monitoring",
    }
    values.update(overrides)
    return GatewaySettings(**values)
