"""The closed loop between referral and courses through the real broker: an accepted VHS referral
becomes an enrolment, the enrolment starts the referral, and a cancelled course routes the person
again; a recognition enters the education pass, which carries the registered name, and erasure revokes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.courses.app import create_app as create_courses
from tests.conftest import (
    case_with_referrals,
    course_body,
    courses_settings,
    eventually,
    register_with_needs,
    running_app,
)


@pytest.fixture
async def courses(platform: Any, broker: Any, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Courses asks the platform's registration (in-process) for a pass holder's name."""
    app = create_courses(
        courses_settings(f"sqlite+aiosqlite:///{tmp_path / 'courses.db'}", broker.bootstrap_servers),
        registration_transport=httpx.ASGITransport(app=platform[0].app),
    )
    async with running_app(app) as client:
        yield client


async def test_accepted_referral_enrols_and_a_cancelled_course_reroutes(
    platform: Any, courses: httpx.AsyncClient
) -> None:
    registration, referral = platform
    course = (await courses.post("/api/v1/courses", json=course_body(capacity=10))).json()["course_id"]
    person = await register_with_needs(
        registration, [{"partner_category": "adult_education", "purpose": "course_enrolment"}], gender="male"
    )
    case = await eventually(lambda: case_with_referrals(referral, person, 3))
    vhs = next(r for r in case["referrals"] if r["service_type"] == "integration_course")
    assert vhs["status"] == "sent"
    partner = {"X-Partner-Id": "vhs-landsberg"}
    assert (
        await referral.post(f"/api/v1/partner/referrals/{vhs['referral_id']}/accept", headers=partner)
    ).status_code == 200

    async def enrolled() -> list[dict[str, Any]]:
        rows = (await courses.get(f"/api/v1/learners/{person}/enrolments")).json()
        return [e for e in rows if e["status"] == "enrolled" and e["referral_id"] == vhs["referral_id"]]

    enrolment = (await eventually(enrolled))[0]
    assert enrolment["course_id"] == course and "referred" in enrolment["priority_flags"]

    async def status_of(referral_id: str) -> str:
        return str((await referral.get(f"/api/v1/referrals/{referral_id}")).json()["status"])

    await eventually(lambda: _is(status_of(vhs["referral_id"]), "in_progress"))

    assert (await courses.post(f"/api/v1/courses/{course}/cancel")).status_code == 200
    await eventually(lambda: _is(status_of(vhs["referral_id"]), "referred_elsewhere"))

    async def rerouted() -> list[dict[str, Any]]:
        detail = (await referral.get(f"/api/v1/cases/{case['case_id']}")).json()
        return [
            r
            for r in detail["referrals"]
            if r["service_type"] == "integration_course" and r["referral_id"] != vhs["referral_id"]
        ]

    again = (await eventually(rerouted))[0]
    assert again["status"] == "sent" and again["partner_id"] == "vhs-landsberg"

    timeline = (await referral.get(f"/api/v1/cases/{case['case_id']}/timeline")).json()
    sources = {t["source"] for t in timeline}
    assert {"/services/registration", "/services/referral", "/services/courses"} <= sources


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def test_recognition_enters_the_pass_and_erasure_revokes_the_pass(
    platform: Any, courses: httpx.AsyncClient
) -> None:
    registration, referral = platform
    person = await register_with_needs(
        registration,
        [{"partner_category": "chamber", "purpose": "qualification_recognition"}],
        gender="male",
        given_names="Samir",
        family_name="Haddad",
    )
    case = await eventually(lambda: case_with_referrals(referral, person, 3))
    ihk = next(r for r in case["referrals"] if r["service_type"] == "qualification_recognition")
    assert ihk["status"] == "sent"
    partner = {"X-Partner-Id": "ihk-muenchen-oberbayern"}
    base = f"/api/v1/partner/referrals/{ihk['referral_id']}"
    for step, body in (("accept", None), ("start", None), ("complete", {"outcome": "successful"})):
        assert (await referral.post(f"{base}/{step}", headers=partner, json=body)).status_code == 200

    async def entries() -> list[dict[str, Any]]:
        return list((await courses.get(f"/api/v1/learners/{person}/education-pass/entries")).json())

    recognition = (await eventually(entries))[0]
    assert recognition["kind"] == "recognition" and recognition["details"]["by"] == "ihk-muenchen-oberbayern"
    issued = await courses.post(f"/api/v1/learners/{person}/education-pass", json={})
    assert issued.status_code == 201
    assert issued.json()["credential"]["credentialSubject"]["name"] == "Samir Haddad", "the registered name"
    code = issued.json()["code"]
    assert (await courses.get(f"/api/v1/education-passes/verify/{code}")).json()["valid"] is True

    assert (await registration.delete(f"/api/v1/persons/{person}", params={"reason": "Art. 17"})).status_code == 204

    async def erased() -> bool:
        verification = (await courses.get(f"/api/v1/education-passes/verify/{code}")).json()
        return verification["valid"] is False and verification["revoked"] is True and await entries() == []

    await eventually(erased)
    page = await courses.get(f"/api/v1/education-passes/{issued.json()['pass_id']}/page")
    assert page.status_code == 404 and "Samir" not in page.text
