"""Erasure reaches everything (issue 12): after a newcomer's whole journey, registration's erasure leaves the
person's name, birth date, address, phone and email nowhere: in no table of any service's database (every
column of every table, read by reflection; stored idempotent answers opened with the service's secret), on no
topic of the broker (every record from the beginning) and in no log line.

The services are the real apps, each on its own database (SQLite files, or PostgreSQL databases), with the real
broker. The journey writes with an ``Idempotency-Key`` wherever it writes: registration, a change of the person,
consents and needs (with a note naming the person), the referral service's case note and plan goal naming the
person, a partner's accept and recognition steps, a course and an education pass printed with the person's name;
a partner's webhook receives the referral events, so that deliveries exist. Before the erasure the same search
finds the person in each of those places (the search can fail); after it, in none of them.

Pseudonymous data (the person id, the ids of the platform's own records, age bands) stays where a service keeps
its tombstone or the skeleton its audit and statistics need; the test prints where and checks what each service
promised to drop: partners' delivery payloads, referral's timeline details and matched facts, every stored answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy import MetaData, func, select
from sqlalchemy.engine import make_url

from chassis import idempotency
from contracts import referral as referral_events
from contracts.vocabulary import ServiceType
from services.courses.app import create_app as create_courses
from services.courses.models import Learner
from services.monitoring.app import create_app as create_monitoring
from services.monitoring.models import Person as MonitoringPerson
from services.partners.app import create_app as create_partners
from services.partners.models import ErasedPerson, WebhookDelivery
from services.referral.app import create_app as create_referral
from services.referral.handlers import KEPT_AFTER_ERASURE
from services.referral.models import Case, KnownPerson, Referral, TimelineEntry
from services.registration.app import create_app as create_registration
from tests.conftest import (
    IDEMPOTENCY_SECRET,
    REFERRAL_NEEDS,
    course_body,
    courses_settings,
    eventually,
    partners_settings,
    referral_settings,
    registration_settings,
    running_app,
)
from tests.reliability.test_partner_webhooks import Receiver
from tests.service.test_monitoring_api import monitoring_settings

VERBOSE = {"log_level": "DEBUG"}  # the services log the most they ever would: all of it is searched

#: Every service with a database, as this test starts it. Adding a service to the search is one line here.
SERVICES: dict[str, Callable[[str, str, dict[str, Any]], FastAPI]] = {
    "registration": lambda db, kafka, made: create_registration(registration_settings(db, kafka, **VERBOSE)),
    "referral": lambda db, kafka, made: create_referral(referral_settings(db, kafka, demo_data=True, **VERBOSE)),
    "partners": lambda db, kafka, made: create_partners(
        partners_settings(db, kafka, demo_data=True, webhook_allow_private_addresses=True, **VERBOSE)
    ),
    # Courses asks registration for the pass holder's name: in-process here.
    "courses": lambda db, kafka, made: create_courses(
        courses_settings(db, kafka, **VERBOSE), registration_transport=httpx.ASGITransport(app=made["registration"])
    ),
    "monitoring": lambda db, kafka, made: create_monitoring(monitoring_settings(db, kafka, **VERBOSE)),
}


VHS, IHK = "vhs-landsberg", "ihk-muenchen-oberbayern"
CONSENTS = [
    {"partner_category": "adult_education", "purpose": "course_enrolment"},
    {"partner_category": "chamber", "purpose": "qualification_recognition"},
]
ADMIN = {"X-Role": "admin", "X-Actor": "user:admin"}
REFERRAL_EVENT_TYPES = sorted(
    event.event_type for event in referral_events.EVENTS if event.topic == referral_events.REFERRALS_TOPIC
)


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass(frozen=True)
class Newcomer:
    """A person whose every identifying value is unique to this test (ASCII, so JSON never escapes it)."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    birth_date: date = field(default_factory=lambda: date(1950, 1, 1) + timedelta(days=random.randrange(18_000)))
    phone_number: str = field(default_factory=lambda: f"{random.randrange(10**6, 10**7)}")

    @property
    def given_names(self) -> str:
        return f"Mirela Ysolde{self.token}"

    @property
    def family_name(self) -> str:
        return f"Quenstedt{self.token}"

    @property
    def street(self) -> str:
        return f"Ybarraweg{self.token}"

    @property
    def phone(self) -> str:
        return f"+49 8191 {self.phone_number}"

    @property
    def email(self) -> str:
        return f"mirela.{self.token}@example.org"

    def registration(self) -> dict[str, Any]:
        return {
            "given_names": self.given_names,
            "family_name": self.family_name,
            "birth_date": self.birth_date.isoformat(),
            "gender": "female",
            "nationality": "SY",
            "languages": ["ar", "en"],
            "preferred_language": "ar",
            "residence_status_group": "recognised_refugee",
            "arrival_date": "2026-09-02",
            "phone": self.phone,
            "email": self.email,
            "address": {
                "street": self.street,
                "house_number": "12",
                "postal_code": "86899",
                "district": "Schwaighofsiedlung",
            },
        }

    def needles(self) -> dict[str, str]:
        """What must not be found, by name; lower case (the search is case-blind), in the forms a service might
        write it (the birth date also as a German date, the phone number also without spaces)."""
        values = {
            "given names": self.given_names,
            "given name token": f"Ysolde{self.token}",
            "family name": self.family_name,
            "birth date": self.birth_date.isoformat(),
            "birth date (de)": self.birth_date.strftime("%d.%m.%Y"),
            "street": self.street,
            "phone": self.phone,
            "phone (compact)": self.phone.replace(" ", ""),
            "email": self.email,
        }
        return {name: value.lower() for name, value in values.items()}


