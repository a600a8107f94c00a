"""Course admins' pages: their provider's courses with a form for a new one; on a course's page (``learning``)
the forms to change or cancel it and its sessions; the education pass with a QR code; and the public page the
QR code opens, which checks a pass.

Everything goes through the courses service's API, which checks the object: a course admin changes only their
own provider's courses (another's answers 403), issues passes only to the learners enrolled there (404 else).
The holder's name on a pass comes from registration, asked by the courses service, never from a form.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway import policy
from gateway.ui import learning
from gateway.ui.kit import Kit, Reply, field_errors
from gateway.ui.words import more_words

LOCAL_TIME = ZoneInfo("Europe/Berlin")
#: The courses service's categories, funding and levels (its ``CourseCategory``, ``Funding``; a test keeps them).
CATEGORIES = ("integration_course", "german_second_language", "job_german", "literacy", "english", "health",
              "cultural_education", "civic_education", "parents_and_women", "orientation")  # fmt: skip
FUNDING = ("city", "bamf", "fee")
LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")
MAX_SESSIONS = 52
#: A pass's verification code as the courses service makes it (letters and digits, dashes between groups).
CODE = re.compile(r"^[A-Za-z0-9-]{4,64}$")
NOTICES = frozenset({"created", "saved", "cancelled", "session_added", "session_removed"})

more_words({
    "de": {
        "ca_title": "Kursverwaltung", "ca_intro": "Die Kurse Ihres Trägers. Neue Kurse erscheinen sofort im "
        "öffentlichen Kursangebot; Lotsinnen und Lotsen melden Personen dort an.",
        "ca_new": "Neuen Kurs anlegen", "ca_create": "Kurs anlegen", "ca_description": "Beschreibung (optional)",
        "ca_category": "Art des Kurses", "ca_level": "Ziel-Niveau (optional)", "ca_no_level": "ohne",
        "ca_capacity": "Plätze", "ca_location": "Ort", "ca_funding": "Finanzierung", "ca_fee": "Gebühr in Euro",
        "ca_fee_hint": "Nur bei Finanzierung „Gebühr“.", "ca_childcare": "Mit Kinderbetreuung",
        "ca_women_only": "Nur für Frauen", "ca_first_day": "Erster Termin (Datum)", "ca_from": "Beginn (Uhrzeit)",
        "ca_until": "Ende (Uhrzeit)", "ca_weeks": "Anzahl der Termine (wöchentlich)",
        "ca_enrolment_closes": "Anmeldeschluss (optional)", "ca_choose": "Bitte wählen",
        "ca_edit": "Kurs ändern", "ca_save": "Änderungen speichern", "ca_cancel_course": "Kurs absagen",
        "ca_cancel_hint": "Absagen beendet alle Anmeldungen und Wartelisten; die Personen und ihre Lotsen "
        "erfahren es. Das lässt sich nicht rückgängig machen.",
        "ca_cancel_confirm": "Ja, ich will diesen Kurs absagen", "ca_add_session": "Termin hinzufügen",
        "ca_day": "Datum", "ca_place": "Raum oder Ort", "ca_remove_session": "Termin entfernen",
        "ca_participants": "Teilnehmende", "ca_names_unavailable": "Die Namen sind gerade nicht abrufbar "
        "(Meldeamt-Dienst nicht erreichbar); gezeigt werden Kennungen.",
        "ca_attendance_grid": "Anwesenheit je Termin", "ca_present_mark": "anwesend", "ca_absent_mark": "abwesend",
        "ca_not_recorded": "nicht erfasst", "ca_issue_pass": "Bildungspass ausstellen",
        "ca_pass_title": "Bildungspass ausgestellt", "ca_pass_holder": "Inhaber/in",
        "ca_pass_intro": "Der Pass ist signiert. Der QR-Code öffnet die Prüfseite; dort sieht jede und jeder, "
        "ob der Pass echt und nicht widerrufen ist.",
        "ca_pass_code": "Prüfcode", "ca_pass_qr": "QR-Code zur Prüfseite dieses Bildungspasses",
        "ca_pass_entries": "Einträge", "ca_pass_verify_link": "Prüfseite öffnen", "ca_back_course": "Zurück zum Kurs",
        "ca_entry_course": "Kurs", "ca_entry_certificate": "Zertifikat",
        "ca_entry_language_level": "Deutschniveau erreicht", "ca_print": "Zum Drucken: Strg+P.",
        "ca_my_courses": "Ihre Kurse", "ca_no_courses": "Noch keine Kurse.",
        "ca_done_created": "Der Kurs ist angelegt.", "ca_done_saved": "Die Änderungen sind gespeichert.",
        "ca_done_cancelled": "Der Kurs ist abgesagt.", "ca_done_session_added": "Der Termin ist hinzugefügt.",
        "ca_done_session_removed": "Der Termin ist entfernt.",
        "ca_err_time": "Bitte Datum und Uhrzeit angeben; das Ende liegt nach dem Beginn.",
        "ca_err_weeks": f"Bitte 1 bis {MAX_SESSIONS} Termine.",
        "verify_title": "Bildungspass prüfen", "verify_valid": "Gültig: Dieser Bildungspass wurde von der Stadt "
        "Landsberg am Lech ausgestellt und ist nicht widerrufen.", "verify_revoked": "Widerrufen: Dieser "
        "Bildungspass gilt nicht mehr.", "verify_unknown": "Unbekannt: Zu diesem Prüfcode gibt es keinen "
        "Bildungspass.", "verify_invalid": "Ungültig: Die Signatur dieses Bildungspasses stimmt nicht.",
        "verify_code": "Prüfcode", "verify_intro": "Diese Seite prüft einen Bildungspass anhand seines Prüfcodes. "
        "Sie zeigt keine Personendaten.",
    },
    "en": {
        "ca_title": "Course administration", "ca_intro": "Your provider's courses. New courses appear in the public "
        "catalogue at once; integration navigators enrol people there.",
        "ca_new": "Create a course", "ca_create": "Create course", "ca_description": "Description (optional)",
        "ca_category": "Kind of course", "ca_level": "Target level (optional)", "ca_no_level": "none",
        "ca_capacity": "Seats", "ca_location": "Location", "ca_funding": "Funding", "ca_fee": "Fee in euros",
        "ca_fee_hint": "Only with funding “fee”.", "ca_childcare": "With childcare",
        "ca_women_only": "Women only", "ca_first_day": "First session (date)", "ca_from": "Starts (time)",
        "ca_until": "Ends (time)", "ca_weeks": "Number of sessions (weekly)",
        "ca_enrolment_closes": "Enrolment closes (optional)", "ca_choose": "Please choose",
        "ca_edit": "Change the course", "ca_save": "Save changes", "ca_cancel_course": "Cancel the course",
        "ca_cancel_hint": "Cancelling ends all enrolments and waiting lists; the people and their navigators are "
        "told. It cannot be undone.",
        "ca_cancel_confirm": "Yes, I want to cancel this course", "ca_add_session": "Add a session",
        "ca_day": "Date", "ca_place": "Room or place", "ca_remove_session": "Remove session",
        "ca_participants": "Participants", "ca_names_unavailable": "The names cannot be read just now (the "
        "registration service does not answer); ids are shown.",
        "ca_attendance_grid": "Attendance per session", "ca_present_mark": "present", "ca_absent_mark": "absent",
        "ca_not_recorded": "not recorded", "ca_issue_pass": "Issue the education pass",
        "ca_pass_title": "Education pass issued", "ca_pass_holder": "Holder",
        "ca_pass_intro": "The pass is signed. The QR code opens the verification page, where anyone sees whether "
        "the pass is genuine and not revoked.",
        "ca_pass_code": "Verification code", "ca_pass_qr": "QR code to this education pass's verification page",
        "ca_pass_entries": "Entries", "ca_pass_verify_link": "Open the verification page",
        "ca_back_course": "Back to the course",
        "ca_entry_course": "Course", "ca_entry_certificate": "Certificate",
        "ca_entry_language_level": "German level reached", "ca_print": "To print: Ctrl+P.",
        "ca_my_courses": "Your courses", "ca_no_courses": "No courses yet.",
        "ca_done_created": "The course has been created.", "ca_done_saved": "The changes are saved.",
        "ca_done_cancelled": "The course is cancelled.", "ca_done_session_added": "The session has been added.",
        "ca_done_session_removed": "The session has been removed.",
        "ca_err_time": "Please give a date and times; the end comes after the start.",
        "ca_err_weeks": f"Please 1 to {MAX_SESSIONS} sessions.",
        "verify_title": "Check an education pass", "verify_valid": "Valid: this education pass was issued by the "
        "City of Landsberg am Lech and is not revoked.", "verify_revoked": "Revoked: this education pass is no "
        "longer valid.", "verify_unknown": "Unknown: there is no education pass with this code.",
        "verify_invalid": "Invalid: the signature of this education pass does not match.",
        "verify_code": "Verification code", "verify_intro": "This page checks an education pass by its "
        "verification code. It shows no personal data.",
    },
})  # fmt: skip


def moment(day: str, clock: str) -> datetime | None:
    """A local date and time from a form, in Landsberg's zone; None for nothing or nonsense."""
    try:
        return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=LOCAL_TIME)
    except ValueError:
        return None


