"""Behaviour of the courses service's HTTP API: the real app (migrations, outbox relay, consumer) on a real
database and the session's broker, over ASGI, with a clock the test holds."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from chassis.embedded_broker import EmbeddedBroker
from contracts.calendar import local_day
from services.courses import domain
from services.courses.app import create_app
from services.courses.models import Course, CourseSession, IssuedPass, Learner, PassStatus
from services.registration.app import create_app as create_registration
from tests.conftest import ManualClock, courses_settings, newcomer, ok, registration_settings, running_app

PROBLEM_JSON = "application/problem+json"
COURSES = "/api/v1/courses"
MONDAY = datetime(2030, 3, 4, tzinfo=UTC)  # far ahead: the course dates never meet the real clock
CODE = re.compile(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")
COURSE_READ_FIELDS = {
    "course_id",
    "title",
    "description",
    "category",
    "target_level",
    "language_of_instruction",
    "provider_id",
    "capacity",
    "free_seats",
    "waiting",
    "childcare_offered",
    "women_only",
    "min_age",
    "max_age",
    "funding",
    "fee_euro",
    "enrolment_opens_on",
    "enrolment_closes_on",
    "location",
    "district",
    "status",
    "sessions",
}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def courses(database_url: str, broker: EmbeddedBroker, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """The real courses app on a fresh database; ``client.app`` is the app."""
    settings = courses_settings(database_url, broker.bootstrap_servers)
    app = create_app(settings, clock=clock)
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def registered(
    database_url: str, broker: EmbeddedBroker, clock: ManualClock, tmp_path: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(courses, registration): the courses app asks the real registration app (on its own SQLite database,
    reached in-process) for a pass holder's name, in its own signed name."""
    registration_app = create_registration(
        registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", broker.bootstrap_servers)
    )
    app = create_app(
        courses_settings(database_url, broker.bootstrap_servers),
        clock=clock,
        registration_transport=httpx.ASGITransport(app=registration_app),
    )
    async with running_app(registration_app) as registration, running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client, registration


async def register(registration: httpx.AsyncClient, **person: Any) -> str:
    reply = await registration.post("/api/v1/registrations", json=newcomer(**person))
    assert reply.status_code == 201, reply.text
    return str(reply.json()["person_id"])


def slot(day: int, hour: float, hours: float = 2.0) -> dict[str, str]:
    """A session ``day`` days after MONDAY from ``hour`` o'clock for ``hours`` hours."""
    start = MONDAY + timedelta(days=day, hours=hour)
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=hours)).isoformat()}


def course_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Integrationskurs A1 bis B1",
        "category": "integration_course",
        "target_level": "B1",
        "funding": "bamf",
        "capacity": 12,
        "sessions": [slot(0, 9), slot(7, 9)],
    }
    body.update(overrides)
    return body


def person() -> str:
    return f"person-{uuid.uuid4().hex[:12]}"


