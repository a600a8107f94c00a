"""One case per household (issue 14): a family registered together has one case with its members, a child is a
member and never a case of its own, each adult keeps their own referrals, a goal can name the member it is for, the
case's team reaches every member in registration, and one member's erasure or move away leaves the others' case
going (its lead handed to the next adult) until the last member leaves.

Registration on the parametrized database, referral on its own SQLite file with the demo roster (``platform``),
both on the session's broker.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import REFERRAL_NEEDS, eventually, newcomer, ok

GROUND = {"reason": "Antrag der Person nach Art. 17 DSGVO"}
PRIVACY = {"X-Role": "privacy_officer", "X-Actor": "user:datenschutz"}


def member(**overrides: Any) -> dict[str, Any]:
    return {k: v for k, v in newcomer(**overrides).items() if k not in ("address", "phone", "email")}


async def case_of(referral: httpx.AsyncClient, person: str) -> dict[str, Any] | None:
    cases = ok(await referral.get("/api/v1/cases", params={"person_id": person}))
    if cases["total"] != 1:
        return None
    detail: dict[str, Any] = ok(await referral.get(f"/api/v1/cases/{cases['items'][0]['case_id']}"))
    return detail


async def test_a_household_has_one_case_with_its_members_and_outlives_a_member(platform: Any) -> None:
    registration, referral = platform
    family = ok(
        await registration.post(
            "/api/v1/registrations",
            json=newcomer(
                gender="female",
                household_members=[
                    member(gender="male", birth_date="1988-02-02"),
                    member(gender="female", birth_date="2019-06-01"),  # a child: 7
                    member(gender="male", birth_date="2025-01-01"),  # a baby
                ],
            ),
        ),
        201,
    )
    mother = family["person_id"]
    father, daughter, son = (m["person_id"] for m in family["household_members"])
    everyone = {mother, father, daughter, son}

    async def whole_household() -> dict[str, Any] | None:
        case = await case_of(referral, mother)
        return case if case is not None and {m["person_id"] for m in case["members"]} == everyone else None

    case = await eventually(whole_household)
    case_id = case["case_id"]
    for person in everyone:  # each member finds the household's case; the children have none of their own
        found = await case_of(referral, person)
        assert found is not None and found["case_id"] == case_id
    households = ok(await referral.get("/api/v1/cases", params={"page_size": 200}))["items"]
    assert [c["case_id"] for c in households if c["household_id"] == family["household_id"]] == [case_id]
    # Several persons at once (a search's results): the one case, listing its members, the lead first.
    [listed] = ok(await referral.get("/api/v1/cases", params={"person_id": [daughter, son]}))["items"]
    assert listed["case_id"] == case_id and set(listed["member_ids"]) == everyone
    assert listed["member_ids"][0] == listed["person_id"], "the lead first"
    # The lead is an adult, whichever member's event came first.
    lead = next(m for m in case["members"] if m["lead"])
    assert lead["person_id"] in {mother, father} and case["person_id"] == lead["person_id"]
    bands = {m["person_id"]: m["age_band"] for m in case["members"]}
    assert (bands[daughter], bands[son]) == ("6-9", "0-2")

    # Both parents' needs: each adult has their own referrals in the one case (not one course for the household).
    for parent in (mother, father):
        ok(await registration.post(f"/api/v1/persons/{parent}/needs-assessments", json=REFERRAL_NEEDS), 201)

    async def both_routed() -> dict[str, Any] | None:
        found = await case_of(referral, mother)
        if found is None:
            return None
        courses = {r["person_id"] for r in found["referrals"] if r["service_type"] == "integration_course"}
        return found if courses == {mother, father} else None

    case = await eventually(both_routed)

    # A goal names the member it is for; a stranger to the household cannot be named.
    goals = f"/api/v1/cases/{case_id}/goals"
    language = "culture_and_language"
    kita = ok(await referral.post(goals, json={"dimension": "placement", "title": "Kita place", "person_id": son}), 201)
    school = ok(await referral.post(goals, json={"dimension": language, "title": "School", "person_id": daughter}), 201)
    assert (kita["person_id"], school["person_id"]) == (son, daughter)
    stranger = str(uuid.uuid4())
    refused = await referral.post(goals, json={"dimension": language, "title": "x", "person_id": stranger})
    assert refused.status_code == 422, refused.text
    ok(await referral.post(f"/api/v1/cases/{case_id}/notes", json={"text": "Family visit on Monday."}), 201)

    # Registration: the case's team reaches every member (the children too); another team none of them.
    team = case["team"]
    assert team is not None
    lotse = {"X-Role": "caseworker", "X-Team": team, "X-Actor": "user:lotse"}
    other = {"X-Role": "caseworker", "X-Team": "integration-elsewhere", "X-Actor": "user:other"}

    async def reached(person: str) -> bool:
        return bool((await registration.get(f"/api/v1/persons/{person}", headers=lotse)).status_code == 200)

    for person in everyone:
        assert await eventually(lambda person=person: reached(person))
        assert (await registration.get(f"/api/v1/persons/{person}", headers=other)).status_code == 404

    # Erasing the lead leaves the household's case to the others: open, the next adult leads, the notes stay.
    first_lead = case["person_id"]
    second_adult = ({mother, father} - {first_lead}).pop()
    ok(await registration.delete(f"/api/v1/persons/{first_lead}", params=GROUND, headers=PRIVACY), 204)

    async def lead_left() -> dict[str, Any] | None:
        found = await case_of(referral, second_adult)
        return found if found is not None and first_lead not in {m["person_id"] for m in found["members"]} else None

    case = await eventually(lead_left)
    assert case["status"] == "open" and case["person_id"] == second_adult
    assert [n["text"] for n in case["notes"]] == ["Family visit on Monday."]
    ended = {"revoked", "completed", "declined", "expired"}
    assert {r["status"] for r in case["referrals"] if r["person_id"] == first_lead} <= ended
    assert any(r["person_id"] == second_adult and r["status"] != "revoked" for r in case["referrals"])

    # Erasing the son takes his goal's title; his sister's stays.
    ok(await registration.delete(f"/api/v1/persons/{son}", params=GROUND, headers=PRIVACY), 204)

    async def son_left() -> dict[str, Any] | None:
        found = await case_of(referral, daughter)
        return found if found is not None and son not in {m["person_id"] for m in found["members"]} else None

    case = await eventually(son_left)
    titles = {g["person_id"]: g["title"] for g in case["goals"]}
    assert titles == {son: None, daughter: "School"} and case["status"] == "open"

    # The last members move away / are erased: the case closes with the last one.
    ok(await registration.delete(f"/api/v1/persons/{second_adult}", params=GROUND, headers=PRIVACY), 204)
    ok(await registration.delete(f"/api/v1/persons/{daughter}", params=GROUND, headers=PRIVACY), 204)

    async def closed() -> dict[str, Any] | None:
        found = ok(await referral.get(f"/api/v1/cases/{case_id}"))
        return found if found["status"] == "closed" else None

    case = await eventually(closed)
    assert case["close_reason"] == "erased" and case["notes"] == [] and case["household_id"] is None