# --- the search -------------------------------------------------------------------------------------------


@dataclass
class Search:
    needles: dict[str, str]
    findings: set[tuple[str, ...]] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def look(self, text: str, *where: str) -> None:
        lowered = text.lower()
        for name, needle in self.needles.items():
            if needle in lowered:
                self.findings.add((*where, name))

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def places(self, depth: int = 2) -> set[tuple[str, ...]]:
        return {finding[:depth] for finding in self.findings}


def as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def search_databases(apps: dict[str, FastAPI], search: Search) -> None:
    """Every value of every column of every table of every service's database; a stored idempotent answer is
    opened with the service's secret (sealed, it would hide whatever it holds from a text search)."""
    bodies = idempotency.SealedBodies(IDEMPOTENCY_SECRET)
    for service, app in apps.items():
        engine = app.state.runtime.engine
        metadata = MetaData()
        async with engine.connect() as conn:
            await conn.run_sync(metadata.reflect)
            search.count("databases")
            for table in metadata.sorted_tables:
                search.count("tables")
                for row in (await conn.execute(select(table))).mappings():
                    search.count("rows")
                    for column, value in row.items():
                        if value is None:
                            continue
                        search.count("values")
                        if table.name == idempotency.TABLE_NAME and column == "body":
                            opened = bodies.open(row["scope"], bytes(value))
                            assert opened is not None, f"{service}: a stored answer the test cannot open"
                            value = opened
                        search.look(as_text(value), "database", service, table.name, column)


async def search_broker(bootstrap: str, search: Search) -> None:
    """Every record of every topic on the broker, from the beginning: key, value and headers."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + 60
        while remaining:
            assert asyncio.get_running_loop().time() < deadline, f"could not read to the end of {sorted(remaining)}"
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                for record in records:
                    search.count("records")
                    where = ("broker", record.topic)
                    search.look(as_text(record.key or b""), *where, "key")
                    search.look(as_text(record.value or b""), *where, "value")
                    for name, value in record.headers:
                        search.look(as_text(value), *where, f"header {name}")
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        search.count("topics", len(topics))
    finally:
        await consumer.stop()


class Lines(logging.Handler):
    """Every log record of every service (and library) in this process, as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with the traceback of an exception, as it would be written


def search_logs(lines: Lines, search: Search) -> None:
    for line in lines.lines:
        search.count("log lines")
        search.look(line, "log", "line")


