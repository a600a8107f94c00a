"""Behaviour of the registration service's HTTP API, on a real database (SQLite and PostgreSQL) and broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import func, select

from contracts.calendar import today as city_today
from services.registration.models import Consent, Household, NeedsAssessment, Person, messaging
from tests.conftest import newcomer

PROBLEM_JSON = "application/problem+json"
PACK_LANGUAGES = {"de", "en", "ar", "uk", "tr", "fa", "ru", "ro"}


# --- helpers -------------------------------------------------------------------------------


def assert_problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    """The reply is RFC 9457 Problem Details with ``status``."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM_JSON), reply.headers["content-type"]
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert body["detail"]
    return body


async def register(client: httpx.AsyncClient, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    reply = await client.post("/api/v1/registrations", json=body or newcomer(), headers=headers)
    assert reply.status_code == 201, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def read(client: httpx.AsyncClient, person_id: str) -> tuple[dict[str, Any], str]:
    reply = await client.get(f"/api/v1/persons/{person_id}")
    assert reply.status_code == 200, reply.text
    return reply.json(), reply.headers["etag"]


async def listed(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    reply = await client.get("/api/v1/persons", params={"page_size": 200, **params})
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


async def stored_counts(client: httpx.AsyncClient) -> dict[str, int]:
    """How many persons, households and outbox events the database holds."""
    async with client.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        return {
            "persons": await session.scalar(select(func.count()).select_from(Person)),
            "households": await session.scalar(select(func.count()).select_from(Household)),
            "events": await session.scalar(select(func.count()).select_from(messaging.outbox)),
            "listed": (await listed(client))["total"],
        }


@asynccontextmanager
async def answering_500s(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the same app that receives a crash as the 500 the service answers, instead of an exception."""
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        yield other


def token() -> str:
    """A name part that no other test uses, letters only."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])


def member(given_names: str, birth_date: str = "2015-05-01", **overrides: Any) -> dict[str, Any]:
    body = newcomer(given_names=given_names, birth_date=birth_date, **overrides)
    del body["address"]  # members live at the main applicant's address
    return body


NEEDS = {
    "german_level": "A1",
    "schooling": "secondary",
    "employment_situation": "job_seeking",
}


# --- duplicates ----------------------------------------------------------------------------


async def test_the_same_person_again_is_a_possible_duplicate_until_confirmed(registration: httpx.AsyncClient) -> None:
    name = token()
    first = await register(registration, newcomer(given_names=f"Amina {name}", family_name="Haddad"))
    before = await stored_counts(registration)

    for given_names, family_name in [
        (f"Amina {name}", "Haddad"),
        (f"amina {name}", "haddad"),
        (f"ÁMINA {name.upper()}", "Háddad"),
        (f"Amina-{name}", " Haddad "),
        ("Haddad", f"Amina {name}"),
    ]:
        reply = await registration.post(
            "/api/v1/registrations",
            json=newcomer(given_names=given_names, family_name=family_name, nationality="IQ"),
        )
        problem = assert_problem(reply, 409)
        assert [p["person_id"] for p in problem["existing_persons"]] == [first["person_id"]], (given_names, problem)
        assert problem["existing_persons"][0]["status"] == "registered"
        assert problem["existing_persons"][0]["registration_date"] == city_today().isoformat()
    assert await stored_counts(registration) == before

    confirmed = await register(
        registration, newcomer(given_names=f"amina {name}", family_name="haddad", confirm_new_person=True)
    )
    assert confirmed["person_id"] != first["person_id"]
    assert confirmed["household_id"] != first["household_id"]

    reply = await registration.post("/api/v1/registrations", json=newcomer(given_names=f"Amina {name}"))
    ids = {p["person_id"] for p in assert_problem(reply, 409)["existing_persons"]}
    assert ids == {first["person_id"], confirmed["person_id"]}

    await register(registration, newcomer(given_names=f"Amina {name}", birth_date="1991-03-15"))  # another person
    assert (await listed(registration))["total"] == 3


async def test_household_members_are_checked_for_duplicates_too(registration: httpx.AsyncClient) -> None:
    name = f"Omar {token()}"
    child = await register(registration, newcomer(given_names=name, birth_date="2015-05-01"))
    before = await stored_counts(registration)
    reply = await registration.post("/api/v1/registrations", json=newcomer(household_members=[member(name.lower())]))
    assert [p["person_id"] for p in assert_problem(reply, 409)["existing_persons"]] == [child["person_id"]]

    other = f"Lina {token()}"
    reply = await registration.post(
        "/api/v1/registrations", json=newcomer(household_members=[member(other), member(other.upper())])
    )
    assert_problem(reply, 422)  # the same person twice in one registration
    assert await stored_counts(registration) == before


# --- households ----------------------------------------------------------------------------


async def test_household_members_are_registered_together_and_others_can_join(registration: httpx.AsyncClient) -> None:
    main = await register(
        registration,
        newcomer(household_members=[member(f"Omar {token()}"), member(f"Lina {token()}", birth_date="2019-01-01")]),
    )
    household = main["household_id"]
    assert len(main["household_members"]) == 2
    assert {m["household_id"] for m in main["household_members"]} == {household}
    everyone = {main["person_id"], *(m["person_id"] for m in main["household_members"])}
    assert len(everyone) == 3

    page = await listed(registration, household_id=household)
    assert page["total"] == 3
    assert {p["person_id"] for p in page["items"]} == everyone
    assert {p["address"]["street"] for p in page["items"]} == {"Schwaighofstraße"}

    joined = await register(registration, newcomer(household_id=household, given_names=f"Karim {token()}"))
    assert joined["household_id"] == household
    page = await listed(registration, household_id=household)
    assert {p["person_id"] for p in page["items"]} == everyone | {joined["person_id"]}

    other = await register(registration)
    assert other["household_id"] != household
    assert (await listed(registration, household_id=household))["total"] == 4

    before = await stored_counts(registration)
    reply = await registration.post("/api/v1/registrations", json=newcomer(household_id=str(uuid.uuid4())))
    assert_problem(reply, 422)
    assert await stored_counts(registration) == before


# --- read and access log ---------------------------------------------------------------------


async def test_read_returns_the_person_with_an_etag_and_is_logged(registration: httpx.AsyncClient) -> None:
    body = newcomer(languages=["ar", "de"], arrival_date="2025-09-02")
    created = await register(registration, body, **{"X-Actor": "clerk-anna"})
    reply = await registration.get(f"/api/v1/persons/{created['person_id']}", headers={"X-Actor": "caseworker-7"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"1"'
    person = reply.json()
    assert person["person_id"] == created["person_id"]
    assert person["household_id"] == created["household_id"]
    assert person["status"] == "registered"
    assert person["version"] == 1
    assert person["given_names"] == body["given_names"]
    assert person["family_name"] == "Haddad"
    assert person["birth_date"] == "1991-03-14"
    assert person["nationality"] == "SY"
    assert person["languages"] == ["ar", "de"]
    assert person["preferred_language"] == "ar"
    assert person["residence_status_group"] == "recognised_refugee"
    assert person["arrival_date"] == "2025-09-02"
    assert person["registration_date"] == city_today().isoformat()
    assert person["address"] == {**body["address"], "city": "Landsberg am Lech"}
    assert person["phone"] == body["phone"]
    assert person["email"] == body["email"]
    assert person["moved_away_on"] is None
    today = city_today()
    age = today.year - 1991 - ((today.month, today.day) < (3, 14))
    low, high = person["age_band"].split("-")
    assert int(low) <= age <= int(high)

    log = await registration.get(f"/api/v1/persons/{created['person_id']}/access-log")
    assert log.status_code == 200, log.text
    entries = [(e["action"], e["actor"], e["person_id"]) for e in log.json()]
    assert entries == [
        ("read_access_log", "unauthenticated", created["person_id"]),  # reading the log is logged too
        ("read", "caseworker-7", created["person_id"]),
        ("register", "clerk-anna", created["person_id"]),
    ]

    assert_problem(await registration.get(f"/api/v1/persons/{uuid.uuid4()}"), 404)
    assert_problem(await registration.get(f"/api/v1/persons/{uuid.uuid4()}/access-log"), 404)


# --- list ----------------------------------------------------------------------------------


async def test_list_filters_and_pages(registration: httpx.AsyncClient) -> None:
    def address(district: str) -> dict[str, str]:
        return {"street": "Hauptplatz", "house_number": "1", "postal_code": "86899", "district": district}

    ids: dict[str, str] = {}
    for key, nationality, group, district in [
        ("sy-refugee-altstadt", "SY", "recognised_refugee", "Altstadt"),
        ("sy-asylum-altstadt", "SY", "asylum_seeker", "Altstadt"),
        ("ua-refugee-sandau", "UA", "recognised_refugee", "Sandau"),
        ("ua-other-sandau", "UA", "other", "Sandau"),
        ("af-asylum-reisch", "AF", "asylum_seeker", "Reisch"),
    ]:
        body = newcomer(nationality=nationality, residence_status_group=group, address=address(district))
        ids[key] = (await register(registration, body))["person_id"]

    async def found(**params: Any) -> set[str]:
        page = await listed(registration, **params)
        assert page["total"] == len(page["items"])
        return {p["person_id"] for p in page["items"]}

    assert await found() == set(ids.values())
    assert await found(district="Altstadt") == {ids["sy-refugee-altstadt"], ids["sy-asylum-altstadt"]}
    assert await found(nationality="UA") == {ids["ua-refugee-sandau"], ids["ua-other-sandau"]}
    assert await found(nationality="ua") == {ids["ua-refugee-sandau"], ids["ua-other-sandau"]}
    assert await found(residence_status_group="asylum_seeker") == {ids["sy-asylum-altstadt"], ids["af-asylum-reisch"]}
    assert await found(nationality="SY", residence_status_group="recognised_refugee") == {ids["sy-refugee-altstadt"]}
    assert await found(district="Pitzling") == set()

    seen: list[str] = []
    for page_number, size in [(1, 2), (2, 2), (3, 1), (4, 0)]:
        reply = await registration.get("/api/v1/persons", params={"page": page_number, "page_size": 2})
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (5, page_number, 2, size)
        seen += [p["person_id"] for p in page["items"]]
    assert sorted(seen) == sorted(ids.values())

    assert_problem(await registration.get("/api/v1/persons", params={"page_size": 201}), 422)
    assert_problem(await registration.get("/api/v1/persons", params={"residence_status_group": "alien"}), 422)
    assert_problem(await registration.get("/api/v1/persons", params={"status": "erased"}), 422)


# --- update --------------------------------------------------------------------------------


async def test_update_needs_the_current_etag(registration: httpx.AsyncClient) -> None:
    person_id = (await register(registration))["person_id"]
    url = f"/api/v1/persons/{person_id}"
    change = {"phone": "+49 8191 123456", "nationality": "iq", "languages": ["ar", "de"]}

    assert_problem(await registration.patch(url, json=change), 428)
    stale = assert_problem(await registration.patch(url, json=change, headers={"If-Match": '"7"'}), 412)
    assert stale["current_etag"] == '"1"'
    person, etag = await read(registration, person_id)
    assert (person["version"], person["phone"], etag) == (1, "+49 8191 000000", '"1"')

    reply = await registration.patch(url, json=change, headers={"If-Match": etag})
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"2"'
    updated = reply.json()
    assert (updated["version"], updated["phone"], updated["nationality"]) == (2, "+49 8191 123456", "IQ")
    assert updated["languages"] == ["ar", "de"]
    assert updated["given_names"] == person["given_names"]

    person, etag = await read(registration, person_id)
    assert (person["version"], person["phone"], person["nationality"], etag) == (2, "+49 8191 123456", "IQ", '"2"')

    assert_problem(await registration.patch(url, json={"phone": None}, headers={"If-Match": '"1"'}), 412)
    for unknown in ({"religion": "none"}, {"address": {**newcomer()["address"], "floor": "3"}}, {"birth_date": None}):
        assert_problem(await registration.patch(url, json=unknown, headers={"If-Match": etag}), 422)
    assert_problem(await registration.patch(url, json={"given_names": None}, headers={"If-Match": etag}), 422)
    bad_district = {"address": {**newcomer()["address"], "district": "Kreuzberg"}}
    assert_problem(await registration.patch(url, json=bad_district, headers={"If-Match": etag}), 422)
    assert (await read(registration, person_id))[0]["version"] == 2

    log = (await registration.get(f"{url}/access-log")).json()
    assert [e["action"] for e in log].count("update") == 1

    address = {"street": "Hauptplatz", "house_number": "152", "postal_code": "86899", "district": "Altstadt"}
    reply = await registration.patch(url, json={"address": address}, headers={"If-Match": etag})
    assert reply.status_code == 200, reply.text
    assert reply.headers["etag"] == '"3"'
    assert reply.json()["address"] == {**address, "city": "Landsberg am Lech"}
    assert {p["person_id"] for p in (await listed(registration, district="Altstadt"))["items"]} == {person_id}
    assert (await listed(registration, district="Schwaighofsiedlung"))["total"] == 0


# --- needs assessment ------------------------------------------------------------------------


async def test_needs_assessments_are_versioned_and_derive_need_categories(registration: httpx.AsyncClient) -> None:
    person_id = (await register(registration))["person_id"]
    url = f"/api/v1/persons/{person_id}/needs-assessments"

    first = await registration.post(url, json=NEEDS)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    assert first.json()["need_categories"] == ["language", "employment"]

    second_body = {
        **NEEDS,
        "german_level": "B1",
        "schooling": "primary",
        "recognise_foreign_qualification": True,
        "childcare_needed": True,
        "children_ages": [1, 4],
        "housing_need": True,
        "notes": "Sucht eine größere Wohnung.",
    }
    second = await registration.post(url, json=second_body)
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2
    assert second.json()["need_categories"] == ["education", "employment", "recognition", "housing", "childcare"]
    assert second.json()["children_ages"] == [1, 4]

    reply = await registration.get(url)
    assert reply.status_code == 200, reply.text
    assert [(a["version"], a["german_level"]) for a in reply.json()] == [(2, "B1"), (1, "A1")]
    assert reply.json()[0]["notes"] == "Sucht eine größere Wohnung."

    assert_problem(await registration.post(url, json={**NEEDS, "german_level": "A0"}), 422)
    assert_problem(await registration.post(url, json={**NEEDS, "children_ages": [18]}), 422)
    assert_problem(await registration.post(url, json={**NEEDS, "hobbies": "chess"}), 422)
    assert len((await registration.get(url)).json()) == 2

    child = (await register(registration, newcomer(birth_date="2016-01-01")))["person_id"]
    reply = await registration.post(
        f"/api/v1/persons/{child}/needs-assessments",
        json={"german_level": "B2", "schooling": "primary", "employment_situation": "in_school"},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["need_categories"] == []  # little schooling is an education need for adults only


# --- consents ------------------------------------------------------------------------------


async def test_consents_are_given_listed_and_withdrawn(registration: httpx.AsyncClient) -> None:
    person_id = (await register(registration))["person_id"]
    url = f"/api/v1/persons/{person_id}/consents"

    by_category = await registration.post(url, json={"partner_category": "job_centre", "purpose": "job_placement"})
    assert by_category.status_code == 201, by_category.text
    assert by_category.json()["in_force"] is True
    assert by_category.json()["partner_id"] is None
    expires = (city_today() + timedelta(days=365)).isoformat()
    by_partner = await registration.post(
        url, json={"partner_id": "caritas-landsberg", "purpose": "counselling", "expires_on": expires}
    )
    assert by_partner.status_code == 201, by_partner.text
    assert (by_partner.json()["partner_category"], by_partner.json()["expires_on"]) == (None, expires)

    for body in (
        {"partner_id": "caritas-landsberg", "partner_category": "charity", "purpose": "referral"},
        {"purpose": "referral"},
        {"partner_category": "charity", "purpose": "gossip"},
        {"partner_category": "charity", "purpose": "referral", "expires_on": "2000-01-01"},
        {"partner_category": "charity", "purpose": "referral", "given_at": "2099-01-01T00:00:00Z"},
    ):
        assert_problem(await registration.post(url, json=body), 422)

    consents = (await registration.get(url)).json()
    assert {c["consent_id"]: c["in_force"] for c in consents} == {
        by_category.json()["consent_id"]: True,
        by_partner.json()["consent_id"]: True,
    }

    withdrawal = f"{url}/{by_category.json()['consent_id']}/withdrawal"
    reply = await registration.post(withdrawal)
    assert reply.status_code == 200, reply.text
    assert reply.json()["in_force"] is False
    assert reply.json()["withdrawn_at"] is not None
    consents = (await registration.get(url)).json()
    assert {c["consent_id"]: c["in_force"] for c in consents} == {
        by_category.json()["consent_id"]: False,
        by_partner.json()["consent_id"]: True,
    }

    assert_problem(await registration.post(withdrawal), 409)
    assert_problem(await registration.post(f"{url}/{uuid.uuid4()}/withdrawal"), 404)


async def test_a_consent_given_with_a_utc_offset_keeps_its_moment(registration: httpx.AsyncClient) -> None:
    """A caseworker's client in Landsberg sends local time (+02:00 in summer) for given_at."""
    person_id = (await register(registration))["person_id"]
    url = f"/api/v1/persons/{person_id}/consents"
    given_at = (datetime.now(UTC) - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=2)))
    reply = await registration.post(
        url, json={"partner_category": "charity", "purpose": "referral", "given_at": given_at.isoformat()}
    )
    assert reply.status_code == 201, reply.text
    (stored,) = (await registration.get(url)).json()
    assert stored["in_force"] is True, stored
    assert datetime.fromisoformat(stored["given_at"]) == given_at


# --- move away -----------------------------------------------------------------------------


async def test_a_person_who_moved_away_cannot_be_changed(registration: httpx.AsyncClient) -> None:
    person_id = (await register(registration))["person_id"]
    url = f"/api/v1/persons/{person_id}"
    moved = {"moved_away_on": city_today().isoformat(), "reason": "Abmeldung beim Einwohnermeldeamt"}
    assert_problem(await registration.post(f"{url}/move-away", json=moved | {"moved_away_on": "2099-01-01"}), 422)
    assert_problem(await registration.post(f"{url}/move-away", json={"moved_away_on": moved["moved_away_on"]}), 422)

    reply = await registration.post(f"{url}/move-away", json=moved)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["moved_away_on"]) == ("moved_away", city_today().isoformat())
    assert reply.json()["version"] == 2

    person, etag = await read(registration, person_id)
    assert (person["status"], etag) == ("moved_away", '"2"')
    assert_problem(await registration.patch(url, json={"phone": "+49 1"}, headers={"If-Match": etag}), 409)
    assert_problem(await registration.post(f"{url}/move-away", json=moved), 409)
    assert_problem(await registration.post(f"{url}/needs-assessments", json=NEEDS), 409)
    consent = {"partner_category": "charity", "purpose": "referral"}
    assert_problem(await registration.post(f"{url}/consents", json=consent), 409)
    assert (await read(registration, person_id))[0]["version"] == 2

    assert (await listed(registration))["total"] == 0
    assert [p["person_id"] for p in (await listed(registration, status="moved_away"))["items"]] == [person_id]


# --- erasure -------------------------------------------------------------------------------


async def test_erasure_leaves_only_a_tombstone(registration: httpx.AsyncClient) -> None:
    body = newcomer()
    person_id = (await register(registration, body))["person_id"]
    url = f"/api/v1/persons/{person_id}"
    assert (await registration.post(f"{url}/needs-assessments", json=NEEDS)).status_code == 201
    consent = {"partner_category": "charity", "purpose": "referral"}
    assert (await registration.post(f"{url}/consents", json=consent)).status_code == 201

    assert_problem(await registration.delete(url), 422)  # an erasure names its ground
    ground = {"reason": "Antrag der Person nach Art. 17 DSGVO"}
    reply = await registration.request("DELETE", url, json=ground)
    assert reply.status_code == 204, reply.text
    assert reply.content == b""

    for gone in (
        await registration.get(url),
        await registration.get(f"{url}/needs-assessments"),
        await registration.get(f"{url}/consents"),
        await registration.patch(url, json={"phone": "+49 1"}, headers={"If-Match": '"3"'}),
        await registration.request("DELETE", url, json=ground),
    ):
        assert_problem(gone, 410)

    async with registration.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        row = await session.get(Person, person_id)
        assert row is not None
        assert row.status == "erased"
        assert row.erased_at is not None
        personal = {
            name: getattr(row, name)
            for name in (
                "given_names",
                "family_name",
                "birth_date",
                "street",
                "house_number",
                "postal_code",
                "phone",
                "email",
                "nationality",
                "languages",
                "duplicate_key",
            )
        }
        assert personal == dict.fromkeys(personal)
        for model in (NeedsAssessment, Consent):
            count = await session.scalar(select(func.count()).select_from(model).where(model.person_id == person_id))
            assert count == 0, model.__name__

    assert (await listed(registration))["total"] == 0
    again = await register(registration, body)  # the same person may register anew: no duplicate warning
    assert again["person_id"] != person_id


# --- bad input -----------------------------------------------------------------------------


def with_address(**changes: Any) -> Callable[[], dict[str, Any]]:
    return lambda: newcomer(address={**newcomer()["address"], **changes})


BAD_REGISTRATIONS: list[tuple[str, Callable[[], dict[str, Any]], int]] = [
    ("birth_date is a word", lambda: newcomer(birth_date="yesterday"), 422),
    ("birth_date in the future", lambda: newcomer(birth_date=(city_today() + timedelta(days=1)).isoformat()), 422),
    ("birth_date 131 years ago", lambda: newcomer(birth_date=f"{city_today().year - 131}-01-01"), 422),
    ("registration_date in the future", lambda: newcomer(registration_date="2099-01-01"), 422),
    ("arrival_date in the future", lambda: newcomer(arrival_date="2099-01-01"), 422),
    ("languages is a string", lambda: newcomer(languages="ar"), 422),
    ("languages is empty", lambda: newcomer(languages=[]), 422),
    ("unknown top-level field", lambda: newcomer(religion="none"), 422),
    ("unknown address field", with_address(floor="3"), 422),
    ("address missing", lambda: {k: v for k, v in newcomer().items() if k != "address"}, 422),
    ("country XX", lambda: newcomer(nationality="XX"), 422),
    ("country DEU", lambda: newcomer(nationality="DEU"), 422),
    ("language 'english!'", lambda: newcomer(languages=["english!"]), 422),
    ("preferred language 'zz-!!'", lambda: newcomer(preferred_language="zz-!!"), 422),
    ("unknown gender", lambda: newcomer(gender="x"), 422),
    ("unknown residence status", lambda: newcomer(residence_status_group="tourist"), 422),
    ("unknown district", with_address(district="Kreuzberg"), 422),
    ("postal code of 4 digits", with_address(postal_code="8689"), 422),
    ("NUL in given names", lambda: newcomer(given_names="Amina\x00Haddad"), 422),
    ("escape in given names", lambda: newcomer(given_names="Amina\x1b[31m"), 422),
    ("newline inside family name", lambda: newcomer(family_name="Had\ndad"), 422),
    ("DEL in family name", lambda: newcomer(family_name="Had\x7fdad"), 422),
    ("empty given names", lambda: newcomer(given_names="   "), 422),
    ("given names of 101 characters", lambda: newcomer(given_names="A" * 101), 422),
    ("invalid email", lambda: newcomer(email="amina@"), 422),
    ("invalid phone", lambda: newcomer(phone="call me"), 422),
    ("21 household members", lambda: newcomer(household_members=[member(f"Kind {token()}") for _ in range(21)]), 422),
    ("a member with a bad country", lambda: newcomer(household_members=[member("Omar", nationality="XX")]), 422),
    ("a household member with an address", lambda: newcomer(household_members=[newcomer()]), 422),
    ("body over 64 KiB (huge notes)", lambda: newcomer(notes="x" * 70_000), 413),
    ("body over 64 KiB (padding)", lambda: {**newcomer(), "padding": ["y" * 1000] * 70}, 413),
]


async def test_bad_registrations_are_refused_with_problem_details_and_write_nothing(
    registration: httpx.AsyncClient,
) -> None:
    await register(registration)
    before = await stored_counts(registration)
    wrong: list[str] = []
    for case, body, status in BAD_REGISTRATIONS:
        reply = await registration.post("/api/v1/registrations", json=body())
        try:
            problem = assert_problem(reply, status)
            if status == 422 and "errors" in problem:
                assert problem["errors"] and all(e["location"] for e in problem["errors"])
        except AssertionError as exc:
            wrong.append(f"{case}: {exc}")
        if (after := await stored_counts(registration)) != before:
            wrong.append(f"{case}: wrote {after} (before: {before})")
    assert not wrong, "\n".join(wrong)

    for content, status in [(b"{not json", 422), (b"[]", 422), (b'"a string"', 422), (b"", 422)]:
        reply = await registration.post(
            "/api/v1/registrations", content=content, headers={"content-type": "application/json"}
        )
        assert_problem(reply, status)
    reply = await registration.post(
        "/api/v1/registrations", content="{}".encode("utf-16"), headers={"content-type": "application/json"}
    )
    assert reply.status_code in (400, 422)
    assert reply.headers["content-type"].startswith(PROBLEM_JSON)
    assert await stored_counts(registration) == before


async def test_an_oversized_body_sent_in_chunks_is_refused_with_413(registration: httpx.AsyncClient) -> None:
    """No Content-Length (chunked transfer): the size limit must still answer 413, as it promises."""
    payload = json.dumps(newcomer(padding="z" * 80_000)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 8192):
            yield payload[start : start + 8192]

    reply = await registration.post(
        "/api/v1/registrations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in reply.request.headers
    assert_problem(reply, 413)
    assert (await stored_counts(registration))["persons"] == 0


async def test_a_c1_control_character_in_a_name_is_refused(registration: httpx.AsyncClient) -> None:
    """U+009B (CSI) is a control character (Unicode Cc) like ESC; a name must not carry it."""
    reply = await registration.post("/api/v1/registrations", json=newcomer(given_names="Amina\u009b31mHaddad"))
    assert_problem(reply, 422)
    assert (await stored_counts(registration))["persons"] == 0


async def test_a_valid_bcp47_tag_with_private_use_or_extension_does_not_crash(registration: httpx.AsyncClient) -> None:
    """The API accepts any valid BCP 47 tag; it must then register (201) or refuse (422), never fail (500)."""
    async with answering_500s(registration) as client:
        for tag in ("de-x-bavarian", "ar-u-nu-arab"):
            reply = await client.post("/api/v1/registrations", json=newcomer(languages=[tag], preferred_language=tag))
            assert reply.status_code in (201, 422), (tag, reply.status_code, reply.text)


async def test_the_longest_names_the_api_accepts_can_be_stored(registration: httpx.AsyncClient) -> None:
    """Names of up to 100 characters are valid; their duplicate key must fit too (ß folds to ss)."""
    async with answering_500s(registration) as client:
        body = newcomer(given_names="Weiß" * 25, family_name="Großstraßer" + "ß" * 89)
        reply = await client.post("/api/v1/registrations", json=body)
        assert reply.status_code == 201, reply.text


# --- information packs ---------------------------------------------------------------------


async def test_info_packs_in_eight_languages_with_reading_direction(registration: httpx.AsyncClient) -> None:
    reply = await registration.get("/api/v1/info-packs")
    assert reply.status_code == 200, reply.text
    packs = {p["lang"]: p for p in reply.json()}
    assert set(packs) == PACK_LANGUAGES
    assert {lang for lang, p in packs.items() if p["dir"] == "rtl"} == {"ar", "fa"}
    assert all(p["url"] == f"/api/v1/info-packs/{lang}" and p["language_name"] for lang, p in packs.items())

    for lang, direction in [("ar", "rtl"), ("fa", "rtl"), ("de", "ltr"), ("uk", "ltr")]:
        html = await registration.get(f"/api/v1/info-packs/{lang}", params={"format": "html"})
        assert html.status_code == 200, html.text
        assert html.headers["content-type"].startswith("text/html")
        assert html.headers["content-language"] == lang
        assert f'<html lang="{lang}" dir="{direction}">' in html.text
        assert html.text.count("<section") == 9

    via_accept = await registration.get("/api/v1/info-packs/ar", headers={"Accept": "text/html"})
    assert 'dir="rtl"' in via_accept.text

    for lang in sorted(PACK_LANGUAGES):
        pack = await registration.get(f"/api/v1/info-packs/{lang}")
        assert pack.status_code == 200, pack.text
        assert pack.headers["content-type"].startswith("application/json")
        assert pack.json()["lang"] == lang
        assert len(pack.json()["sections"]) == 9
        assert len({s["id"] for s in pack.json()["sections"]}) == 9

    assert_problem(await registration.get("/api/v1/info-packs/ps"), 404)
    assert_problem(await registration.get("/api/v1/info-packs/ar", params={"format": "pdf"}), 422)

    # a registration is pointed to the pack in its preferred language, else the base language, else English
    for preferred, expected in [("ps", "en"), ("ar-SY", "ar"), ("fa-AF", "fa"), ("tr", "tr"), ("ti", "en")]:
        created = await register(registration, newcomer(preferred_language=preferred, languages=[preferred]))
        assert created["info_pack"] == {"lang": expected, "url": f"/api/v1/info-packs/{expected}"}, preferred
