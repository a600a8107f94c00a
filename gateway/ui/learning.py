"""Courses for staff: a course's page (public facts; enrolments, waiting list, attendance and completion
for course staff), and what the dashboard and the case page need to know of enrolments.

Who sees and does what is the role policy's answer for the API route behind it (``policy.decide``):
caseworkers read enrolments, course admins also cancel, accept offers, record attendance and completion.
The waiting list is shown in the order the courses service documents and returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from gateway import policy
from gateway.ui import casework
from gateway.ui.kit import Kit, Reply, api_time
from gateway.ui.words import FIELD_ERRORS, WORDS, more_words

LOCAL_TIME = ZoneInfo("Europe/Berlin")
WAITING = ("waitlisted", "offered")
#: The members of a course rule's Problem its words may name.
_VALUES = frozenset({"level", "target", "min_age", "max_age", "taken", "field", "status_now", "action"})
RESULTS = ("passed", "not_passed", "attended")

more_words({
    "de": {
        "learning_course": "Kurs", "learning_sessions": "Termine", "learning_day": "Tag", "learning_time": "Uhrzeit",
        "learning_place": "Ort", "learning_childcare": "Kinderbetreuung", "learning_women_only": "Nur für Frauen",
        "learning_language": "Unterrichtssprache", "learning_funding": "Finanzierung", "learning_fee": "Gebühr",
        "learning_age": "Alter", "learning_enrolment_window": "Anmeldung möglich", "learning_capacity": "Plätze",
        "learning_waiting": "Auf der Warteliste", "learning_enrolments": "Angemeldete Teilnehmende",
        "learning_waiting_list": "Warteliste (in der Reihenfolge, in der Plätze vergeben werden)",
        "learning_order": "Reihenfolge: zuerst Vorrang (Integrationskursverpflichtung, dann Frauen mit Bedarf an "
        "Kinderbetreuung), dann nach Eingang der Anmeldung.",
        "learning_position": "Platz", "learning_since": "Seit", "learning_priority": "Vorrang",
        "learning_offer": "Angebot", "learning_offer_until": "Platz angeboten bis",
        "learning_open_offers": "Offene Platzangebote", "learning_ended": "Beendete Anmeldungen",
        "learning_cancel": "Stornieren", "learning_accept_offer": "Angebot annehmen",
        "learning_attendance": "Anwesenheit erfassen", "learning_session": "Termin",
        "learning_present": "anwesend", "learning_save_attendance": "Anwesenheit speichern",
        "learning_completion": "Abschluss", "learning_result": "Ergebnis", "learning_certificate": "Zertifikat",
        "learning_completed_on": "Abschlussdatum", "learning_record_completion": "Abschluss eintragen",
        "learning_no_enrolled": "Noch niemand angemeldet.", "learning_no_waiting": "Niemand wartet.",
        "learning_course_lists": "Kurs-Wartelisten", "learning_course_lists_intro":
        "Personen Ihrer Fälle auf Wartelisten und mit offenen Platzangeboten.",
        "learning_my_courses": "Kurse: freie Plätze und Wartelisten", "learning_from": "ab", "learning_to": "bis",
        "learning_any": "beliebig", "learning_person": "Person",
        "learning_status_enrolled": "angemeldet", "learning_status_waitlisted": "auf der Warteliste",
        "learning_status_offered": "Platz angeboten", "learning_status_offer_expired": "Angebot abgelaufen",
        "learning_status_cancelled": "storniert", "learning_status_completed": "abgeschlossen",
        "learning_priority_integration_course_obligation": "Verpflichtung zum Integrationskurs",
        "learning_priority_woman_needing_childcare": "Frau mit Bedarf an Kinderbetreuung",
        "learning_priority_referred": "vermittelt", "learning_result_passed": "bestanden",
        "learning_result_not_passed": "nicht bestanden", "learning_result_attended": "teilgenommen",
        "learning_funding_bamf": "BAMF", "learning_funding_city": "Stadt", "learning_funding_fee": "Gebühr",
        "learning_status_scheduled": "geplant", "learning_course_status": "Kursstand",
        "learning_weekdays": "Mo,Di,Mi,Do,Fr,Sa,So", "learning_reason_by_person": "von der Person",
        "learning_reason_by_staff": "von der Kursverwaltung", "learning_reason_course_cancelled": "Kurs abgesagt",
        "rule_course-women-only": "Der Kurs ist nur für Frauen.",
        "rule_course-level-reached": "Das Deutschniveau {level} erreicht schon das Kursziel {target}.",
        "rule_course-min-age": "Der Kurs ist erst ab {min_age} Jahren.",
        "rule_course-max-age": "Der Kurs ist nur bis {max_age} Jahre.",
        "rule_course-already-enrolled": "Die Person ist in diesem Kurs schon angemeldet oder auf der Warteliste.",
        "rule_course-sessions-clash": "Die Termine überschneiden sich mit einem anderen Kurs der Person.",
        "rule_course-enrolment-closed": "Die Anmeldung zu diesem Kurs ist zurzeit nicht offen.",
        "rule_course-cancelled": "Der Kurs ist abgesagt.", "rule_course-completed": "Der Kurs ist schon beendet.",
        "rule_course-unknown": "Diesen Kurs gibt es nicht.",
        "rule_course-learner-erased": "Die Daten dieser Person sind gelöscht.",
        "rule_course-completion-in-future": "Das Abschlussdatum darf nicht in der Zukunft liegen.",
        "rule_course-offer-expired": "Das Angebot ist abgelaufen.",
        "rule_course-session-order": "Ein Termin muss nach seinem Beginn enden.",
        "rule_course-sessions-overlap": "Die Termine eines Kurses dürfen sich nicht überschneiden.",
        "rule_course-capacity-taken": "{taken} Plätze sind vergeben; weniger Plätze gehen nicht.",
        "rule_course-field-required": "Diese Angabe ({field}) kann nicht entfernt werden.",
        "rule_course-last-session": "Ein Kurs behält mindestens einen Termin; sonst bitte den Kurs absagen.",
        "rule_course-session-attended": "Für diesen Termin ist Anwesenheit erfasst; er bleibt.",
        "rule_invalid-transition": "Das ist bei diesem Stand ({status_now}) nicht möglich.",
        "rule_unknown": "Das ist so nicht möglich.",
        "learning_reason_moved_away": "weggezogen", "learning_reason_person_erased": "Daten gelöscht",
    },
    "en": {
        "learning_course": "Course", "learning_sessions": "Sessions", "learning_day": "Day", "learning_time": "Time",
        "learning_place": "Place", "learning_childcare": "Childcare", "learning_women_only": "Women only",
        "learning_language": "Language of instruction", "learning_funding": "Funding", "learning_fee": "Fee",
        "learning_age": "Age", "learning_enrolment_window": "Enrolment open", "learning_capacity": "Seats",
        "learning_waiting": "On the waiting list", "learning_enrolments": "Enrolled participants",
        "learning_waiting_list": "Waiting list (in the order seats are given)",
        "learning_order": "Order: priority first (integration course obligation, then women needing childcare), "
        "then by the time the request came in.",
        "learning_position": "Position", "learning_since": "Since", "learning_priority": "Priority",
        "learning_offer": "Offer", "learning_offer_until": "Seat offered until",
        "learning_open_offers": "Open seat offers", "learning_ended": "Ended enrolments",
        "learning_cancel": "Cancel", "learning_accept_offer": "Accept offer",
        "learning_attendance": "Record attendance", "learning_session": "Session",
        "learning_present": "present", "learning_save_attendance": "Save attendance",
        "learning_completion": "Completion", "learning_result": "Result", "learning_certificate": "Certificate",
        "learning_completed_on": "Completed on", "learning_record_completion": "Record completion",
        "learning_no_enrolled": "Nobody enrolled yet.", "learning_no_waiting": "Nobody is waiting.",
        "learning_course_lists": "Course waiting lists", "learning_course_lists_intro":
        "People of your cases on waiting lists and with open seat offers.",
        "learning_my_courses": "Courses: free seats and waiting lists", "learning_from": "from", "learning_to": "to",
        "learning_any": "any", "learning_person": "Person",
        "learning_status_enrolled": "enrolled", "learning_status_waitlisted": "on the waiting list",
        "learning_status_offered": "seat offered", "learning_status_offer_expired": "offer expired",
        "learning_status_cancelled": "cancelled", "learning_status_completed": "completed",
        "learning_priority_integration_course_obligation": "integration course obligation",
        "learning_priority_woman_needing_childcare": "woman needing childcare",
        "learning_priority_referred": "referred", "learning_result_passed": "passed",
        "learning_result_not_passed": "not passed", "learning_result_attended": "attended",
        "learning_funding_bamf": "BAMF", "learning_funding_city": "city", "learning_funding_fee": "fee",
        "learning_status_scheduled": "scheduled", "learning_course_status": "Course status",
        "learning_weekdays": "Mon,Tue,Wed,Thu,Fri,Sat,Sun", "learning_reason_by_person": "by the person",
        "learning_reason_by_staff": "by course staff", "learning_reason_course_cancelled": "course cancelled",
        "rule_course-women-only": "The course is for women only.",
        "rule_course-level-reached": "The German level {level} already reaches the course's target {target}.",
        "rule_course-min-age": "The course is from age {min_age}.",
        "rule_course-max-age": "The course is up to age {max_age}.",
        "rule_course-already-enrolled": "The person is already enrolled in or waiting for this course.",
        "rule_course-sessions-clash": "The sessions overlap with another course of this person.",
        "rule_course-enrolment-closed": "Enrolment for this course is not open now.",
        "rule_course-cancelled": "The course is cancelled.", "rule_course-completed": "The course is completed.",
        "rule_course-unknown": "There is no such course.",
        "rule_course-learner-erased": "This person's data has been erased.",
        "rule_course-completion-in-future": "A completion date cannot lie in the future.",
        "rule_course-offer-expired": "The offer has expired.",
        "rule_course-session-order": "A session must end after it starts.",
        "rule_course-sessions-overlap": "Sessions of one course must not overlap.",
        "rule_course-capacity-taken": "{taken} seats are taken; the capacity cannot go below that.",
        "rule_course-field-required": "This entry ({field}) cannot be removed.",
        "rule_course-last-session": "A course keeps at least one session; cancel the course instead.",
        "rule_course-session-attended": "Attendance is recorded for this session; it cannot be removed.",
        "rule_invalid-transition": "This is not possible in this state ({status_now}).",
        "rule_unknown": "This is not possible.",
        "learning_reason_moved_away": "moved away", "learning_reason_person_erased": "data erased",
    },
})  # fmt: skip


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
    return parsed.astimezone(LOCAL_TIME) if parsed else None


def allowed(user: Identity | None, method: str, path: str) -> bool:
    return user is not None and bool(policy.decide(method, f"/api/v1/{path}", user.roles))


async def catalogue(ui: Kit, request: Request, user: Identity | None) -> list[dict[str, Any]]:
    """The scheduled courses (the public catalogue, with free seats and waiting counts)."""
    return (await ui.call(request, user, "GET", "courses", params={"page_size": 200})).items()


async def titles(ui: Kit, request: Request, user: Identity, course_ids: Iterable[str],
                 known: list[dict[str, Any]]) -> dict[str, str]:  # fmt: skip
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
            checked = await ui.signed_in(request)  # counted against the user's rate limit
            if isinstance(checked, Response):
                return checked
        path = f"courses/{quote(course_id)}"
        course = await ui.call(request, user, "GET", path)
        if not course.ok:
            return ui.trouble(request, user, course)
        sessions = [{**s, "day": local(s["starts_at"]), "until": local(s["ends_at"])} for s in course.body["sessions"]]
        context: dict[str, Any] = {"staff": False, "manage": False}
        if allowed(user, "GET", f"{path}/enrolments"):
            found = await ui.call(request, user, "GET", f"{path}/enrolments")
            if not found.ok:
                return ui.trouble(request, user, found)
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
                "today": datetime.now(LOCAL_TIME).date().isoformat(),
                "current_session": _current_session(course.body["sessions"]),
            }
            context |= await _for_course_admins(ui, request, user, path)
            if "names" not in context and user is not None and casework.is_caseworker(user):
                # A caseworker reads the names of their own team's people on the lists: one audited lookup.
                persons, _ = await casework.persons_of(ui, request, user, [e["person_id"] for e in rows])
                context["names"] = {e["enrolment_id"]: f"{p['given_names']} {p['family_name']}" for e in rows
                                    if (p := persons.get(e["person_id"]))}  # fmt: skip
        words = ui.words(request)
        notice = request.query_params.get("notice", "")
        done = words.get(f"ca_done_{notice}")  # what a course admin's change on this page reports back
        return ui.render(request, "course.html", user=user, course=course.body, sessions=sessions, done=done,
                         notice=None if done else notice or None, **context)  # fmt: skip

    @router.post("/courses/{course_id}/enrolments/{enrolment_id}/{action}")
    async def enrolment_action(course_id: str, enrolment_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
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
        return _after(ui, request, user, target, reply)

    @router.post("/courses/{course_id}/attendance")
    async def attendance(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        present = set(await ui.form_list(request, "present"))
        enrolled = await ui.form_list(request, "enrolled")
        session_id = form.get("session_id", "")
        path = f"courses/{quote(course_id)}/enrolments"
        replies = await asyncio.gather(*(
            ui.call(request, user, "POST", f"{path}/{quote(e)}/attendance",
                    json={"session_id": session_id, "present": e in present})
            for e in enrolled
        ))  # fmt: skip
        refused = next((r for r in replies if not r.ok), None)
        target = f"/ui/courses/{quote(course_id)}"
        return _after(ui, request, user, target, refused or Reply(201, None))


def _after(ui: Kit, request: Request, user: Identity, target: str, reply: Reply) -> Response:
    """Back to the course page with "done" or what went wrong, in the page's language."""
    if reply.ok:
        return ui.back(target, notice="done")
    if reply.status in (401, 403, 503):
        return ui.trouble(request, user, reply)
    words = ui.words(request)
    names = {"result": words["learning_result"], "completed_on": words["learning_completed_on"],
             "certificate": words["learning_certificate"], "session_id": words["learning_session"]}  # fmt: skip
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
