"""Courses for staff: a course's page (public facts; enrolments, waiting list, attendance and completion
for course staff), and what the dashboard and the case page need to know of enrolments.

Who sees and does what is the role policy's answer for the API route behind it (``policy.decide``):
caseworkers read enrolments, course admins also cancel, accept offers, record attendance and completion.
The waiting list is shown in the order the courses service documents and returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from contracts.calendar import CITY_TIME
from contracts.vocabulary import CompletionResult
from gateway import policy
from gateway.ui import casework
from gateway.ui.kit import Kit, Reply, api_time
from gateway.ui.words import FIELD_ERRORS, WORDS

WAITING = ("waitlisted", "offered")
RESULTS = tuple(r.value for r in CompletionResult)
#: The members of a course rule's Problem its words may name.
_VALUES = frozenset({"level", "target", "min_age", "max_age", "taken", "field", "status_now", "action"})


#: Problem types the UI words without a course rule of their own (the courses service's are ``rule_<kind>``).
_GENERAL = {"not-found": "not_found", "forbidden": "forbidden"}


def refusal(problem: Any, lang: str) -> str:
    """The rules a refusal names, by their Problem types, in the page's language; never the service's English."""
    body = problem if isinstance(problem, dict) else {}
    words = WORDS[lang]
    said = []
    for rule in [body, *(a for a in body.get("also") or [] if isinstance(a, dict))]:
        kind = str(rule.get("type") or "").rsplit("/", 1)[-1]
        key = _GENERAL.get(kind, f"rule_{kind}")
        values = {k: v for k, v in rule.items() if k in _VALUES}
        if "status_now" in values:
            values["status_now"] = words.get(f"learning_status_{values['status_now']}", values["status_now"])
        if "field" in values:  # the API's field name, as the form calls it where the words know it
            values["field"] = words.get(str(values["field"]), values["field"])
        try:
            said.append(words[key].format(**values) if key in words else words["rule_unknown"])
        except (KeyError, IndexError):  # a value the words ask for is missing: the rule without it
            said.append(words["rule_unknown"])
    return " ".join(said)


def problem_message(reply: Reply, lang: str, names: dict[str, str]) -> str:
    """One line for a refused call: the fields a 422 names, or the rule that was broken."""
    body = reply.body if isinstance(reply.body, dict) else {}
    messages = FIELD_ERRORS[lang]
    fields = [
        f"{names.get(str(e.get('location', ['', ''])[-1]), str(e.get('location', [''])[-1]))}: "
        f"{messages.get(str(e.get('type')), messages['value_error'])}"
        for e in body.get("errors") or []
    ]
    if fields:
        return " ".join(fields)
    return refusal(body, lang)


def local(moment: str | None) -> datetime | None:
    """An API timestamp (UTC) in Landsberg's time."""
    parsed = api_time(moment)
    return parsed.astimezone(CITY_TIME) if parsed else None


def allowed(user: Identity | None, method: str, path: str) -> bool:
    return user is not None and bool(policy.decide(method, f"/api/v1/{path}", user.roles))


async def catalogue(ui: Kit, request: Request, user: Identity | None) -> list[dict[str, Any]]:
    """The scheduled courses (the public catalogue, with free seats and waiting counts)."""
    return (await ui.call(request, user, "GET", "courses", params={"page_size": 200})).items()


async def titles(
    ui: Kit, request: Request, user: Identity, course_ids: Iterable[str], known: list[dict[str, Any]]
) -> dict[str, str]:
    """Course titles: from the catalogue at hand, and for courses no longer in it (ended, cancelled) one by one."""
    found = {c["course_id"]: c["title"] for c in known}
    missing = sorted(set(course_ids) - set(found))
    replies = await asyncio.gather(*(ui.call(request, user, "GET", f"courses/{quote(c)}") for c in missing))
    found |= {c: r.body["title"] for c, r in zip(missing, replies, strict=True) if r.ok and isinstance(r.body, dict)}
    return found


