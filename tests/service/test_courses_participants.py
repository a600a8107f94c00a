"""A course admin's participant list with names, and the sessions of a course (issue 14), through the real
registration and courses apps: courses asks registration once per list, in its own signed name, after it checked
that the course is the admin's provider's; registration logs the read per person as the admin's, for that course.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import identity as internal
from tests.conftest import COURSES_IDENTITY_KEY, REFERRAL_IDENTITY_KEY, course_body, ok, signed_by_gateway
from tests.service.test_courses_object_rules import (
    ADMIN,
    KOLPING_ADMIN,
    VHS_ADMIN,
    as_,
    problem,
    register,
    stack,
)

__all__ = ["stack"]  # the fixture, used by name
Stack = tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]


async def course_with(courses: httpx.AsyncClient, persons: list[str]) -> dict[str, Any]:
    course = ok(await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(VHS_ADMIN)), 201)
    for person in persons:
        ok(
            await courses.post(
                f"/api/v1/courses/{course['course_id']}/enrolments", json={"person_id": person}, headers=as_(VHS_ADMIN)
            ),
            201,
        )
    return dict(course)


async def test_the_participant_list_names_the_own_courses_participants_in_one_audited_read(stack: Stack) -> None:
    courses, registration, _ = stack
    layla = await register(registration, given_names="Layla", family_name="Haddad")
    omar = await register(registration, given_names="Omar", family_name="Nasser")
    course = await course_with(courses, [layla, omar])
    url = f"/api/v1/courses/{course['course_id']}/participants"
    session = course["sessions"][0]["session_id"]
    enrolments = ok(await courses.get(f"/api/v1/courses/{course['course_id']}/enrolments", headers=as_(VHS_ADMIN)))
    laylas = next(e["enrolment_id"] for e in enrolments if e["person_id"] == layla)
    ok(
        await courses.post(
            f"/api/v1/courses/{course['course_id']}/enrolments/{laylas}/attendance",
            json={"session_id": session, "present": True},
            headers=as_(VHS_ADMIN),
        ),
        201,
    )

    listed = ok(await courses.get(url, headers=as_(VHS_ADMIN)))
    assert listed["names_available"] is True
    by_person = {p["person_id"]: p for p in listed["participants"]}
    assert by_person[layla]["name"] == "Layla Haddad" and by_person[omar]["name"] == "Omar Nasser"
    assert by_person[layla]["attendance"] == {session: True} and by_person[omar]["attendance"] == {}
    assert ok(await courses.get(url, headers=as_(ADMIN)))["participants"], "an admin reads any course's list"

    # Registration logged one read per person, as the course admin's through courses, for this course.
    log = ok(await registration.get(f"/api/v1/persons/{layla}/access-log"))
    reads = [e for e in log if e["action"] == "read_participant_name"]
    assert sorted(e["actor"] for e in reads) == [
        f"user:{who.subject} via service:courses for a participant list" for who in (VHS_ADMIN, ADMIN)
    ]
    assert {e["purpose"] for e in reads} == {f"course {course['course_id']}"}

    # Another provider's course admin: refused, and nothing read from registration.
    problem(await courses.get(url, headers=as_(KOLPING_ADMIN)), 403, "forbidden")
    assert problem(
        await courses.get("/api/v1/courses/no-such-course/participants", headers=as_(VHS_ADMIN)), 404, "not-found"
    )
    log = ok(await registration.get(f"/api/v1/persons/{layla}/access-log"))
    assert [e["action"] for e in log].count("read_participant_name") == 2, "only the reads that were answered"


async def test_registrations_participant_names_route_answers_the_courses_service_only(stack: Stack) -> None:
    _, registration, _ = stack
    person = await register(registration, given_names="Layla", family_name="Haddad")
    url = "/api/internal/persons/participant-names"
    params = {"person_id": [person, "unknown-person"], "on_behalf_of": "user:k.schulz", "course_id": "c-1"}

    def as_service(name: str, key: Ed25519PrivateKey) -> dict[str, str]:
        return {internal.HEADER: internal.service_token(key, name, "registration")}

    names = ok(await registration.get(url, params=params, headers=as_service("courses", COURSES_IDENTITY_KEY)))
    assert names == [{"person_id": person, "given_names": "Layla", "family_name": "Haddad"}], "names, nothing more"
    for headers, status in (
        (as_service("referral", REFERRAL_IDENTITY_KEY), 403),
        (signed_by_gateway(ADMIN, "registration"), 403),
        (as_service("courses", Ed25519PrivateKey.generate()), 401),
        ({}, 401),
    ):
        assert (await registration.get(url, params=params, headers=headers)).status_code == status
    unsaid = {"person_id": [person], "course_id": "c-1"}
    assert (
        await registration.get(url, params=unsaid, headers=as_service("courses", COURSES_IDENTITY_KEY))
    ).status_code == 422, "who asks must be said"


async def test_sessions_are_added_and_removed_on_the_own_scheduled_courses_only(stack: Stack) -> None:
    courses, registration, _ = stack
    person = await register(registration)
    course = await course_with(courses, [person])
    url = f"/api/v1/courses/{course['course_id']}/sessions"
    last = datetime.fromisoformat(course["sessions"][-1]["ends_at"])
    extra = {
        "starts_at": (last + timedelta(days=7)).isoformat(),
        "ends_at": (last + timedelta(days=7, hours=2)).isoformat(),
        "place": "VHS, Raum 2",
    }
    added = ok(await courses.post(url, json=extra, headers=as_(VHS_ADMIN)), 201)
    assert len(added["sessions"]) == 11 and added["sessions"][-1]["place"] == "VHS, Raum 2"
    overlapping = {"starts_at": course["sessions"][0]["starts_at"], "ends_at": course["sessions"][0]["ends_at"]}
    problem(await courses.post(url, json=overlapping, headers=as_(VHS_ADMIN)), 422, "course-sessions-overlap")
    problem(await courses.post(url, json=extra, headers=as_(KOLPING_ADMIN)), 403, "forbidden")

    new_session = added["sessions"][-1]["session_id"]
    problem(await courses.delete(f"{url}/{new_session}", headers=as_(KOLPING_ADMIN)), 403, "forbidden")
    removed = ok(await courses.delete(f"{url}/{new_session}", headers=as_(VHS_ADMIN)))
    assert len(removed["sessions"]) == 10
    problem(await courses.delete(f"{url}/{new_session}", headers=as_(VHS_ADMIN)), 404, "not-found")

    # A session with attendance recorded stays: it is part of the participants' record.
    first = course["sessions"][0]["session_id"]
    enrolment = ok(await courses.get(f"/api/v1/courses/{course['course_id']}/enrolments", headers=as_(VHS_ADMIN)))[0]
    ok(
        await courses.post(
            f"/api/v1/courses/{course['course_id']}/enrolments/{enrolment['enrolment_id']}/attendance",
            json={"session_id": first, "present": False},
            headers=as_(VHS_ADMIN),
        ),
        201,
    )
    problem(await courses.delete(f"{url}/{first}", headers=as_(VHS_ADMIN)), 409, "course-session-attended")

    # A cancelled course's sessions stay as they were.
    ok(await courses.post(f"/api/v1/courses/{course['course_id']}/cancel", headers=as_(VHS_ADMIN)))
    problem(await courses.post(url, json=extra, headers=as_(VHS_ADMIN)), 409, "invalid-transition")
