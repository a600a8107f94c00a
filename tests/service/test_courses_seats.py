"""Seats, waiting lists and offers under load and over time; completion fills the education pass."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from contracts.courses import ENROLMENTS_TOPIC, PASSES_TOPIC
from services.courses.app import check_offers, create_app
from tests.conftest import ManualClock, consume, course_body, courses_settings, running_app

PRIORITY = "integration_course_obligation"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def courses(database_url: str, broker: Any, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(courses_settings(database_url, broker.bootstrap_servers, database_pool_size=10), clock=clock)
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def test_fifty_concurrent_requests_for_twelve_seats_never_overbook(courses: httpx.AsyncClient) -> None:
    course = (await courses.post("/api/v1/courses", json=course_body(capacity=12))).json()["course_id"]
    people = [(f"person-{i:02d}", i % 3 == 0) for i in range(50)]  # every third has a course obligation

    async def request(person: str, obligation: bool) -> httpx.Response:
        body = {"person_id": person, "integration_course_obligation": obligation}
        return await courses.post(f"/api/v1/courses/{course}/enrolments", json=body)

    replies = await asyncio.gather(*(request(p, o) for p, o in people))
    assert [r.status_code for r in replies] == [201] * 50, [r.text for r in replies if r.status_code != 201][:2]

    listed = (await courses.get(f"/api/v1/courses/{course}/enrolments")).json()
    enrolled = [e for e in listed if e["status"] == "enrolled"]
    waiting = [e for e in listed if e["status"] == "waitlisted"]
    assert len(enrolled) == 12 and len(waiting) == 38
    assert (await courses.get(f"/api/v1/courses/{course}")).json()["free_seats"] == 0

    # The documented order: the obligation first, then the moment of the request, then the id.
    assert [e["position"] for e in waiting] == list(range(1, 39))
    expected = sorted(
        waiting, key=lambda e: (PRIORITY not in e["priority_flags"], e["requested_at"], e["enrolment_id"])
    )
    assert [e["enrolment_id"] for e in waiting] == [e["enrolment_id"] for e in expected]


async def test_a_freed_seat_is_offered_in_turn_and_passes_on_when_the_offer_expires(
    courses: httpx.AsyncClient, clock: ManualClock
) -> None:
    course = (await courses.post("/api/v1/courses", json=course_body(capacity=1))).json()["course_id"]
    url = f"/api/v1/courses/{course}/enrolments"
    first, second, third = [(await courses.post(url, json={"person_id": p})).json() for p in ("ana", "ben", "cem")]
    assert [first["status"], second["status"], third["status"]] == ["enrolled", "waitlisted", "waitlisted"]
    assert (second["position"], third["position"]) == (1, 2)

    cancelled = await courses.post(f"{url}/{first['enrolment_id']}/cancel", json={"reason": "by_person"})
    assert cancelled.json()["status"] == "cancelled"
    states = {e["person_id"]: e for e in (await courses.get(url)).json()}
    assert states["ben"]["status"] == "offered" and states["cem"]["status"] == "waitlisted"

    clock.advance(hours=71)
    assert await check_offers(courses.app.state.runtime) == 0  # type: ignore[attr-defined]
    clock.advance(hours=2)  # past the 72 hours the offer is held
    assert await check_offers(courses.app.state.runtime) == 1  # type: ignore[attr-defined]
    states = {e["person_id"]: e for e in (await courses.get(url)).json()}
    assert states["ben"]["status"] == "offer_expired" and states["cem"]["status"] == "offered"

    late = await courses.post(f"{url}/{states['ben']['enrolment_id']}/accept-offer")
    assert late.status_code == 409
    accepted = await courses.post(f"{url}/{states['cem']['enrolment_id']}/accept-offer")
    assert accepted.status_code == 200 and accepted.json()["status"] == "enrolled"
    assert (await courses.get(f"/api/v1/courses/{course}")).json()["free_seats"] == 0


async def test_completing_a_course_adds_pass_entries_and_publishes_the_events(
    courses: httpx.AsyncClient, broker: Any
) -> None:
    course = (await courses.post("/api/v1/courses", json=course_body(capacity=5))).json()["course_id"]
    person = f"learner-{uuid.uuid4().hex[:8]}"
    enrolment = (await courses.post(f"/api/v1/courses/{course}/enrolments", json={"person_id": person})).json()
    done = await courses.post(
        f"/api/v1/courses/{course}/enrolments/{enrolment['enrolment_id']}/completion",
        json={"result": "passed", "certificate": "DTZ B1", "completed_on": "2026-11-20"},
    )
    assert done.status_code == 200, done.text
    kinds = [e["kind"] for e in (await courses.get(f"/api/v1/learners/{person}/education-pass/entries")).json()]
    assert sorted(kinds) == ["certificate", "course", "language_level"]

    def completed(records: list[Any]) -> list[Any]:
        return [
            r
            for r in records
            if json.loads(r.value).get("person_id") == person
            and dict(r.headers)["ce_type"].endswith(b"course_completed.v1")
        ]

    completions = completed(await consume(broker.bootstrap_servers, ENROLMENTS_TOPIC, until=lambda rs: completed(rs)))
    assert json.loads(completions[0].value)["level_reached"] == "B1"

    def entries(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == person.encode()]

    added = entries(await consume(broker.bootstrap_servers, PASSES_TOPIC, until=lambda rs: len(entries(rs)) >= 3))
    assert sorted(json.loads(r.value)["kind"] for r in added) == ["certificate", "course", "language_level"]
