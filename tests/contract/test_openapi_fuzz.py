"""The public API as a third-party client sees it: Schemathesis reads each service's OpenAPI and fuzzes every
operation over real HTTP, with data that fits the document and data that does not.

Each service runs its real lifespan (migrations, relay, consumer) on SQLite and the session's broker, served
by uvicorn on a loopback port. Calls carry the identity headers the gateway would set, with a role the
gateway's policy lets through to that operation, so that they reach the handlers. Every answer must be no
server error, carry a documented content type, and match the documented schema of its status (every 4xx is
documented as Problem Details, so error bodies are checked too).

Ids made up by the fuzzer mostly meet 404s; so a few real objects are made first through the API, and each
operation whose path names only such objects is fuzzed once more with their ids (reads first, deletes last).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from chassis.embedded_broker import EmbeddedBroker, free_port
from gateway import policy
from gateway.app import create_app as create_gateway
from services.courses.app import create_app as create_courses
from services.monitoring.app import create_app as create_monitoring
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    course_body,
    courses_settings,
    gateway_settings,
    newcomer,
    partners_settings,
    referral_settings,
    registration_settings,
    running_app,
)
from tests.service.test_monitoring_api import monitoring_settings

#: Examples per operation and generation mode: enough to reach each schema's edges, few enough for CI.
EXAMPLES = 20
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
#: Tried in this order; the first role the policy lets through is the caller's (admin last: it is the
#: exception to most object-level checks).
ROLES = ("registrar", "caseworker", "course_admin", "partner", "analyst", "privacy_officer", "admin")
PARTNER = "caritas-landsberg"
PROVIDER = "vhs-landsberg"
PARTNER_UPDATED = "de.landsberg.integration.partners.partner_updated.v1"
TEAM = "integration-nord"
#: The service is stricter than the gateway's role policy here: a rebuild of the read model is the admin's. A
#: caseworker reaches a person only through a case of the team, which the registration service alone (no referral
#: here) never learns of: the person's needs and access log are fuzzed as the roles that reach everyone.
ROLE_OVERRIDES = {
    ("POST", "/api/v1/monitoring/rebuild"): "admin",
    ("GET", "/api/v1/persons/{person_id}/needs-assessments"): "privacy_officer",
    ("POST", "/api/v1/persons/{person_id}/needs-assessments"): "admin",
    ("GET", "/api/v1/persons/{person_id}/access-log"): "privacy_officer",
    # A learner's records are for the caseworkers of their case and the course admins of their provider; the
    # seeded learner is enrolled with the course admin's provider (no case reaches courses without referral).
    **{
        (method, f"/api/v1/learners/{{person_id}}/{rest}"): "course_admin"
        for method, rest in (("GET", "enrolments"), ("GET", "education-pass/entries"), ("POST", "education-pass"))
    },
}
#: Known objects are fuzzed reads first, then writes, then what ends them (a cancelled course takes no
#: enrolment, a deleted object is a 404 after).
ENDINGS = re.compile(r"/(cancel|withdrawal|move-away|revoke)$")


def order(method: str, path: str) -> int:
    return 0 if method == "GET" else 3 if method == "DELETE" else 2 if ENDINGS.search(path) else 1


#: (the service's client, and the clients of the services it calls by name) -> the ids of the objects made.
Seed = Callable[..., Awaitable[dict[str, str]]]


def role_for(method: str, path: str) -> str | None:
    """A role the gateway's policy lets through to this operation; None where it is public."""
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    if policy.decide(method, concrete, None) is True:
        return None
    return ROLE_OVERRIDES.get((method, path)) or next(
        r for r in ROLES if policy.decide(method, concrete, frozenset({r})) is True
    )


def caller(method: str, path: str) -> dict[str, str]:
    """The identity headers the gateway would forward to the service for that caller (none: anonymous)."""
    role = role_for(method, path)
    if role is None:
        return {}
    headers = {"X-Actor": "user:fuzzer", "X-Role": role}
    if role == "partner":
        headers["X-Partner-Id"] = PARTNER
    if role == "course_admin":  # the course provider, whose courses the seeds make
        headers["X-Partner-Id"] = PROVIDER
    if role == "caseworker":
        headers["X-Team"] = TEAM
    return headers


