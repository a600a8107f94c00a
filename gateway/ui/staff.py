"""The caseworkers' and registrars' pages: dashboard, registering a newcomer, person and case."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway import policy
from gateway.ui.kit import Kit
from gateway.ui.words import FIELD_ERRORS

GENDERS = ("female", "male", "diverse", "unspecified")
RESIDENCE_GROUPS = ("recognised_refugee", "asylum_seeker", "tolerated", "eu_citizen", "skilled_worker_or_study_visa",
                    "family_reunification", "other")  # fmt: skip
PURPOSES = ("referral", "counselling", "course_enrolment", "job_placement", "qualification_recognition")
REGISTRATION_FIELDS = ("given_names", "family_name", "birth_date", "gender", "nationality", "languages",
                       "preferred_language", "residence_status_group", "arrival_date", "street", "house_number",
                       "postal_code", "district", "phone", "email")  # fmt: skip
ADDRESS_FIELDS = ("street", "house_number", "postal_code", "district")


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = await ui.current(request)
        if user is None:
            return ui.render(request, "home.html")
        if "partner" in user.roles and not user.roles & policy.STAFF:
            return RedirectResponse("/ui/partner", status_code=303)
        context: dict[str, Any] = {"cases": [], "waiting": [], "escalated": [], "proposed": []}
        if user.roles & {"caseworker", "admin"}:
            params: dict[str, Any] = {"status": "open", "page_size": 50}
            params |= {"team": user.team} if user.team else {"caseworker_id": user.subject}
            cases = await ui.call(request, user, "GET", "cases", params=params)
            if cases.status == 503:
                return ui.trouble(request, user, cases)
            context["cases"] = cases.items()
            mine = {c["case_id"] for c in context["cases"]}
            for key, query in (("waiting", {"status": "sent"}), ("escalated", {"escalated": "true"}),
                               ("proposed", {"status": "proposed"})):  # fmt: skip
                found = await ui.call(request, user, "GET", "referrals", params=query | {"page_size": 200})
                context[key] = [r for r in found.items() if r["case_id"] in mine or "admin" in user.roles]
        return ui.render(request, "dashboard.html", user=user, **context)

    @router.get("/register", response_class=HTMLResponse)
    async def register_page(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        if not policy.decide("POST", "/api/v1/registrations", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        return ui.render(request, "register.html", user=user, values={}, errors={}, **_choices())

    @router.post("/register", response_class=HTMLResponse)
    async def register(request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        values = {name: form.get(name, "").strip() for name in REGISTRATION_FIELDS}
        body: dict[str, Any] = {k: v for k, v in values.items() if k not in ADDRESS_FIELDS and k != "languages"}
        body["languages"] = [part.strip() for part in values["languages"].split(",") if part.strip()]
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
            return ui.render(request, "register.html", 409, user=user, values=values, errors={},
                             duplicate=reply.body, **_choices())  # fmt: skip
        if reply.status == 422:
            errors = _field_errors(reply.body, ui.lang_of(request))
            return ui.render(request, "register.html", 422, user=user, values=values, errors=errors,
                             districts=(reply.body or {}).get("districts"), **_choices())  # fmt: skip
        return ui.trouble(request, user, reply)

    @router.get("/persons/{person_id}", response_class=HTMLResponse)
    async def person_page(person_id: str, request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        person = await ui.call(request, user, "GET", f"persons/{quote(person_id)}")
        if not person.ok:
            return ui.trouble(request, user, person)
        consents = await ui.call(request, user, "GET", f"persons/{quote(person_id)}/consents")
        cases = await ui.call(request, user, "GET", "cases", params={"person_id": person_id})
        return ui.render(request, "person.html", user=user, person=person.body,
                         consents=consents.body if consents.ok else [], cases=cases.items(),
                         purposes=PURPOSES)  # fmt: skip

    @router.post("/persons/{person_id}/consents")
    async def give_consent(person_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body = {"partner_id": form.get("partner_id", "").strip(), "purpose": form.get("purpose", "")}
        reply = await ui.call(request, user, "POST", f"persons/{quote(person_id)}/consents", json=body)
        target = form.get("return_to", "")
        target = target if target.startswith("/ui/") and not target.startswith("//") else f"/ui/persons/{person_id}"
        return ui.after(target, reply)

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(case_id: str, request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        case = await ui.call(request, user, "GET", f"cases/{quote(case_id)}")
        if not case.ok:
            return ui.trouble(request, user, case)
        timeline = await ui.call(request, user, "GET", f"cases/{quote(case_id)}/timeline")
        person_path = f"persons/{quote(case.body['person_id'])}"
        person = await ui.call(request, user, "GET", person_path)
        consents = await ui.call(request, user, "GET", f"{person_path}/consents")
        return ui.render(request, "case.html", user=user, case=case.body, person=person.body if person.ok else None,
                         timeline=timeline.body if timeline.ok else [], consents=consents.body if consents.ok else [],
                         purposes=PURPOSES)  # fmt: skip

    @router.post("/referrals/{referral_id}/{action}")
    async def referral_action(referral_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if action not in ("send", "revoke"):
            return ui.refused(request, user, "not_found", 404)
        reply = await ui.call(request, user, "POST", f"referrals/{quote(referral_id)}/{action}")
        case_id = form.get("case_id", "")
        return ui.after(f"/ui/cases/{quote(case_id)}" if case_id else "/ui/", reply)


def _choices() -> dict[str, Any]:
    return {"genders": GENDERS, "residence_groups": RESIDENCE_GROUPS}


def _field_errors(problem: Any, lang: str) -> dict[str, str]:
    """Problem Details' ``errors`` as one message per form field, in the UI's language."""
    messages = FIELD_ERRORS[lang]
    errors: dict[str, str] = {}
    for error in (problem or {}).get("errors") or []:
        location = [part for part in error.get("location", []) if part not in ("body", "address")]
        field = next((part for part in location if part in REGISTRATION_FIELDS), None) or "form"
        kind = str(error.get("type", ""))
        errors.setdefault(field, messages.get(kind) or messages["value_error"])
    if not errors and isinstance(problem, dict):
        errors["form"] = str(problem.get("detail", ""))
    return errors
