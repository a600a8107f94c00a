"""Behaviour of the referral service's HTTP API (partners' side and caseworkers' side), with the real
registration and referral apps on a real broker, the referral clock moved by the test."""

from __future__ import annotations

import json
import types
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from chassis.embedded_broker import EmbeddedBroker
from contracts.referral import REFERRALS_TOPIC
from services.referral import api as referral_api
from services.referral.app import check_clocks, create_app
from services.referral.directory import DEFAULT_RULES
from services.referral.handlers import KEPT_AFTER_ERASURE
from services.referral.models import PartnerOfferRow
from tests.conftest import (
    ManualClock,
    case_with_referrals,
    consume,
    eventually,
    ok,
    referral_settings,
    register_with_needs,
    running_app,
)

PROBLEM_JSON = "application/problem+json"
PARTNER_REFERRALS = "/api/v1/partner/referrals"
VHS, JOBCENTER, IHK = "vhs-landsberg", "jobcenter-landsberg", "ihk-muenchen-oberbayern"
ADULT_EDUCATION_CONSENT = {"partner_category": "adult_education", "purpose": "course_enrolment"}
JOBCENTER_CONSENT = {"partner_id": JOBCENTER, "purpose": "job_placement"}
CHAMBER_CONSENT = {"partner_category": "chamber", "purpose": "qualification_recognition"}
EVENT = "de.landsberg.integration.referral.{}.v1"


# --- helpers -------------------------------------------------------------------------------


def assert_problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    """The reply is RFC 9457 Problem Details with ``status``."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM_JSON), reply.headers["content-type"]
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"] and body["type"] and body["detail"]
    return body


#: The roster and the routing rules need a role (chassis.deps.require_role), also without a signed identity.
ADMIN = {"X-Role": "admin"}


def as_partner(partner_id: str) -> dict[str, str]:
    return {"X-Partner-Id": partner_id}


async def staff_view(referral: httpx.AsyncClient, referral_id: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(await referral.get(f"/api/v1/referrals/{referral_id}"))
    return result


async def referrals_of(referral: httpx.AsyncClient, person: str) -> dict[str, dict[str, Any]]:
    """The person's four referrals by service type, once routing has run."""
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    by_service = {r["service_type"]: r for r in case["referrals"]}
    assert set(by_service) == {
        "integration_course",
        "course_with_childcare",
        "job_placement",
        "qualification_recognition",
    }
    return by_service