# --- the services -------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Any, postgres_server: str | None
) -> AsyncIterator[dict[str, str]]:
    """One fresh database per service: SQLite files, or PostgreSQL databases made (and dropped) for this test."""
    if request.param == "sqlite":
        yield {name: f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in SERVICES}
        return
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    names = {service: f"erasure_{service}_{uuid.uuid4().hex[:8]}" for service in SERVICES}
    admin = await asyncpg.connect(postgres_server)
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    server = make_url(postgres_server).set(drivername="postgresql+asyncpg")
    yield {service: server.set(database=name).render_as_string(hide_password=False) for service, name in names.items()}
    admin = await asyncpg.connect(postgres_server)
    try:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class Platform:
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    lines: Lines

    def __getattr__(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]

    async def scalar(self, service: str, statement: Any) -> Any:
        async with self.apps[service].state.runtime.session_factory() as session:
            return await session.scalar(statement)

    async def scalars(self, service: str, statement: Any) -> list[Any]:
        async with self.apps[service].state.runtime.session_factory() as session:
            return list((await session.scalars(statement)).all())


@pytest.fixture
async def platform(databases: dict[str, str], broker: Any) -> AsyncIterator[Platform]:
    apps: dict[str, Any] = {}
    for name, make in SERVICES.items():  # in order: a service may need one made before it
        apps[name] = make(databases[name], broker.bootstrap_servers, apps)
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():  # one at a time: Alembic's migration context is process-global
            clients[name] = await stack.enter_async_context(running_app(app))
        lines = Lines()
        root = logging.getLogger()
        root.addHandler(lines)  # after the services' start: their logging set-up replaces the root's handlers
        try:
            yield Platform(apps, clients, lines)
        finally:
            root.removeHandler(lines)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    await made.stop()