def whole(text: str | None) -> int | str | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        return text.strip()


def qr_svg(url: str, title: str) -> str:
    """The QR code of ``url`` as inline SVG (no script, no image request: the page's CSP stays as strict)."""
    return str(segno.make(url, error="m").svg_inline(scale=4, border=2, title=title, svgclass="qr"))


def public_base(request: Request) -> str:
    """Where people reach this gateway: the configured public URL, else the address the request came to."""
    oidc = getattr(request.app.state, "oidc", None)
    configured = getattr(oidc, "public_url", None)
    return str(configured or str(request.base_url)).rstrip("/")


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def course_staff(request: Request) -> Identity | Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        if not policy.decide("POST", "/api/v1/courses", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        return user

    def render(request: Request, template: str, user: Identity | None, status: int = 200,
               **context: Any) -> HTMLResponse:  # fmt: skip
        words = ui.words(request)
        notice = request.query_params.get("notice", "")
        return ui.render(request, template, status, user=user, notice=None,
                         done=words[f"ca_done_{notice}"] if notice in NOTICES else None, **context)  # fmt: skip

    async def manage_page(request: Request, user: Identity, status: int = 200, values: dict[str, Any] | None = None,
                          errors: dict[str, str] | None = None) -> Response:  # fmt: skip
        courses = await learning.courses_of(ui, request, user)
        today = datetime.now(LOCAL_TIME).date()
        defaults = {"capacity": "15", "location": "VHS Landsberg am Lech", "funding": "city", "from_time": "09:00",
                    "until_time": "12:00", "weeks": "10",
                    "first_day": (today + timedelta(days=14)).isoformat()}  # fmt: skip
        return render(request, "course_admin.html", user, status, courses=courses, values=values or defaults,
                      errors=errors or {}, categories=CATEGORIES, funding=FUNDING, levels=LEVELS)  # fmt: skip

    @router.get("/course-admin", response_class=HTMLResponse)
    async def manage(request: Request) -> Response:
        user = await course_staff(request)
        if isinstance(user, Response):
            return user
        return await manage_page(request, user)

    @router.post("/course-admin", response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if not policy.decide("POST", "/api/v1/courses", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        words, lang = ui.words(request), ui.lang_of(request)
        values: dict[str, Any] = {name: form.get(name, "").strip() for name in (
            "title", "description", "category", "target_level", "capacity", "location", "funding", "fee_euro",
            "first_day", "from_time", "until_time", "weeks", "enrolment_closes_on")}  # fmt: skip
        values |= {"childcare_offered": form.get("childcare_offered") == "yes",
                   "women_only": form.get("women_only") == "yes"}  # fmt: skip
        errors: dict[str, str] = {}
        starts, ends = moment(values["first_day"], values["from_time"]), moment(values["first_day"],
                                                                                   values["until_time"])  # fmt: skip
        if starts is None or ends is None or ends <= starts:
            errors["first_day"] = words["ca_err_time"]
        weeks = whole(values["weeks"])
        if not isinstance(weeks, int) or not 1 <= weeks <= MAX_SESSIONS:
            errors["weeks"] = words["ca_err_weeks"]
        if errors or starts is None or ends is None or not isinstance(weeks, int):
            return await manage_page(request, user, 422, values, errors)
        body: dict[str, Any] = {
            "title": values["title"], "description": values["description"] or None,
            "category": values["category"], "target_level": values["target_level"] or None,
            "capacity": whole(values["capacity"]), "location": values["location"], "funding": values["funding"],
            "fee_euro": whole(values["fee_euro"]), "childcare_offered": values["childcare_offered"],
            "women_only": values["women_only"], "enrolment_closes_on": values["enrolment_closes_on"] or None,
            "sessions": [{"starts_at": (starts + timedelta(weeks=i)).isoformat(),
                          "ends_at": (ends + timedelta(weeks=i)).isoformat(), "place": values["location"] or
                          "VHS Landsberg am Lech"} for i in range(weeks)],
        }  # fmt: skip
        reply = await ui.call(request, user, "POST", "courses", json=body)
        if reply.status == 201:
            return RedirectResponse(f"/ui/courses/{quote(reply.body['course_id'])}?notice=created", 303)
        if reply.status == 422:
            fields = {name: name for name in body if name != "sessions"} | {"sessions": "first_day"}
            errors = field_errors(reply.body, lang, fields)
            if "form" in errors and isinstance(reply.body, dict) and not reply.body.get("errors"):  # a course rule
                errors["form"] = learning.refusal(reply.body, lang)
            return await manage_page(request, user, 422, values, errors)
        return ui.trouble(request, user, reply)

    def back_to_course(request: Request, user: Identity, course_id: str, reply: Reply, notice: str) -> Response:
        target = f"/ui/courses/{quote(course_id)}"
        if reply.ok:
            return RedirectResponse(f"{target}?notice={notice}", 303)
        if reply.status in (401, 403, 503):
            return ui.trouble(request, user, reply)
        words = ui.words(request)
        names = {"title": words["title"], "capacity": words["ca_capacity"], "location": words["ca_location"],
                 "starts_at": words["ca_from"], "ends_at": words["ca_until"],
                 "enrolment_closes_on": words["ca_enrolment_closes"]}  # fmt: skip
        return ui.back(target, error=learning.problem_message(reply, ui.lang_of(request), names))

    @router.post("/courses/{course_id}/edit")
    async def edit(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body = {
            "title": form.get("title", "").strip(), "description": form.get("description", "").strip() or None,
            "capacity": whole(form.get("capacity")), "location": form.get("location", "").strip(),
            "childcare_offered": form.get("childcare_offered") == "yes",
            "enrolment_closes_on": form.get("enrolment_closes_on") or None,
        }  # fmt: skip
        reply = await ui.call(request, user, "PATCH", f"courses/{quote(course_id, safe='')}", json=body)
        return back_to_course(request, user, course_id, reply, "saved")

    @router.post("/courses/{course_id}/cancel")
    async def cancel(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if form.get("confirm") != "yes":
            return ui.back(f"/ui/courses/{quote(course_id)}", error=ui.words(request)["ca_cancel_confirm"])
        reply = await ui.call(request, user, "POST", f"courses/{quote(course_id, safe='')}/cancel")
        return back_to_course(request, user, course_id, reply, "cancelled")

    @router.post("/courses/{course_id}/sessions")
    async def add_session(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        starts = moment(form.get("day", ""), form.get("from_time", ""))
        ends = moment(form.get("day", ""), form.get("until_time", ""))
        if starts is None or ends is None or ends <= starts:
            return ui.back(f"/ui/courses/{quote(course_id)}", error=ui.words(request)["ca_err_time"])
        body = {"starts_at": starts.isoformat(), "ends_at": ends.isoformat(),
                "place": form.get("place", "").strip() or "VHS Landsberg am Lech"}  # fmt: skip
        reply = await ui.call(request, user, "POST", f"courses/{quote(course_id, safe='')}/sessions", json=body)
        return back_to_course(request, user, course_id, reply, "session_added")

    @router.post("/courses/{course_id}/sessions/{session_id}/remove")
    async def remove_session(course_id: str, session_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, _ = posted
        path = f"courses/{quote(course_id, safe='')}/sessions/{quote(session_id, safe='')}"
        reply = await ui.call(request, user, "DELETE", path)
        return back_to_course(request, user, course_id, reply, "session_removed")

    @router.post("/courses/{course_id}/passes/{person_id}", response_class=HTMLResponse)
    async def issue_pass(course_id: str, person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, _ = posted
        reply = await ui.call(request, user, "POST", f"learners/{quote(person_id, safe='')}/education-pass", json={})
        if not reply.ok:
            return back_to_course(request, user, course_id, reply, "")
        issued = reply.body
        link = f"{public_base(request)}/ui/verify/{quote(issued['code'], safe='')}"
        words = ui.words(request)
        subject = issued["credential"].get("credentialSubject", {})
        response = render(request, "course_pass.html", user, issued=issued, holder=subject.get("name", ""),
                          entries=subject.get("entries", []), link=link, course_id=course_id,
                          qr=qr_svg(link, words["ca_pass_qr"]))  # fmt: skip
        response.headers["Cache-Control"] = "no-store"  # a holder's name: kept by no cache
        return response

    @router.get("/verify/{code}", response_class=HTMLResponse)
    async def verify(code: str, request: Request) -> Response:
        """The page a pass's QR code opens: anyone may check it; it says valid, revoked or unknown, nothing more."""
        user = await ui.current(request)
        if not CODE.fullmatch(code):
            return render(request, "verify.html", user, 404, code=code, verdict="unknown")
        reply = await ui.call(request, user, "GET", f"education-passes/verify/{quote(code, safe='')}")
        if not reply.ok or not isinstance(reply.body, dict):
            return ui.trouble(request, user, reply)
        found = reply.body
        verdict = ("valid" if found.get("valid") else "revoked" if found.get("revoked")
                   else "unknown" if "no pass" in str(found.get("reason", "")) else "invalid")  # fmt: skip
        return render(request, "verify.html", user, 200, code=code, verdict=verdict)
