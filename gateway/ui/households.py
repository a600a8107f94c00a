"""A household's case on the case page (issue 14): its members by name, whose needs the page shows and records,
and whom a goal of the plan is for.

The referral service lists the case's members with pseudonymous facts only; their names come from registration in
one audited call for the page (``POST persons/lookup``), which answers only the members the caller reaches.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from chassis.identity import Identity
from gateway.ui import casework
from gateway.ui.kit import Kit


def member_ids(case: dict[str, Any]) -> list[str]:
    """The case's members (the lead first); a case from before households were known: its person."""
    listed = case.get("members") or [{"person_id": case["person_id"], "lead": True}]
    return [m["person_id"] for m in sorted(listed, key=lambda m: not m.get("lead"))]


def chosen_member(case: dict[str, Any], wanted: str | None) -> str:
    """Whose needs the page shows: the member asked for if they belong to the case, else the lead."""
    return wanted if wanted and wanted in member_ids(case) else str(case["person_id"])


async def household(ui: Kit, request: Request, user: Identity, case: dict[str, Any]) -> dict[str, Any]:
    """The members with their names (one audited lookup) and facts, for the case page."""
    persons, unavailable = await casework.persons_of(ui, request, user, member_ids(case))
    facts = {m["person_id"]: m for m in case.get("members") or []}
    members = []
    for person_id in member_ids(case):
        person = persons.get(person_id)
        fact = facts.get(person_id, {"lead": True, "status": "registered"})
        name = f"{person['given_names']} {person['family_name']}" if person else None
        members.append(
            {
                "person_id": person_id,
                "name": name,
                "lead": fact.get("lead", False),
                "age_band": (person or {}).get("age_band") or fact.get("age_band"),
                "status": fact.get("status"),
                "preferred_language": (person or {}).get("preferred_language") or fact.get("preferred_language"),
            }
        )
    return {
        "members": members,
        "member_names": {m["person_id"]: m["name"] for m in members if m["name"]},
        "member_names_unavailable": unavailable,
    }
