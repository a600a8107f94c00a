"""As shipped: the production configuration (deploy/k8s/overlays/prod) runs a newcomer's whole journey.

Every process starts with what the rendered manifests give it (tests/production/harness.py): PostgreSQL per service,
ENVIRONMENT=production, the signed identity required, no demo data, staff signing in at the realm's OpenID provider.
The tests talk to the gateway's public address only, through the ingress, as the city's staff and partners would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from contracts.calendar import today as city_today
from contracts.referral import ReferralAccepted
from gateway.ui.kit import SESSION_COOKIE
from services.courses import domain as courses_domain
from tests.conftest import course_body, eventually, newcomer
from tests.k8s import env_names, settings_class
from tests.oidc_provider import sign_in
from tests.production.harness import Production
from tests.scrape import Series, parse
from tests.scrape import value as sample

VHS, JOBCENTER = "vhs-landsberg", "jobcenter-landsberg"
TEAM = "integration-nord"
#: The city's people in its Keycloak: user name -> realm roles and user attributes (the realm maps both into tokens).
STAFF: dict[str, tuple[list[str], dict[str, str]]] = {
    "t.vogel": (["admin"], {}),
    "r.meier": (["registrar"], {}),
    "a.berger": (["caseworker"], {"team": TEAM}),
    "k.schulz": (["course_admin"], {"partner_id": VHS}),
    "s.huber": (["analyst"], {}),
    "vhs.portal": (["partner"], {"partner_id": VHS}),
    "jobcenter.portal": (["partner"], {"partner_id": JOBCENTER}),
}


class Caller:
    """Someone calling the gateway's public API with a bearer token (a staff member's or a partner's API key)."""

    def __init__(self, client: httpx.AsyncClient, token: str | None, who: str) -> None:
        self.client, self.who = client, who
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        reply = await self.client.request(method, path, headers=self.headers, **kwargs)
        assert reply.status_code == expect, f"{method} {path} as {self.who}: {reply.status_code} {reply.text[:800]}"
        return reply.json() if reply.content and "json" in reply.headers.get("content-type", "") else None

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("GET", path, expect, **kwargs)

    async def post(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("POST", path, expect, **kwargs)

    async def put(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("PUT", path, expect, **kwargs)

    async def delete(self, path: str, expect: int = 204, **kwargs: Any) -> Any:
        return await self.call("DELETE", path, expect, **kwargs)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Names the step of the journey in a failure."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"journey step '{name}' failed: {exc}") from exc


async def sign_in_to_the_web_ui(production: Production, username: str, password: str) -> str:
    """The gateway's web UI sign-in at the realm's provider (authorization code flow with PKCE, the confidential
    client's secret from the Secret the harness made); the session it sets is the provider's access token."""
    async with production.client() as browser:
        login = await browser.get("/ui/oidc/login", params={"next": "/ui/"})
        assert login.status_code == 303, login.text
        assert login.headers["location"].startswith(production.provider.authorization_endpoint)
        callback = await sign_in(browser, login.headers["location"], username, password)
        assert callback.startswith(f"{production.public_url}/ui/oidc/callback?"), callback
        done = await browser.get(callback)
        assert done.status_code == 303 and done.headers["location"] == "/ui/", done.text
        page = await browser.get("/ui/", follow_redirects=True)
        assert page.status_code == 200 and username in page.text, page.text[:500]
        return str(browser.cookies[SESSION_COOKIE])


@pytest.fixture(scope="module")
async def tokens(production: Production) -> dict[str, str]:
    """Every staff member signed in through the gateway's web UI: user name -> access token."""
    found = {}
    for username, (roles, attributes) in STAFF.items():
        password = secrets.token_urlsafe(16)
        await asyncio.to_thread(production.provider.add_account, username, password, roles, attributes=attributes)
        found[username] = await sign_in_to_the_web_ui(production, username, password)
    return found


@pytest.fixture
async def client(production: Production) -> AsyncIterator[httpx.AsyncClient]:
    async with production.client() as http:
        yield http


# --- the configuration -----------------------------------------------------------------------------------------


async def test_production_holds_no_demo_data(
    production: Production, tokens: dict[str, str], client: httpx.AsyncClient
) -> None:
    """Nothing a city did not enter: no demo switch on, no seeded directory, roster, courses or figures, no
    embedded sign-in."""
    switched_on = []
    for name, settings in production.settings.items():
        cls = settings_class(production.workloads[name].app)
        for field_name, value in settings.model_dump().items():
            if isinstance(value, bool) and value and ("demo" in field_name or "seed" in field_name):
                switched_on.append(
                    f"{name}: {' or '.join(env_names(cls, field_name))} is on ({cls.__name__}.{field_name})"
                )
    assert not switched_on, "demo data in production:\n" + "\n".join(switched_on)

    anyone = Caller(client, None, "anyone")
    admin = Caller(client, tokens["t.vogel"], "admin")
    analyst = Caller(client, tokens["s.huber"], "analyst")
    assert (await anyone.get("/api/v1/partners"))["total"] == 0, "the partner directory is seeded"
    assert (await anyone.get("/api/v1/courses"))["total"] == 0, "the course catalogue is seeded"
    assert await admin.get("/api/v1/caseworkers") == [], "the caseworker roster is seeded"
    districts = await analyst.get("/api/v1/monitoring/reference/districts")
    assert districts["districts"] == {}, "monitoring holds illustrative district figures"
    await anyone.post("/auth/token", 404, json={"username": "admin", "password": "x"})  # no embedded sign-in


# --- the journey -----------------------------------------------------------------------------------------------


async def test_a_newcomers_whole_journey(
    production: Production, tokens: dict[str, str], client: httpx.AsyncClient
) -> None:
    admin = Caller(client, tokens["t.vogel"], "admin t.vogel")
    registrar = Caller(client, tokens["r.meier"], "registrar r.meier")
    navigator = Caller(client, tokens["a.berger"], "caseworker a.berger")
    course_admin = Caller(client, tokens["k.schulz"], "course admin k.schulz")
    analyst = Caller(client, tokens["s.huber"], "analyst s.huber")
    vhs_staff = Caller(client, tokens["vhs.portal"], "VHS staff")
    jobcenter_staff = Caller(client, tokens["jobcenter.portal"], "Jobcenter staff")
    anyone = Caller(client, None, "anyone")
    today = city_today()

    with step("an admin puts the navigator on the roster"):
        entry = {"name": "Anna Berger", "team": TEAM, "languages": ["de", "en", "ar"], "max_cases": 60}
        assert (await admin.put("/api/v1/caseworkers/a.berger", json=entry))["team"] == TEAM

    with step("an admin adds the partner organisations"):
        for partner_id, name, category in (
            (VHS, "Volkshochschule Landsberg am Lech", "adult_education"),
            (JOBCENTER, "Jobcenter Landsberg am Lech", "job_centre"),
        ):
            body = {"partner_id": partner_id, "name": name, "category": category, "languages": ["de", "en"]}
            await admin.post("/api/v1/partners", 201, json=body)

    with step("each partner offers its service"):
        offer = {"languages": ["de", "en"], "response_days": 5, "free_places": 20}
        await vhs_staff.put(
            f"/api/v1/partners/{VHS}/services/integration_course", json=offer | {"name": "Integrationskurs"}
        )
        await jobcenter_staff.put(
            f"/api/v1/partners/{JOBCENTER}/services/job_placement", json=offer | {"name": "Arbeitsvermittlung"}
        )
        directory = await anyone.get("/api/v1/partners")
        assert {p["partner_id"] for p in directory["items"]} == {VHS, JOBCENTER}

    with step("the course admin schedules an integration course"):
        course = await course_admin.post("/api/v1/courses", 201, json=course_body(capacity=12, provider_id=VHS))
        assert (await anyone.get(f"/api/v1/courses/{course['course_id']}"))["free_seats"] == 12

    with step("the registrar registers the newcomer and the family"):
        person_body = newcomer(gender="male", birth_date="1990-05-04", nationality="SY")
        family = [
            {k: v for k, v in newcomer(gender=g, birth_date=b, nationality="SY").items() if k != "address"}
            for g, b in (
                ("female", "1992-01-20"),
                ("female", "2015-06-01"),
                ("male", "2018-09-09"),
                ("female", "2021-02-14"),
            )
        ]
        registered = await registrar.post(
            "/api/v1/registrations", 201, json=person_body | {"household_members": family}
        )
        person = registered["person_id"]
        assert len(registered["household_members"]) == 4

    with step("a case opens with the navigator"):

        async def case_opened() -> dict[str, Any] | None:
            page = await navigator.get("/api/v1/cases", params={"person_id": person})
            return page["items"][0] if page["total"] == 1 else None

        case = await eventually(case_opened)
        assert case["caseworker_id"] == "a.berger" and case["team"] == TEAM and case["status"] == "open"

    with step("the registrar records a consent for the VHS"):
        consent = {"partner_id": VHS, "purpose": "course_enrolment"}
        await registrar.post(f"/api/v1/persons/{person}/consents", 201, json=consent)
        await registrar.get(f"/api/v1/persons/{person}/needs-assessments", 403)  # needs are the navigators'

    with step("the navigator reaches the person of the team's case and records the needs"):

        async def reachable() -> bool:  # registration learns the case's team from referral's case events
            reply = await navigator.client.get(f"/api/v1/persons/{person}", headers=navigator.headers)
            return reply.status_code == 200

        await eventually(reachable)
        needs = {"german_level": "A1", "schooling": "secondary", "employment_situation": "job_seeking"}
        assert (
            "language"
            in (await navigator.post(f"/api/v1/persons/{person}/needs-assessments", 201, json=needs))["need_categories"]
        )

    with step("referrals are proposed; the one a consent covers is sent"):

        async def routed() -> dict[str, dict[str, Any]] | None:
            detail = await navigator.get(f"/api/v1/cases/{case['case_id']}")
            found = {r["service_type"]: r for r in detail["referrals"]}
            return found if len(found) >= 2 and found.get("integration_course", {}).get("status") == "sent" else None

        referrals = await eventually(routed)
        assert set(referrals) == {"integration_course", "job_placement"}, referrals
        course_referral, job_referral = referrals["integration_course"], referrals["job_placement"]
        assert course_referral["partner_id"] == VHS
        assert job_referral["status"] == "proposed" and job_referral["blocked_reason"] == "consent missing"

    with step("a consent for the Jobcenter sends its referral"):
        await registrar.post(
            f"/api/v1/persons/{person}/consents", 201, json={"partner_id": JOBCENTER, "purpose": "job_placement"}
        )

        async def sent() -> bool:
            return bool((await navigator.get(f"/api/v1/referrals/{job_referral['referral_id']}"))["status"] == "sent")

        await eventually(sent)

    with step("the VHS creates an API key and subscribes a webhook"):
        scopes = ["referrals:read", "referrals:write"]
        key = await vhs_staff.post(
            f"/api/v1/partners/{VHS}/api-keys", 201, json={"name": "Kursverwaltung", "scopes": scopes}
        )
        hook = await vhs_staff.post(
            f"/api/v1/partners/{VHS}/webhooks",
            201,
            json={"url": f"{production.receiver.url}/vhs", "event_types": [ReferralAccepted.event_type]},
        )
        vhs_key = Caller(client, key["key"], "the VHS's API key")

    with step("the VHS accepts the referral with its API key and reads the contact data its consent allows"):
        listed = await vhs_key.get("/api/v1/partner/referrals")
        assert [r["referral_id"] for r in listed["items"]] == [course_referral["referral_id"]]
        await vhs_key.get(f"/api/v1/partner/referrals/{job_referral['referral_id']}", 404)  # the Jobcenter's
        path = f"/api/v1/partner/referrals/{course_referral['referral_id']}"
        assert (await vhs_key.post(f"{path}/accept"))["status"] == "accepted"
        shared = await vhs_key.get(path)
        assert shared["personal_data_status"] == "shared under consent", shared
        contact = shared["personal_data"]
        assert contact["given_names"] == person_body["given_names"] and contact["phone"] == person_body["phone"]
        assert contact["email"] == person_body["email"] and contact["address"]["street"] == "Schwaighofstraße"

    with step("the VHS's receiver gets the signed webhook"):

        async def delivered() -> list[tuple[str, dict[str, str], bytes]]:
            return [r for r in production.receiver.received if r[0] == "/vhs"]

        _, headers, body = (await eventually(delivered))[0]
        payload = Webhook(hook["secret"]).verify(body, headers)
        assert payload["type"] == ReferralAccepted.event_type, payload
        assert json.dumps(payload).count(course_referral["referral_id"]) >= 1
        for personal in (person_body["given_names"], person_body["family_name"], "1990-05-04", "Schwaighofstraße"):
            assert personal not in body.decode(), "personal data in a webhook"

    with step("the accepted referral enrols the person in the course"):

        async def enrolled() -> dict[str, Any] | None:
            rows = await course_admin.get(f"/api/v1/courses/{course['course_id']}/enrolments")
            return next((e for e in rows if e["person_id"] == person and e["status"] == "enrolled"), None)

        enrolment = await eventually(enrolled)
        assert enrolment["referral_id"] == course_referral["referral_id"]

    with step("the course admin records attendance and completion"):
        base = f"/api/v1/courses/{course['course_id']}/enrolments/{enrolment['enrolment_id']}"
        first_session = course["sessions"][0]["session_id"]
        await course_admin.post(f"{base}/attendance", 201, json={"session_id": first_session, "present": True})
        done = await course_admin.post(
            f"{base}/completion", json={"result": "passed", "certificate": "DTZ B1", "completed_on": today.isoformat()}
        )
        assert done["status"] == "completed"

    with step("the education pass is issued with the registered name and verified"):
        issued = await course_admin.post(f"/api/v1/learners/{person}/education-pass", 201, json={})
        registered_name = f"{person_body['given_names']} {person_body['family_name']}"
        assert issued["credential"]["credentialSubject"]["name"] == registered_name
        assert (await anyone.post("/api/v1/education-passes/verify", json=issued["credential"]))["valid"] is True
        assert (await anyone.get(f"/api/v1/education-passes/verify/{issued['code']}"))["valid"] is True
        keys = await anyone.get("/api/v1/education-passes/public-key")
        status_list = await anyone.get("/api/v1/education-passes/status")
        key = courses_domain.key_from_jwk(keys["keys"][0])
        assert courses_domain.revoked_in(issued["credential"], status_list, key) is False

    with step("the analyst's monitoring figure counts the person"):

        async def counted() -> dict[str, Any] | None:
            document = await analyst.get("/api/v1/monitoring/indicators", params={"period": today.strftime("%Y-%m")})
            tables = {t["id"]: t for g in document["groups"] for t in g["indicators"]}
            headline = tables["registrations_by_nationality"]["headline"]
            return headline if headline and headline["value"] == 5 else None

        assert (await eventually(counted))["suppressed"] is False  # the newcomer and the four of the family

    with step("an admin erases the person and the person is gone; the household's case goes on for the family"):
        await admin.delete(f"/api/v1/persons/{person}", json={"reason": "Antrag der Person (Art. 17 DSGVO)"})
        await registrar.get(f"/api/v1/persons/{person}", 410)

        async def left_the_case() -> bool:
            detail = await navigator.get(f"/api/v1/cases/{case['case_id']}")
            members = {m["person_id"]: m for m in detail["members"]}
            # The newcomer led the case; another adult of the household leads it now, nobody has the erased one.
            return bool(
                detail["status"] != "closed"
                and person not in members
                and len(members) == 4
                and sum(m["lead"] for m in members.values()) == 1
            )

        await eventually(left_the_case)

        async def pass_revoked() -> bool:
            return (await anyone.get(f"/api/v1/education-passes/verify/{issued['code']}"))["valid"] is False

        await eventually(pass_revoked)
        verified = await anyone.post("/api/v1/education-passes/verify", json=issued["credential"])
        assert (verified["valid"], verified["revoked"]) == (False, True)
        status_list = await anyone.get("/api/v1/education-passes/status")
        assert courses_domain.revoked_in(issued["credential"], status_list, key) is True, "offline, too"
        assert (await vhs_key.get(path))["personal_data"] is None


async def test_no_process_wrote_outside_tmp(production: Production) -> None:
    """The pods' root file systems are read-only: nothing may have been written to the processes' working
    directory (last in this module, after the journey)."""
    assert not any(production.workdir.iterdir()), sorted(p.name for p in production.workdir.iterdir())


async def test_traces_reach_the_collectors_address(production: Production) -> None:
    """OTEL_EXPORTER=otlp with the collector's address from the manifests: the processes export their spans there
    (the harness's sink stands in for the collector)."""

    async def exported() -> set[str]:
        return {path for path, _, _ in production.otlp.received}

    assert "/v1/traces" in await eventually(exported, timeout_s=15)


async def test_metrics_reach_the_collectors_address_from_every_process(production: Production) -> None:
    """The metrics take the traces' way (OTLP/HTTP to the collector): each process's export, decoded as the collector
    does, names it and carries its request series; the services' carry the outbox and consumer series too."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    def names_by_process() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for path, _, body in list(production.otlp.received):
            if path != "/v1/metrics":
                continue
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            for resource_metrics in request.resource_metrics:
                attributes = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
                names = found.setdefault(attributes.get("service.name", "?"), set())
                names.update(m.name for s in resource_metrics.scope_metrics for m in s.metrics)
        return found

    wanted = {name: {"http.server.request.duration"} for name in production.processes}
    for name in production.processes:
        if name != "gateway":
            wanted[name] |= {"outbox_backlog", "outbox_oldest_unpublished_age", "db_pool_connections_in_use"}
        if name not in ("gateway", "registration"):  # registration consumes nothing
            wanted[name] |= {"consumer_lag", "consumer_events_handled"}

    async def all_there() -> dict[str, set[str]] | None:
        found = names_by_process()
        return found if all(wanted[n] <= found.get(n, set()) for n in wanted) else None

    try:
        await eventually(all_there, timeout_s=20)
    except AssertionError:
        found = names_by_process()
        missing = {n: sorted(wanted[n] - found.get(n, set())) for n in wanted if wanted[n] - found.get(n, set())}
        raise AssertionError(f"not exported over OTLP: {missing}") from None


async def test_every_process_serves_metrics_and_lag_and_backlog_move_under_load(
    production: Production, tokens: dict[str, str], client: httpx.AsyncClient
) -> None:
    """Every process's /metrics (where the cluster's Prometheus scrapes it: the pod's port, not the edge); a burst
    of registrations through the gateway moves the registration service's outbox backlog and the referral service's
    consumer lag on the persons' topic above 0, and both come back to 0 once the events are through."""
    ports = {name: process.port for name, process in production.processes.items()}
    assert sorted(ports) == sorted(["gateway", "registration", "referral", "courses", "partners", "monitoring"])
    async with httpx.AsyncClient(timeout=10) as direct:

        async def read(name: str) -> Series:
            reply = await direct.get(f"http://127.0.0.1:{ports[name]}/metrics")
            assert reply.status_code == 200, f"{name}: {reply.status_code}"
            return parse(reply.text)

        for name in ports:
            found = await read(name)
            assert (
                sample(found, "http_server_request_duration_seconds_count", service=name, http_route="/metrics") is None
            )
            if name != "gateway":
                assert sample(found, "outbox_backlog", service=name) is not None, name
                assert sample(found, "db_pool_connections_limit", service=name), name
        assert (await client.get("/metrics")).status_code == 404, "the public reads no metrics through the edge"

        registrar = Caller(client, tokens["r.meier"], "registrar")
        seen = {"backlog": 0.0, "lag": 0.0}
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                registration, referral = await asyncio.gather(read("registration"), read("referral"))
                seen["backlog"] = max(
                    seen["backlog"], sample(registration, "outbox_backlog", service="registration") or 0
                )
                lag = sample(referral, "consumer_lag", service="referral", topic="registration.persons.v1") or 0
                seen["lag"] = max(seen["lag"], lag)

        watcher = asyncio.create_task(watch())
        try:
            for _ in range(3):  # a burst of 40 registrations, three times at most until both were seen to move
                await asyncio.gather(
                    *(registrar.post("/api/v1/registrations", 201, json=newcomer()) for _ in range(40))
                )
                if seen["backlog"] > 0 and seen["lag"] > 0:
                    break
        finally:
            done.set()
            await watcher
        assert seen["backlog"] > 0, f"the outbox backlog never moved: {seen}"
        assert seen["lag"] > 0, f"the consumer lag never moved: {seen}"
        print(f"\nunder a burst: outbox backlog up to {seen['backlog']:.0f}, consumer lag up to {seen['lag']:.0f}")

        async def drained() -> bool:
            registration, referral = await asyncio.gather(read("registration"), read("referral"))
            return (
                sample(registration, "outbox_backlog", service="registration") == 0
                and sample(referral, "consumer_lag", service="referral", topic="registration.persons.v1") == 0
            )

        assert await eventually(drained, timeout_s=30)
        handled = sample(
            await read("referral"), "consumer_events_handled_total", service="referral", topic="registration.persons.v1"
        )
        assert handled is not None and handled >= 40