async def waiting_of(ui: Kit, request: Request, user: Identity, person_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The waiting-list entries and open seat offers of these persons, with their courses' titles."""
    ids = sorted(set(person_ids))
    if not ids:
        return []
    replies = await asyncio.gather(*(ui.call(request, user, "GET", f"learners/{quote(p)}/enrolments") for p in ids))
    entries = [e for r in replies if r.ok and isinstance(r.body, list) for e in r.body if e["status"] in WAITING]
    if not entries:
        return []
    titles = {c["course_id"]: c["title"] for c in await catalogue(ui, request, user)}
    for entry in entries:
        entry["course_title"] = titles.get(entry["course_id"], entry["course_id"][:8])
    return sorted(entries, key=lambda e: (e["status"] != "offered", e["course_title"], e["position"] or 0))


async def courses_of(ui: Kit, request: Request, user: Identity) -> list[dict[str, Any]]:
    """The course admin's courses (their provider's, when the sign-in names one), fullest waiting list first."""
    params: dict[str, Any] = {"page_size": 200}
    if user.partner_id:
        params["provider_id"] = user.partner_id
    found = (await ui.call(request, user, "GET", "courses", params=params)).items()
    return sorted(found, key=lambda c: (-c["waiting"], c["free_seats"], c["title"]))


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/courses/{course_id}", response_class=HTMLResponse)
    async def course_page(course_id: str, request: Request) -> Response:
        user = await ui.current(request)  # the public part needs no sign-in
        if user is not None:
            await ui.signed_in(request)  # counted against the user's rate limit
        path = f"courses/{quote(course_id)}"
        course = await ui.read(request, user, path)
        sessions = [{**s, "day": local(s["starts_at"]), "until": local(s["ends_at"])} for s in course.body["sessions"]]
        context: dict[str, Any] = {"staff": False, "manage": False}
        if allowed(user, "GET", f"{path}/enrolments"):
            found = await ui.read(request, user, f"{path}/enrolments")
            rows = list(found.body)  # their moments are written in the page's language by the template
            context = {
                "staff": True,
                "manage": allowed(user, "POST", f"{path}/enrolments/_/cancel"),
                "person_links": allowed(user, "GET", "persons/_"),
                "enrolled": [e for e in rows if e["status"] in ("enrolled", "completed")],
                "offered": [e for e in rows if e["status"] == "offered"],
                "waiting": sorted((e for e in rows if e["status"] == "waitlisted"), key=lambda e: e["position"]),
                "ended": [e for e in rows if e["status"] in ("cancelled", "offer_expired")],
                "results": RESULTS,
                "today": datetime.now(CITY_TIME).date().isoformat(),
                "current_session": _current_session(course.body["sessions"]),
            }
            context |= await _for_course_admins(ui, request, user, path)
            if "names" not in context and user is not None and casework.is_caseworker(user):
                # A caseworker reads the names of their own team's people on the lists: one audited lookup.
                persons, _ = await casework.persons_of(ui, request, user, [e["person_id"] for e in rows])
                context["names"] = {
                    e["enrolment_id"]: f"{p['given_names']} {p['family_name']}"
                    for e in rows
                    if (p := persons.get(e["person_id"]))
                }
        words = ui.words(request)
        notice = request.query_params.get("notice", "")
        done = words.get(f"ca_done_{notice}")  # what a course admin's change on this page reports back
        return ui.render(
            request,
            "course.html",
            user=user,
            course=course.body,
            sessions=sessions,
            done=done,
            notice=None if done else notice or None,
            **context,
        )

    @router.post("/courses/{course_id}/enrolments/{enrolment_id}/{action}")
    async def enrolment_action(course_id: str, enrolment_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        target = f"/ui/courses/{quote(course_id)}"
        path = f"courses/{quote(course_id)}/enrolments/{quote(enrolment_id)}"
        if action == "cancel":
            reply = await ui.call(request, user, "POST", f"{path}/cancel", json={"reason": "by_staff"})
        elif action == "accept-offer":
            reply = await ui.call(request, user, "POST", f"{path}/accept-offer")
        elif action == "completion":
            body: dict[str, Any] = {"result": form.get("result", ""), "completed_on": form.get("completed_on") or None}
            if form.get("certificate", "").strip():
                body["certificate"] = form["certificate"].strip()
            reply = await ui.call(request, user, "POST", f"{path}/completion", json=body)
        else:
            return ui.refused(request, user, "not_found", 404)
        return back_to(ui, request, user, target, reply)

    @router.post("/courses/{course_id}/attendance")
    async def attendance(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        present = set(await ui.form_list(request, "present"))
        enrolled = await ui.form_list(request, "enrolled")
        session_id = form.get("session_id", "")
        path = f"courses/{quote(course_id)}/enrolments"
        replies = await asyncio.gather(
            *(
                ui.call(
                    request,
                    user,
                    "POST",
                    f"{path}/{quote(e)}/attendance",
                    json={"session_id": session_id, "present": e in present},
                )
                for e in enrolled
            )
        )
        refused = next((r for r in replies if not r.ok), None)
        target = f"/ui/courses/{quote(course_id)}"
        return back_to(ui, request, user, target, refused or Reply(201, None))


#: The fields of the learning forms a refusal may name, with the words that name them on the page.
FIELD_WORDS = {
    "result": "learning_result",
    "completed_on": "learning_completed_on",
    "certificate": "learning_certificate",
    "session_id": "learning_session",
}


def back_to(
    ui: Kit,
    request: Request,
    user: Identity,
    target: str,
    reply: Reply,
    field_words: Mapping[str, str] = FIELD_WORDS,
    notice: str = "done",
) -> Response:
    """Back to ``target`` with ``notice`` or what went wrong, in the page's language (``field_words``: the fields a
    refusal may name -> the words for them)."""
    if reply.ok:
        return ui.back(target, notice=notice)
    if reply.status in (401, 403, 503):
        return ui.trouble(request, user, reply)
    words = ui.words(request)
    names = {name: words[key] for name, key in field_words.items()}
    return ui.back(target, error=problem_message(reply, ui.lang_of(request), names))


async def _for_course_admins(ui: Kit, request: Request, user: Identity | None, path: str) -> dict[str, Any]:
    """What the course's own admin also sees: the participants' names (one read the courses service makes of
    registration, which logs it), their attendance per session, and what they may change."""
    if not allowed(user, "GET", f"{path}/participants"):
        return {}
    found = await ui.call(request, user, "GET", f"{path}/participants")
    if not found.ok or not isinstance(found.body, dict):
        return {"edit": False}  # another provider's course: seen as a caseworker would, nothing to change
    participants = found.body["participants"]
    return {
        "edit": allowed(user, "PATCH", path),
        "names": {p["enrolment_id"]: p["name"] for p in participants if p.get("name")},
        "names_missing": not found.body.get("names_available", True),
        "participants": participants,
        "passes": allowed(user, "POST", "learners/_/education-pass"),
    }


def _current_session(sessions: list[dict[str, Any]]) -> str | None:
    """The session to preselect for attendance: the latest that has begun, else the first."""
    now = datetime.now(UTC)
    begun = [s for s in sessions if (local(s["starts_at"]) or now) <= now]
    chosen = begun[-1] if begun else (sessions[0] if sessions else None)
    return chosen["session_id"] if chosen else None
