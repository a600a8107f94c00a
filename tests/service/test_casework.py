"""The caseworker's day through the services (issue 14): a case list's names in one audited, object-checked read;
search by name, birth date and case number within the team; the queue of cases no team has; closing a case with
a reason and reopening it, with registration following (the team reaches the person's data only while the case is
open). Another team's caseworker gets 404 everywhere, as for ids that do not exist.

Registration on the parametrized database, referral on its own SQLite file with the demo roster, both on the
session's broker; called directly with the plain identity headers the identity middleware leaves after verifying
the gateway's token.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from contracts.calendar import today as city_today
from services.referral.models import PartnerOfferRow
from tests.conftest import (
    ADMIN,
    LOTSE_NORD,
    LOTSE_SUED,
    NORD,
    SUED,
    eventually,
    newcomer,
    ok,
    problem,
)
from tests.service.conftest import Services, case_in_team, reaches

NordCase = tuple[httpx.AsyncClient, httpx.AsyncClient, str, dict[str, Any]]


@pytest.fixture
async def nord_case(registration_under_test: Services) -> NordCase:
    """(registration, referral, person id, case): a newcomer's case that an admin handed to team Nord's
    Anna Berger, once registration lets team Nord read the person."""
    registration, referral = registration_under_test
    person, case = await case_in_team(registration, referral, "lotse-a.berger", LOTSE_NORD)
    return registration, referral, person, case


async def test_a_case_lists_names_come_in_one_audited_read_of_the_teams_persons_only(
    registration_under_test: Services,
) -> None:
    registration, referral = registration_under_test
    mine, _ = await case_in_team(registration, referral, "lotse-a.berger", LOTSE_NORD, given_names="Leyla Nord")
    theirs, _ = await case_in_team(
        registration,
        referral,
        "lotse-m.wagner",
        LOTSE_SUED,
        given_names="Olga Sued",
        languages=["ru"],
        preferred_language="ru",
    )

    body = {"person_ids": [mine, theirs, "no-such-person", mine]}
    found = ok(await registration.post("/api/v1/persons/lookup", json=body, headers=LOTSE_NORD))
    assert [p["person_id"] for p in found] == [mine], "another team's person is left out, like an unknown id"
    assert found[0]["given_names"] == "Leyla Nord" and found[0]["family_name"] == "Haddad"
    assert found[0]["preferred_language"] == "ar" and found[0]["age_band"] == "27-44"
    assert "birth_date" not in found[0] and "email" not in found[0], "a list shows no more than it needs"
    both = ok(await registration.post("/api/v1/persons/lookup", json=body, headers=ADMIN))
    assert {p["person_id"] for p in both} == {mine, theirs}

    # Every answered read is in the person's access log, with why; the refused one is not in the other's.
    log = ok(await registration.get(f"/api/v1/persons/{mine}/access-log", headers=ADMIN))
    assert {"actor": "user:lotse", "action": "lookup", "purpose": "case work (integration counselling)"} in [
        {k: e[k] for k in ("actor", "action", "purpose")} for e in log
    ]
    theirs_log = ok(await registration.get(f"/api/v1/persons/{theirs}/access-log", headers=ADMIN))
    assert "user:lotse" not in {e["actor"] for e in theirs_log}

    # Bad input is a Problem: an empty list, or more than a page.
    problem(
        await registration.post("/api/v1/persons/lookup", json={"person_ids": []}, headers=LOTSE_NORD),
        422,
        "validation",
    )
    many = {"person_ids": [f"p-{i}" for i in range(201)]}
    problem(await registration.post("/api/v1/persons/lookup", json=many, headers=LOTSE_NORD), 422, "validation")

    # Search by name (any words, any case) and birth date: the team's persons only.
    for params in ({"name": "leyla"}, {"name": "NORD haddad"}, {"birth_date": "1991-03-14"}):
        listed = ok(await registration.get("/api/v1/persons", params=params, headers=LOTSE_NORD))
        assert [p["person_id"] for p in listed["items"]] == [mine], params
    assert ok(await registration.get("/api/v1/persons", params={"name": "olga"}, headers=LOTSE_NORD))["total"] == 0
    assert ok(await registration.get("/api/v1/persons", params={"name": "olga"}, headers=LOTSE_SUED))["total"] == 1
    assert ok(await registration.get("/api/v1/persons", params={"name": "100%"}, headers=ADMIN))["total"] == 0


async def test_closing_with_a_reason_and_reopening_a_case(
    nord_case: NordCase,
) -> None:
    registration, referral, person, case = nord_case
    url = f"/api/v1/cases/{case['case_id']}"

    # Search by case number, within the team.
    number = case["case_id"][:8]
    listed = ok(await referral.get("/api/v1/cases", params={"number": number}, headers=LOTSE_NORD))
    assert [c["case_id"] for c in listed["items"]] == [case["case_id"]]
    assert listed["items"][0]["age_band"] == "27-44" and listed["items"][0]["preferred_language"] == "ar"
    assert ok(await referral.get("/api/v1/cases", params={"number": number}, headers=LOTSE_SUED))["total"] == 0
    problem(await referral.get("/api/v1/cases", params={"number": "x'--"}, headers=LOTSE_NORD), 422, "validation")

    # Another team: 404 as for an unknown case; nothing changes.
    problem(await referral.post(f"{url}/closing", json={"reason": "no_contact"}, headers=LOTSE_SUED), 404, "not-found")
    # Erasure is registration's to tell, never a caseworker's reason; an unknown reason is refused too.
    for reason in ("erased", "bored"):
        problem(await referral.post(f"{url}/closing", json={"reason": reason}, headers=LOTSE_NORD), 422, "validation")
    assert ok(await referral.get(url, headers=LOTSE_NORD))["status"] == "open"

    closed = ok(await referral.post(f"{url}/closing", json={"reason": "no_contact"}, headers=LOTSE_NORD))
    assert closed["status"] == "closed" and closed["close_reason"] == "no_contact"
    detail = ok(await referral.get(url, headers=LOTSE_NORD))
    assert {r["status"] for r in detail["referrals"]} == {"revoked"}, "nobody is contacted for a closed case"
    problem(await referral.post(f"{url}/notes", json={"text": "x"}, headers=LOTSE_NORD), 409, "case-closed")
    problem(await referral.post(f"{url}/closing", json={"reason": "other"}, headers=LOTSE_NORD), 409, "case-closed")
    timeline = ok(await referral.get(f"{url}/timeline", headers=LOTSE_NORD))
    closing = next(e for e in timeline if e["event_type"].endswith("case_closed.v1"))
    assert closing["summary"]["closed_by"] == "user:lotse" and closing["summary"]["reason"] == "no_contact"

    # Registration follows: the team no longer reaches the person's data.
    async def out_of_reach() -> bool:
        return (await registration.get(f"/api/v1/persons/{person}", headers=LOTSE_NORD)).status_code == 404

    await eventually(out_of_reach)

    problem(await referral.post(f"{url}/reopening", headers=LOTSE_SUED), 404, "not-found")
    reopened = ok(await referral.post(f"{url}/reopening", headers=LOTSE_NORD))
    assert reopened["status"] == "open" and reopened["close_reason"] is None and reopened["team"] == NORD
    problem(await referral.post(f"{url}/reopening", headers=LOTSE_NORD), 409, "case-rule")
    await eventually(lambda: reaches(registration, person, LOTSE_NORD))
    timeline = ok(await referral.get(f"{url}/timeline", headers=LOTSE_NORD))
    assert timeline[-1]["event_type"].endswith("case_reopened.v1")
    assert timeline[-1]["summary"]["reopened_by"] == "user:lotse"

    # Once the register says the person moved away, the case closes and stays closed.
    privacy = {"X-Role": "privacy_officer", "X-Actor": "user:datenschutz"}
    moving = {"moved_away_on": "2026-11-30", "reason": "Abmeldung beim Bürgerbüro"}
    ok(await registration.post(f"/api/v1/persons/{person}/move-away", json=moving, headers=privacy))

    async def closed_by_move() -> bool:
        return bool(ok(await referral.get(url, headers=LOTSE_NORD))["close_reason"] == "moved_away")

    await eventually(closed_by_move)
    problem(await referral.post(f"{url}/reopening", headers=LOTSE_NORD), 409, "case-rule")


async def test_the_queue_of_cases_no_team_has(registration_under_test: Services) -> None:
    registration, referral = registration_under_test
    # The whole roster is away: new cases get no team and wait in the queue.
    for worker in ok(await referral.get("/api/v1/caseworkers", headers=ADMIN)):
        entry = {k: worker[k] for k in ("name", "team", "languages", "max_cases")} | {"active": False}
        ok(await referral.put(f"/api/v1/caseworkers/{worker['id']}", json=entry, headers=ADMIN))
    reply = await registration.post("/api/v1/registrations", json=newcomer())
    person = ok(reply, 201)["person_id"]

    async def queued() -> list[dict[str, Any]]:
        listed = ok(await referral.get("/api/v1/cases", params={"unassigned": "true"}, headers=LOTSE_SUED))
        return [c for c in listed["items"] if c["person_id"] == person]

    waiting = (await eventually(queued))[0]
    for worker in ok(await referral.get("/api/v1/caseworkers", params={"include_inactive": "true"}, headers=ADMIN)):
        entry = {k: worker[k] for k in ("name", "team", "languages", "max_cases")} | {"active": True}
        ok(await referral.put(f"/api/v1/caseworkers/{worker['id']}", json=entry, headers=ADMIN))  # back from lunch
    assert waiting["team"] is None and waiting["caseworker_id"] is None
    assert waiting["age_band"] == "27-44" and waiting["preferred_language"] == "ar", "enough to pick, no name"
    assert ok(await referral.get("/api/v1/cases", params={"person_id": person}, headers=LOTSE_NORD))["total"] == 0
    problem(await referral.get(f"/api/v1/cases/{waiting['case_id']}", headers=LOTSE_NORD), 404, "not-found")
    lookup = {"person_ids": [person]}
    assert ok(await registration.post("/api/v1/persons/lookup", json=lookup, headers=LOTSE_NORD)) == []

    # A caseworker takes it into their own team, not into another one.
    assignment = f"/api/v1/cases/{waiting['case_id']}/assignment"
    refused = await referral.post(assignment, json={"caseworker_id": "lotse-a.berger"}, headers=LOTSE_SUED)
    assert refused.status_code == 403, refused.text
    taken = ok(await referral.post(assignment, json={"caseworker_id": "lotse-m.wagner"}, headers=LOTSE_SUED))
    assert taken["team"] == SUED and taken["caseworker_id"] == "lotse-m.wagner"
    assert await queued() == []
    problem(
        await referral.post(assignment, json={"caseworker_id": "lotse-a.berger"}, headers=LOTSE_NORD), 404, "not-found"
    )
    await eventually(lambda: reaches(registration, person, LOTSE_SUED))


async def test_referring_elsewhere_names_the_target_and_the_reason(
    nord_case: NordCase,
) -> None:
    registration, referral, person, case = nord_case
    # A second partner for job placement (as the partners service's events would announce one).
    async with referral.app.state.runtime.unit_of_work() as uow:  # type: ignore[attr-defined]
        uow.session.add(
            PartnerOfferRow(
                partner_id="kolping-landsberg",
                service_type="job_placement",
                partner_name="Kolping-Bildungswerk",
                partner_category="charity",
                free_places=5,
                languages=["de"],
                response_days=5,
            )
        )
        await uow.commit()
    for consent in (
        {"partner_id": "jobcenter-landsberg", "purpose": "job_placement"},
        {"partner_category": "charity", "purpose": "job_placement"},
    ):
        ok(await registration.post(f"/api/v1/persons/{person}/consents", json=consent, headers=LOTSE_NORD), 201)
    job_id = next(r["referral_id"] for r in case["referrals"] if r["service_type"] == "job_placement")
    url = f"/api/v1/referrals/{job_id}"

    async def sent() -> bool:
        return bool(ok(await referral.get(url, headers=LOTSE_NORD))["status"] == "sent")

    await eventually(sent)
    jobcenter = {"X-Partner-Id": "jobcenter-landsberg"}
    ok(await referral.post(f"/api/v1/partner/referrals/{job_id}/accept", headers=jobcenter))

    elsewhere = {"partner_id": "kolping-landsberg", "reason": "better_fit"}
    problem(await referral.post(f"{url}/refer-elsewhere", json=elsewhere, headers=LOTSE_SUED), 404, "not-found")
    for wrong in (
        {"partner_id": "ihk-muenchen-oberbayern", "reason": "better_fit"},  # does not place jobs
        {"partner_id": "jobcenter-landsberg", "reason": "better_fit"},  # has it already
        {"partner_id": "kolping-landsberg", "reason": "whim"},
    ):
        problem(await referral.post(f"{url}/refer-elsewhere", json=wrong, headers=LOTSE_NORD), 422, "validation")
    assert ok(await referral.get(url, headers=LOTSE_NORD))["status"] == "accepted", "nothing changed"

    moved = ok(await referral.post(f"{url}/refer-elsewhere", json=elsewhere, headers=LOTSE_NORD))
    assert moved["status"] == "referred_elsewhere"
    detail = ok(await referral.get(f"/api/v1/cases/{case['case_id']}", headers=LOTSE_NORD))
    jobs = [r for r in detail["referrals"] if r["service_type"] == "job_placement"]
    assert [(r["partner_id"], r["status"]) for r in jobs] == [
        ("jobcenter-landsberg", "referred_elsewhere"),
        ("kolping-landsberg", "sent"),
    ], "the same service, sent to the target under the person's consent for its kind of partner"
    timeline = ok(await referral.get(f"/api/v1/cases/{case['case_id']}/timeline", headers=LOTSE_NORD))
    entry = next(e for e in timeline if e["event_type"].endswith("referral_referred_elsewhere.v1"))
    assert entry["summary"]["target_partner_id"] == "kolping-landsberg" and entry["summary"]["reason"] == "better_fit"
    assert entry["summary"]["by"] == "user:lotse", "the timeline says who acted"
    problem(
        await referral.post(f"{url}/refer-elsewhere", json=elsewhere, headers=LOTSE_NORD), 409, "invalid-transition"
    )


async def test_follow_ups_with_due_dates_show_on_the_case_list(
    nord_case: NordCase,
) -> None:
    registration, referral, person, case = nord_case
    url = f"/api/v1/cases/{case['case_id']}"
    call = ok(
        await referral.post(f"{url}/tasks", json={"title": "Rückruf", "due_on": "2026-12-14"}, headers=LOTSE_NORD), 201
    )
    ok(
        await referral.post(
            f"{url}/tasks", json={"title": "Zeugnisse mitbringen", "due_on": "2026-12-09"}, headers=LOTSE_NORD
        ),
        201,
    )
    ok(await referral.post(f"{url}/tasks", json={"title": "Irgendwann"}, headers=LOTSE_NORD), 201)
    assert call["done"] is False and call["created_by"] == "user:lotse"
    problem(await referral.post(f"{url}/tasks", json={"title": ""}, headers=LOTSE_NORD), 422, "validation")
    problem(await referral.post(f"{url}/tasks", json={"title": "x"}, headers=LOTSE_SUED), 404, "not-found")
    task_url = f"{url}/tasks/{call['task_id']}"
    problem(await referral.patch(task_url, json={"done": True}, headers=LOTSE_SUED), 404, "not-found")

    listed = ok(await referral.get("/api/v1/cases", params={"number": case["case_id"][:8]}, headers=LOTSE_NORD))
    assert (listed["items"][0]["open_tasks"], listed["items"][0]["next_due_on"]) == (3, "2026-12-09")
    done = ok(await referral.patch(task_url, json={"done": True}, headers=LOTSE_NORD))
    assert done["done"] is True and done["done_by"] == "user:lotse"
    detail = ok(await referral.get(url, headers=LOTSE_NORD))
    assert (detail["open_tasks"], detail["next_due_on"]) == (2, "2026-12-09")
    assert [t["title"] for t in detail["tasks"]] == ["Zeugnisse mitbringen", "Rückruf", "Irgendwann"], "by due date"
    other = ok(await referral.get(f"/api/v1/cases/{case['case_id']}", headers=ADMIN))
    assert other["open_tasks"] == 2

    # A follow-up's title is free text that may name the person: it goes with an erasure.
    privacy = {"X-Role": "privacy_officer", "X-Actor": "user:datenschutz"}
    erasure = {"reason": "Antrag der Person nach Art. 17 DSGVO"}
    assert (
        await registration.request("DELETE", f"/api/v1/persons/{person}", json=erasure, headers=privacy)
    ).status_code == 204

    async def tasks_gone() -> bool:
        after = ok(await referral.get(url, headers=ADMIN))
        return bool(after["status"] == "closed" and after["tasks"] == [] and after["open_tasks"] == 0)

    await eventually(tasks_gone)


async def test_plan_goals_due_are_reminders_of_the_teams_open_cases_only(
    nord_case: NordCase,
) -> None:
    """Goals overdue or due within the days asked for, not reached yet, of the caller's open cases: earliest first."""
    _, referral, person, case = nord_case
    url = f"/api/v1/cases/{case['case_id']}/goals"
    today = city_today()

    async def add(title: str, due: date | None) -> dict[str, Any]:
        body = {"dimension": "placement", "title": title, "due_on": due.isoformat() if due else None}
        added: dict[str, Any] = ok(await referral.post(url, json=body, headers=LOTSE_NORD), 201)
        return added

    overdue = await add("Anerkennung beantragen", today - timedelta(days=3))
    soon = await add("Kita-Platz anmelden", today + timedelta(days=2))
    await add("Führerschein umschreiben", today + timedelta(days=40))
    await add("Ohne Datum", None)
    reached = await add("Schon erreicht", today - timedelta(days=1))
    ok(await referral.patch(f"{url}/{reached['goal_id']}", json={"status": "achieved"}, headers=LOTSE_NORD))

    due = ok(await referral.get("/api/v1/cases/goals-due", headers=LOTSE_NORD))
    assert [g["goal_id"] for g in due] == [overdue["goal_id"], soon["goal_id"]], "not reached, within 7 days"
    assert [g["overdue"] for g in due] == [True, False]
    assert due[0]["case_id"] == case["case_id"] and due[0]["case_person_id"] == person
    wider = ok(await referral.get("/api/v1/cases/goals-due", params={"within_days": 60}, headers=LOTSE_NORD))
    assert len(wider) == 3
    assert ok(await referral.get("/api/v1/cases/goals-due", headers=LOTSE_SUED)) == [], "another team's: none"
    problem(
        await referral.get("/api/v1/cases/goals-due", params={"within_days": 1000}, headers=LOTSE_NORD),
        422,
        "validation",
    )
    log = await referral.get(f"/api/v1/persons/{person}/access-log", headers=ADMIN)
    assert any(e["action"] == "read_goals_due" and e["actor"] == "user:lotse" for e in ok(log)), "the read is logged"

    # A closed case reminds nobody.
    ok(
        await referral.post(
            f"/api/v1/cases/{case['case_id']}/closing", json={"reason": "no_contact"}, headers=LOTSE_NORD
        )
    )
    assert ok(await referral.get("/api/v1/cases/goals-due", headers=LOTSE_NORD)) == []


