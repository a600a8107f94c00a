"""Wiring of the courses service: settings, the pass signing key, the offer clock, demo courses.

Run: ``uvicorn --factory services.courses.app:create_app``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from fastapi import FastAPI
from sqlalchemy import func, select

from chassis import identity
from chassis.clock import Clock, run_every, system_clock
from chassis.identity import Signer
from chassis.service import ServiceRuntime, ServiceSpec, create_service_app
from chassis.settings import DEVELOPMENT_SECRET
from contracts import courses as events
from services.courses import api, workflow
from services.courses.handlers import CONSUMED_TOPICS, make_handlers
from services.courses.models import Course, CourseSession, messaging
from services.courses.runtime import CoursesRuntime, CoursesSettings, PassKeys

log = logging.getLogger(__name__)


def pass_key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def load_pass_keys(settings: CoursesSettings) -> PassKeys:
    secret = settings.pass_signing_key.get_secret_value()
    if secret != DEVELOPMENT_SECRET:
        private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret))
    else:  # development only: the settings refuse this marker anywhere else
        path = settings.dev_signing_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(raw).decode())
        private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))
    public = private.public_key()
    verifying = [(public, pass_key_id(public))]
    for other in identity.public_keys(settings.pass_verify_public_keys or ""):
        if pass_key_id(other) not in {kid for _, kid in verifying}:
            verifying.append((other, pass_key_id(other)))
    return PassKeys(private, public, pass_key_id(public), tuple(verifying))


def demo_courses(today: datetime) -> list[dict[str, object]]:
    """VHS Landsberg's kind of offer, for the demo: dates are made relative to today."""
    monday = (today + timedelta(days=7 - today.weekday())).date()

    def weekly(weekday: int, start: time, hours: float, count: int) -> list[dict[str, datetime]]:
        first = datetime.combine(monday + timedelta(days=weekday), start, tzinfo=UTC)
        return [
            {"starts_at": first + timedelta(weeks=i), "ends_at": first + timedelta(weeks=i, hours=hours)}
            for i in range(count)
        ]

    return [
        {
            "title": "Integrationskurs A1 bis B1 (Vormittag)",
            "category": "integration_course",
            "target_level": "B1",
            "funding": "bamf",
            "capacity": 20,
            "sessions": weekly(0, time(8, 30), 4, 12),
        },
        {
            "title": "Deutsch A2 mit Kinderbetreuung",
            "category": "german_second_language",
            "target_level": "B1",
            "funding": "city",
            "capacity": 12,
            "childcare_offered": True,
            "sessions": weekly(1, time(9, 0), 3, 10),
        },
        {
            "title": "Frauenkurs: Deutsch im Alltag",
            "category": "parents_and_women",
            "target_level": "A2",
            "funding": "city",
            "capacity": 10,
            "childcare_offered": True,
            "women_only": True,
            "sessions": weekly(3, time(9, 0), 2, 8),
        },
        {
            "title": "Berufssprachkurs Pflege B2",
            "category": "job_german",
            "target_level": "B2",
            "funding": "bamf",
            "capacity": 15,
            "sessions": weekly(2, time(17, 0), 3, 10),
        },
        {
            "title": "English for everyday life",
            "category": "english",
            "funding": "fee",
            "fee_euro": 60,
            "capacity": 14,
            "language_of_instruction": "en",
            "sessions": weekly(4, time(18, 0), 2, 8),
        },
        {
            "title": "Gesund in Landsberg: Gesundheitssystem verstehen",
            "category": "health",
            "funding": "city",
            "capacity": 16,
            "sessions": weekly(2, time(10, 0), 2, 3),
        },
        {
            "title": "Demokratie und Zusammenleben",
            "category": "civic_education",
            "funding": "city",
            "capacity": 18,
            "sessions": weekly(3, time(18, 30), 2, 4),
        },
    ]


async def seed_demo(runtime: ServiceRuntime, now: datetime) -> None:
    """With DEMO_DATA: the demo courses into an empty catalogue."""
    async with runtime.unit_of_work() as uow:
        if await uow.session.scalar(select(func.count()).select_from(Course)):
            return
        for spec in demo_courses(now):
            sessions = spec.pop("sessions")
            course = Course(
                id=str(uuid.uuid4()),
                status="scheduled",
                version=1,
                created_at=now,
                updated_at=now,
                provider_id="vhs-landsberg",
                language_of_instruction=spec.pop("language_of_instruction", "de"),
                childcare_offered=spec.pop("childcare_offered", False),
                women_only=spec.pop("women_only", False),
                location="VHS Landsberg am Lech",
                district="Altstadt",
                **spec,
            )
            uow.session.add(course)
            rows = [
                CourseSession(id=str(uuid.uuid4()), course_id=course.id, place=course.location, **s)
                for s in sessions  # type: ignore[attr-defined]
            ]
            uow.session.add_all(rows)
            await uow.session.flush()
            await uow.publish(events.CourseScheduled(**workflow.course_facts(course, rows)))
        await uow.commit()


async def check_offers(runtime: ServiceRuntime) -> int:
    settings: CoursesSettings = runtime.settings  # type: ignore[assignment]
    async with runtime.unit_of_work() as uow:
        w = workflow.Workflow(
            uow=uow,
            now=runtime.clock(),
            offer_hours=settings.offer_hours,
            priorities=tuple(settings.waitlist_priorities),
        )
        expired = await workflow.expire_offers(w)
        await uow.commit()
    return expired


def create_app(
    settings: CoursesSettings | None = None,
    clock: Clock = system_clock,
    registration_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """``registration_transport``: how registration is reached (tests route it in-process); by default over the
    network at ``registration_url``."""
    settings = settings or CoursesSettings()

    async def on_startup(runtime: ServiceRuntime) -> None:
        runtime.own = CoursesRuntime(
            identity=Signer(settings.identity_signing_key(), "courses"),
            pass_keys=await asyncio.to_thread(load_pass_keys, settings),
            registration_transport=registration_transport,
        )
        if settings.demo_data:
            await seed_demo(runtime, clock())
        checks = run_every(settings.offer_check_interval_seconds, lambda: check_offers(runtime), "seat offer check")
        runtime.start_task(checks, "courses-offers")

    spec = ServiceSpec(
        name="courses",
        title="Courses service",
        description="VHS course catalogue, fair enrolment and waiting lists, attendance, the education pass.",
        tables=messaging,
        migrations_dir=Path(__file__).parent / "migrations",
        published_topics=[events.COURSES_TOPIC, events.ENROLMENTS_TOPIC, events.PASSES_TOPIC],
        routers=[api.router],
        handlers=lambda runtime: make_handlers(runtime.clock, settings),
        consumed_topics=CONSUMED_TOPICS,
        clock=clock,
        on_startup=on_startup,
    )
    return create_service_app(spec, settings)
