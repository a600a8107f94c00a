"""Demo data of Landsberg am Lech, loaded through the gateway's public API.

The people are invented; any likeness to real persons is coincidence. Loading
twice changes nothing: the duplicate check answers 409 for people already there.
"""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

import httpx

ADDRESS = {"street": "Katharinenstraße", "house_number": "1", "postal_code": "86899"}


def person(
    given_names: str,
    family_name: str,
    birth_date: str,
    gender: str,
    nationality: str,
    languages: list[str],
    residence_status_group: str,
) -> dict[str, Any]:
    """A person's fields in a registration body, the newcomer's or a household member's; the language they
    prefer is the first they speak."""
    return {
        "given_names": given_names,
        "family_name": family_name,
        "birth_date": birth_date,
        "gender": gender,
        "nationality": nationality,
        "languages": languages,
        "preferred_language": languages[0],
        "residence_status_group": residence_status_group,
    }


def registration_body(**overrides: Any) -> dict[str, Any]:
    """Amina Haddad's registration (the first household's, without members, needs and consents), with
    ``overrides``: the one newcomer the tests register too, each changing what it needs (unique names, contact
    data, another address)."""
    body = {
        **person("Amina", "Haddad", "1991-03-14", "female", "SY", ["ar", "en"], "recognised_refugee"),
        "arrival_date": "2026-09-02",
        "address": {**ADDRESS, "street": "Schwaighofstraße", "house_number": "12", "district": "Schwaighofsiedlung"},
    }
    return body | overrides


HOUSEHOLDS: list[dict[str, Any]] = [
    {
        **registration_body(),
        "household_members": [
            person("Yusuf", "Haddad", "2021-06-30", "male", "SY", ["ar"], "recognised_refugee"),
        ],
        "needs": {
            "german_level": "A1",
            "schooling": "secondary",
            "employment_situation": "job_seeking",
            "recognise_foreign_qualification": True,
            "childcare_needed": True,
            "children_ages": [5],
            "vocational_qualification": "Pharmacy technician",
        },
        "consents": [{"partner_category": "adult_education", "purpose": "course_enrolment"}],
    },
    {
        **person("Olena", "Kovalenko", "1985-11-02", "female", "UA", ["uk", "ru"], "other"),
        "arrival_date": "2026-08-15",
        "address": {**ADDRESS, "street": "Hindenburgring", "house_number": "7", "district": "Altstadt"},
        "needs": {
            "german_level": "A2",
            "schooling": "university",
            "employment_situation": "job_seeking",
            "recognise_foreign_qualification": True,
            "vocational_qualification": "Civil engineer",
        },
        "consents": [{"partner_category": "chamber", "purpose": "qualification_recognition"}],
    },
    {
        **person("Andrei", "Popescu", "1996-05-21", "male", "RO", ["ro", "en"], "eu_citizen"),
        "arrival_date": "2026-10-01",
        "address": {**ADDRESS, "street": "Spöttinger Straße", "house_number": "4", "district": "Weststadt"},
        "needs": {
            "german_level": "A1",
            "schooling": "vocational",
            "employment_situation": "employed",
            "vocational_qualification": "Electrician",
        },
        "consents": [],
    },
    {
        **person("Mehmet", "Y\u0131lmaz", "2005-01-09", "male", "TR", ["tr"], "asylum_seeker"),
        "arrival_date": "2026-07-20",
        "address": {**ADDRESS, "street": "Erpftinger Straße", "house_number": "22", "district": "Erpfting"},
        "needs": {
            "german_level": "none",
            "schooling": "secondary",
            "employment_situation": "not_permitted",
            "counselling_need": True,
        },
        "consents": [{"partner_category": "charity", "purpose": "counselling"}],
    },
    {
        **person("Zahra", "Ahmadi", "1988-08-30", "female", "AF", ["fa"], "family_reunification"),
        "arrival_date": "2026-10-20",
        "address": {**ADDRESS, "street": "Pössinger Straße", "house_number": "9", "district": "Pössing"},
        "household_members": [
            person("Sara", "Ahmadi", "2016-02-11", "female", "AF", ["fa"], "family_reunification"),
            person("Ali", "Ahmadi", "2023-12-01", "male", "AF", ["fa"], "family_reunification"),
        ],
        "needs": {
            "german_level": "none",
            "schooling": "primary",
            "employment_situation": "not_seeking",
            "childcare_needed": True,
            "children_ages": [10, 2],
            "housing_need": True,
        },
        "consents": [{"partner_category": "charity", "purpose": "counselling"}],
    },
    {
        **person("Dmitri", "Sokolov", "1979-04-04", "male", "KZ", ["ru", "de"], "skilled_worker_or_study_visa"),
        "arrival_date": "2026-06-01",
        "address": {**ADDRESS, "street": "Augsburger Straße", "house_number": "30", "district": "Katharinenvorstadt"},
        "needs": {"german_level": "B1", "schooling": "university", "employment_situation": "employed"},
        "consents": [],
    },
]


def sign_in(base_url: str, username: str, password: str) -> dict[str, str]:
    reply = httpx.post(f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=10)
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def load(base_url: str, auth: dict[str, str], needs_auth: dict[str, str]) -> dict[str, int]:
    """Register the demo households as the registration office (``auth``, a registrar's) and record their
    needs with ``needs_auth`` (an admin's: registrars record no needs, and a caseworker reaches a person only
    once routing has put the case in the team); returns how many were new and how many were there already."""
    counts = {"registered": 0, "already_there": 0}
    with httpx.Client(base_url=base_url, timeout=10, headers=auth) as client:
        for household in HOUSEHOLDS:
            body = {k: v for k, v in household.items() if k not in ("needs", "consents")}
            body["registration_date"] = min(date.today(), date(2026, 11, 2)).isoformat()
            reply = client.post("/api/v1/registrations", json=body)
            if reply.status_code == 409:
                counts["already_there"] += 1
                continue
            reply.raise_for_status()
            person_id = reply.json()["person_id"]
            client.post(
                f"/api/v1/persons/{person_id}/needs-assessments", json=household["needs"], headers=needs_auth
            ).raise_for_status()
            for consent in household["consents"]:
                client.post(f"/api/v1/persons/{person_id}/consents", json=consent).raise_for_status()
            counts["registered"] += 1
    return counts


if __name__ == "__main__":
    base, user, password, needs_user, needs_password = sys.argv[1:6]
    print(load(base, sign_in(base, user, password), sign_in(base, needs_user, needs_password)))
