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

import segno
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts.calendar import CITY_TIME
from contracts.vocabulary import CourseCategory, Funding, GermanLevel
from gateway import policy
from gateway.ui import learning
from gateway.ui.kit import Kit, Reply, Sent, field_errors, whole_number

#: The courses service's categories, funding (the city's first) and target levels, as ``contracts`` names them.
CATEGORIES = tuple(c.value for c in CourseCategory)
FUNDING = tuple(f.value for f in (Funding.CITY, Funding.BAMF, Funding.FEE))
LEVELS = tuple(level.value for level in GermanLevel if level is not GermanLevel.NONE)
MAX_SESSIONS = 52
#: A pass's verification code as the courses service makes it (letters and digits, dashes between groups).
CODE = re.compile(r"^[A-Za-z0-9-]{4,64}$")
NOTICES = frozenset({"created", "saved", "cancelled", "session_added", "session_removed"})
DONE = {notice: f"ca_done_{notice}" for notice in NOTICES}
#: The new course form's typed fields (the sessions are its first day, times and number of weeks).
COURSE_FIELDS = (
    "title",
    "description",
    "category",
    "target_level",
    "capacity",
    "location",
    "funding",
    "fee_euro",
    "first_day",
    "from_time",
    "until_time",
    "weeks",
    "enrolment_closes_on",
)
#: The fields of a course a refusal may name, with the words that name them on its page.
FIELD_WORDS = {
    "title": "title",
    "capacity": "ca_capacity",
    "location": "ca_location",
    "starts_at": "ca_from",
    "ends_at": "ca_until",
    "enrolment_closes_on": "ca_enrolment_closes",
}


def moment(day: str, clock: str) -> datetime | None:
    """A local date and time from a form, in Landsberg's zone; None for nothing or nonsense."""
    try:
        return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=CITY_TIME)
    except ValueError:
        return None


def qr_svg(url: str, title: str) -> str:
    """The QR code of ``url`` as inline SVG (no script, no image request: the page's CSP stays as strict)."""
    return str(segno.make(url, error="m").svg_inline(scale=4, border=2, title=title, svgclass="qr"))


