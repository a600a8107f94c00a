"""Object-level rules of the courses service (issue 12), the registered holder name on the education pass, and its
revocation: through the real registration, referral and courses apps and the session's broker.

Registration on its own SQLite file, referral on its own with its demo roster (a newcomer whose language is Arabic
gets Anna Berger of the team integration-nord), courses (under test) on the parametrized database, requiring the
gateway's signed identity as in production and asking registration in-process, in its own signed name.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from chassis import identity as internal
from chassis.embedded_broker import EmbeddedBroker, free_port
from contracts.calendar import today as city_today
from services.courses import domain
from services.courses.app import create_app as create_courses
from services.courses.models import Enrolment, IssuedPass, PassEntry, PassStatus
from services.courses.runtime import courses_of
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    COURSES_IDENTITY_KEY,
    REFERRAL_IDENTITY_KEY,
    course_body,
    courses_settings,
    eventually,
    newcomer,
    ok,
    referral_settings,
    registration_settings,
    running_app,
    signed_by_gateway,
)

VHS, KOLPING = "vhs-landsberg", "kolping-bildungswerk"
NORD, SUED = "integration-nord", "integration-sued"
ADMIN = internal.Identity("t.vogel", frozenset({"admin"}))
REGISTRAR = internal.Identity("r.meier", frozenset({"registrar"}))
VHS_ADMIN = internal.Identity("k.schulz", frozenset({"course_admin"}), partner_id=VHS)
KOLPING_ADMIN = internal.Identity("j.koch", frozenset({"course_admin"}), partner_id=KOLPING)
UNTIED_ADMIN = internal.Identity("n.n", frozenset({"course_admin"}))  # a sign-in that names no provider
LOTSE_NORD = internal.Identity("lotse", frozenset({"caseworker"}), team=NORD)
LOTSE_SUED = internal.Identity("lotse-m.wagner", frozenset({"caseworker"}), team=SUED)
PASSES = "/api/v1/education-passes"


def as_(who: internal.Identity) -> dict[str, str]:
    """The identity the gateway forwards to the courses service for this caller."""
    return signed_by_gateway(who, "courses")


def problem(reply: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = reply.json()
    assert body["type"].endswith(f"/{kind}"), body
    return body


@pytest.fixture
async def stack(
    database_url: str, broker: EmbeddedBroker, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]]:
    """(courses, registration, referral)."""
    bootstrap = broker.bootstrap_servers
    registration_app = create_registration(
        registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", bootstrap)
    )
    referral_app = create_referral(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", bootstrap, demo_data=True)
    )
    courses_app = create_courses(
        courses_settings(database_url, bootstrap, require_internal_identity=True),
        registration_transport=httpx.ASGITransport(app=registration_app),
    )
    async with (
        running_app(registration_app) as registration,
        running_app(referral_app) as referral,
        running_app(courses_app) as courses,
    ):
        courses.app = courses_app  # type: ignore[attr-defined]
        yield courses, registration, referral


async def register(registration: httpx.AsyncClient, **person: Any) -> str:
    return str(ok(await registration.post("/api/v1/registrations", json=newcomer(**person)), 201)["person_id"])


async def known_to(courses: httpx.AsyncClient, person: str, caseworker: internal.Identity) -> None:
    """Wait until the courses service has heard from referral that this caseworker's team works the case."""

    async def sees() -> bool:
        reply = await courses.get(f"/api/v1/learners/{person}/enrolments", headers=as_(caseworker))
        return reply.status_code == 200

    await eventually(sees)


async def passed_course(courses: httpx.AsyncClient, person: str, enrolled_by: internal.Identity) -> dict[str, Any]:
    """A VHS course the person is enrolled in (by ``enrolled_by``) and passed with "DTZ B1"; the course."""
    course = ok(await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(VHS_ADMIN)), 201)
    enrolment = ok(
        await courses.post(
            f"/api/v1/courses/{course['course_id']}/enrolments", json={"person_id": person}, headers=as_(enrolled_by)
        ),
        201,
    )
    done = {"result": "passed", "certificate": "DTZ B1", "completed_on": city_today().isoformat()}
    url = f"/api/v1/courses/{course['course_id']}/enrolments/{enrolment['enrolment_id']}/completion"
    assert ok(await courses.post(url, json=done, headers=as_(VHS_ADMIN)))["status"] == "completed"
    return dict(course)