def assert_problem(reply: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The reply is RFC 9457 Problem Details with ``status`` (and the problem type ``kind``)."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM_JSON), reply.headers["content-type"]
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"] and body["type"] and body["detail"]
    if kind is not None:
        assert body["type"].endswith(f"/{kind}"), body
    return body


async def schedule(courses: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(await courses.post(COURSES, json=course_body(**overrides)), 201)
    return result


async def enrol(courses: httpx.AsyncClient, course_id: str, person_id: str) -> httpx.Response:
    return await courses.post(f"{COURSES}/{course_id}/enrolments", json={"person_id": person_id})


async def know_learner(courses: httpx.AsyncClient, person_id: str, gender: str, **facts: Any) -> None:
    """Make the person known to the courses service, as registration's events would."""
    async with courses.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        session.add(
            Learner(
                person_id=person_id,
                gender=gender,
                age_band=facts.get("age_band"),
                german_level=facts.get("german_level"),
                childcare_needed=False,
                profile_version=1,
                needs_version=1,
                erased=False,
            )
        )
        await session.commit()


async def row_counts(courses: httpx.AsyncClient) -> tuple[int, int, int]:
    """(courses, sessions, outbox rows) as stored."""
    runtime = courses.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.session_factory() as session:
        return (
            await session.scalar(select(func.count()).select_from(Course)) or 0,
            await session.scalar(select(func.count()).select_from(CourseSession)) or 0,
            await session.scalar(select(func.count()).select_from(runtime.tables.outbox)) or 0,
        )


async def catalogue(courses: httpx.AsyncClient, **params: Any) -> list[str]:
    """The course ids the public catalogue lists for these filters."""
    body = ok(await courses.get(COURSES, params=params))
    assert body["total"] == len(body["items"])
    return [c["course_id"] for c in body["items"]]


async def complete_with_certificate(
    courses: httpx.AsyncClient, clock: ManualClock, person_id: str | None = None
) -> tuple[str, str, str]:
    """A learner enrolled in a German course and passed it with "DTZ B1": (person, course, enrolment)."""
    course = await schedule(courses, title="Deutsch B1", category="german_second_language", target_level="B1")
    person_id = person_id or person()
    enrolment = ok(await enrol(courses, course["course_id"], person_id), 201)
    body = {"result": "passed", "certificate": "DTZ B1", "completed_on": clock().date().isoformat()}
    url = f"{COURSES}/{course['course_id']}/enrolments/{enrolment['enrolment_id']}/completion"
    completed = ok(await courses.post(url, json=body))
    assert (completed["status"], completed["result"], completed["certificate"]) == ("completed", "passed", "DTZ B1")
    return person_id, course["course_id"], enrolment["enrolment_id"]


# --- the catalogue ----------------------------------------------------------------------------


async def test_demo_courses_only_with_demo_data(database_url: str, broker: EmbeddedBroker) -> None:
    async def catalogue(**overrides: Any) -> int:
        app = create_app(courses_settings(database_url, broker.bootstrap_servers, **overrides))
        async with running_app(app) as client:
            total: int = (await client.get(COURSES)).json()["total"]
            return total

    assert await catalogue() == 0
    assert await catalogue(demo_data=True) >= 5, "the VHS demo courses"


async def test_a_scheduled_course_is_in_the_public_catalogue_with_free_seats_and_no_personal_data(
    courses: httpx.AsyncClient,
) -> None:
    sessions = [slot(7, 9), slot(0, 9, hours=3)]  # given out of order
    created = await schedule(courses, capacity=3, sessions=sessions, childcare_offered=True)
    assert created["status"] == "scheduled"
    assert (created["capacity"], created["free_seats"], created["waiting"]) == (3, 3, 0)
    assert (created["category"], created["target_level"], created["funding"]) == ("integration_course", "B1", "bamf")
    assert created["childcare_offered"] is True and created["women_only"] is False
    starts = [datetime.fromisoformat(s["starts_at"]) for s in created["sessions"]]
    assert starts == [MONDAY + timedelta(hours=9), MONDAY + timedelta(days=7, hours=9)]  # in time order
    assert datetime.fromisoformat(created["sessions"][0]["ends_at"]) == MONDAY + timedelta(hours=12)
    assert all(s["session_id"] for s in created["sessions"])

    learner = person()
    assert ok(await enrol(courses, created["course_id"], learner), 201)["status"] == "enrolled"

    reply = await courses.get(COURSES)
    listed = ok(reply)
    assert listed["total"] == 1 and (listed["page"], listed["page_size"]) == (1, 50)
    item = listed["items"][0]
    assert item["course_id"] == created["course_id"]
    assert (item["free_seats"], item["waiting"]) == (2, 0)
    assert set(item) == COURSE_READ_FIELDS
    assert learner not in reply.text
    assert '"person_id"' not in reply.text and '"enrolment_id"' not in reply.text
    single = ok(await courses.get(f"{COURSES}/{created['course_id']}"))
    assert single == item
    assert_problem(await courses.get(f"{COURSES}/{uuid.uuid4()}"), 404, "not-found")


INVALID_COURSES: list[tuple[str, dict[str, Any], str]] = [
    ("capacity 0", {"capacity": 0}, "validation"),
    ("min_age above max_age", {"min_age": 30, "max_age": 18}, "validation"),
    ("a fee without funding 'fee'", {"fee_euro": 60}, "validation"),
    ("funding 'fee' without a fee", {"funding": "fee"}, "validation"),
    ("no sessions", {"sessions": []}, "validation"),
    ("an unknown field", {"unknown_field": 1}, "validation"),
    ("an unknown field in a session", {"sessions": [{**slot(0, 9), "room": "2.14"}]}, "validation"),
    ("overlapping sessions", {"sessions": [slot(0, 9, hours=3), slot(0, 11)]}, "course-sessions-overlap"),
    ("overlapping later sessions", {"sessions": [slot(0, 9), slot(7, 9), slot(7, 10)]}, "course-sessions-overlap"),
    (
        "a session ending before it starts",
        {"sessions": [{"starts_at": slot(0, 12)["starts_at"], "ends_at": slot(0, 9)["starts_at"]}]},
        "course-session-order",
    ),
    (
        "a session without length",
        {"sessions": [{"starts_at": slot(0, 9)["starts_at"], "ends_at": slot(0, 9)["starts_at"]}]},
        "course-session-order",
    ),
]


async def test_an_invalid_course_is_refused_with_problem_details_and_nothing_is_written(
    courses: httpx.AsyncClient,
) -> None:
    for fault, change, kind in INVALID_COURSES:
        problem = assert_problem(await courses.post(COURSES, json=course_body(**change)), 422, kind)
        if kind == "validation":
            assert problem["errors"], (fault, problem)
        assert await row_counts(courses) == (0, 0, 0), fault
    assert await catalogue(courses) == []
    # The same body without a fault is accepted: each refusal was for its fault alone.
    assert ok(await courses.post(COURSES, json=course_body()), 201)["status"] == "scheduled"
    assert await row_counts(courses) == (1, 2, 1)


async def test_a_course_with_a_fee_and_age_limits_is_kept_as_given(courses: httpx.AsyncClient) -> None:
    created = await schedule(
        courses,
        title="English for everyday life",
        category="english",
        target_level=None,
        funding="fee",
        fee_euro=60,
        language_of_instruction="en",
        min_age=18,
        max_age=26,
    )
    stored = ok(await courses.get(f"{COURSES}/{created['course_id']}"))
    assert (stored["funding"], stored["fee_euro"], stored["language_of_instruction"]) == ("fee", 60, "en")
    assert (stored["min_age"], stored["max_age"], stored["target_level"]) == (18, 26, None)


async def test_an_enrolment_window_is_kept_and_enforced(courses: httpx.AsyncClient, clock: ManualClock) -> None:
    today = local_day(clock())  # the city's day, as the service judges it
    window = {
        "enrolment_opens_on": (today - timedelta(days=1)).isoformat(),
        "enrolment_closes_on": (today + timedelta(days=10)).isoformat(),
    }
    open_now = ok(await courses.post(COURSES, json=course_body(**window)), 201)
    assert (open_now["enrolment_opens_on"], open_now["enrolment_closes_on"]) == (
        window["enrolment_opens_on"],
        window["enrolment_closes_on"],
    )
    assert ok(await enrol(courses, open_now["course_id"], person()), 201)["status"] == "enrolled"
    later = await schedule(courses, enrolment_opens_on=(today + timedelta(days=1)).isoformat())
    closed = assert_problem(await enrol(courses, later["course_id"], person()), 422, "course-enrolment-closed")
    assert "not open" in closed["detail"]
    backwards = {"enrolment_opens_on": "2030-02-01", "enrolment_closes_on": "2030-01-01"}
    assert_problem(await courses.post(COURSES, json=course_body(**backwards)), 422, "validation")


async def test_the_catalogue_filters_by_category_women_only_and_childcare(courses: httpx.AsyncClient) -> None:
    integration = (await schedule(courses, childcare_offered=True))["course_id"]
    english = (
        await schedule(courses, title="English", category="english", target_level=None, funding="fee", fee_euro=60)
    )["course_id"]
    women = (
        await schedule(
            courses,
            title="Frauenkurs",
            category="parents_and_women",
            target_level="A2",
            women_only=True,
            childcare_offered=True,
        )
    )["course_id"]
    everything = {integration, english, women}
    assert set(await catalogue(courses)) == everything
    assert await catalogue(courses, category="english") == [english]
    assert await catalogue(courses, category="integration_course") == [integration]
    assert await catalogue(courses, category="health") == []
    assert await catalogue(courses, women_only="true") == [women]
    assert set(await catalogue(courses, women_only="false")) == {integration, english}
    assert set(await catalogue(courses, childcare_offered="true")) == {integration, women}
    assert await catalogue(courses, childcare_offered="false") == [english]
    assert await catalogue(courses, childcare_offered="true", women_only="false") == [integration]
    assert_problem(await courses.get(COURSES, params={"category": "astrology"}), 422, "validation")
    assert_problem(await courses.get(COURSES, params={"childcare_offered": "maybe"}), 422, "validation")

    # The Ortsteil and the language of instruction, for the newcomers' pages; a malformed one is a Problem.
    ok(await courses.patch(f"{COURSES}/{women}", json={"district": "Weststadt"}))
    assert await catalogue(courses, district="Weststadt") == [women]
    assert await catalogue(courses, district="Pitzling") == []
    assert await catalogue(courses, language="en") == []
    assert_problem(await courses.get(COURSES, params={"district": "<b>"}), 422, "validation")
    assert_problem(await courses.get(COURSES, params={"language": "Englisch"}), 422, "validation")
    assert_problem(await courses.post(COURSES, json=course_body(district="42")), 422, "validation")
    assert (await courses.patch(f"{COURSES}/{women}", json={"district": None})).json()["district"] is None

    ok(await courses.post(f"{COURSES}/{english}/cancel"))
    assert set(await catalogue(courses)) == {integration, women}  # only scheduled courses by default
    assert await catalogue(courses, status="cancelled") == [english]


async def test_capacity_cannot_go_below_the_seats_taken(courses: httpx.AsyncClient) -> None:
    course = (await schedule(courses, capacity=2))["course_id"]
    for _ in range(2):
        assert ok(await enrol(courses, course, person()), 201)["status"] == "enrolled"
    problem = assert_problem(
        await courses.patch(f"{COURSES}/{course}", json={"capacity": 1}), 422, "course-capacity-taken"
    )
    assert "2 seats are taken" in problem["detail"] and problem["taken"] == 2
    stored = ok(await courses.get(f"{COURSES}/{course}"))
    assert (stored["capacity"], stored["free_seats"]) == (2, 0)

    assert ok(await courses.patch(f"{COURSES}/{course}", json={"capacity": 2}))["capacity"] == 2  # exactly the seats
    raised = ok(await courses.patch(f"{COURSES}/{course}", json={"capacity": 4, "title": "Mehr Plätze"}))
    assert (raised["capacity"], raised["free_seats"], raised["title"]) == (4, 2, "Mehr Plätze")
    assert_problem(await courses.patch(f"{COURSES}/{course}", json={"capacity": 0}), 422, "validation")
    assert_problem(await courses.patch(f"{COURSES}/{course}", json={"category": "english"}), 422, "validation")


# --- enrolment --------------------------------------------------------------------------------


async def test_a_person_is_enrolled_directly_and_only_once(courses: httpx.AsyncClient) -> None:
    course = (await schedule(courses, capacity=5))["course_id"]
    learner = person()
    enrolment = ok(await enrol(courses, course, learner), 201)
    assert (enrolment["status"], enrolment["person_id"], enrolment["course_id"]) == ("enrolled", learner, course)
    assert enrolment["position"] is None and enrolment["priority_flags"] == []

    assert_problem(await enrol(courses, course, learner), 409, "course-already-enrolled")
    listed = ok(await courses.get(f"{COURSES}/{course}/enrolments"))
    assert [e["enrolment_id"] for e in listed] == [enrolment["enrolment_id"]]
    assert ok(await courses.get(f"{COURSES}/{course}"))["free_seats"] == 4
    mine = ok(await courses.get(f"/api/v1/learners/{learner}/enrolments"))
    assert [e["enrolment_id"] for e in mine] == [enrolment["enrolment_id"]]
    assert_problem(await enrol(courses, str(uuid.uuid4()), learner), 404, "not-found")


async def test_a_person_cannot_take_two_courses_whose_sessions_overlap(courses: httpx.AsyncClient) -> None:
    morning = (await schedule(courses, sessions=[slot(0, 9, hours=3), slot(7, 9, hours=3)]))["course_id"]
    clashing = (await schedule(courses, title="Kurs 2", sessions=[slot(1, 9), slot(7, 11)]))["course_id"]
    afternoon = (await schedule(courses, title="Kurs 3", sessions=[slot(0, 12), slot(7, 12)]))["course_id"]
    learner = person()
    assert ok(await enrol(courses, morning, learner), 201)["status"] == "enrolled"

    problem = assert_problem(await enrol(courses, clashing, learner), 422, "course-sessions-clash")
    assert "overlap" in problem["detail"]
    assert ok(await courses.get(f"{COURSES}/{clashing}/enrolments")) == []
    assert ok(await enrol(courses, afternoon, learner), 201)["status"] == "enrolled"  # it starts as the other ends
    assert ok(await enrol(courses, clashing, person()), 201)["status"] == "enrolled"  # someone else may


async def test_a_women_only_course_refuses_a_man_and_accepts_a_woman(courses: httpx.AsyncClient) -> None:
    course = (await schedule(courses, title="Frauenkurs", category="parents_and_women", women_only=True))["course_id"]
    man, woman = person(), person()
    await know_learner(courses, man, "male")
    await know_learner(courses, woman, "female")

    problem = assert_problem(await enrol(courses, course, man), 422, "course-women-only")
    assert "women only" in problem["detail"] and problem["title"] == "Not possible for this course"
    assert ok(await enrol(courses, course, woman), 201)["status"] == "enrolled"
    listed = ok(await courses.get(f"{COURSES}/{course}/enrolments"))
    assert [e["person_id"] for e in listed] == [woman]


async def test_a_known_learners_german_level_and_age_are_checked(courses: httpx.AsyncClient) -> None:
    course = (await schedule(courses, target_level="B1", min_age=18))["course_id"]
    fluent, young, fitting = person(), person(), person()
    await know_learner(courses, fluent, "male", german_level="B1", age_band="27-44")
    await know_learner(courses, young, "female", german_level="A1", age_band="10-17")
    await know_learner(courses, fitting, "diverse", german_level="A2", age_band="18-26")
    reached = assert_problem(await enrol(courses, course, fluent), 422, "course-level-reached")
    assert "B1" in reached["detail"] and (reached["level"], reached["target"]) == ("B1", "B1")
    assert "also" not in reached  # one rule broken: its type says it all
    too_young = assert_problem(await enrol(courses, course, young), 422, "course-min-age")
    assert "age 18" in too_young["detail"] and too_young["min_age"] == 18
    await know_learner(courses, both := person(), "female", german_level="C1", age_band="10-17")
    twice = assert_problem(await enrol(courses, course, both), 422, "course-level-reached")
    assert (twice["level"], twice["target"]) == ("C1", "B1")
    assert twice["also"] == [{"type": "https://integration.landsberg.de/problems/course-min-age", "min_age": 18}]
    assert ok(await enrol(courses, course, fitting), 201)["status"] == "enrolled"


async def test_attendance_is_recorded_for_a_session_of_the_course_only(courses: httpx.AsyncClient) -> None:
    course = await schedule(courses)
    other = await schedule(courses, title="Anderer Kurs", sessions=[slot(2, 9)])
    enrolment = ok(await enrol(courses, course["course_id"], person()), 201)["enrolment_id"]
    url = f"{COURSES}/{course['course_id']}/enrolments/{enrolment}/attendance"

    own = course["sessions"][0]["session_id"]
    recorded = ok(await courses.post(url, json={"session_id": own, "present": True}), 201)
    assert recorded == {"enrolment_id": enrolment, "session_id": own, "present": True}
    corrected = ok(await courses.post(url, json={"session_id": own, "present": False}), 201)
    assert corrected["present"] is False

    foreign = other["sessions"][0]["session_id"]
    assert_problem(await courses.post(url, json={"session_id": foreign, "present": True}), 404, "not-found")
    assert_problem(await courses.post(url, json={"session_id": str(uuid.uuid4()), "present": True}), 404, "not-found")
    wrong_course = f"{COURSES}/{other['course_id']}/enrolments/{enrolment}/attendance"
    assert_problem(await courses.post(wrong_course, json={"session_id": foreign, "present": True}), 404, "not-found")
    assert_problem(await courses.post(url, json={"session_id": own}), 422, "validation")


# --- completion and the education pass --------------------------------------------------------


async def test_a_passed_completion_with_a_certificate_fills_the_education_pass(
    courses: httpx.AsyncClient, clock: ManualClock
) -> None:
    learner, _, _ = await complete_with_certificate(courses, clock)
    entries = ok(await courses.get(f"/api/v1/learners/{learner}/education-pass/entries"))
    by_kind = {e["kind"]: e["details"] for e in entries}
    assert [e["kind"] for e in entries].count("course") == 1 and len(entries) == 3
    assert set(by_kind) == {"course", "certificate", "language_level"}
    today = clock().date().isoformat()
    assert by_kind["course"]["result"] == "passed" and by_kind["course"]["course"] == "Deutsch B1"
    assert by_kind["course"]["completed_on"] == today
    assert by_kind["certificate"] == {"certificate": "DTZ B1", "issued_on": today}
    assert by_kind["language_level"] == {"language": "de", "level": "B1", "reached_on": today}
    assert ok(await courses.get(f"/api/v1/learners/{person()}/education-pass/entries")) == []


async def test_a_completion_is_refused_in_the_future_and_twice(courses: httpx.AsyncClient, clock: ManualClock) -> None:
    course = await schedule(courses)
    enrolment = ok(await enrol(courses, course["course_id"], person()), 201)["enrolment_id"]
    url = f"{COURSES}/{course['course_id']}/enrolments/{enrolment}/completion"
    day = local_day(clock())  # the course admin's day, as the service judges it
    tomorrow = (day + timedelta(days=1)).isoformat()
    assert_problem(
        await courses.post(url, json={"result": "passed", "completed_on": tomorrow}), 422, "course-completion-in-future"
    )
    today = day.isoformat()
    assert ok(await courses.post(url, json={"result": "attended", "completed_on": today}))["status"] == "completed"
    assert_problem(await courses.post(url, json={"result": "passed", "completed_on": today}), 409)


async def test_an_issued_pass_verifies_online_by_code_on_its_page_and_offline_with_the_public_key(
    registered: tuple[httpx.AsyncClient, httpx.AsyncClient], clock: ManualClock
) -> None:
    courses, registration = registered
    registered_person = await register(registration, given_names="Amina", family_name="Haddad")
    learner, _, _ = await complete_with_certificate(courses, clock, registered_person)
    issued = ok(await courses.post(f"/api/v1/learners/{learner}/education-pass", json={}), 201)
    credential = issued["credential"]
    assert credential["proof"]["proofValue"] and credential["proof"]["type"] == "DataIntegrityProof"
    assert credential["id"] == f"urn:uuid:{issued['pass_id']}"
    subject = credential["credentialSubject"]
    assert subject["id"] == f"urn:uuid:{learner}" and subject["name"] == "Amina Haddad"
    assert {e["kind"] for e in subject["entries"]} == {"course", "certificate", "language_level"}
    assert CODE.match(issued["code"]) and issued["code"] == domain.verification_code(credential)

    verify = "/api/v1/education-passes/verify"
    checked = ok(await courses.post(verify, json=credential))
    assert checked["valid"] is True and checked["credential_id"] == credential["id"]
    tampered = copy.deepcopy(credential)
    tampered["credentialSubject"]["name"] = "Amina Haddae"  # one character
    assert ok(await courses.post(verify, json=tampered))["valid"] is False
    raised = copy.deepcopy(credential)
    next(e for e in raised["credentialSubject"]["entries"] if e["kind"] == "language_level")["level"] = "C1"
    assert ok(await courses.post(verify, json=raised))["valid"] is False
    assert ok(await courses.post(verify, json={"id": "urn:uuid:x"}))["valid"] is False  # no proof at all

    by_code = ok(await courses.get(f"{verify}/{issued['code']}"))
    assert by_code["valid"] is True and by_code["credential_id"] == credential["id"]
    assert ok(await courses.get(f"{verify}/{issued['code'].lower()}"))["valid"] is True  # as typed by hand
    assert ok(await courses.get(f"{verify}/AAAA-BBBB-CCCC"))["valid"] is False

    assert issued["html_url"] == f"/api/v1/education-passes/{issued['pass_id']}/page"
    page = await courses.get(issued["html_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert issued["code"] in page.text and "Amina Haddad" in page.text and "DTZ B1" in page.text
    assert_problem(await courses.get(f"/api/v1/education-passes/{uuid.uuid4()}/page"), 404, "not-found")

    keys = ok(await courses.get("/api/v1/education-passes/public-key"))
    jwk = keys["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA") and "d" not in jwk
    assert credential["proof"]["verificationMethod"].endswith(f"#{jwk['kid']}")
    assert domain.verify(credential, domain.key_from_jwk(jwk))
    assert not domain.verify(tampered, domain.key_from_jwk(jwk))
    other = domain.public_jwk(Ed25519PrivateKey.generate().public_key(), "other")
    assert not domain.verify(credential, domain.key_from_jwk(other))


async def test_a_pass_signed_with_the_old_key_verifies_after_a_rotation_until_that_key_is_removed(
    database_url: str, broker: EmbeddedBroker, clock: ManualClock, tmp_path: Any
) -> None:
    """deploy/README.md, section 12: the new key signs, the old one stays in COURSES_PASS_VERIFY_PUBLIC_KEYS while
    passes it signed are about; once removed, they no longer verify. The same database throughout, as a restart."""
    from chassis import identity

    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    registration_app = create_registration(
        registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", broker.bootstrap_servers)
    )

    def courses_with(signing: Ed25519PrivateKey, *verifying: Ed25519PrivateKey) -> Any:
        others = ",".join(identity.encode_public(k.public_key()) for k in verifying) or None
        settings = courses_settings(
            database_url,
            broker.bootstrap_servers,
            pass_signing_key=identity.encode_private(signing),
            pass_verify_public_keys=others,
        )
        return create_app(settings, clock=clock, registration_transport=httpx.ASGITransport(app=registration_app))

    verify = "/api/v1/education-passes/verify"
    async with running_app(registration_app) as registration:
        person_id = await register(registration, given_names="Amina", family_name="Haddad")
        async with running_app(courses_with(old)) as courses:
            learner, _, _ = await complete_with_certificate(courses, clock, person_id)
            by_old = ok(await courses.post(f"/api/v1/learners/{learner}/education-pass", json={}), 201)
            old_kid = ok(await courses.get("/api/v1/education-passes/public-key"))["keys"][0]["kid"]

        async with running_app(courses_with(new, old)) as courses:  # rotated: the new key signs
            keys = ok(await courses.get("/api/v1/education-passes/public-key"))["keys"]
            assert len(keys) == 2 and keys[1]["kid"] == old_kid, "the signing key first, the old one still published"
            by_new = ok(await courses.post(f"/api/v1/learners/{learner}/education-pass", json={}), 201)
            assert by_new["credential"]["proof"]["verificationMethod"].endswith(f"#{keys[0]['kid']}")
            for issued in (by_old, by_new):
                assert ok(await courses.post(verify, json=issued["credential"]))["valid"] is True
                assert ok(await courses.get(f"{verify}/{issued['code']}"))["valid"] is True
            tampered = copy.deepcopy(by_old["credential"])
            tampered["credentialSubject"]["name"] = "Amina Haddae"
            assert ok(await courses.post(verify, json=tampered))["valid"] is False  # any key, still exactly this
            # An offline verifier with the published keys can tell the same.
            assert domain.verify(by_old["credential"], domain.key_from_jwk(keys[1]))

        async with running_app(courses_with(new)) as courses:  # the old key removed
            keys = ok(await courses.get("/api/v1/education-passes/public-key"))["keys"]
            assert [k["kid"] for k in keys] != [old_kid] and len(keys) == 1
            assert ok(await courses.post(verify, json=by_old["credential"]))["valid"] is False
            assert ok(await courses.get(f"{verify}/{by_old['code']}"))["valid"] is False
            assert ok(await courses.post(verify, json=by_new["credential"]))["valid"] is True


async def test_a_pass_is_issued_only_with_entries_and_always_with_the_registered_name(
    registered: tuple[httpx.AsyncClient, httpx.AsyncClient], clock: ManualClock
) -> None:
    courses, registration = registered
    assert_problem(await courses.post(f"/api/v1/learners/{person()}/education-pass", json={}), 404, "not-found")
    learner = await register(registration, given_names="Layla Noor", family_name="Haddad")
    await complete_with_certificate(courses, clock, learner)
    url = f"/api/v1/learners/{learner}/education-pass"

    # A name in the request is refused, not printed: only the registered one is.
    refused = assert_problem(await courses.post(url, json={"holder_name": "Someone Else"}), 422, "validation")
    assert refused["errors"][0]["location"] == ["body", "holder_name"]
    async with courses.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        assert await session.scalar(select(func.count()).select_from(IssuedPass)) == 0, "nothing issued"
    first = ok(await courses.post(url, json={}), 201)
    assert first["credential"]["credentialSubject"]["name"] == "Layla Noor Haddad"
    again = ok(await courses.post(url), 201)  # no body at all: the same
    assert again["credential"]["credentialSubject"]["name"] == "Layla Noor Haddad"
    assert again["pass_id"] != first["pass_id"] and again["code"] != first["code"]
    for issued in (first, again):
        assert ok(await courses.get(f"/api/v1/education-passes/verify/{issued['code']}"))["valid"] is True
    # Registration logged each read of the name: by whom (no identity here), through the courses service.
    log = ok(await registration.get(f"/api/v1/persons/{learner}/access-log"))
    reads = [e["actor"] for e in log if e["action"] == "read_pass_holder"]
    assert reads == ["unauthenticated via service:courses for an education pass"] * 2

    # A person registration does not know gets no pass (their entries came from elsewhere, e.g. a mistyped id).
    unknown, _, _ = await complete_with_certificate(courses, clock)
    assert_problem(await courses.post(f"/api/v1/learners/{unknown}/education-pass", json={}), 404, "not-found")
    async with courses.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        assert await session.scalar(select(func.count()).select_from(PassStatus)) == 2


# --- cancelling a course ------------------------------------------------------------------------


async def test_cancelling_a_course_cancels_its_active_enrolments_and_happens_once(courses: httpx.AsyncClient) -> None:
    course = (await schedule(courses, capacity=1))["course_id"]
    first = ok(await enrol(courses, course, person()), 201)
    second = ok(await enrol(courses, course, person()), 201)
    assert (first["status"], second["status"], second["position"]) == ("enrolled", "waitlisted", 1)

    cancelled = ok(await courses.post(f"{COURSES}/{course}/cancel"))
    assert cancelled["status"] == "cancelled" and cancelled["course_id"] == course
    listed = ok(await courses.get(f"{COURSES}/{course}/enrolments"))
    assert {e["enrolment_id"] for e in listed} == {first["enrolment_id"], second["enrolment_id"]}
    assert {(e["status"], e["cancel_reason"]) for e in listed} == {("cancelled", "course_cancelled")}
    assert ok(await courses.get(f"{COURSES}/{course}"))["status"] == "cancelled"

    cancelled_again = assert_problem(await courses.post(f"{COURSES}/{course}/cancel"), 409, "invalid-transition")
    assert (cancelled_again["status_now"], cancelled_again["action"]) == ("cancelled", "cancel")
    assert_problem(await enrol(courses, course, person()), 422, "course-cancelled")  # no new enrolments
    assert_problem(await courses.patch(f"{COURSES}/{course}", json={"capacity": 5}), 409, "invalid-transition")
    assert_problem(await courses.post(f"{COURSES}/{uuid.uuid4()}/cancel"), 404, "not-found")


async def test_cancelling_a_course_leaves_completed_enrolments_as_they_are(
    courses: httpx.AsyncClient, clock: ManualClock
) -> None:
    learner, course, enrolment = await complete_with_certificate(courses, clock)
    ok(await courses.post(f"{COURSES}/{course}/cancel"))
    (listed,) = ok(await courses.get(f"{COURSES}/{course}/enrolments"))
    assert (listed["enrolment_id"], listed["status"], listed["cancel_reason"]) == (enrolment, "completed", None)
    assert len(ok(await courses.get(f"/api/v1/learners/{learner}/education-pass/entries"))) == 3


def test_the_helpers_build_a_valid_course_body() -> None:
    """Guards the helpers: a fault the tests above inject must be the only fault."""
    from services.courses.schemas import CourseCreate

    CourseCreate.model_validate(course_body())
    assert date.fromisoformat(slot(0, 9)["starts_at"][:10]) == MONDAY.date()