def created(reply: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    return body


# --- the journey, the erasure, the search -------------------------------------------------------------------


async def journey(p: Platform, receiver: Receiver, person: Newcomer) -> tuple[str, dict[str, Any]]:
    """Registration to a partner's referral, a course and an education pass; every write with an Idempotency-Key.
    Returns the person id and the case (with its referrals)."""
    created(
        await p.partners.post(
            f"/api/v1/partners/{VHS}/webhooks",
            headers={"X-Partner-Id": VHS} | key(),
            json={"url": receiver.url, "event_types": REFERRAL_EVENT_TYPES},
        )
    )
    course = created(await p.courses.post("/api/v1/courses", headers=key(), json=course_body(capacity=10)))

    registering = key()
    first = await p.registration.post("/api/v1/registrations", headers=registering, json=person.registration())
    person_id = str(created(first)["person_id"])
    again = await p.registration.post("/api/v1/registrations", headers=registering, json=person.registration())
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    read = await p.registration.get(f"/api/v1/persons/{person_id}")
    changed = await p.registration.patch(
        f"/api/v1/persons/{person_id}",
        headers={"If-Match": read.headers["etag"]} | key(),
        json={"languages": ["ar", "en", "de"]},
    )
    assert created(changed, 200)["family_name"] == person.family_name  # the stored answer holds the whole record
    for consent in CONSENTS:
        created(await p.registration.post(f"/api/v1/persons/{person_id}/consents", headers=key(), json=consent))
    needs = REFERRAL_NEEDS | {"notes": f"Mrs {person.family_name} asks for a morning course."}
    created(await p.registration.post(f"/api/v1/persons/{person_id}/needs-assessments", headers=key(), json=needs))

    async def case_with_referrals_sent() -> dict[str, Any] | None:
        cases = (await p.referral.get("/api/v1/cases", params={"person_id": person_id})).json()["items"]
        if not cases:
            return None
        case: dict[str, Any] = (await p.referral.get(f"/api/v1/cases/{cases[0]['case_id']}")).json()
        sent = {r["partner_id"] for r in case["referrals"] if r["status"] == "sent"}
        return case if {VHS, IHK} <= sent else None

    case = await eventually(case_with_referrals_sent)
    case_id = case["case_id"]
    created(
        await p.referral.post(
            f"/api/v1/cases/{case_id}/notes",
            headers=key(),
            json={"text": f"Called {person.given_names}; prefers the morning course."},
        )
    )
    created(
        await p.referral.post(
            f"/api/v1/cases/{case_id}/goals",
            headers=key(),
            json={"dimension": "placement", "title": f"{person.family_name}: nursing job"},
        )
    )
    # The VHS has two of her referrals, the integration course and the course with childcare (in no fixed order on
    # PostgreSQL): it accepts the integration course's, which the course made above fits (it offers no childcare).
    by_partner = {
        r["partner_id"]: r["referral_id"]
        for r in case["referrals"]
        if r["status"] == "sent" and (r["partner_id"] != VHS or r["service_type"] == ServiceType.INTEGRATION_COURSE)
    }
    created(
        await p.referral.post(
            f"/api/v1/partner/referrals/{by_partner[VHS]}/accept", headers={"X-Partner-Id": VHS} | key()
        ),
        200,
    )
    for step, body in (("accept", None), ("start", None), ("complete", {"outcome": "successful"})):
        reply = await p.referral.post(
            f"/api/v1/partner/referrals/{by_partner[IHK]}/{step}", headers={"X-Partner-Id": IHK} | key(), json=body
        )
        created(reply, 200)

    async def enrolled() -> bool:
        rows = (await p.courses.get(f"/api/v1/learners/{person_id}/enrolments")).json()
        return any(e["status"] == "enrolled" and e["course_id"] == course["course_id"] for e in rows)

    async def recognised() -> bool:
        return bool((await p.courses.get(f"/api/v1/learners/{person_id}/education-pass/entries")).json())

    await eventually(enrolled)
    await eventually(recognised)
    # The holder's name comes from registration (audited there), never from the request.
    issued = created(await p.courses.post(f"/api/v1/learners/{person_id}/education-pass", headers=key(), json={}))
    assert person.family_name in json.dumps(issued)

    async def delivered() -> bool:
        kinds = {json.loads(r.body)["type"].split(".")[-2] for r in receiver.about({by_partner[VHS]})}
        pending = await p.scalar(
            "partners", select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
        )
        return {"referral_sent", "referral_accepted", "referral_started"} <= kinds and pending == 0

    await eventually(delivered)
    return person_id, case


async def erase(p: Platform, person_id: str) -> None:
    """As an admin, with the reason the erasure asks for (sent as the query; a body is not needed then)."""
    reply = await p.registration.delete(
        f"/api/v1/persons/{person_id}",
        params={"reason": "the data subject's request (GDPR Art. 17)"},
        headers=ADMIN | key(),
    )
    assert reply.status_code == 204, reply.text


async def settled(p: Platform, receiver: Receiver, person_id: str, case: dict[str, Any]) -> None:
    """Wait until every service has heard of the erasure and everything it caused has been published and
    delivered (the referrals' revocation reaches the partner's webhook)."""
    vhs_referral = next(r["referral_id"] for r in case["referrals"] if r["partner_id"] == VHS)

    async def everywhere() -> list[str]:
        waiting = []
        known = await p.scalar("referral", select(KnownPerson.status).where(KnownPerson.person_id == person_id))
        closed = await p.scalar("referral", select(Case.close_reason).where(Case.person_id == person_id))
        if (known, closed) != ("erased", "erased"):
            waiting.append("referral")
        if not await p.scalar("courses", select(Learner.erased).where(Learner.person_id == person_id)):
            waiting.append("courses")
        if not await p.scalar(
            "monitoring", select(MonitoringPerson.erased).where(MonitoringPerson.person_id == person_id)
        ):
            waiting.append("monitoring")
        tombstone = select(ErasedPerson.person_id).where(ErasedPerson.person_id == person_id)
        if await p.scalar("partners", tombstone) is None:
            waiting.append("partners")
        kinds = {json.loads(r.body)["type"].split(".")[-2] for r in receiver.about({vhs_referral})}
        if "referral_revoked" not in kinds:
            waiting.append("the partner's webhook")
        for service, app in p.apps.items():
            outbox = app.state.runtime.tables.outbox
            if await p.scalar(service, select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))):
                waiting.append(f"{service}'s outbox")
        if await p.scalar(
            "partners", select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
        ):
            waiting.append("webhook deliveries")
        return waiting

    async def nothing_waits() -> bool:
        return not await everywhere()

    try:
        await eventually(nothing_waits, timeout_s=60)
    except AssertionError as exc:
        raise AssertionError(f"still waiting for {await everywhere()}") from exc
    await asyncio.sleep(1.0)  # the consumers' last handlers (events about events) finish