async def count(courses: httpx.AsyncClient, model: Any) -> int:
    async with courses.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def status_list(courses: httpx.AsyncClient) -> tuple[dict[str, Any], Any]:
    """The revocation list and the issuer's public key, as an offline verifier fetches them (no sign-in)."""
    listed = await courses.get(f"{PASSES}/status", headers=signed_by_gateway(internal.ANONYMOUS, "courses"))
    assert listed.headers["cache-control"] == "public, max-age=300"
    keys = ok(await courses.get(f"{PASSES}/public-key", headers=signed_by_gateway(internal.ANONYMOUS, "courses")))
    return ok(listed), domain.key_from_jwk(keys["keys"][0])


# --- caseworkers: their team's people only --------------------------------------------------------------------


async def test_another_teams_caseworker_gets_404_for_the_learners_enrolments_pass_entries_and_pass(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    courses, registration, _ = stack
    person = await register(registration)  # Arabic: integration-nord's case
    await known_to(courses, person, LOTSE_NORD)
    course = await passed_course(courses, person, enrolled_by=LOTSE_NORD)
    learner = f"/api/v1/learners/{person}"

    # The team of the case: the enrolments, the pass entries, a pass.
    assert [e["course_id"] for e in ok(await courses.get(f"{learner}/enrolments", headers=as_(LOTSE_NORD)))] == [
        course["course_id"]
    ]
    assert len(ok(await courses.get(f"{learner}/education-pass/entries", headers=as_(LOTSE_NORD)))) == 3
    issued = ok(await courses.post(f"{learner}/education-pass", json={}, headers=as_(LOTSE_NORD)), 201)

    # Another team, another provider's course admin: as if the person did not exist.
    for stranger in (LOTSE_SUED, KOLPING_ADMIN, UNTIED_ADMIN):
        problem(await courses.get(f"{learner}/enrolments", headers=as_(stranger)), 404, "not-found")
        problem(await courses.get(f"{learner}/education-pass/entries", headers=as_(stranger)), 404, "not-found")
        problem(await courses.post(f"{learner}/education-pass", json={}, headers=as_(stranger)), 404, "not-found")
        problem(await courses.get(f"{PASSES}/{issued['pass_id']}/page", headers=as_(stranger)), 404, "not-found")
    assert await count(courses, IssuedPass) == 1, "nothing issued for a stranger"
    # ... nor may another team enrol the person; the course itself is public: its list shows no one of theirs.
    other = ok(
        await courses.post("/api/v1/courses", json=course_body(capacity=5, title="Abendkurs"), headers=as_(VHS_ADMIN)),
        201,
    )
    enrol_other = f"/api/v1/courses/{other['course_id']}/enrolments"
    problem(await courses.post(enrol_other, json={"person_id": person}, headers=as_(LOTSE_SUED)), 404, "not-found")
    assert ok(await courses.get(f"/api/v1/courses/{course['course_id']}/enrolments", headers=as_(LOTSE_SUED))) == []
    rows = ok(await courses.get(f"/api/v1/courses/{course['course_id']}/enrolments", headers=as_(LOTSE_NORD)))
    assert [r["person_id"] for r in rows] == [person]

    # The provider's course admin, a registrar (the pass page at the desk) and an admin.
    assert len(ok(await courses.get(f"{learner}/enrolments", headers=as_(VHS_ADMIN)))) == 1
    for reader in (VHS_ADMIN, REGISTRAR, ADMIN):
        page = await courses.get(f"{PASSES}/{issued['pass_id']}/page", headers=as_(reader))
        assert page.status_code == 200 and issued["code"] in page.text
    # Without the gateway's identity, nothing (production's rule, required here too).
    assert (await courses.get(f"{learner}/enrolments")).status_code == 401


async def test_a_case_moved_to_another_team_moves_the_access_and_a_closed_case_ends_it(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    courses, registration, referral = stack
    person = await register(registration)
    await known_to(courses, person, LOTSE_NORD)
    enrolments = f"/api/v1/learners/{person}/enrolments"
    problem(await courses.get(enrolments, headers=as_(LOTSE_SUED)), 404, "not-found")

    case = ok(await referral.get("/api/v1/cases", params={"person_id": person}))["items"][0]
    ok(await referral.post(f"/api/v1/cases/{case['case_id']}/assignment", json={"caseworker_id": "lotse-m.wagner"}))
    await known_to(courses, person, LOTSE_SUED)
    problem(await courses.get(enrolments, headers=as_(LOTSE_NORD)), 404, "not-found")
    # Without a team, a caseworker has the cases assigned to them (the rule of the referral service).
    assert (
        ok(await courses.get(enrolments, headers=as_(internal.Identity("lotse-m.wagner", frozenset({"caseworker"})))))
        == []
    )
    problem(
        await courses.get(enrolments, headers=as_(internal.Identity("someone", frozenset({"caseworker"})))),
        404,
        "not-found",
    )

    ok(
        await registration.post(
            f"/api/v1/persons/{person}/move-away",
            json={"moved_away_on": city_today().isoformat(), "reason": "Abmeldung"},
        )
    )

    async def closed() -> bool:
        return (await courses.get(enrolments, headers=as_(LOTSE_SUED))).status_code == 404

    await eventually(closed)


# --- course admins: their provider's courses only --------------------------------------------------------------


async def test_a_course_admin_of_another_provider_cannot_change_the_course(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Courses are public, so another provider's course is no secret: changing it is forbidden (403), and the
    refusal says nothing of anyone enrolled."""
    courses, _, _ = stack
    created = ok(await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(VHS_ADMIN)), 201)
    assert created["provider_id"] == VHS, "a course admin's own provider, without naming it"
    course = f"/api/v1/courses/{created['course_id']}"
    enrolment = ok(await courses.post(f"{course}/enrolments", json={"person_id": "p-1"}, headers=as_(VHS_ADMIN)), 201)
    one = f"{course}/enrolments/{enrolment['enrolment_id']}"
    session = created["sessions"][0]["session_id"]
    today = city_today().isoformat()

    attempts = [
        ("PATCH", course, {"capacity": 50, "title": "Übernommen"}),
        ("POST", f"{course}/cancel", None),
        ("GET", f"{course}/enrolments", None),
        ("POST", f"{course}/enrolments", {"person_id": "p-2"}),
        ("POST", f"{one}/cancel", {"reason": "by_staff"}),
        ("POST", f"{one}/accept-offer", None),
        ("POST", f"{one}/attendance", {"session_id": session, "present": False}),
        ("POST", f"{one}/completion", {"result": "not_passed", "completed_on": today}),
    ]
    for stranger in (KOLPING_ADMIN, UNTIED_ADMIN):
        for method, path, body in attempts:
            reply = await courses.request(method, path, json=body, headers=as_(stranger))
            refused = problem(reply, 403, "forbidden")
            assert "p-1" not in reply.text, refused
    # A course for another provider is not theirs to schedule; a sign-in without a provider schedules none.
    problem(
        await courses.post(
            "/api/v1/courses", json=course_body(capacity=5, provider_id=VHS), headers=as_(KOLPING_ADMIN)
        ),
        403,
        "forbidden",
    )
    problem(
        await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(UNTIED_ADMIN)), 403, "forbidden"
    )
    problem(
        await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(LOTSE_NORD)), 403, "forbidden"
    )

    unchanged = ok(await courses.get(course, headers=as_(ADMIN)))
    assert (unchanged["title"], unchanged["capacity"], unchanged["status"]) == (created["title"], 5, "scheduled")
    [still] = ok(await courses.get(f"{course}/enrolments", headers=as_(VHS_ADMIN)))
    assert (still["status"], still["result"]) == ("enrolled", None)
    # Their own provider's course admin, and an admin, may.
    assert ok(await courses.patch(course, json={"capacity": 6}, headers=as_(VHS_ADMIN)))["capacity"] == 6
    assert ok(await courses.patch(course, json={"capacity": 7}, headers=as_(ADMIN)))["capacity"] == 7
    kolping = ok(await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(KOLPING_ADMIN)), 201)
    assert kolping["provider_id"] == KOLPING
    assert (
        ok(await courses.post(f"/api/v1/courses/{kolping['course_id']}/cancel", headers=as_(KOLPING_ADMIN)))["status"]
        == "cancelled"
    )


# --- the holder's name: registration's, never the request's ----------------------------------------------------


async def test_the_pass_holder_name_is_the_registered_one_whatever_the_request_says(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    courses, registration, _ = stack
    person = await register(registration, given_names="Layla", family_name="Haddad")
    await known_to(courses, person, LOTSE_NORD)
    await passed_course(courses, person, enrolled_by=VHS_ADMIN)
    url = f"/api/v1/learners/{person}/education-pass"

    refused = problem(
        await courses.post(url, json={"holder_name": "Max Mustermann"}, headers=as_(VHS_ADMIN)), 422, "validation"
    )
    assert refused["errors"][0]["location"] == ["body", "holder_name"]
    assert await count(courses, IssuedPass) == 0
    issued = ok(await courses.post(url, json={}, headers=as_(VHS_ADMIN)), 201)
    assert issued["credential"]["credentialSubject"]["name"] == "Layla Haddad"
    assert "Max Mustermann" not in str(issued)

    # Registration logged the read: the course admin, through the courses service.
    log = ok(await registration.get(f"/api/v1/persons/{person}/access-log"))
    assert [e["actor"] for e in log if e["action"] == "read_pass_holder"] == [
        "user:k.schulz via service:courses for an education pass"
    ]
    # A change of name in registration is on the next pass.
    etag = (await registration.get(f"/api/v1/persons/{person}")).headers["etag"]
    ok(
        await registration.patch(
            f"/api/v1/persons/{person}", json={"family_name": "Haddad-Berger"}, headers={"If-Match": etag}
        )
    )
    again = ok(await courses.post(url, json={}, headers=as_(VHS_ADMIN)), 201)
    assert again["credential"]["credentialSubject"]["name"] == "Layla Haddad-Berger"


async def test_registrations_pass_holder_route_answers_the_courses_service_only(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    _, registration, _ = stack
    person = await register(registration, given_names="Layla", family_name="Haddad")
    url = f"/api/internal/persons/{person}/pass-holder"
    params = {"on_behalf_of": "user:k.schulz"}

    def as_service(name: str, key: Ed25519PrivateKey, audience: str = "registration") -> dict[str, str]:
        return {internal.HEADER: internal.service_token(key, name, audience)}

    holder = ok(await registration.get(url, params=params, headers=as_service("courses", COURSES_IDENTITY_KEY)))
    assert holder == {"given_names": "Layla", "family_name": "Haddad"}, "the name, nothing more"
    refused = {
        "referral's own identity": (as_service("referral", REFERRAL_IDENTITY_KEY), 403),
        "the gateway's token, even an admin's": (signed_by_gateway(ADMIN, "registration"), 403),
        "courses' name with another key": (as_service("courses", Ed25519PrivateKey.generate()), 401),
        "courses' token for another audience": (as_service("courses", COURSES_IDENTITY_KEY, "referral"), 401),
        "no token": ({}, 401),
    }
    for what, (headers, status) in refused.items():
        reply = await registration.get(url, params=params, headers=headers)
        assert reply.status_code == status, f"{what}: {reply.status_code} {reply.text}"
    missing = await registration.get(url, headers=as_service("courses", COURSES_IDENTITY_KEY))
    assert missing.status_code == 422, "who asks must be said"
    log = ok(await registration.get(f"/api/v1/persons/{person}/access-log"))
    assert [e["action"] for e in log].count("read_pass_holder") == 1, "only the read that was answered"


async def test_no_pass_while_registration_cannot_answer(
    database_url: str, broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Registration down (nothing listens at its address): 503 Problem Details, nothing issued. Registration
    refusing the courses service's identity (keys that do not match): the same, and a log line for operators."""
    bootstrap = broker.bootstrap_servers
    app = create_courses(courses_settings(database_url, bootstrap, registration_url=f"http://127.0.0.1:{free_port()}"))
    async with running_app(app) as courses:
        courses.app = app  # type: ignore[attr-defined]
        person = f"p-{uuid.uuid4().hex[:8]}"
        await passed_course(courses, person, enrolled_by=VHS_ADMIN)
        url = f"/api/v1/learners/{person}/education-pass"
        down = await courses.post(url, json={}, headers=as_(VHS_ADMIN))
        body = problem(down, 503, "registration-unavailable")
        assert "nothing was issued" in body["detail"] and down.headers["retry-after"] == "30"
        assert (await count(courses, IssuedPass), await count(courses, PassStatus)) == (0, 0)
        assert len(ok(await courses.get(f"{url}/entries", headers=as_(VHS_ADMIN)))) == 3, "the entries wait"

    registration_app = create_registration(
        registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", bootstrap)
    )
    app = create_courses(
        courses_settings(database_url, bootstrap), registration_transport=httpx.ASGITransport(app=registration_app)
    )
    async with running_app(registration_app) as registration, running_app(app) as courses:
        courses.app = app  # type: ignore[attr-defined]
        person = await register(registration)
        await passed_course(courses, person, enrolled_by=VHS_ADMIN)
        courses_of(app.state.runtime).identity = internal.Signer(Ed25519PrivateKey.generate(), "courses")
        logging.getLogger().addHandler(caplog.handler)  # the apps' logging set-up replaced the root's handlers
        with caplog.at_level("WARNING", logger="services.courses.api"):
            mismatched = await courses.post(
                f"/api/v1/learners/{person}/education-pass", json={}, headers=as_(VHS_ADMIN)
            )
        problem(mismatched, 503, "registration-unavailable")
        assert "registration refused courses' identity (401" in caplog.text
        assert await count(courses, IssuedPass) == 0


# --- revocation: erasure, and by a course admin; the status list -------------------------------------------------


async def test_erasure_revokes_the_pass_and_verification_and_the_status_list_say_so(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    courses, registration, _ = stack
    person = await register(registration)
    await known_to(courses, person, LOTSE_NORD)
    course = await passed_course(courses, person, enrolled_by=LOTSE_NORD)
    issued = ok(await courses.post(f"/api/v1/learners/{person}/education-pass", json={}, headers=as_(VHS_ADMIN)), 201)
    credential, anyone = issued["credential"], signed_by_gateway(internal.ANONYMOUS, "courses")
    entry = credential["credentialStatus"]
    assert (entry["type"], entry["statusPurpose"]) == ("BitstringStatusListEntry", "revocation")
    assert entry["statusListCredential"] == f"https://integration.landsberg.de{PASSES}/status"

    # Before: valid online, and offline with the public key and the status list.
    verified = ok(await courses.post(f"{PASSES}/verify", json=credential, headers=anyone))
    assert (verified["valid"], verified["revoked"]) == (True, False)
    listed, key = await status_list(courses)
    assert domain.verify(credential, key) and domain.revoked_in(credential, listed, key) is False
    assert len(domain.decode_status_list(listed["credentialSubject"]["encodedList"])) * 8 >= 131_072

    erased = await registration.request("DELETE", f"/api/v1/persons/{person}", json={"reason": "Art. 17 request"})
    assert erased.status_code == 204, erased.text

    async def revoked() -> dict[str, Any] | None:
        answer = ok(await courses.post(f"{PASSES}/verify", json=credential, headers=anyone))
        return answer if answer["revoked"] else None

    answer = await eventually(revoked)
    assert answer["valid"] is False and answer["reason"].startswith("revoked by the issuer")
    by_code = ok(await courses.get(f"{PASSES}/verify/{issued['code']}", headers=anyone))
    assert (by_code["valid"], by_code["revoked"]) == (False, True)
    listed, key = await status_list(courses)
    assert domain.revoked_in(credential, listed, key) is True, "the offline verifier learns it from the list"
    forged = copy.deepcopy(listed)
    forged["credentialSubject"]["encodedList"] = domain.encode_status_list([], 131_072)
    with pytest.raises(domain.StatusUnknown):
        domain.revoked_in(credential, forged, key)  # a list someone changed does not clear the pass

    # What identified the person is gone from the course records; the seat counts stay.
    problem(await courses.get(f"{PASSES}/{issued['pass_id']}/page", headers=as_(ADMIN)), 404, "not-found")
    assert ok(await courses.get(f"/api/v1/learners/{person}/enrolments", headers=as_(ADMIN))) == []
    assert ok(await courses.get(f"/api/v1/learners/{person}/education-pass/entries", headers=as_(ADMIN))) == []
    assert (await count(courses, IssuedPass), await count(courses, PassEntry)) == (0, 0)
    [kept] = ok(await courses.get(f"/api/v1/courses/{course['course_id']}/enrolments", headers=as_(VHS_ADMIN)))
    assert kept["person_id"].startswith("erased-") and kept["person_id"] != person
    assert (kept["status"], kept["certificate"], kept["referral_id"], kept["priority_flags"]) == (
        "completed",
        None,
        None,
        [],
    )
    async with courses.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        assert await session.scalar(select(func.count()).where(Enrolment.person_id == person)) == 0
    # No new enrolment, and no pass, for an erased person.
    problem(
        await courses.post(f"/api/v1/learners/{person}/education-pass", json={}, headers=as_(ADMIN)), 404, "not-found"
    )


async def test_a_course_admin_revokes_a_pass_of_their_learner_once(
    stack: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    courses, registration, _ = stack
    person = await register(registration)
    await passed_course(courses, person, enrolled_by=VHS_ADMIN)
    issued = ok(await courses.post(f"/api/v1/learners/{person}/education-pass", json={}, headers=as_(VHS_ADMIN)), 201)
    kept = ok(await courses.post(f"/api/v1/learners/{person}/education-pass", json={}, headers=as_(VHS_ADMIN)), 201)
    revoke = f"{PASSES}/{issued['pass_id']}/revoke"

    problem(await courses.post(revoke, json={"reason": "superseded"}, headers=as_(KOLPING_ADMIN)), 404, "not-found")
    problem(await courses.post(revoke, json={"reason": "superseded"}, headers=as_(REGISTRAR)), 403, "forbidden")
    problem(await courses.post(revoke, json={"reason": "lost interest"}, headers=as_(VHS_ADMIN)), 422, "validation")
    done = ok(await courses.post(revoke, json={"reason": "superseded"}, headers=as_(VHS_ADMIN)))
    assert (done["revoked"], done["reason"]) == (True, "superseded") and done["revoked_at"]
    again = ok(await courses.post(revoke, json={"reason": "issued_in_error"}, headers=as_(ADMIN)))
    assert (again["reason"], again["revoked_at"]) == ("superseded", done["revoked_at"]), "the first revocation stays"

    anyone = signed_by_gateway(internal.ANONYMOUS, "courses")
    assert ok(await courses.post(f"{PASSES}/verify", json=issued["credential"], headers=anyone))["revoked"] is True
    assert ok(await courses.post(f"{PASSES}/verify", json=kept["credential"], headers=anyone))["valid"] is True
    listed, key = await status_list(courses)
    assert domain.revoked_in(issued["credential"], listed, key) is True
    assert domain.revoked_in(kept["credential"], listed, key) is False
    # The revoked pass is still the person's record: its page stays readable for the provider.
    page = await courses.get(f"{PASSES}/{issued['pass_id']}/page", headers=as_(VHS_ADMIN))
    assert page.status_code == 200


async def test_a_household_cases_team_enrols_every_member_and_another_team_none(stack: Any) -> None:
    """One case per household (issue 14): its team reaches the household's child in courses too, not only the
    person whose events opened the case."""
    courses, registration, _ = stack
    family = ok(
        await registration.post(
            "/api/v1/registrations",
            json=newcomer(
                household_members=[
                    {
                        k: v
                        for k, v in newcomer(birth_date="2012-04-04").items()
                        if k not in ("address", "phone", "email")
                    }
                ]
            ),
        ),
        201,
    )
    child = family["household_members"][0]["person_id"]
    # Both reached: only one of them is the person the case was opened with, the other is reached as a member.
    await known_to(courses, child, LOTSE_NORD)
    await known_to(courses, family["person_id"], LOTSE_NORD)
    problem(await courses.get(f"/api/v1/learners/{child}/enrolments", headers=as_(LOTSE_SUED)), 404, "not-found")
    course = ok(await courses.post("/api/v1/courses", json=course_body(capacity=5), headers=as_(VHS_ADMIN)), 201)
    path = f"/api/v1/courses/{course['course_id']}/enrolments"
    problem(await courses.post(path, json={"person_id": child}, headers=as_(LOTSE_SUED)), 404, "not-found")
    enrolled = ok(await courses.post(path, json={"person_id": child}, headers=as_(LOTSE_NORD)), 201)
    assert enrolled["person_id"] == child
    listed = ok(await courses.get(path, headers=as_(LOTSE_NORD)))
    assert [e["person_id"] for e in listed] == [child]