def created(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


# --- real objects to fuzz, made through each service's API ------------------------------------


async def registration_objects(client: httpx.AsyncClient) -> dict[str, str]:
    registrar = caller("POST", "/api/v1/registrations")
    person = created(await client.post("/api/v1/registrations", json=newcomer(), headers=registrar))["person_id"]
    consent = created(
        await client.post(
            f"/api/v1/persons/{person}/consents",
            json={"partner_id": PARTNER, "purpose": "counselling"},
            headers=registrar,
        )
    )["consent_id"]
    return {"person_id": person, "consent_id": consent, "lang": "ar"}


async def courses_objects(client: httpx.AsyncClient, registration: httpx.AsyncClient) -> dict[str, str]:
    """A course, and a registered person enrolled in it (registration holds the name an education pass prints)."""
    admin = caller("POST", "/api/v1/courses")
    course = created(await client.post("/api/v1/courses", json=course_body(5), headers=admin))
    registrar = caller("POST", "/api/v1/registrations")
    person = created(await registration.post("/api/v1/registrations", json=newcomer(), headers=registrar))["person_id"]
    enrolment = created(
        await client.post(
            f"/api/v1/courses/{course['course_id']}/enrolments", json={"person_id": person}, headers=admin
        )
    )
    return {"course_id": course["course_id"], "enrolment_id": enrolment["enrolment_id"], "person_id": person}


async def partners_objects(client: httpx.AsyncClient) -> dict[str, str]:
    own = caller("POST", f"/api/v1/partners/{PARTNER}/api-keys")
    key = created(
        await client.post(
            f"/api/v1/partners/{PARTNER}/api-keys",
            headers=own,
            json={"name": "case system", "scopes": ["referrals:read"]},
        )
    )
    # On loopback, where nothing listens: the fuzzer's changes to the entry are delivered there, and fail.
    hook = created(
        await client.post(
            f"/api/v1/partners/{PARTNER}/webhooks",
            headers=own,
            json={"url": f"http://127.0.0.1:{free_port()}/hook", "event_types": [PARTNER_UPDATED]},
        )
    )
    return {"partner_id": PARTNER, "key_id": key["key_id"], "webhook_id": hook["webhook_id"]}


async def no_objects(client: httpx.AsyncClient) -> dict[str, str]:
    """Referral's cases and referrals come from other services' events, not from its own API."""
    return {}


App = Callable[[str, str], FastAPI]  # (database URL, broker) -> the service's app


def app_of(create_app: Callable[[Any], FastAPI], make_settings: Callable[[str, str], Any]) -> App:
    return lambda database_url, bootstrap: create_app(make_settings(database_url, bootstrap))


SERVICES: dict[str, tuple[App, Seed]] = {
    "registration": (app_of(create_registration, registration_settings), registration_objects),
    "referral": (app_of(create_referral, lambda *args: referral_settings(*args, demo_data=True)), no_objects),
    "courses": (app_of(create_courses, courses_settings), courses_objects),
    # Webhooks may point at loopback (and are then not looked up in DNS): nothing a test makes calls out.
    "partners": (
        app_of(
            create_partners,
            lambda *args: partners_settings(*args, demo_data=True, webhook_allow_private_addresses=True),
        ),
        partners_objects,
    ),
    "monitoring": (app_of(create_monitoring, monitoring_settings), no_objects),
}


# --- the fuzzing -------------------------------------------------------------------------------


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs on a loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


Run = tuple[str, Any, GenerationMode, dict[str, str] | None]


def runs(schema: Any, known: dict[str, str], reads_only: bool = False) -> list[Run]:
    """(note, operation, mode, fixed path parameters): every operation with made-up data, valid and invalid;
    then, valid data only, every operation whose path names only known objects, with their ids."""
    operations = [
        result.ok() for result in schema.get_all_operations() if not reads_only or result.ok().method == "get"
    ]
    plan: list[Run] = []
    for operation in operations:
        # A partner acts on its own entry only: its id in the path, or the call stops at the object check.
        is_partner = role_for(operation.method.upper(), operation.path) == "partner"
        own = {"partner_id": PARTNER} if "{partner_id}" in operation.path and is_partner else None
        plan += [("", operation, GenerationMode.POSITIVE, own), ("", operation, GenerationMode.NEGATIVE, own)]
    with_known = []
    for operation in operations:
        names = re.findall(r"\{([^}]+)\}", operation.path)
        if names and all(name in known for name in names):
            with_known.append(("known ids", operation, GenerationMode.POSITIVE, {name: known[name] for name in names}))
    return plan + sorted(with_known, key=lambda run: order(run[1].method.upper(), run[1].path))


def fuzz(
    schema: Any,
    base_url: str,
    known: dict[str, str],
    headers: Callable[[str, str], dict[str, str]] = caller,
    reads_only: bool = False,
) -> list[str]:
    """Runs the plan; returns one entry per run that failed, with Schemathesis' report of the first case."""
    failures: list[str] = []
    session = requests.Session()
    for note, operation, mode, path_parameters in runs(schema, known, reads_only):
        method, path = operation.method.upper(), operation.path
        strategy = operation.as_strategy(
            generation_mode=mode, headers=headers(method, path), path_parameters=path_parameters
        )

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same cases on every run: CI is stable
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # the first failing case, unshrunk: time stays bounded
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=30)

        label = f"{method} {path} [{', '.join(filter(None, (mode.value, note)))}]"
        try:
            check()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                failures.append(f"{label}: no valid request can be made from the document")
            # Negative: nothing of this operation can be made invalid (no parameter or body the caller sets).
        except (Exception, FailureGroup) as exc:  # one operation's failure must not hide the next one's
            failures.append(f"{label}: {str(exc).strip()[:2000]}")
    session.close()
    return failures


