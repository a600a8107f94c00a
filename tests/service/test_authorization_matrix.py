"""The authorisation matrix (issue 12): every operation of the gateway's public OpenAPI x every caller x the
caller's own object and another's, sent through the real gateway to the real services, each answer held to
what it must be.

The expected answer has two halves, kept apart on purpose:

* the role half comes from the gateway's policy itself (``policy.decide``): 401 for an anonymous caller on a
  route that is not public, 403 for a role (or an API key's scopes) the policy refuses;
* the object half is the explicit table :data:`OBJECT_RULES` below: which service refuses which caller another
  team's, partner's or provider's object, and with which status (404 where the object is not to be known of).

"Allowed" means the answer is no 401 or 403, and no 404 where every id in the path is a real object the test
made: a 200 where a 404 is due is a leak and fails the test. A write is sent with a small valid body where one
is in :data:`BODIES`, else with ``{}``; a 422 then proves only that the caller got past the authorisation
checks that come before reading the body, so a 422 never counts where an object denial is expected unless
the service checks the body first (those are counted apart and printed). Destructive operations run last.

Then the token attacks: alg "none", another Ed25519 key, expired, another audience, an ID token used as a
bearer token (401 each at the gateway), and a gateway-signed internal token for another service sent straight
to a service (401 there).

Registration (persons, the object most rules are about) is on the parametrized database; referral, courses,
partners and monitoring on SQLite files of their own; all on the session's broker, the gateway in front over ASGI.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import identity as internal
from chassis.embedded_broker import EmbeddedBroker
from gateway import policy
from gateway.app import create_app as create_gateway
from gateway.auth import add_account
from services.courses.app import create_app as create_courses
from services.monitoring.app import create_app as create_monitoring
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    REFERRAL_NEEDS,
    course_body,
    courses_settings,
    eventually,
    gateway_settings,
    ok,
    partners_settings,
    referral_settings,
    register_with_needs,
    registration_settings,
    running_app,
    signed_by_gateway,
    token_claims,
)
from tests.service.test_monitoring_api import monitoring_settings

TEAM_A, TEAM_B = "integration-nord", "integration-sued"
PARTNER_X, PARTNER_Y = "jobcenter-landsberg", "ihk-muenchen-oberbayern"
PROVIDER_P, PROVIDER_Q = "vhs-landsberg", "kolping-landsberg"
JOBCENTER_CONSENT = {"partner_id": PARTNER_X, "purpose": "job_placement"}
CHAMBER_CONSENT = {"partner_category": "chamber", "purpose": "qualification_recognition"}
ADMIN_HEADERS = {"X-Role": "admin", "X-Actor": "user:admin"}

#: The callers: an account per role (caseworker of team A, course admin of provider P, partner X), and a
#: partner X API key that may read referrals. Their "own" objects are team A's, provider P's, partner X's.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "registrar": {"roles": ["registrar"]},
    "caseworker": {"roles": ["caseworker"], "team": TEAM_A},
    "course_admin": {"roles": ["course_admin"], "partner_id": PROVIDER_P},
    "partner": {"roles": ["partner"], "partner_id": PARTNER_X},
    "analyst": {"roles": ["analyst"]},
    "privacy_officer": {"roles": ["privacy_officer"]},
    "admin": {"roles": ["admin"]},
}
#: Only to make the "other" objects: the other team's caseworker, the other provider's admin, partner Y.
HELPERS: dict[str, dict[str, Any]] = {
    "caseworker-b": {"roles": ["caseworker"], "team": TEAM_B},
    "course_admin-q": {"roles": ["course_admin"], "partner_id": PROVIDER_Q},
    "partner-y": {"roles": ["partner"], "partner_id": PARTNER_Y},
}
KEY_SCOPES = ["referrals:read"]
CALLERS = ("anonymous", *ACCOUNTS, "api_key")
VARIANTS = ("own", "other")

# --- the object half of the expectation: who the services refuse another's object, and how ----------------

#: (caller, path pattern, methods, status, variants): the status the service answers ``caller`` on this operation
#: for the "other" object, or for "both" objects where the service is stricter than the gateway's role policy. A
#: caller not named for a route reaches every object of it (registrar, privacy officer, admin; and anything
#: public). Read top down, first match wins.
OBJECT_RULES: tuple[tuple[str, str, str, int, str], ...] = (
    # Registration: a caseworker reaches only the persons with an open case in their team.
    ("caseworker", r"/persons/\{person_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    # Referral: cases and their referrals are team-scoped.
    ("caseworker", r"/cases/\{case_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    ("caseworker", r"/referrals/\{referral_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    # Partners see only referrals sent to them (the API key is partner X's too).
    ("partner", r"/partner/referrals/\{referral_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    ("api_key", r"/partner/referrals/\{referral_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    # Partners: a partner edits its own directory entry and manages its own keys and webhooks only (the entry
    # itself is public to read).
    ("partner", r"/partners/\{partner_id\}", "PATCH", 403, "other"),
    ("partner", r"/partners/\{partner_id\}/.+", "GET POST PATCH PUT DELETE", 403, "other"),
    # The partners service keeps keys and webhooks to the partner itself: an admin, whom the gateway's policy lets
    # through ("partners/[^/]+/.*"), is answered 401 "needs the calling partner's identity" (see the report).
    ("admin", r"/partners/\{partner_id\}/(api-keys|webhooks)(/.*)?", "GET POST PATCH PUT DELETE", 401, "both"),
    # Courses: a caseworker reaches the learners of the team's cases; a course admin those enrolled with the
    # provider, and changes only the provider's own courses.
    ("caseworker", r"/learners/\{person_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    ("course_admin", r"/learners/\{person_id\}(/.*)?", "GET POST PATCH PUT DELETE", 404, "other"),
    ("course_admin", r"/courses/\{course_id\}(/.*)?", "POST PATCH PUT DELETE", 403, "other"),
    ("course_admin", r"/courses/\{course_id\}/(enrolments|participants)(/.*)?", "GET", 403, "other"),
    # A caseworker enrols only the persons of the team's cases (the person named in the body).
    ("caseworker", r"/courses/\{course_id\}/enrolments", "POST", 404, "other"),
    # Monitoring: rebuilding the read model is the admin's alone, stricter than the policy's "monitoring/.*".
    ("analyst", r"/monitoring/rebuild", "POST", 403, "both"),
)

#: Operations where a 404 for an allowed caller on real ids is the seeded state's answer, not a refusal.
STATE_404 = {
    # No course was completed yet: "This person has no entries for an education pass yet."
    ("POST", "/api/v1/learners/{person_id}/education-pass"),
}


def object_denial(caller: str, method: str, template: str, variant: str) -> int | None:
    """The status the service must answer ``caller`` for this object on this operation; None: allowed."""
    route = template.removeprefix("/api/v1")
    for who, pattern, methods, status, variants in OBJECT_RULES:
        if who == caller and method in methods.split() and re.fullmatch(pattern, route):
            return status if variants == "both" or variant == "other" else None
    return None


#: Small valid bodies for the writes whose object check comes after body validation, so that the check is
#: reached: (ids of the variant: path parameter -> id) -> body.
BODIES: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
    ("PATCH", "/api/v1/persons/{person_id}"): lambda ids: {"phone": "+49 8191 111111"},
    ("POST", "/api/v1/persons/{person_id}/consents"): lambda ids: JOBCENTER_CONSENT,
    ("POST", "/api/v1/persons/{person_id}/needs-assessments"): lambda ids: REFERRAL_NEEDS,
    ("PATCH", "/api/v1/partners/{partner_id}"): lambda ids: {"description": "Matrix test"},
    # To a caseworker of the case's own team: the case stays where it is (an admin's call moves it otherwise).
    ("POST", "/api/v1/cases/{case_id}/assignment"): lambda ids: {"caseworker_id": ids["_worker"]},
    ("POST", "/api/v1/cases/{case_id}/goals"): lambda ids: {"dimension": "placement", "title": "Arbeit finden"},
    ("POST", "/api/v1/cases/{case_id}/notes"): lambda ids: {"text": "Rückruf vereinbart"},
    ("POST", "/api/v1/cases/{case_id}/closing"): lambda ids: {"reason": "no_contact"},
    ("POST", "/api/v1/cases/{case_id}/tasks"): lambda ids: {"title": "Rückruf", "due_on": "2026-12-14"},
    ("PATCH", "/api/v1/cases/{case_id}/tasks/{task_id}"): lambda ids: {"done": True},
    ("POST", "/api/v1/referrals/{referral_id}/refer-elsewhere"): lambda ids: {
        "partner_id": "caritas-landsberg",
        "reason": "better_fit",
    },
    ("POST", "/api/v1/courses/{course_id}/enrolments"): lambda ids: {"person_id": ids["person_id"]},
    ("POST", "/api/v1/courses/{course_id}/enrolments/{enrolment_id}/attendance"): lambda ids: {
        "session_id": ids["session_id"],
        "present": True,
    },
    ("POST", "/api/v1/courses/{course_id}/enrolments/{enrolment_id}/completion"): lambda ids: {
        "result": "passed",
        "completed_on": "2027-03-01",
    },
    # A session long after the course's own: no overlap, so the object check is what answers.
    ("POST", "/api/v1/courses/{course_id}/sessions"): lambda ids: {
        "starts_at": "2031-01-06T09:00:00+00:00",
        "ends_at": "2031-01-06T11:00:00+00:00",
    },
    ("POST", "/api/v1/partner/referrals/{referral_id}/complete"): lambda ids: {"outcome": "successful"},
    ("POST", "/api/v1/partner/referrals/{referral_id}/decline"): lambda ids: {"reason": "no_capacity"},
}

#: Run last, in this order of priority: they end the object they act on.
DESTRUCTIVE = re.compile(r"(/cancel|/withdrawal|/move-away|/revoke)$")
#: Closing a case ends the team's reach to the person's data too: after every other write on the person.
CLOSING = re.compile(r"/cases/\{case_id\}/closing$")


def rank(method: str, template: str) -> int:
    if method == "DELETE" or CLOSING.search(template):
        return 3
    return 0 if method == "GET" else 2 if DESTRUCTIVE.search(template) else 1


@dataclass
class World:
    gateway: Any
    client: httpx.AsyncClient
    apps: dict[str, Any]
    tokens: dict[str, str]
    api_key: str
    #: path parameter -> (own id, other id)
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(database_url: str, broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[World]:
    bootstrap = broker.bootstrap_servers

    def db(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    apps = {
        "registration": create_registration(registration_settings(database_url, bootstrap)),
        "referral": create_referral(referral_settings(db("referral"), bootstrap, demo_data=True)),
        "courses": create_courses(courses_settings(db("courses"), bootstrap)),
        "partners": create_partners(
            partners_settings(db("partners"), bootstrap, demo_data=True, webhook_allow_private_addresses=True)
        ),
        "monitoring": create_monitoring(monitoring_settings(db("monitoring"), bootstrap)),
    }
    settings = gateway_settings(
        tmp_path,
        rate_limit_per_minute_user=1_000_000,
        rate_limit_per_minute_anonymous=1_000_000,
        rate_limit_per_minute_api_key=1_000_000,
    )
    passwords = {
        name: add_account(settings.local_users_file, name, **account) for name, account in (ACCOUNTS | HELPERS).items()
    }
    gateway = create_gateway(settings)
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():  # one at a time: Alembic's migration context is process-global
            clients[name] = await stack.enter_async_context(running_app(app))
        client = await stack.enter_async_context(running_app(gateway))
        await gateway.state.client.aclose()
        gateway.state.client = httpx.AsyncClient(
            mounts={f"http://{name}": httpx.ASGITransport(app=app) for name, app in apps.items()}, timeout=30
        )
        gateway.state.api_keys.client = gateway.state.client
        stack.push_async_callback(gateway.state.client.aclose)
        tokens = {}
        for name, password in passwords.items():
            tokens[name] = ok(await client.post("/auth/token", json={"username": name, "password": password}))[
                "access_token"
            ]
        world = World(gateway, client, apps, tokens, api_key="")
        await seed(world, clients)
        yield world


async def seed(world: World, clients: dict[str, httpx.AsyncClient]) -> None:
    """Own and other objects of every kind, made through the gateway by their owners where the API allows."""
    c, t = world.client, world.tokens
    registration, referral = clients["registration"], clients["referral"]
    # Two newcomers with needs; own: consent for partner X; other: consent for the chamber (partner Y).
    own_person = await register_with_needs(registration, [JOBCENTER_CONSENT])
    other_person = await register_with_needs(registration, [CHAMBER_CONSENT], languages=["ru"], preferred_language="ru")
    cases: dict[str, dict[str, Any]] = {}
    for variant, person, worker in (("own", own_person, "lotse-a.berger"), ("other", other_person, "lotse-m.wagner")):

        async def found(p: str = person) -> Any:
            listed = (await referral.get("/api/v1/cases", params={"person_id": p}, headers=ADMIN_HEADERS)).json()
            return listed["items"][0] if listed["items"] else None

        case = await eventually(found)
        ok(
            await referral.post(
                f"/api/v1/cases/{case['case_id']}/assignment", json={"caseworker_id": worker}, headers=ADMIN_HEADERS
            )
        )
        cases[variant] = case

    def sent_to(partner: str, case_id: str) -> Any:
        async def check() -> Any:
            full = (await referral.get(f"/api/v1/cases/{case_id}", headers=ADMIN_HEADERS)).json()
            return next(
                (r["referral_id"] for r in full["referrals"] if r["partner_id"] == partner and r["status"] == "sent"),
                None,
            )

        return check

    own_referral = await eventually(sent_to(PARTNER_X, cases["own"]["case_id"]))
    other_referral = await eventually(sent_to(PARTNER_Y, cases["other"]["case_id"]))
    # Registration and courses learn the case's team from referral's events.
    for token, person in ((t["caseworker"], own_person), (t["caseworker-b"], other_person)):

        async def reachable(tok: str = token, p: str = person) -> bool:
            return (await c.get(f"/api/v1/persons/{p}", headers=bearer(tok))).status_code == 200

        await eventually(reachable)

    # Courses of providers P and Q; own person enrolled with P, other with Q.
    courses, enrolments, sessions = {}, {}, {}
    for variant, admin, person in (("own", "course_admin", own_person), ("other", "course_admin-q", other_person)):
        course = ok(await c.post("/api/v1/courses", json=course_body(5), headers=bearer(t[admin])), 201)
        courses[variant] = course["course_id"]
        sessions[variant] = course["sessions"][0]["session_id"]
        enrolment = await c.post(
            f"/api/v1/courses/{course['course_id']}/enrolments", json={"person_id": person}, headers=bearer(t[admin])
        )
        enrolments[variant] = ok(enrolment, 201)["enrolment_id"]
    consents = {}
    for variant, person in (("own", own_person), ("other", other_person)):
        listed = ok(await c.get(f"/api/v1/persons/{person}/consents", headers=bearer(t["admin"])))
        items = listed["items"] if isinstance(listed, dict) else listed
        consents[variant] = items[0]["consent_id"]
    # Partner X's and partner Y's API keys and webhooks, made by each partner.
    keys, hooks = {}, {}
    for variant, partner, who in (("own", PARTNER_X, "partner"), ("other", PARTNER_Y, "partner-y")):
        keys[variant] = ok(
            await c.post(
                f"/api/v1/partners/{partner}/api-keys",
                headers=bearer(t[who]),
                json={"name": "case system", "scopes": KEY_SCOPES},
            ),
            201,
        )
        hook = await c.post(
            f"/api/v1/partners/{partner}/webhooks",
            headers=bearer(t[who]),
            json={
                "url": "http://127.0.0.1:9/hook",
                "event_types": ["de.landsberg.integration.partners.partner_updated.v1"],
            },
        )
        hooks[variant] = ok(hook, 201)["webhook_id"]
    # The key the matrix calls with is a third one: the matrix revokes the two above (DELETE .../api-keys/{key_id}).
    caller_key = ok(
        await c.post(
            f"/api/v1/partners/{PARTNER_X}/api-keys",
            headers=bearer(t["partner"]),
            json={"name": "matrix caller", "scopes": KEY_SCOPES},
        ),
        201,
    )
    world.api_key = caller_key["key"] if "key" in caller_key else caller_key["api_key"]
    world.ids = {
        "person_id": (own_person, other_person),
        "case_id": (cases["own"]["case_id"], cases["other"]["case_id"]),
        "referral_id": (own_referral, other_referral),
        "course_id": (courses["own"], courses["other"]),
        "enrolment_id": (enrolments["own"], enrolments["other"]),
        "consent_id": (consents["own"], consents["other"]),
        "partner_id": (PARTNER_X, PARTNER_Y),
        "key_id": (keys["own"]["key_id"], keys["other"]["key_id"]),
        "webhook_id": (hooks["own"], hooks["other"]),
        # In bodies only: a session of the course, a caseworker of the case's team.
        "session_id": (sessions["own"], sessions["other"]),
        "_worker": ("lotse-a.berger", "lotse-m.wagner"),
    }


def caller_headers(world: World, caller: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "api_key":
        return {"X-API-Key": world.api_key}
    return bearer(world.tokens[caller])


def decided(caller: str, method: str, path: str) -> bool | None:
    if caller == "anonymous":
        return policy.decide(method, path, None)
    if caller == "api_key":
        return policy.decide(method, path, frozenset({"partner"}), frozenset(KEY_SCOPES))
    return policy.decide(method, path, frozenset(ACCOUNTS[caller]["roles"]))


@dataclass(frozen=True)
class Cell:
    method: str
    template: str
    caller: str
    variant: str


async def test_every_operation_answers_every_caller_as_the_policy_and_the_object_rules_say(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    document = ok(await world.client.get("/api/v1/openapi.json"))
    operations = sorted(
        (
            (method.upper(), template)
            for template, item in document["paths"].items()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        ),
        key=lambda op: (rank(*op), op[1], op[0]),
    )
    assert len(operations) > 40, "the merged document names every service's operations"
    cells = [
        Cell(method, template, caller, variant)
        for method, template in operations
        for caller in CALLERS
        for variant in (VARIANTS if re.search(r"\{[^}]+\}", template) else VARIANTS[:1])
    ]
    # Admin last within each operation: it is the caller most likely to end an object.
    cells.sort(key=lambda cell: (rank(cell.method, cell.template), cell.caller == "admin"))
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for cell in cells:
        names = re.findall(r"\{([^}]+)\}", cell.template)
        index = VARIANTS.index(cell.variant)
        values = {name: world.ids[name][index] if name in world.ids else f"unknown-{name}" for name in names}
        all_real = all(name in world.ids for name in names)
        path = cell.template.format(**values)
        variant_ids = {name: pair[index] for name, pair in world.ids.items()}
        make_body = BODIES.get((cell.method, cell.template))
        body = (make_body(variant_ids) if make_body else {}) if cell.method != "GET" else None
        headers = caller_headers(world, cell.caller)
        if cell.method in ("PATCH", "PUT"):  # the ETag of what is there (as an admin reads it), where one is asked
            current = await world.client.get(path, headers=bearer(world.tokens["admin"]))
            if "etag" in current.headers:
                headers["If-Match"] = current.headers["etag"]
        reply = await world.client.request(
            cell.method,
            path,
            headers=headers,
            json=body if cell.method != "DELETE" else None,
        )
        status = reply.status_code
        counts["requests"] += 1
        role_half = decided(cell.caller, cell.method, path)
        label = f"{cell.method} {cell.template} as {cell.caller} on the {cell.variant} object -> {status}"
        if role_half is None:
            expected: set[int] | None = {401}
        elif role_half is False:
            expected = {403}
        elif denial := object_denial(cell.caller, cell.method, cell.template, cell.variant):
            expected = {denial}
            if status == 422 and (cell.method, cell.template) not in BODIES:
                counts["object denials behind body validation (422)"] += 1
                continue
        else:
            expected = None
        if expected is not None:
            counts[f"denials checked ({'/'.join(map(str, sorted(expected)))})"] += 1
            if status not in expected:
                failures.append(f"{label}, expected {sorted(expected)}: {reply.text[:200]}")
            continue
        counts["allows checked"] += 1
        state_404 = (cell.method, cell.template) in STATE_404
        if status in (401, 403) or (status == 404 and all_real and not state_404) or status >= 500:
            failures.append(f"{label}, expected an allow: {reply.text[:200]}")
    elapsed = time.monotonic() - started
    size = f"{len(operations)} operations x {len(CALLERS)} callers x own/other object"
    with capsys.disabled():
        print(f"\nauthorisation matrix: {size} = {len(cells)} cells; {elapsed:.1f}s")
        denials = sum(n for name, n in counts.items() if name.startswith("denials checked"))
        allows = counts["allows checked"]
        print(f"  requests sent: {counts['requests']}; denials checked: {denials}; allows checked: {allows}")
        for name, count in sorted(counts.items()):
            print(f"  {name}: {count}")
    assert not failures, f"{len(failures)} of {len(cells)} answers break the authorisation matrix:\n" + "\n".join(
        failures
    )
    assert counts["requests"] > 300 and counts["allows checked"] > 50
    assert denials > 150 and counts["denials checked (404)"] >= 25, "the object rules are exercised"


# --- token attacks -------------------------------------------------------------------------------


@pytest.fixture
async def guarded(database_url: str, broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, Any]]:
    """The gateway with an admin account in front of registration (on the parametrized database); yields the
    gateway app, a client to it, and a client straight to registration (as another pod in the cluster would)."""
    registration = create_registration(registration_settings(database_url, broker.bootstrap_servers))
    settings = gateway_settings(tmp_path)
    add_account(settings.local_users_file, "admin", ["admin"])
    gateway = create_gateway(settings)
    async with running_app(registration) as direct, running_app(gateway) as client:
        await gateway.state.client.aclose()
        gateway.state.client = httpx.AsyncClient(mounts={"http://registration": httpx.ASGITransport(app=registration)})
        try:
            yield gateway, client, direct
        finally:
            await gateway.state.client.aclose()


ATTACKS = ("alg_none", "another_key", "expired", "another_audience", "id_token")


@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_forged_stale_or_misused_token_is_refused(attack: str, guarded: tuple[Any, Any, Any]) -> None:
    gateway, client, _ = guarded
    issuer = gateway.state.issuer
    admin = issuer.users.get("admin")
    # What the embedded sign-in puts in an admin's access token; each attack changes one thing.
    claims = token_claims(issuer, admin["id"], ["admin"], preferred_username="admin", session_generation=0)
    key, headers = issuer.key, {"kid": issuer.kid}
    genuine = jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
    assert (await client.get("/api/v1/persons", headers=bearer(genuine))).status_code == 200, "the control passes"
    if attack == "another_key":
        key = Ed25519PrivateKey.generate()
    elif attack == "expired":
        claims |= {"iat": claims["iat"] - 4000, "exp": claims["iat"] - 3600}
    elif attack == "another_audience":
        claims["aud"] = "another-client"
    elif attack == "id_token":
        # An OpenID provider's ID token: for the client, whose id is by default the gateway's audience
        # (GATEWAY_OIDC_CLIENT_ID defaults to GATEWAY_OIDC_AUDIENCE), with the realm roles Keycloak maps into it
        # too; it says what it is in "typ" (Keycloak: "ID"; its access tokens: "Bearer"). The embedded issuer's
        # key stands in for the provider's: the verifier is the same for both.
        claims |= {
            "typ": "ID",
            "azp": issuer.audience,
            "nonce": uuid.uuid4().hex,
            "auth_time": claims["iat"],
            "at_hash": "x",
        }
    token = (
        jwt.encode(claims, "", algorithm="none", headers=headers)
        if attack == "alg_none"
        else jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
    )
    reply = await client.get("/api/v1/persons", headers=bearer(token))
    assert reply.status_code == 401, f"{attack}: {reply.status_code} {reply.text}"
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_an_internal_token_for_another_service_is_refused_by_the_service(
    guarded: tuple[Any, Any, Any],
) -> None:
    """A gateway-signed identity is for one service: registration refuses one the gateway signed for referral."""
    _, _, direct = guarded
    admin = internal.Identity(subject="admin", roles=frozenset({"admin"}))
    assert (await direct.get("/api/v1/persons", headers=signed_by_gateway(admin, "registration"))).status_code == 200
    reply = await direct.get("/api/v1/persons", headers=signed_by_gateway(admin, "referral"))
    assert reply.status_code == 401, reply.text