async def test_the_timeline_names_who_recorded_consents_and_needs_in_registration(
    nord_case: NordCase,
) -> None:
    """Registration's events carry the signed caller's account (a staff account, never the newcomer's data), so the
    case's timeline says who recorded a consent, its withdrawal and a needs assessment, not "System"."""
    registration, referral, person, case = nord_case
    jobcenter = {"partner_id": "jobcenter-landsberg", "purpose": "job_placement"}
    consent = ok(await registration.post(f"/api/v1/persons/{person}/consents", json=jobcenter, headers=LOTSE_NORD), 201)
    ok(
        await registration.post(
            f"/api/v1/persons/{person}/consents/{consent['consent_id']}/withdrawal", headers=LOTSE_NORD
        )
    )
    needs = {"german_level": "A2", "schooling": "secondary", "employment_situation": "job_seeking"}
    ok(await registration.post(f"/api/v1/persons/{person}/needs-assessments", json=needs, headers=LOTSE_NORD), 201)

    async def recorded() -> dict[str, Any] | None:
        entries = ok(await referral.get(f"/api/v1/cases/{case['case_id']}/timeline", headers=LOTSE_NORD))
        by = {e["event_type"].split(".")[-2]: e["summary"].get("recorded_by") for e in entries}
        wanted = ("consent_given", "consent_withdrawn", "needs_assessed")
        return by if all(by.get(kind) == "user:lotse" for kind in wanted) else None

    assert await eventually(recorded)