async def partner_list(referral: httpx.AsyncClient, partner_id: str, **params: str) -> list[dict[str, Any]]:
    """Every referral the partner's list shows, all pages (the session's broker replays earlier tests' persons
    into each fresh referral database, so a partner sees other people's referrals too)."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await referral.get(
            PARTNER_REFERRALS, params={**params, "page": page, "page_size": 200}, headers=as_partner(partner_id)
        )
        body = ok(reply)
        items.extend(body["items"])
        if len(items) >= body["total"] or not body["items"]:
            return items
        page += 1


async def open_cases_of(referral: httpx.AsyncClient, worker: str, person: str) -> tuple[int, bool] | None:
    """(open_cases on the roster, whether the person's case is among them) once the roster agrees with the
    open cases listed for ``worker``; None while they differ (other persons' events may still be arriving)."""
    roster = {w["id"]: w for w in ok(await referral.get("/api/v1/caseworkers", headers=ADMIN))}
    listed = ok(await referral.get("/api/v1/cases", params={"caseworker_id": worker, "status": "open"}))
    if roster[worker]["open_cases"] != listed["total"]:
        return None
    params = {"caseworker_id": worker, "status": "open", "person_id": person}
    mine = ok(await referral.get("/api/v1/cases", params=params))
    return roster[worker]["open_cases"], mine["total"] == 1


async def events_of(broker: EmbeddedBroker, referral_id: str, until_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(CloudEvent type, data) of the events keyed by ``referral_id``, read until ``until_type`` is among them."""

    def mine(records: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (dict(r.headers)["ce_type"].decode(), json.loads(r.value)) for r in records if r.key == referral_id.encode()
        ]

    records = await consume(
        broker.bootstrap_servers, REFERRALS_TOPIC, until=lambda rs: any(t == until_type for t, _ in mine(rs))
    )
    return mine(records)


# --- demo data ------------------------------------------------------------------------------


async def test_demo_roster_and_directory_only_with_demo_data(database_url: str, broker: EmbeddedBroker) -> None:
    async def roster_and_offers(**overrides: Any) -> tuple[list[str], int]:
        app = create_app(referral_settings(database_url, broker.bootstrap_servers, **overrides))
        async with running_app(app) as referral:
            roster = ok(await referral.get("/api/v1/caseworkers", headers={"X-Role": "admin"}))
            async with app.state.runtime.session_factory() as session:
                offers = await session.scalar(select(func.count()).select_from(PartnerOfferRow))
        return [c["id"] for c in roster], int(offers or 0)

    assert await roster_and_offers() == ([], 0), "no demo team, no directory of its own"
    roster, offers = await roster_and_offers(demo_data=True)
    assert "lotse-a.berger" in roster and offers > 0


# --- the partners' side --------------------------------------------------------------------


async def test_partners_see_and_act_on_their_own_sent_referrals_only(platform: Any, broker: EmbeddedBroker) -> None:
    registration, referral = platform
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT, JOBCENTER_CONSENT])
    by_service = await referrals_of(referral, person)
    course = by_service["integration_course"]["referral_id"]
    childcare = by_service["course_with_childcare"]["referral_id"]
    job = by_service["job_placement"]["referral_id"]
    ihk = by_service["qualification_recognition"]
    assert (ihk["status"], ihk["partner_id"], ihk["blocked_reason"]) == ("proposed", IHK, "consent missing")

    # Each partner lists its own referrals; a proposed one was never shared, so it is not listed.
    case_id = by_service["job_placement"]["case_id"]
    for partner, expected in ((JOBCENTER, {job}), (VHS, {course, childcare}), (IHK, set())):
        listed = await partner_list(referral, partner)
        assert {r["partner_id"] for r in listed} <= {partner}, partner
        assert "proposed" not in {r["status"] for r in listed}, partner
        assert {r["referral_id"] for r in listed if r["case_id"] == case_id} == expected, partner
    assert await partner_list(referral, IHK, status="proposed") == []
    assert_problem(await referral.get(f"{PARTNER_REFERRALS}/{ihk['referral_id']}", headers=as_partner(IHK)), 404)

    # Another partner's referral does not exist for the Jobcenter: same answer as an unknown id, nothing changes.
    before = await staff_view(referral, course)
    attempts = [
        ("GET", "", None),
        ("POST", "/accept", None),
        ("POST", "/decline", {"reason": "not_our_service"}),
        ("POST", "/start", None),
        ("POST", "/complete", {"outcome": "successful"}),
    ]
    for method, action, body in attempts:
        reply = await referral.request(
            method, f"{PARTNER_REFERRALS}/{course}{action}", json=body, headers=as_partner(JOBCENTER)
        )
        problem = assert_problem(reply, 404)
        assert problem["type"].endswith("/not-found"), (action, problem)
    unknown = assert_problem(await referral.get(f"{PARTNER_REFERRALS}/{uuid.uuid4()}", headers=as_partner(VHS)), 404)
    assert unknown["type"] == problem["type"]
    assert await staff_view(referral, course) == before
    assert before["status"] == "sent"

    # The partner header is required.
    assert_problem(await referral.get(PARTNER_REFERRALS), 401)
    assert_problem(await referral.get(f"{PARTNER_REFERRALS}/{course}"), 401)
    assert_problem(await referral.post(f"{PARTNER_REFERRALS}/{course}/accept"), 401)
    assert (await staff_view(referral, course))["status"] == "sent"

    # The VHS works the course through: accept, start, complete.
    vhs = as_partner(VHS)
    early = assert_problem(await referral.post(f"{PARTNER_REFERRALS}/{course}/start", headers=vhs), 409)
    assert early["status_now"] == "sent" and early["type"].endswith("/invalid-transition")
    assert ok(await referral.post(f"{PARTNER_REFERRALS}/{course}/accept", headers=vhs))["status"] == "accepted"
    twice = assert_problem(await referral.post(f"{PARTNER_REFERRALS}/{course}/accept", headers=vhs), 409)
    assert twice["status_now"] == "accepted"
    assert ok(await referral.post(f"{PARTNER_REFERRALS}/{course}/start", headers=vhs))["status"] == "in_progress"
    with_reason = {"outcome": "successful", "reason": "other"}
    assert_problem(await referral.post(f"{PARTNER_REFERRALS}/{course}/complete", json=with_reason, headers=vhs), 422)
    done = ok(
        await referral.post(f"{PARTNER_REFERRALS}/{course}/complete", json={"outcome": "successful"}, headers=vhs)
    )
    assert (done["status"], done["outcome"], done["unsuccessful_reason"]) == ("completed", "successful", None)
    again = await referral.post(f"{PARTNER_REFERRALS}/{course}/complete", json={"outcome": "successful"}, headers=vhs)
    assert assert_problem(again, 409)["status_now"] == "completed"

    # A decline needs a reason from the list.
    decline = f"{PARTNER_REFERRALS}/{childcare}/decline"
    assert_problem(await referral.post(decline, headers=vhs), 422)
    assert_problem(await referral.post(decline, json={}, headers=vhs), 422)
    assert_problem(await referral.post(decline, json={"reason": "too busy"}, headers=vhs), 422)
    assert (await staff_view(referral, childcare))["status"] == "sent"
    declined = ok(await referral.post(decline, json={"reason": "no_capacity"}, headers=vhs))
    assert (declined["status"], declined["decline_reason"]) == ("declined", "no_capacity")
    assert_problem(await referral.post(f"{PARTNER_REFERRALS}/{childcare}/accept", headers=vhs), 409)
    declined_list = await partner_list(referral, VHS, status="declined")
    assert [r["referral_id"] for r in declined_list if r["case_id"] == case_id] == [childcare]
    assert {r["status"] for r in declined_list} == {"declined"}

    # An unsuccessful completion needs a reason.
    jobcenter = as_partner(JOBCENTER)
    assert ok(await referral.post(f"{PARTNER_REFERRALS}/{job}/accept", headers=jobcenter))["status"] == "accepted"
    assert ok(await referral.post(f"{PARTNER_REFERRALS}/{job}/start", headers=jobcenter))["status"] == "in_progress"
    complete = f"{PARTNER_REFERRALS}/{job}/complete"
    assert_problem(await referral.post(complete, json={"outcome": "unsuccessful"}, headers=jobcenter), 422)
    assert (await staff_view(referral, job))["status"] == "in_progress"
    unsuccessful = {"outcome": "unsuccessful", "reason": "could_not_contact_client"}
    failed = ok(await referral.post(complete, json=unsuccessful, headers=jobcenter))
    assert (failed["status"], failed["outcome"], failed["unsuccessful_reason"]) == (
        "completed",
        "unsuccessful",
        "could_not_contact_client",
    )

    # The lifecycle is on the broker, one CloudEvent per step, for the partners service to route.
    declined_events = await events_of(broker, childcare, EVENT.format("referral_declined"))
    assert [t for t, _ in declined_events] == [
        EVENT.format(name) for name in ("referral_proposed", "referral_sent", "referral_declined")
    ]
    data = declined_events[-1][1]
    assert (data["referral_id"], data["partner_id"], data["reason"]) == (childcare, VHS, "no_capacity")
    assert "given_names" not in json.dumps(data)
    course_events = await events_of(broker, course, EVENT.format("referral_completed"))
    assert [t for t, _ in course_events][-3:] == [
        EVENT.format(name) for name in ("referral_accepted", "referral_started", "referral_completed")
    ]
    job_events = await events_of(broker, job, EVENT.format("referral_completed"))
    assert job_events[-1][1]["outcome"] == "unsuccessful"
    assert job_events[-1][1]["reason"] == "could_not_contact_client"


async def test_a_partner_gets_contact_data_only_while_the_consent_is_in_force(
    platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registration, referral = platform
    given_names = f"Layla {uuid.uuid4().hex[:6]}"
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT], given_names=given_names)
    by_service = await referrals_of(referral, person)
    course = by_service["integration_course"]["referral_id"]
    childcare = by_service["course_with_childcare"]["referral_id"]
    job = by_service["job_placement"]
    assert job["status"] == "proposed" and job["blocked_reason"] == "consent missing"
    view_url = f"{PARTNER_REFERRALS}/{course}"

    # Referral asks registration over HTTP; nothing listens at registration_url in tests: a clear, degraded answer.
    view = ok(await referral.get(view_url, headers=as_partner(VHS)))
    assert view["referral"]["referral_id"] == course
    assert view["personal_data"] is None
    assert view["personal_data_status"] == "registration service unavailable; try again shortly"

    # With registration reachable (routed in-process to the real registration app) the contact data comes.
    transport = registration._transport

    def to_registration(**kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **kwargs)

    monkeypatch.setattr(
        referral_api, "httpx", types.SimpleNamespace(AsyncClient=to_registration, HTTPError=httpx.HTTPError)
    )
    view = ok(await referral.get(view_url, headers=as_partner(VHS)))
    assert view["personal_data_status"] == "shared under consent"
    assert view["personal_data"]["given_names"] == given_names
    assert view["personal_data"]["family_name"] == "Haddad"
    assert set(view["personal_data"]) == set(referral_api.CONTACT_FIELDS), "contact data only, no birth date etc."
    log = ok(await registration.get(f"/api/v1/persons/{person}/access-log"))
    actor = f"partner:{VHS} via service:referral for referral {course}"
    assert any(e["actor"] == actor and e["action"] == "read_contact" for e in log)

    # The consent is withdrawn: the shared referrals are flagged and the data stops.
    consents = ok(await registration.get(f"/api/v1/persons/{person}/consents"))
    assert len(consents) == 1
    withdrawal = f"/api/v1/persons/{person}/consents/{consents[0]['consent_id']}/withdrawal"
    assert ok(await registration.post(withdrawal))["in_force"] is False

    async def flagged() -> bool:
        return all([(await staff_view(referral, r))["consent_withdrawn"] for r in (course, childcare)])

    await eventually(flagged)
    assert (await staff_view(referral, job["referral_id"]))["consent_withdrawn"] is False
    view = ok(await referral.get(view_url, headers=as_partner(VHS)))
    assert view["personal_data"] is None
    assert view["personal_data_status"] == "no consent in force"
    assert view["referral"]["consent_withdrawn"] is True
    assert (await staff_view(referral, course))["status"] == "sent", "the referral itself stays; the data stops"


# --- response clocks -----------------------------------------------------------------------


async def test_unanswered_referrals_escalate_then_expire_on_the_controlled_clock(
    platform: Any, platform_clock: ManualClock, broker: EmbeddedBroker
) -> None:
    registration, referral = platform
    runtime = referral.app.state.runtime
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT, JOBCENTER_CONSENT])
    by_service = await referrals_of(referral, person)
    case_id = by_service["integration_course"]["case_id"]
    course = by_service["integration_course"]["referral_id"]
    childcare = by_service["course_with_childcare"]["referral_id"]
    job = by_service["job_placement"]["referral_id"]
    ihk = by_service["qualification_recognition"]["referral_id"]
    accepted = await referral.post(f"{PARTNER_REFERRALS}/{job}/accept", headers=as_partner(JOBCENTER))
    assert ok(accepted)["status"] == "accepted", "an answered referral runs no clock"

    async def escalated() -> set[str]:
        page = ok(await referral.get("/api/v1/referrals", params={"escalated": "true", "case_id": case_id}))
        return {r["referral_id"] for r in page["items"]}

    # (Counts include other persons the session's broker replays into this referral database.)
    await check_clocks(runtime)
    assert await escalated() == set(), "nothing is due yet"

    platform_clock.advance(days=8)  # more than the VHS's 5 working days, whatever the weekday
    assert (await check_clocks(runtime))["escalated"] >= 2
    assert await escalated() == {course, childcare}
    not_escalated = ok(await referral.get("/api/v1/referrals", params={"escalated": "false", "case_id": case_id}))
    assert {r["referral_id"] for r in not_escalated["items"]} == {job, ihk}
    assert (await staff_view(referral, course))["status"] == "sent"
    await check_clocks(runtime)
    escalation = (await events_of(broker, course, EVENT.format("referral_escalated")))[-1]
    assert escalation[0] == EVENT.format("referral_escalated")
    assert escalation[1]["partner_id"] == VHS

    platform_clock.advance(days=20)  # well past 10 more working days
    assert (await check_clocks(runtime))["expired"] >= 2
    statuses = {r: (await staff_view(referral, r))["status"] for r in (course, childcare, job, ihk)}
    assert statuses == {course: "expired", childcare: "expired", job: "accepted", ihk: "proposed"}
    late = await referral.post(f"{PARTNER_REFERRALS}/{course}/accept", headers=as_partner(VHS))
    assert assert_problem(late, 409)["status_now"] == "expired"
    expiry = await events_of(broker, childcare, EVENT.format("referral_expired"))
    assert [t for t, _ in expiry] == [
        EVENT.format(name) for name in ("referral_proposed", "referral_sent", "referral_escalated", "referral_expired")
    ], "escalated once, however often the clock runs"


# --- the caseworkers' side -----------------------------------------------------------------


async def test_caseworkers_send_revoke_reassign_note_and_plan_and_erasure_closes_the_case(platform: Any) -> None:
    registration, referral = platform
    person = await register_with_needs(registration, [ADULT_EDUCATION_CONSENT])
    by_service = await referrals_of(referral, person)
    case_id = by_service["integration_course"]["case_id"]
    course = by_service["integration_course"]["referral_id"]
    job = by_service["job_placement"]["referral_id"]
    ihk = by_service["qualification_recognition"]["referral_id"]
    unknown = str(uuid.uuid4())

    # Bulk send: each referral that cannot go says why.
    bulk = ok(
        await referral.post("/api/v1/referrals/bulk-send", json={"referral_ids": [ihk, job, unknown, course, ihk]})
    )
    assert bulk == {
        "sent": [],
        "not_sent": {ihk: "consent missing", job: "consent missing", unknown: "not found", course: "is sent"},
    }
    assert_problem(await referral.post("/api/v1/referrals/bulk-send", json={"referral_ids": []}), 422)
    refused = assert_problem(await referral.post(f"/api/v1/referrals/{job}/send"), 409)
    assert "consent missing" in refused["detail"] and refused["type"].endswith("/consent-missing")
    assert (await staff_view(referral, job))["status"] == "proposed"

    # Revoke a proposed referral, once.
    assert ok(await referral.post(f"/api/v1/referrals/{job}/revoke"))["status"] == "revoked"
    assert assert_problem(await referral.post(f"/api/v1/referrals/{job}/revoke"), 409)["status_now"] == "revoked"
    assert_problem(await referral.post(f"/api/v1/referrals/{unknown}/revoke"), 404)

    # The chamber consent arrives: the IHK referral goes out by itself.
    assert (await registration.post(f"/api/v1/persons/{person}/consents", json=CHAMBER_CONSENT)).status_code == 201

    async def ihk_sent() -> bool:
        return bool((await staff_view(referral, ihk))["status"] == "sent")

    await eventually(ihk_sent)
    assert (await staff_view(referral, ihk))["blocked_reason"] is None
    bulk = ok(await referral.post("/api/v1/referrals/bulk-send", json={"referral_ids": [ihk, job]}))
    assert bulk == {"sent": [], "not_sent": {ihk: "is sent", job: "is revoked"}}

    # Reassign the case to another integration navigator.
    assert (await eventually(lambda: open_cases_of(referral, "lotse-a.berger", person)))[1] is True
    assignment = f"/api/v1/cases/{case_id}/assignment"
    moved = ok(
        await referral.post(assignment, json={"caseworker_id": "lotse-m.wagner"}, headers={"X-Actor": "lead:k.huber"})
    )
    assert (moved["caseworker_id"], moved["team"]) == ("lotse-m.wagner", "integration-sued")
    timeline = ok(await referral.get(f"/api/v1/cases/{case_id}/timeline"))
    assignments = [t["summary"] for t in timeline if t["event_type"] == EVENT.format("case_assigned")]
    assert [(a["caseworker_id"], a["assigned_by"]) for a in assignments][-1] == ("lotse-m.wagner", "lead:k.huber")
    assert_problem(await referral.post(assignment, json={"caseworker_id": "lotse-x.nobody"}), 422)
    assert_problem(await referral.post(assignment, json={"caseworker_id": "lotse-a.berger", "team": "x"}), 422)
    wagner_cases, counted = await eventually(lambda: open_cases_of(referral, "lotse-m.wagner", person))
    assert counted and wagner_cases >= 1, "the roster counts the case for its new caseworker"
    assert (await eventually(lambda: open_cases_of(referral, "lotse-a.berger", person)))[1] is False
    workers = {w["id"]: w for w in ok(await referral.get("/api/v1/caseworkers", headers=ADMIN))}
    wagner = workers["lotse-m.wagner"]
    assert (wagner["name"], wagner["team"]) == ("Maria Wagner", "integration-sued")

    # An admin keeps the roster: a new navigator (by user name) takes cases once on it; inactive, none.
    entry = {"name": "Nadia Rahimi", "team": "integration-nord", "languages": ["fa", "de", "fa"], "max_cases": 30}
    admin, lotse = {"X-Role": "admin", "X-Actor": "user:admin"}, {"X-Role": "caseworker", "X-Team": "integration-nord"}
    assert_problem(await referral.put("/api/v1/caseworkers/n.rahimi", json=entry, headers=lotse), 403)
    assert_problem(
        await referral.put("/api/v1/caseworkers/n.rahimi", json={**entry, "max_cases": -1}, headers=admin), 422
    )
    assert_problem(await referral.put("/api/v1/caseworkers/N%20R", json=entry, headers=admin), 422)
    kept = ok(await referral.put("/api/v1/caseworkers/n.rahimi", json=entry, headers=admin))
    assert (kept["team"], kept["languages"], kept["open_cases"]) == ("integration-nord", ["de", "fa"], 0)
    roster = {w["id"]: w for w in ok(await referral.get("/api/v1/caseworkers", headers=admin))}
    assert roster["n.rahimi"]["name"] == "Nadia Rahimi"
    ok(await referral.put("/api/v1/caseworkers/n.rahimi", json={**entry, "active": False}, headers=admin))
    assert "n.rahimi" not in {w["id"] for w in ok(await referral.get("/api/v1/caseworkers", headers=admin))}
    everyone = ok(await referral.get("/api/v1/caseworkers", params={"include_inactive": "true"}, headers=admin))
    listed = {w["id"]: (w["active"], w["open_cases"]) for w in everyone}
    assert listed["n.rahimi"] == (False, 0), "the admin still finds an inactive navigator, to activate again"
    assert listed["lotse-m.wagner"][0] is True and listed["lotse-m.wagner"][1] >= 1

    # Notes carry their author; goals live in Esser's dimensions.
    note = await referral.post(
        f"/api/v1/cases/{case_id}/notes",
        json={"text": "Called; prefers the morning course."},
        headers={"X-Actor": "lotse-m.wagner"},
    )
    assert ok(note, 201)["author"] == "lotse-m.wagner"
    assert_problem(await referral.post(f"/api/v1/cases/{case_id}/notes", json={"text": "  "}), 422)
    assert_problem(await referral.post(f"/api/v1/cases/{uuid.uuid4()}/notes", json={"text": "x"}), 404)
    goals = f"/api/v1/cases/{case_id}/goals"
    goal = ok(
        await referral.post(goals, json={"dimension": "placement", "title": "Nursing job", "due_on": "2027-06-30"}),
        201,
    )
    assert (goal["dimension"], goal["status"], goal["due_on"]) == ("placement", "open", "2027-06-30")
    assert_problem(await referral.post(goals, json={"dimension": "wellbeing", "title": "x"}), 422)
    updated = ok(await referral.patch(f"{goals}/{goal['goal_id']}", json={"status": "in_progress"}))
    assert (updated["status"], updated["title"]) == ("in_progress", "Nursing job")
    moved = ok(await referral.patch(f"{goals}/{goal['goal_id']}", json={"due_on": "2027-09-30"}))
    assert (moved["due_on"], moved["status"]) == ("2027-09-30", "in_progress")
    assert_problem(await referral.patch(f"{goals}/{goal['goal_id']}", json={"status": None}), 422)
    assert_problem(await referral.patch(f"{goals}/{goal['goal_id']}", json={"status": "finished"}), 422)
    assert_problem(await referral.patch(f"{goals}/{uuid.uuid4()}", json={"status": "achieved"}), 404)
    case = ok(await referral.get(f"/api/v1/cases/{case_id}"))
    assert [(n["author"], n["text"]) for n in case["notes"]] == [
        ("lotse-m.wagner", "Called; prefers the morning course.")
    ]
    assert [(g["goal_id"], g["status"]) for g in case["goals"]] == [(goal["goal_id"], "in_progress")]
    assert case["caseworker_id"] == "lotse-m.wagner"

    # Erasure in registration closes the case here and removes what might identify the person.
    assert (await registration.delete(f"/api/v1/persons/{person}", params={"reason": "Art. 17"})).status_code == 204

    async def closed() -> dict[str, Any] | None:
        case = ok(await referral.get(f"/api/v1/cases/{case_id}"))
        return case if case["status"] == "closed" else None

    case = await eventually(closed)
    assert case["close_reason"] == "erased" and case["closed_at"] is not None
    assert case["notes"] == []
    assert [g["title"] for g in case["goals"]] == [None]
    assert (await eventually(lambda: open_cases_of(referral, "lotse-m.wagner", person)))[1] is False
    assert_problem(await referral.post(assignment, json={"caseworker_id": "lotse-a.berger"}), 409)
    # Nothing more may happen on the closed case, and no partner is to contact the person any more.
    assert_problem(await referral.post(f"/api/v1/cases/{case_id}/notes", json={"text": "late note"}), 409)
    assert_problem(await referral.post(goals, json={"dimension": "placement", "title": "late goal"}), 409)
    assert {r["status"] for r in case["referrals"]} <= {"revoked", "completed", "declined", "expired"}
    assert any(r["status"] == "revoked" for r in case["referrals"])
    # What stays is the skeleton: no household link, no matched facts, a timeline of what happened when.
    assert case["household_id"] is None and all(r["matched_facts"] == {} for r in case["referrals"])
    timeline = ok(await referral.get(f"/api/v1/cases/{case_id}/timeline"))
    assert EVENT.format("case_closed") in {t["event_type"] for t in timeline}
    assert all(set(t["summary"]) <= KEPT_AFTER_ERASURE for t in timeline), timeline


# --- routing rules -------------------------------------------------------------------------


async def test_routing_rules_are_versioned_and_invalid_sets_are_refused_whole(platform: Any) -> None:
    registration, referral = platform
    current = ok(await referral.get("/api/v1/routing-rules", headers=ADMIN))
    assert current["version"] == 0
    assert [r["id"] for r in current["rules"]] == [r.id for r in DEFAULT_RULES.rules]
    assert ok(await referral.get("/api/v1/routing-rules/versions", headers=ADMIN)) == []

    housing = {
        "id": "childcare-housing-advice",
        "description": "Families needing childcare: the city's housing advice, no personal data shared",
        "when": {"need_any": ["childcare"]},
        "service_type": "housing_advice",
        "purpose": "referral",
        "shares_personal_data": False,
    }
    saved = ok(
        await referral.put(
            "/api/v1/routing-rules", json=[*current["rules"], housing], headers={**ADMIN, "X-Actor": "lead:x"}
        )
    )
    assert (saved["version"], saved["created_by"]) == (1, "lead:x") and saved["created_at"]
    assert current["created_by"] is None, "version 0 is the shipped default"
    assert [r["id"] for r in saved["rules"]] == [*(r["id"] for r in current["rules"]), housing["id"]]

    invalid = {
        "duplicate ids": [*current["rules"], housing, housing],
        "empty when": [*current["rules"], {**housing, "id": "empty-when", "when": {}}],
        "unknown field": [*current["rules"], {**housing, "id": "with-priority", "priority": 1}],
        "unknown service": [{**housing, "service_type": "dog_walking"}],
        "no rules": [],
        "not a list": {"rules": [housing]},
    }
    for name, body in invalid.items():
        problem = assert_problem(await referral.put("/api/v1/routing-rules", json=body, headers=ADMIN), 422)
        assert problem["errors"], name
    duplicate = assert_problem(
        await referral.put("/api/v1/routing-rules", json=invalid["duplicate ids"], headers=ADMIN), 422
    )
    assert "unique" in json.dumps(duplicate["errors"])
    assert ok(await referral.get("/api/v1/routing-rules", headers=ADMIN))["version"] == 1
    versions = ok(await referral.get("/api/v1/routing-rules/versions", headers=ADMIN))
    assert [(v["version"], v["created_by"]) for v in versions] == [(1, "lead:x")]
    assert versions[0]["rules"][-1]["id"] == housing["id"]

    # The new version routes the next newcomer: housing advice goes out without a consent (no data shared).
    person = await register_with_needs(registration, [])
    case = await eventually(lambda: case_with_referrals(referral, person, 5))
    by_service = {r["service_type"]: r for r in case["referrals"]}
    advice = by_service["housing_advice"]
    assert (advice["status"], advice["partner_id"], advice["rule_id"], advice["rule_set_version"]) == (
        "sent",
        "stadt-landsberg-integration",
        housing["id"],
        1,
    )
    assert {r["rule_set_version"] for r in case["referrals"]} == {1}
    assert by_service["integration_course"]["blocked_reason"] == "consent missing"
