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

HOUSEHOLDS: list[dict[str, Any]] = [
    {
        "given_names": "Amina",
        "family_name": "Haddad",
        "birth_date": "1991-03-14",
        "gender": "female",
        "nationality": "SY",
        "languages": ["ar", "en"],
        "preferred_language": "ar",
        "residence_status_group": "recognised_refugee",
        "arrival_date": "2026-09-02",
        "address": {**ADDRESS, "street": "Schwaighofstraße", "house_number": "12", "district": "Schwaighofsiedlung"},
        "household_members": [
            {
                "given_names": "Yusuf",
                "family_name": "Haddad",
                "birth_date": "2021-06-30",
                "gender": "male",
                "nationality": "SY",
                "languages": ["ar"],
                "preferred_language": "ar",
                "residence_status_group": "recognised_refugee",
            },
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
        "given_names": "Olena",
        "family_name": "Kovalenko",
        "birth_date": "1985-11-02",
        "gender": "female",
        "nationality": "UA",
        "languages": ["uk", "ru"],
        "preferred_language": "uk",
        "residence_status_group": "other",
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
        "given_names": "Andrei",
        "family_name": "Popescu",
        "birth_date": "1996-05-21",
        "gender": "male",
        "nationality": "RO",
        "languages": ["ro", "en"],
        "preferred_language": "ro",
        "residence_status_group": "eu_citizen",
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
        "given_names": "Mehmet",
        "family_name": "Y\u0131lmaz",
        "birth_date": "2005-01-09",
        "gender": "male",
        "nationality": "TR",
        "languages": ["tr"],
        "preferred_language": "tr",
        "residence_status_group": "asylum_seeker",
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
        "given_names": "Zahra",
        "family_name": "Ahmadi",
        "birth_date": "1988-08-30",
        "gender": "female",
        "nationality": "AF",
        "languages": ["fa"],
        "preferred_language": "fa",
        "residence_status_group": "family_reunification",
        "arrival_date": "2026-10-20",
        "address": {**ADDRESS, "street": "Pössinger Straße", "house_number": "9", "district": "Pössing"},
        "household_members": [
            {
                "given_names": "Sara",
                "family_name": "Ahmadi",
                "birth_date": "2016-02-11",
                "gender": "female",
                "nationality": "AF",
                "languages": ["fa"],
                "preferred_language": "fa",
                "residence_status_group": "family_reunification",
            },
            {
                "given_names": "Ali",
                "family_name": "Ahmadi",
                "birth_date": "2023-12-01",
                "gender": "male",
                "nationality": "AF",
                "languages": ["fa"],
                "preferred_language": "fa",
                "residence_status_group": "family_reunification",
            },
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
        "given_names": "Dmitri",
        "family_name": "Sokolov",
        "birth_date": "1979-04-04",
        "gender": "male",
        "nationality": "KZ",
        "languages": ["ru", "de"],
        "preferred_language": "ru",
        "residence_status_group": "skilled_worker_or_study_visa",
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
