"""The newcomer's letter (issue 14): a printable page from the case page, in the person's language, with their
information pack, their caseworker and their appointments (the sessions of the courses they are enrolled in, the
answers partners owe on their referrals).

Language: the person's preferred language where an information pack exists in it; else German and English, both
in full. The letter's own few words come in every pack's language (the newcomers' pages' catalogues, ``public``);
with a pack in another language than German, each heading also says its German, so that the caseworker handing the
letter over reads it too. The person's name and address are read from registration by the usual audited read
(``GET persons/{id}``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from contracts.calendar import CITY_TIME
from gateway.ui import casework, catalogues, households, learning
from gateway.ui.kit import Kit


def letter_languages(preferred: str | None, available: set[str]) -> list[str]:
    """The pack in the person's language where there is one, else German and English."""
    base = (preferred or "").split("-")[0].lower()
    return [base] if base in available else ["de", "en"]


def appointments(
    enrolments: list[dict[str, Any]],
    courses: dict[str, dict[str, Any]],
    referrals: list[dict[str, Any]],
    partner_names: dict[str, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """What is coming, in time order: each session of an enrolled course from now on, and each answer a partner
    owes on a sent referral."""
    found: list[dict[str, Any]] = []
    for enrolment in enrolments:
        course = courses.get(enrolment["course_id"])
        if enrolment["status"] != "enrolled" or course is None:
            continue
        for session in course.get("sessions", []):
            starts = learning.local(session["starts_at"])
            if starts is None or starts < now:
                continue
            ends = learning.local(session["ends_at"])
            found.append(
                {
                    "at": starts,
                    "kind": "session",
                    "title": course["title"],
                    "until": ends.strftime("%H:%M") if ends else "",
                    "place": session.get("place") or course.get("location") or "",
                }
            )
    for referral in referrals:
        due = learning.local(referral.get("response_due_at"))
        if referral["status"] != "sent" or due is None:
            continue
        partner = partner_names.get(referral.get("partner_id") or "", referral.get("partner_id") or "")
        found.append({"at": due, "kind": "answer", "partner": partner, "service_type": referral["service_type"]})
    return sorted(found, key=lambda a: a["at"])


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/cases/{case_id}/letter", response_class=HTMLResponse)
    async def letter(case_id: str, request: Request) -> Response:
        user = await ui.signed_in(request)
        case = await ui.read(request, user, f"cases/{quote(case_id)}")
        member = households.chosen_member(case.body, request.query_params.get("member"))
        person, packs, enrolments, workers, directory = await asyncio.gather(
            ui.call(request, user, "GET", f"persons/{quote(member)}"),  # the audited read of name and address
            ui.call(request, None, "GET", "info-packs"),
            ui.call(request, user, "GET", f"learners/{quote(member)}/enrolments"),
            casework.caseworker_names(ui, request, user),
            ui.call(request, None, "GET", "partners", params={"page_size": 100}),
        )
        if not person.ok:
            return ui.trouble(request, user, person)
        available = {p["lang"] for p in packs.body} if packs.ok and isinstance(packs.body, list) else {"de", "en"}
        langs = letter_languages(person.body.get("preferred_language"), available)
        chosen = await asyncio.gather(*(ui.call(request, None, "GET", f"info-packs/{lang}") for lang in langs))
        listed = enrolments.body if enrolments.ok and isinstance(enrolments.body, list) else []
        course_ids = sorted({e["course_id"] for e in listed if e["status"] == "enrolled"})
        replies = await asyncio.gather(*(ui.call(request, user, "GET", f"courses/{quote(c)}") for c in course_ids))
        courses = {c: r.body for c, r in zip(course_ids, replies, strict=True) if r.ok and isinstance(r.body, dict)}
        partner_names = {p["partner_id"]: p["name"] for p in directory.items()}
        mine = [r for r in case.body.get("referrals", []) if r.get("person_id") == member]
        now = datetime.now(CITY_TIME)
        worker = workers.get(case.body.get("caseworker_id") or "", {})
        return ui.render(
            request,
            "letter.html",
            user=user,
            case=case.body,
            person=person.body,
            member=member,
            packs=[p.body for p in chosen if p.ok and isinstance(p.body, dict)],
            words={lang: catalogues.Words(lang) for lang in langs},
            german=catalogues.Words("de"),
            appointments=appointments(listed, courses, mine, partner_names, now),
            caseworker=worker,
            today=now.strftime("%d.%m.%Y"),
        )