# Schemathesis' own strategies draw from `random`; Hypothesis warns about that, which is theirs to fix.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_service_api_keeps_its_documented_contract_under_fuzzing(
    name: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    create, seed = SERVICES[name]
    async with AsyncExitStack() as stack:
        upstreams: dict[str, Any] = {}
        if name == "courses":  # courses asks registration for a pass holder's name: the real one, on loopback
            registration = create_registration(
                registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'upstream.db'}", broker.bootstrap_servers)
            )
            upstreams["registration"] = await stack.enter_async_context(running_app(registration))
            reachable = {"registration_url": await stack.enter_async_context(served(registration))}
            database = f"sqlite+aiosqlite:///{tmp_path / 'courses.db'}"
            app = create_courses(courses_settings(database, broker.bootstrap_servers, **reachable))
        else:
            app = create(f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}", broker.bootstrap_servers)
        client = await stack.enter_async_context(running_app(app))
        base_url = await stack.enter_async_context(served(app))
        document = (await client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document)
        assert len(list(schema.get_all_operations())) >= 8, "the service documents its operations"
        known = await seed(client, **upstreams)
        failures = await asyncio.to_thread(fuzz, schema, base_url, known)
    assert not failures, f"{len(failures)} run(s) broke the documented contract:\n\n" + "\n\n".join(failures)


#: A demo user of the gateway's embedded sign-in for each role (gateway.auth.DEMO_USERS).
DEMO_USER = {
    "registrar": "registrar",
    "caseworker": "lotse",
    "course_admin": "vhs",
    "partner": "caritas",
    "analyst": "statistik",
    "privacy_officer": "datenschutz",
    "admin": "admin",
}


@asynccontextmanager
async def behind_gateway(
    broker: EmbeddedBroker, tmp_path: Path, names: list[str]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict[str, str]]]:
    """The gateway in front of the named services (over ASGI); yields it, a client and a token per role."""
    apps = {
        name: SERVICES[name][0](f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}", broker.bootstrap_servers)
        for name in names
    }
    # Many calls from a few users in a minute: the rate limit is not what these tests are about.
    gateway = create_gateway(
        gateway_settings(
            tmp_path, demo_data=True, rate_limit_per_minute_user=1_000_000, rate_limit_per_minute_anonymous=1_000_000
        )
    )
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(running_app(app))
        client = await stack.enter_async_context(running_app(gateway))
        await gateway.state.client.aclose()
        gateway.state.client = httpx.AsyncClient(
            mounts={f"http://{name}": httpx.ASGITransport(app=app) for name, app in apps.items()}
        )
        gateway.state.api_keys.client = gateway.state.client
        stack.push_async_callback(gateway.state.client.aclose)
        tokens = {}
        for role, username in DEMO_USER.items():
            password = gateway.state.demo_credentials[username]
            reply = await client.post("/auth/token", json={"username": username, "password": password})
            assert reply.status_code == 200, reply.text
            tokens[role] = reply.json()["access_token"]
        yield gateway, client, tokens


@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_the_gateways_merged_document_holds_for_every_read(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The public document at /api/v1/openapi.json, fuzzed through the gateway with signed-in callers: reads
    only (the writes are the services' own runs above), every service behind it over ASGI."""
    async with behind_gateway(broker, tmp_path, sorted(SERVICES)) as (gateway, client, tokens):

        def signed_in(method: str, path: str) -> dict[str, str]:
            role = role_for(method, path)
            return {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}

        document = (await client.get("/api/v1/openapi.json")).json()
        merged = {path.split("/")[3] for path in document["paths"]}
        assert merged >= {"persons", "cases", "courses", "partners", "monitoring"}, "every service is merged in"
        schema = schemathesis.openapi.from_dict(document)
        async with served(gateway) as base_url:
            failures = await asyncio.to_thread(fuzz, schema, base_url, {}, signed_in, True)
    assert not failures, f"{len(failures)} run(s) broke the documented contract:\n\n" + "\n\n".join(failures)


#: A partner's own route in the referral service, bent with encoded slashes and dot segments towards the
#: caseworkers' roster and the admin's routing rules (found while fuzzing the gateway's paths).
BENT = "/api/v1/partner/referrals/x%2F..%2F..%2F..%2F"


@pytest.mark.parametrize(
    ("method", "target"), [("GET", "caseworkers"), ("GET", "routing-rules"), ("PUT", "routing-rules")]
)
async def test_a_bent_path_does_not_take_a_partner_past_the_role_policy(
    method: str, target: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    async with behind_gateway(broker, tmp_path, ["referral"]) as (_, client, tokens):
        partner = {"Authorization": f"Bearer {tokens['partner']}"}
        straight = await client.request(method, f"/api/v1/{target}", headers=partner, json=[])
        assert straight.status_code == 403, straight.text
        bent = await client.request(method, BENT + target, headers=partner, json=[])
        assert bent.status_code in (403, 404), bent.text
        assert bent.headers["content-type"] == "application/problem+json"