def public_base(request: Request) -> str:
    """Where people reach this gateway: the configured public URL, else the address the request came to."""
    oidc = getattr(request.app.state, "oidc", None)
    configured = getattr(oidc, "public_url", None)
    return str(configured or str(request.base_url)).rstrip("/")


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def course_staff(request: Request) -> Identity:
        user = await ui.signed_in(request)
        if not policy.decide("POST", "/api/v1/courses", user.roles):
            ui.refuse(request, user, "forbidden", 403)
        return user

    def render(
        request: Request, template: str, user: Identity | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return ui.page(request, template, user, status, done=DONE, **context)

    async def manage_page(request: Request, user: Identity, sent: Sent | None = None) -> Response:
        courses = await learning.courses_of(ui, request, user)
        today = datetime.now(CITY_TIME).date()
        defaults = {
            "capacity": "15",
            "location": "VHS Landsberg am Lech",
            "funding": "city",
            "from_time": "09:00",
            "until_time": "12:00",
            "weeks": "10",
            "first_day": (today + timedelta(days=14)).isoformat(),
        }
        return render(
            request,
            "course_admin.html",
            user,
            sent.status if sent else 200,
            courses=courses,
            values=sent.values if sent else defaults,
            errors=sent.errors if sent else {},
            categories=CATEGORIES,
            funding=FUNDING,
            levels=LEVELS,
        )

    ui.form_page(router, "/course-admin", course_staff, manage_page)

    @router.post("/course-admin", response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        if not policy.decide("POST", "/api/v1/courses", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        words, lang = ui.words(request), ui.lang_of(request)
        values = await ui.form_values(request, form, COURSE_FIELDS)
        values |= {
            "childcare_offered": form.get("childcare_offered") == "yes",
            "women_only": form.get("women_only") == "yes",
        }
        errors: dict[str, str] = {}
        starts, ends = (
            moment(values["first_day"], values["from_time"]),
            moment(values["first_day"], values["until_time"]),
        )
        if starts is None or ends is None or ends <= starts:
            errors["first_day"] = words["ca_err_time"]
        weeks = whole_number(values["weeks"])
        if not isinstance(weeks, int) or not 1 <= weeks <= MAX_SESSIONS:
            errors["weeks"] = words["ca_err_weeks"].format(most=MAX_SESSIONS)
        if errors or starts is None or ends is None or not isinstance(weeks, int):
            return await manage_page(request, user, Sent(values, errors))
        body: dict[str, Any] = {
            "title": values["title"],
            "description": values["description"] or None,
            "category": values["category"],
            "target_level": values["target_level"] or None,
            "capacity": whole_number(values["capacity"]),
            "location": values["location"],
            "funding": values["funding"],
            "fee_euro": whole_number(values["fee_euro"]),
            "childcare_offered": values["childcare_offered"],
            "women_only": values["women_only"],
            "enrolment_closes_on": values["enrolment_closes_on"] or None,
            "sessions": [
                {
                    "starts_at": (starts + timedelta(weeks=i)).isoformat(),
                    "ends_at": (ends + timedelta(weeks=i)).isoformat(),
                    "place": values["location"] or "VHS Landsberg am Lech",
                }
                for i in range(weeks)
            ],
        }
        reply = await ui.call(request, user, "POST", "courses", json=body)
        if reply.status == 201:
            return RedirectResponse(f"/ui/courses/{quote(reply.body['course_id'])}?notice=created", 303)
        if reply.status == 422:
            fields = {name: name for name in body if name != "sessions"} | {"sessions": "first_day"}
            errors = field_errors(reply.body, lang, fields)
            if "form" in errors and isinstance(reply.body, dict) and not reply.body.get("errors"):  # a course rule
                errors["form"] = learning.refusal(reply.body, lang)
            return await manage_page(request, user, Sent(values, errors))
        return ui.trouble(request, user, reply)

    def back_to_course(request: Request, user: Identity, course_id: str, reply: Reply, notice: str) -> Response:
        target = f"/ui/courses/{quote(course_id)}"
        return learning.back_to(ui, request, user, target, reply, FIELD_WORDS, notice)

    @router.post("/courses/{course_id}/edit")
    async def edit(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        body = {
            "title": form.get("title", "").strip(),
            "description": form.get("description", "").strip() or None,
            "capacity": whole_number(form.get("capacity")),
            "location": form.get("location", "").strip(),
            "childcare_offered": form.get("childcare_offered") == "yes",
            "enrolment_closes_on": form.get("enrolment_closes_on") or None,
        }
        reply = await ui.call(request, user, "PATCH", f"courses/{quote(course_id, safe='')}", json=body)
        return back_to_course(request, user, course_id, reply, "saved")

    @router.post("/courses/{course_id}/cancel")
    async def cancel(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        if form.get("confirm") != "yes":
            return ui.back(f"/ui/courses/{quote(course_id)}", error=ui.words(request)["ca_cancel_confirm"])
        reply = await ui.call(request, user, "POST", f"courses/{quote(course_id, safe='')}/cancel")
        return back_to_course(request, user, course_id, reply, "cancelled")

    @router.post("/courses/{course_id}/sessions")
    async def add_session(course_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        starts = moment(form.get("day", ""), form.get("from_time", ""))
        ends = moment(form.get("day", ""), form.get("until_time", ""))
        if starts is None or ends is None or ends <= starts:
            return ui.back(f"/ui/courses/{quote(course_id)}", error=ui.words(request)["ca_err_time"])
        body = {
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "place": form.get("place", "").strip() or "VHS Landsberg am Lech",
        }
        reply = await ui.call(request, user, "POST", f"courses/{quote(course_id, safe='')}/sessions", json=body)
        return back_to_course(request, user, course_id, reply, "session_added")

    @router.post("/courses/{course_id}/sessions/{session_id}/remove")
    async def remove_session(course_id: str, session_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, _ = posted
        path = f"courses/{quote(course_id, safe='')}/sessions/{quote(session_id, safe='')}"
        reply = await ui.call(request, user, "DELETE", path)
        return back_to_course(request, user, course_id, reply, "session_removed")

    @router.post("/courses/{course_id}/passes/{person_id}", response_class=HTMLResponse)
    async def issue_pass(course_id: str, person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, _ = posted
        reply = await ui.call(request, user, "POST", f"learners/{quote(person_id, safe='')}/education-pass", json={})
        if not reply.ok:
            return back_to_course(request, user, course_id, reply, "")
        issued = reply.body
        link = f"{public_base(request)}/ui/verify/{quote(issued['code'], safe='')}"
        words = ui.words(request)
        subject = issued["credential"].get("credentialSubject", {})
        response = render(
            request,
            "course_pass.html",
            user,
            issued=issued,
            holder=subject.get("name", ""),
            entries=subject.get("entries", []),
            link=link,
            course_id=course_id,
            qr=qr_svg(link, words["ca_pass_qr"]),
        )
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
        verdict = (
            "valid"
            if found.get("valid")
            else "revoked"
            if found.get("revoked")
            else "unknown"
            if "no pass" in str(found.get("reason", ""))
            else "invalid"
        )
        return render(request, "verify.html", user, 200, code=code, verdict=verdict)
