"""The caseworkers', registrars' and privacy officers' pages: dashboard, registering a newcomer, person and case.

The person page shows what the caller's role may read (needs not to registrars) and, to privacy officers and
admins, the forms to record a move away and to erase the person's data, each asking for the reason the access
log keeps. The case page carries the integration plan (goals in Esser's four dimensions), the needs assessment
(the latest one, and a form for a new version) and the person's courses (enrol from the catalogue).
A form the API refuses with 422 comes back with the typed input kept and a German message next to
each field the Problem names.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pycountry
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts.vocabulary import (
    ConsentPurpose,
    EmploymentSituation,
    EsserDimension,
    Gender,
    GermanLevel,
    GoalStatus,
    ResidenceStatusGroup,
    Schooling,
)
from gateway import policy
from gateway.ui import casework, households, learning, names
from gateway.ui.admin_directory import LANGUAGES
from gateway.ui.kit import Kit, Reply, field_errors
from gateway.ui.words import FIELD_ERRORS

GENDERS = tuple(g.value for g in Gender)
#: The residence status groups, the refugees' first (the most often chosen).
RESIDENCE_GROUPS = (
    ResidenceStatusGroup.RECOGNISED_REFUGEE.value,
    ResidenceStatusGroup.ASYLUM_SEEKER.value,
    ResidenceStatusGroup.TOLERATED.value,
    ResidenceStatusGroup.EU_CITIZEN.value,
    ResidenceStatusGroup.SKILLED_WORKER_OR_STUDY_VISA.value,
    ResidenceStatusGroup.FAMILY_REUNIFICATION.value,
    ResidenceStatusGroup.OTHER.value,
)
PURPOSES = tuple(p.value for p in ConsentPurpose)
REGISTRATION_FIELDS = (
    "given_names",
    "family_name",
    "birth_date",
    "gender",
    "nationality",
    "languages",
    "preferred_language",
    "residence_status_group",
    "arrival_date",
    "street",
    "house_number",
    "postal_code",
    "district",
    "phone",
    "email",
)
ADDRESS_FIELDS = ("street", "house_number", "postal_code", "district")
GOAL_STATUSES = tuple(s.value for s in GoalStatus)
GOAL_FIELDS = ("dimension", "title", "due_on", "status")
NEEDS_CHOICES = ("german_level", "schooling", "employment_situation")
NEEDS_TEXTS = ("other_languages", "vocational_qualification", "children_ages", "notes")
NEEDS_CHECKS = (
    "recognise_foreign_qualification",
    "childcare_needed",
    "housing_need",
    "counselling_need",
    "health_need",
)
NEEDS_FIELDS = NEEDS_CHOICES + NEEDS_TEXTS + NEEDS_CHECKS


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = await ui.current(request)
        if user is None:
            return ui.render(request, "home.html")
        if "partner" in user.roles and not user.roles & policy.STAFF:
            return RedirectResponse("/ui/partner", status_code=303)
        context: dict[str, Any] = {
            "cases": [],
            "waiting": [],
            "escalated": [],
            "proposed": [],
            "course_waiting": [],
            "my_courses": [],
            "persons": {},
            "queue": [],
            "workers": {},
            "names_unavailable": False,
            "partner_names": {},
            "team_workers": [],
            "today": "",
            "goals_due": [],
        }
        if user.roles & {"caseworker", "admin"}:
            params: dict[str, Any] = {"status": "open", "page_size": 50}
            params |= {"team": user.team} if user.team else {"caseworker_id": user.subject}
            cases = await ui.call(request, user, "GET", "cases", params=params)
            if cases.status == 503:
                return ui.trouble(request, user, cases)
            context["cases"] = cases.items()
            mine = {c["case_id"] for c in context["cases"]}
            for key, query in (
                ("waiting", {"status": "sent"}),
                ("escalated", {"escalated": "true"}),
                ("proposed", {"status": "proposed"}),
            ):
                found = await ui.call(request, user, "GET", "referrals", params=query | {"page_size": 200})
                context[key] = [r for r in found.items() if r["case_id"] in mine or "admin" in user.roles]
            case_of = {c["person_id"]: c["case_id"] for c in context["cases"]}
            entries = await learning.waiting_of(ui, request, user, case_of)
            context["course_waiting"] = [e | {"case_id": case_of[e["person_id"]]} for e in entries]
            # Plan goals overdue or due within the week: reminders, like escalations and expiring seat offers.
            due = await ui.call(request, user, "GET", "cases/goals-due", params={"within_days": 7})
            context["goals_due"] = [
                g for g in (due.body if due.ok and isinstance(due.body, list) else []) if g["case_id"] in mine
            ]
            context |= await casework.dashboard(
                ui, request, user, context["cases"], [g["person_id"] for g in context["goals_due"] if g["person_id"]]
            )
        if user.roles & {"course_admin", "admin"}:
            context["my_courses"] = await learning.courses_of(ui, request, user)
        return ui.render(request, "dashboard.html", user=user, **context)

    @router.get("/register", response_class=HTMLResponse)
    async def register_page(request: Request) -> Response:
        user = await ui.signed_in(request)
        if not policy.decide("POST", "/api/v1/registrations", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        return ui.render(
            request,
            "register.html",
            user=user,
            values={},
            errors={},
            **_choices(),
            **_register_choices(ui.lang_of(request)),
        )

    @router.post("/register", response_class=HTMLResponse)
    async def register(request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        values = {name: form.get(name, "").strip() for name in REGISTRATION_FIELDS}
        # The languages' check boxes; the duplicate warning's confirmation sends them back as one "ar, en".
        chosen = [c for v in await ui.form_list(request, "languages") for c in (p.strip() for p in v.split(",")) if c]
        values["languages"] = ", ".join(chosen)
        body: dict[str, Any] = {k: v for k, v in values.items() if k not in ADDRESS_FIELDS and k != "languages"}
        body["languages"] = chosen
        body["address"] = {k: values[k] for k in ADDRESS_FIELDS}
        for optional in ("arrival_date", "phone", "email"):
            if not body[optional]:
                del body[optional]
        if form.get("confirm_new_person") == "true":
            body["confirm_new_person"] = True
        reply = await ui.call(request, user, "POST", "registrations", json=body)
        if reply.ok:
            return ui.back(f"/ui/persons/{reply.body['person_id']}", notice="registered")
        if reply.status == 409 and isinstance(reply.body, dict) and reply.body.get("existing_persons") is not None:
            return ui.render(
                request,
                "register.html",
                409,
                user=user,
                values=values,
                errors={},
                duplicate=reply.body,
                **_choices(),
                **_register_choices(ui.lang_of(request)),
            )
        if reply.status == 422:
            errors = field_errors(reply.body, ui.lang_of(request), REGISTRATION_FIELDS)
            return ui.render(
                request,
                "register.html",
                422,
                user=user,
                values=values,
                errors=errors,
                districts=(reply.body or {}).get("districts"),
                **_choices(),
                **_register_choices(ui.lang_of(request)),
            )
        return ui.trouble(request, user, reply)

    @router.get("/persons", response_class=HTMLResponse)
    async def open_person(request: Request) -> Response:
        """The dashboard's "open a person" form: to the person's page."""
        await ui.signed_in(request)
        person_id = request.query_params.get("person_id", "").strip()
        if not person_id:
            return ui.back("/ui/")
        return RedirectResponse(f"/ui/persons/{quote(person_id, safe='')}", status_code=303)

    @router.get("/persons/{person_id}", response_class=HTMLResponse)
    async def person_page(person_id: str, request: Request) -> Response:
        user = await ui.signed_in(request)
        person = await ui.read(request, user, f"persons/{quote(person_id)}")
        may = _person_rights(user)
        consents, cases, needs, directory = await asyncio.gather(
            ui.call(request, user, "GET", f"persons/{quote(person_id)}/consents"),
            ui.call(request, user, "GET", "cases", params={"person_id": person_id}),
            ui.call(request, user, "GET", f"persons/{quote(person_id)}/needs-assessments"),
            ui.call(request, None, "GET", "partners", params={"page_size": 100}),
        )
        partners = sorted(directory.items(), key=lambda p: p["name"])
        workers = await casework.caseworker_names(ui, request, user) if casework.is_caseworker(user) else {}
        return ui.render(
            request,
            "person.html",
            user=user,
            person=person.body,
            consents=consents.body if consents.ok else [],
            cases=cases.items(),
            needs=_latest(needs),
            purposes=PURPOSES,
            may=may,
            directory=partners,
            workers=workers,
            partner_names={p["partner_id"]: p["name"] for p in partners},
            **_register_choices(ui.lang_of(request)),
        )

    @router.post("/persons/{person_id}/move-away")
    async def move_away(person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        body = {"moved_away_on": form.get("moved_away_on", "").strip(), "reason": form.get("reason", "").strip()}
        reply = await ui.call(request, user, "POST", f"persons/{quote(person_id)}/move-away", json=body)
        back = f"/ui/persons/{quote(person_id)}"
        if reply.status == 422:
            errors = field_errors(reply.body, ui.lang_of(request), ("moved_away_on", "reason"))
            words = ui.words(request)
            texts = [
                f"{words['staff_moved_away_on' if k == 'moved_away_on' else 'staff_reason']}: {v}"
                for k, v in errors.items()
                if k != "form"
            ] or list(errors.values())
            return ui.back(back, error="; ".join(texts))
        return ui.after(back, reply)

    @router.post("/persons/{person_id}/erase")
    async def erase(person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        back = f"/ui/persons/{quote(person_id)}"
        words = ui.words(request)
        if form.get("confirm") != "true":
            return ui.back(back, error=words["staff_confirm_missing"])
        reason = form.get("reason", "").strip()
        # The reason goes in the body: a query string may end up in traces.
        reply = await ui.call(request, user, "DELETE", f"persons/{quote(person_id)}", json={"reason": reason})
        if reply.ok:
            return ui.back("/ui/", notice="erased")
        if reply.status == 422:
            return ui.back(back, error=words["staff_reason_missing"])
        return ui.after(back, reply)

    @router.post("/persons/{person_id}/consents")
    async def give_consent(person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        # The directory's select names a partner, or "category:<kind>" for every partner of a kind.
        chosen = form.get("partner_id", "").strip()
        body = (
            {"partner_category": chosen.removeprefix("category:")}
            if chosen.startswith("category:")
            else {"partner_id": chosen}
        )
        body["purpose"] = form.get("purpose", "")
        reply = await ui.call(request, user, "POST", f"persons/{quote(person_id)}/consents", json=body)
        target = form.get("return_to", "")
        target = target if target.startswith("/ui/") and not target.startswith("//") else f"/ui/persons/{person_id}"
        return ui.after(target, reply)

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(case_id: str, request: Request) -> Response:
        user = await ui.signed_in(request)
        return await show_case(request, user, case_id)

    async def show_case(
        request: Request, user: Identity, case_id: str, status: int = 200, *, case: Reply | None = None, **forms: Any
    ) -> Response:
        """The case page; ``forms`` carry a refused form's typed input and errors back into it."""
        case = case or await ui.call(request, user, "GET", f"cases/{quote(case_id)}")
        if not case.ok:
            return ui.trouble(request, user, case)
        person_id = case.body["person_id"]
        person_path = f"persons/{quote(person_id)}"
        # A household's case: the needs shown and recorded are one member's (the lead's unless another is chosen).
        member = households.chosen_member(case.body, forms.pop("member", None) or request.query_params.get("member"))
        # Two calls gathered as one: asyncio.gather keeps the types of at most six.
        timeline, person, consents, needs, enrolments, (courses, meeting) = await asyncio.gather(
            ui.call(request, user, "GET", f"cases/{quote(case_id)}/timeline"),
            ui.call(request, user, "GET", person_path),
            ui.call(request, user, "GET", f"{person_path}/consents"),
            ui.call(request, user, "GET", f"persons/{quote(member)}/needs-assessments"),
            ui.call(request, user, "GET", f"learners/{quote(person_id)}/enrolments"),
            asyncio.gather(
                learning.catalogue(ui, request, user),
                ui.call(request, None, "GET", "partners/meeting-offers", params={"page_size": 200}),
            ),
        )
        latest = _latest(needs)
        forms |= await casework.case_extras(ui, request, user, case.body)
        forms |= await households.household(ui, request, user, case.body)
        forms["needs_member"] = member
        listed = enrolments.body if enrolments.ok and isinstance(enrolments.body, list) else []
        titles = await learning.titles(ui, request, user, (e["course_id"] for e in listed), courses)
        mine = [e | {"course_title": titles.get(e["course_id"], e["course_id"][:8])} for e in listed]
        just = request.query_params.get("enrolment")
        forms.setdefault("goal_form", {"values": {}, "errors": {}})
        forms.setdefault("goal_edit", {"goal_id": None, "values": {}, "errors": {}})
        forms.setdefault("needs_form", {"values": _needs_values(latest), "errors": {}})
        forms.setdefault("enrol_form", {"values": {}, "error": None})
        return ui.render(
            request,
            "case.html",
            status,
            user=user,
            case=case.body,
            person=person.body if person.ok else None,
            timeline=timeline.body if timeline.ok else [],
            consents=consents.body if consents.ok else [],
            purposes=PURPOSES,
            needs=latest,
            enrolments=mine,
            courses=courses,
            enrolled_now=next((e for e in mine if e["enrolment_id"] == just), None),
            dimensions=[d.value for d in EsserDimension],
            goal_statuses=GOAL_STATUSES,
            levels=[g.value for g in GermanLevel],
            schoolings=[s.value for s in Schooling],
            employments=[e.value for e in EmploymentSituation],
            needs_checks=NEEDS_CHECKS,
            meeting_offers=_meeting_offers(meeting.items(), person.body if person.ok else None),
            language_options=_register_choices(ui.lang_of(request))["language_options"],
            **forms,
        )

    def _meeting_offers(offers: list[dict[str, Any]], person: Any) -> list[dict[str, Any]]:
        """Meeting offers to suggest (a participation goal): those held in a language the person speaks first."""
        spoken = {tag.split("-")[0] for tag in (person or {}).get("languages") or []}

        def theirs(offer: dict[str, Any]) -> bool:
            return bool(spoken & {tag.split("-")[0] for tag in offer.get("languages") or []})

        return sorted(offers, key=lambda o: not theirs(o))[:8]

    @router.post("/cases/{case_id}/goals", response_class=HTMLResponse)
    async def add_goal(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        values = {name: form.get(name, "").strip() for name in ("dimension", "title", "due_on", "person_id")}
        body = {k: v for k, v in values.items() if v} | {"due_on": values["due_on"] or None}
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/goals", json=body)
        if reply.status == 422:
            errors = field_errors(reply.body, ui.lang_of(request), GOAL_FIELDS)
            return await show_case(request, user, case_id, 422, goal_form={"values": values, "errors": errors})
        return _to_case(ui, case_id, reply, "goals-h")

    @router.post("/cases/{case_id}/goals/{goal_id}", response_class=HTMLResponse)
    async def change_goal(case_id: str, goal_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        values = {name: form.get(name, "").strip() for name in ("status", "due_on")}
        body: dict[str, Any] = {"status": values["status"] or None}
        if values["due_on"] != form.get("current_due_on", ""):  # a PATCH names only what changes
            body["due_on"] = values["due_on"] or None
        reply = await ui.call(request, user, "PATCH", f"cases/{quote(case_id)}/goals/{quote(goal_id)}", json=body)
        if reply.status == 422:
            errors = field_errors(reply.body, ui.lang_of(request), GOAL_FIELDS)
            edit = {"goal_id": goal_id, "values": values, "errors": errors}
            return await show_case(request, user, case_id, 422, goal_edit=edit)
        return _to_case(ui, case_id, reply, "goals-h")

    @router.post("/cases/{case_id}/needs", response_class=HTMLResponse)
    async def record_needs(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        case = await ui.read(request, user, f"cases/{quote(case_id)}")
        values = {name: form.get(name, "").strip() for name in NEEDS_CHOICES + NEEDS_TEXTS}
        # Other languages are check boxes (one value each), kept as the form's "en, fr" text.
        values["other_languages"] = ", ".join(v.strip() for v in await ui.form_list(request, "other_languages"))
        values |= {name: "true" if form.get(name) else "" for name in NEEDS_CHECKS}
        member = households.chosen_member(case.body, form.get("person_id"))  # a member of this case, or its lead
        path = f"persons/{quote(member)}/needs-assessments"
        reply = await ui.call(request, user, "POST", path, json=_needs_body(values))
        if reply.status == 422:
            errors = field_errors(reply.body, ui.lang_of(request), NEEDS_FIELDS)
            return await show_case(
                request, user, case_id, 422, case=case, member=member, needs_form={"values": values, "errors": errors}
            )
        target = _to_case(ui, case_id, reply, "needs-h")
        if member != case.body["person_id"]:  # back to the same member's needs
            location = target.headers["location"]
            joiner = "&" if "?" in location.split("#")[0] else "?"
            base, _, anchor = location.partition("#")
            target.headers["location"] = f"{base}{joiner}member={quote(member)}#{anchor}"
        return target

    @router.post("/cases/{case_id}/enrolments", response_class=HTMLResponse)
    async def enrol(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        case = await ui.read(request, user, f"cases/{quote(case_id)}")
        values = {"course_id": form.get("course_id", ""), "obligation": "true" if form.get("obligation") else ""}
        if not values["course_id"]:
            refused = {"values": values, "error": FIELD_ERRORS[ui.lang_of(request)]["missing"]}
            return await show_case(request, user, case_id, 422, case=case, enrol_form=refused)
        body = {"person_id": case.body["person_id"], "integration_course_obligation": bool(values["obligation"])}
        reply = await ui.call(request, user, "POST", f"courses/{quote(values['course_id'])}/enrolments", json=body)
        if reply.ok:
            return RedirectResponse(
                f"/ui/cases/{quote(case_id)}?enrolment={quote(reply.body['enrolment_id'])}#courses-h", status_code=303
            )
        if reply.status in (401, 403, 503):
            return ui.trouble(request, user, reply)
        # A rule of the course (422), already enrolled (409) or no such course (404): said next to the form.
        words = ui.words(request)
        refused = {
            "values": values,
            "error": learning.problem_message(
                reply,
                ui.lang_of(request),
                {"person_id": words["person"], "integration_course_obligation": words["staff_obligation"]},
            ),
        }
        return await show_case(
            request, user, case_id, reply.status if reply.status == 409 else 422, case=case, enrol_form=refused
        )

    @router.post("/referrals/{referral_id}/{action}")
    async def referral_action(referral_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        if action not in ("send", "revoke"):
            return ui.refused(request, user, "not_found", 404)
        reply = await ui.call(request, user, "POST", f"referrals/{quote(referral_id)}/{action}")
        case_id = form.get("case_id", "")
        return ui.after(f"/ui/cases/{quote(case_id)}" if case_id else "/ui/", reply)


def _person_rights(user: Identity) -> dict[str, bool]:
    """What the person page offers the user: the role policy's answer (the service checks the person)."""

    def allowed(method: str, path: str) -> bool:
        return policy.decide(method, f"/api/v1/persons/_{path}", user.roles) is True

    return {
        "read_needs": allowed("GET", "/needs-assessments"),
        "record_consents": allowed("POST", "/consents"),
        "move_away": allowed("POST", "/move-away"),
        "erase": allowed("DELETE", ""),
        "export": allowed("GET", "/export"),
        "change": allowed("PATCH", ""),
    }


def _register_choices(lang: str) -> dict[str, Any]:
    """The register form's countries and languages by name in the page's language (the values stay codes)."""
    countries = sorted(
        ((c.alpha_2, names.country_name(c.alpha_2, lang)) for c in pycountry.countries), key=lambda c: c[1].casefold()
    )
    languages = [(code, names.language_name(code, lang)) for code in LANGUAGES]
    return {"countries": countries, "language_options": languages}


def _choices() -> dict[str, Any]:
    return {"genders": GENDERS, "residence_groups": RESIDENCE_GROUPS}


def _to_case(ui: Kit, case_id: str, reply: Reply, section: str) -> RedirectResponse:
    """Back to the case page, at the section the form belongs to, with "done" or the Problem's detail."""
    target = ui.after(f"/ui/cases/{quote(case_id)}", reply)
    target.headers["location"] += f"#{section}"
    return target


def _latest(needs: Reply) -> dict[str, Any] | None:
    """The newest needs assessment (the API lists them newest first)."""
    return needs.body[0] if needs.ok and isinstance(needs.body, list) and needs.body else None


def _needs_values(latest: dict[str, Any] | None) -> dict[str, str]:
    """The form's fields, filled from the latest assessment: a new one usually changes a little."""
    if latest is None:
        return {}
    values = {name: str(latest.get(name) or "") for name in (*NEEDS_CHOICES, "vocational_qualification", "notes")}
    values["other_languages"] = ", ".join(latest.get("other_languages") or [])
    values["children_ages"] = ", ".join(str(age) for age in latest.get("children_ages") or [])
    return values | {name: "true" if latest.get(name) else "" for name in NEEDS_CHECKS}


def _needs_body(values: dict[str, str]) -> dict[str, Any]:
    """The API's body; what does not parse is passed on as typed, so that the API's 422 names it."""
    body: dict[str, Any] = {name: values[name] for name in NEEDS_CHOICES if values[name]}
    body["other_languages"] = [part.strip() for part in values["other_languages"].split(",") if part.strip()]
    ages = [part.strip() for part in values["children_ages"].split(",") if part.strip()]
    body["children_ages"] = [int(age) if age.isdigit() else age for age in ages]
    body["vocational_qualification"] = values["vocational_qualification"] or None
    body["notes"] = values["notes"] or None
    return body | {name: bool(values[name]) for name in NEEDS_CHECKS}