async def test_after_erasure_no_service_database_topic_or_log_line_holds_the_person(
    platform: Platform, receiver: Receiver, broker: Any
) -> None:
    p = platform
    person = Newcomer()
    person_id, case = await journey(p, receiver, person)

    # Before: the search finds the person where the journey put them, also inside stored (sealed) answers.
    before = Search(person.needles())
    await search_databases(p.apps, before)
    expected = {
        ("database", "registration", "persons"),
        ("database", "registration", "needs_assessments"),
        ("database", "registration", "idempotency_keys"),
        ("database", "referral", "case_notes"),
        ("database", "referral", "goals"),
        ("database", "referral", "idempotency_keys"),
        ("database", "courses", "issued_passes"),
        ("database", "courses", "idempotency_keys"),
    }
    assert expected <= before.places(3), f"the search missed {sorted(expected - before.places(3))}"

    await erase(p, person_id)
    await settled(p, receiver, person_id, case)

    after = Search(person.needles())
    await search_databases(p.apps, after)
    await search_broker(broker.bootstrap_servers, after)
    search_logs(p.lines, after)
    print(
        f"\nerasure search: {after.counts['databases']} databases, {after.counts['tables']} tables, "
        f"{after.counts['rows']} rows, {after.counts['values']} values; {after.counts['topics']} topics, "
        f"{after.counts.get('records', 0)} records; {after.counts.get('log lines', 0)} log lines"
    )
    for finding in sorted(after.findings):
        print("  still found:", " / ".join(finding))
    assert after.findings == set(), f"found after the erasure: {sorted(after.findings)}"
    assert after.counts["rows"] > 100 and after.counts["records"] > 20 and after.counts["log lines"] > 20

    await pseudonym_kept_only_as_skeleton(p, person_id, case)


async def pseudonym_kept_only_as_skeleton(p: Platform, person_id: str, case: dict[str, Any]) -> None:
    """The pseudonym may stay in tombstones and skeletons; what each service promised to drop is gone."""
    ids = Search({"person id": person_id.lower(), "case id": case["case_id"].lower()})
    await search_databases(p.apps, ids)
    print("  the pseudonym stays in:", ", ".join(sorted(".".join(f[1:4]) for f in ids.findings if f[4] == "person id")))
    # No stored answer about the person or their case anywhere.
    stored = {f[1] for f in ids.findings if f[2] == idempotency.TABLE_NAME}
    assert stored == set(), stored
    # Partners: the deliveries stay in the partner's log, without payload or person.
    deliveries = await p.scalars("partners", select(WebhookDelivery))
    assert deliveries and all(d.erased_at is not None and d.payload == "" and d.person_id is None for d in deliveries)
    assert not {f for f in ids.findings if f[1:3] == ("partners", "webhook_deliveries")}
    # Referral: the timeline says what happened when; the referrals keep their course, not the matched facts.
    entries = await p.scalars("referral", select(TimelineEntry).where(TimelineEntry.person_id == person_id))
    assert entries and all(set(e.summary) <= KEPT_AFTER_ERASURE for e in entries)
    referrals = await p.scalars("referral", select(Referral).where(Referral.person_id == person_id))
    assert referrals and all(r.matched_facts == {} for r in referrals)
    assert {r.status for r in referrals} <= {"revoked", "completed", "declined", "expired", "referred_elsewhere"}
