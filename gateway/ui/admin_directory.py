"""The admins' pages for setting a city up: the partner organisations and the caseworker roster.

Partners live in the partners service: an admin adds one (``POST /partners``, with the services it
offers), edits its entry (``PATCH``) and offers, changes or withdraws its services (``PUT`` / ``DELETE``
``.../services/{type}``); the service announces each change, and referral follows. The roster lives in the
referral service (``PUT /caseworkers/{user name}``): a navigator takes cases once on it and active.
Categories, service types and languages are chosen from lists with their labels, never typed as codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts.vocabulary import PartnerCategory, ServiceType
from gateway.auth import SLUG, USERNAME, LocalIssuer
from gateway.ui.kit import Kit, Reply, Sent, problem_sentence, whole_number
from gateway.ui.words import CODES, FIELD_ERRORS

log = logging.getLogger(__name__)

CATEGORIES = tuple(c.value for c in PartnerCategory)
SERVICE_TYPES = tuple(s.value for s in ServiceType)
#: The languages offered as check boxes: the information packs' eight first, then others often spoken by
#: newcomers. A code an entry already has and this list lacks is shown too, so saving keeps it.
LANGUAGES = (
    "de",
    "en",
    "ar",
    "uk",
    "tr",
    "fa",
    "ru",
    "ro",
    "fr",
    "es",
    "it",
    "pt",
    "pl",
    "bg",
    "hr",
    "sr",
    "sq",
    "el",
    "hu",
    "ku",
    "ps",
    "ti",
    "so",
)
LOCATION_FIELDS = ("name", "address_1", "postal_code", "city", "district", "opening_hours")
CONTACT_FIELDS = ("title", "department", "email", "phone")
ENTRY_FIELDS = ("name", "alternate_name", "category", "description", "website")
SERVICE_FIELDS = ("name", "description", "eligibility", "response_days", "free_places")
#: What an action reports back to its page (``?notice=``): only these codes are shown.
NOTICES = frozenset({"created", "saved", "service_withdrawn", "caseworker_saved"})
DONE = {notice: f"dir_done_{notice}" for notice in NOTICES}


def text_or_none(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def rows_of(form: dict[str, str], prefix: str, fields: tuple[str, ...], first: str) -> list[dict[str, Any]]:
    """Repeated fieldsets (``loc-0-name``, ``loc-1-name``...): each one whose ``first`` field or any other is
    filled; all of them empty removes the row."""
    rows = []
    index = 0
    while f"{prefix}-{index}-{first}" in form:
        values = {name: text_or_none(form, f"{prefix}-{index}-{name}") for name in fields}
        if any(values.values()):
            if prefix == "loc":
                values["country"] = text_or_none(form, f"loc-{index}-country") or "DE"
            rows.append(values)
        index += 1
    return rows


def entry_errors(reply: Reply, lang: str, words: dict[str, str]) -> dict[str, str]:
    """The partners service's refusal as one message per form field: ``name``, ``loc-0-city``, ``s-job_placement-
    free_places``... (each in the page's language); an error on no form field goes to ``form``."""
    body = reply.body if isinstance(reply.body, dict) else {}
    messages = FIELD_ERRORS[lang]
    errors: dict[str, str] = {}
    for error in body.get("errors") or []:
        parts = [str(p) for p in error.get("location") or [] if p != "body"]
        kind = str(error.get("type", ""))
        message = messages.get(kind) or messages["value_error"]
        if parts[:1] in (["locations"], ["contacts"]) and len(parts) >= 3:
            field = f"{'loc' if parts[0] == 'locations' else 'con'}-{parts[1]}-{parts[2]}"
        elif parts[:1] == ["services"] and len(parts) >= 2:
            field = "services"
        elif parts:
            field = parts[0]
        else:
            field = "form"
        if field == "languages":
            message = words["dir_err_languages"] if kind in ("too_short", "missing") else message
        if field == "partner_id" and kind == "string_pattern_mismatch":
            message = words["dir_err_partner_id"]
        if field in ("response_days", "free_places", "max_cases") and kind == "int_parsing":
            message = words["dir_err_whole"]
        if kind == "int_type":  # a number left empty
            message = messages["missing"]
        errors.setdefault(field, message)
    if not errors:
        errors["form"] = problem_sentence(reply.body, lang) if reply.status in (409, 422) else words["unavailable"]
    return errors


def language_choices(words: dict[str, str], chosen: list[str]) -> list[tuple[str, str]]:
    """(code, label) for the check boxes: the offered languages and any other the entry has."""
    codes = list(LANGUAGES) + sorted(set(chosen) - set(LANGUAGES))
    return [(code, words.get(f"lang_{code}", code)) for code in codes]


async def entry_body(ui: Kit, request: Request, form: dict[str, str]) -> dict[str, Any]:
    """A directory entry's fields as the partners service takes them (the admin's form adds the category)."""
    return {
        "name": form.get("name", "").strip(),
        **{name: text_or_none(form, name) for name in ("alternate_name", "description", "website")},
        "languages": await ui.form_list(request, "languages"),
        "locations": rows_of(form, "loc", LOCATION_FIELDS, "name"),
        "contacts": rows_of(form, "con", CONTACT_FIELDS, "title"),
    }


def entry_as_sent(body: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The form as sent, its empty rows as they were: after a refusal the user sees exactly what they typed."""
    return {
        **body,
        "locations": form_rows(form, "loc", LOCATION_FIELDS),
        "contacts": form_rows(form, "con", CONTACT_FIELDS),
    }


async def service_values(ui: Kit, request: Request, form: dict[str, str], kind: str) -> dict[str, Any]:
    return await ui.form_values(request, form, SERVICE_FIELDS, ["languages"]) | {"service_type": kind}


def service_body(values: dict[str, Any]) -> dict[str, Any]:
    """A service offer as the partners service takes it; five days to answer unless the form says otherwise."""
    days = whole_number(values["response_days"])
    return {
        "name": values["name"],
        "description": values["description"] or None,
        "eligibility": values["eligibility"] or None,
        "languages": values["languages"],
        "response_days": days if days is not None else 5,
        "free_places": whole_number(values["free_places"]),
    }


@dataclass(frozen=True)
class Keeper:
    """Who keeps a directory entry on ``admin_partner.html``: an admin (any partner's, under
    ``/ui/admin/partners/{id}``) or the partner's own staff (their own, at ``home``)."""

    #: The keeper in log lines ("admin", "partner user") and what their edit of an entry is called there.
    who: str
    edited: str
    #: The entry page's address when it is always the same one (the portal's); else the admin's per partner.
    home: str | None = None
    #: Whether the form chooses the category (consents are given per category: only an admin changes it).
    sets_category: bool = False
    #: What the page shows for the keeper (the portal's heading, the form's address) and the notices only it has.
    context: Mapping[str, Any] = field(default_factory=dict)
    notices: Mapping[str, str] = field(default_factory=dict)

    def page_of(self, partner_id: str) -> str:
        return self.home or f"/ui/admin/partners/{quote(partner_id)}"


ADMIN = Keeper(who="admin", edited="the partner", sets_category=True)


def render(
    ui: Kit,
    request: Request,
    template: str,
    user: Identity,
    status: int = 200,
    notices: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A directory page: the languages and categories to choose from, and its own notice (from ``NOTICES`` and the
    page's own ``notices``) instead of base.html's notice and error."""
    words = ui.words(request)

    def languages(chosen: list[str]) -> list[tuple[str, str]]:
        return language_choices(words, chosen)

    def language_names(codes: list[str]) -> str:
        return ", ".join(words.get(f"lang_{code}", code) for code in codes)

    return ui.page(
        request,
        template,
        user,
        status,
        done=DONE | dict(notices or {}),
        error=None,
        languages=languages,
        language_names=language_names,
        categories=CATEGORIES,
        service_types=SERVICE_TYPES,
        **context,
    )


async def entry_page(
    ui: Kit, keeper: Keeper, request: Request, user: Identity, partner_id: str, **again: Any
) -> Response:
    """One partner's entry; ``again``: a refused form shown again (422), ``values`` and ``errors`` of the entry's
    form, ``service`` of a service's (its ``form``, ``values`` and ``errors``) or ``capacity_error`` of the free
    places'."""
    entry = (await ui.read(request, user, f"partners/{quote(partner_id)}")).body
    offered = {s["service_type"] for s in entry["services"]}
    return render(
        ui,
        request,
        "admin_partner.html",
        user,
        422 if again else 200,
        keeper.notices,
        **keeper.context,
        partner=entry,
        not_offered=[s for s in SERVICE_TYPES if s not in offered],
        saved_service=request.query_params.get("saved_service"),
        **({"values": entry, "errors": {}, "service": {}} | again),
    )


async def edit_entry(
    ui: Kit, keeper: Keeper, request: Request, user: Identity, partner_id: str, form: dict[str, str]
) -> Response:
    """Save the entry's form (an admin's adds the category); a refusal shows the form again as it was sent."""
    body = await entry_body(ui, request, form)
    if keeper.sets_category:
        body["category"] = form.get("category", "")
    reply = await ui.call(request, user, "PATCH", f"partners/{quote(partner_id)}", json=body)
    if reply.ok:
        log.info("%s %s edited %s %s", keeper.who, user.subject, keeper.edited, partner_id)
        return RedirectResponse(f"{keeper.page_of(partner_id)}?notice=saved#main", 303)
    if reply.status == 422:
        errors = entry_errors(reply, ui.lang_of(request), ui.words(request))
        values = entry_as_sent(body, form)
        return await entry_page(ui, keeper, request, user, partner_id, values=values, errors=errors)
    return ui.trouble(request, user, reply)


async def save_service(
    ui: Kit,
    keeper: Keeper,
    request: Request,
    user: Identity,
    partner_id: str,
    service_type: str | None,
    form: dict[str, str],
) -> Response:
    """Offer a service (``service_type`` None: the form names it) or change one; a refusal shows its form again."""
    kind = service_type or form.get("service_type", "")
    words = ui.words(request)
    form_id = "new" if service_type is None else kind
    values = await service_values(ui, request, form, kind)
    if kind not in SERVICE_TYPES:
        service = {"form": form_id, "values": values, "errors": {"service_type": words["dir_err_category"]}}
        return await entry_page(ui, keeper, request, user, partner_id, service=service)
    reply = await ui.call(
        request, user, "PUT", f"partners/{quote(partner_id)}/services/{kind}", json=service_body(values)
    )
    if reply.ok:
        log.info("%s %s saved the service %s of %s", keeper.who, user.subject, kind, partner_id)
        # The notice in the service's own box, where the page opens (the box may be far down).
        return RedirectResponse(f"{keeper.page_of(partner_id)}?saved_service={kind}#service-{kind}", 303)
    if reply.status == 422:
        service = {"form": form_id, "values": values, "errors": entry_errors(reply, ui.lang_of(request), words)}
        return await entry_page(ui, keeper, request, user, partner_id, service=service)
    return ui.trouble(request, user, reply)


async def withdraw_service(
    ui: Kit, keeper: Keeper, request: Request, user: Identity, partner_id: str, service_type: str
) -> Response:
    reply = await ui.call(request, user, "DELETE", f"partners/{quote(partner_id)}/services/{service_type}")
    if reply.ok or reply.status == 404:  # withdrawn already (a second click) is what was asked
        log.info("%s %s withdrew the service %s of %s", keeper.who, user.subject, service_type, partner_id)
        return RedirectResponse(f"{keeper.page_of(partner_id)}?notice=service_withdrawn#main", 303)
    return ui.trouble(request, user, reply)


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def admin_only(request: Request) -> Identity:
        return await ui.signed_in_as(request, "admin")

    async def admin_form(request: Request) -> tuple[Identity, dict[str, str]]:
        return await ui.posted(request, "admin")

    async def partner_form(
        request: Request, partner_id: str, service_type: str | None = None
    ) -> tuple[Identity, dict[str, str]]:
        """An admin's form about a partner (and one of its services, when ``service_type`` is given); Refused (404)
        for a partner id or service type there cannot be."""
        user, form = await admin_form(request)
        if not SLUG.fullmatch(partner_id) or (service_type is not None and service_type not in SERVICE_TYPES):
            ui.refuse(request, user, "not_found", 404)
        return user, form

    # --- partner organisations ----------------------------------------------------------------

    async def partners_page(request: Request, user: Identity, sent: Sent | None = None) -> Response:
        listing = await ui.call(request, user, "GET", "partners", params={"page_size": 200})
        return render(
            ui,
            request,
            "admin_partners.html",
            user,
            sent.status if sent else 200,
            partners=listing.items(),
            unavailable=not listing.ok,
            values=sent.values if sent else {"languages": ["de"], "services": []},
            errors=sent.errors if sent else {},
        )

    ui.form_page(router, "/admin/partners", admin_only, partners_page)

    @router.post("/admin/partners", response_class=HTMLResponse)
    async def add_partner(request: Request) -> Response:
        user, form = await admin_form(request)
        words, lang = ui.words(request), ui.lang_of(request)
        values = await ui.form_values(request, form, ("partner_id", *ENTRY_FIELDS), ["languages", "services"])
        languages = values["languages"]
        services = values["services"] = [s for s in values["services"] if s in SERVICE_TYPES]
        errors: dict[str, str] = {}
        if not values["category"]:
            errors["category"] = words["dir_err_category"]
        if not SLUG.fullmatch(values["partner_id"]):
            errors["partner_id"] = words["dir_err_partner_id"]
        if errors:  # said before asking the service, in the form's own words
            return await partners_page(request, user, Sent(values, errors))
        body: dict[str, Any] = {
            "partner_id": values["partner_id"],
            "name": values["name"],
            "alternate_name": text_or_none(form, "alternate_name"),
            "category": values["category"],
            "description": text_or_none(form, "description"),
            "website": text_or_none(form, "website"),
            "languages": languages,
            # A service starts with the organisation's languages and no limit; its page refines it.
            "services": [
                {"service_type": s, "name": CODES["de"].get(s, s), "languages": languages or ["de"]} for s in services
            ],
        }
        reply = await ui.call(request, user, "POST", "partners", json=body)
        if reply.status == 201:
            log.info("admin %s added the partner %s", user.subject, values["partner_id"])
            return RedirectResponse(f"/ui/admin/partners/{quote(values['partner_id'])}?notice=created#main", 303)
        if reply.status == 409:
            return await partners_page(request, user, Sent(values, {"partner_id": words["dir_err_taken"]}, 409))
        if reply.status == 422:
            return await partners_page(request, user, Sent(values, entry_errors(reply, lang, words)))
        return ui.trouble(request, user, reply)

    @router.get("/admin/partners/{partner_id}", response_class=HTMLResponse)
    async def partner(partner_id: str, request: Request) -> Response:
        user = await admin_only(request)
        if not SLUG.fullmatch(partner_id):
            return ui.refused(request, user, "not_found", 404)
        return await entry_page(ui, ADMIN, request, user, partner_id)

    @router.post("/admin/partners/{partner_id}", response_class=HTMLResponse)
    async def edit_partner(partner_id: str, request: Request) -> Response:
        user, form = await partner_form(request, partner_id)
        return await edit_entry(ui, ADMIN, request, user, partner_id, form)

    @router.post("/admin/partners/{partner_id}/services", response_class=HTMLResponse)
    async def offer_service(partner_id: str, request: Request) -> Response:
        return await keep_service(partner_id, None, request)

    @router.post("/admin/partners/{partner_id}/services/{service_type}", response_class=HTMLResponse)
    async def change_service(partner_id: str, service_type: str, request: Request) -> Response:
        return await keep_service(partner_id, service_type, request)

    async def keep_service(partner_id: str, service_type: str | None, request: Request) -> Response:
        user, form = await partner_form(request, partner_id, service_type)
        return await save_service(ui, ADMIN, request, user, partner_id, service_type, form)

    @router.post("/admin/partners/{partner_id}/services/{service_type}/withdraw", response_class=HTMLResponse)
    async def withdraw(partner_id: str, service_type: str, request: Request) -> Response:
        user, _ = await partner_form(request, partner_id, service_type)
        return await withdraw_service(ui, ADMIN, request, user, partner_id, service_type)

    # --- the caseworker roster ----------------------------------------------------------------

    async def roster_page(request: Request, user: Identity, sent: Sent | None = None) -> Response:
        reply = await ui.call(request, user, "GET", "caseworkers", params={"include_inactive": "true"})
        roster = reply.body if reply.ok and isinstance(reply.body, list) else None
        editing = request.query_params.get("edit", "")
        current = next((c for c in roster or [] if c["id"] == editing), None)
        values = sent.values if sent else None
        if values is None:
            prefill = request.query_params  # from the accounts page: a new caseworker account, put on the roster
            values = (
                {"username": current["id"], **current}
                if current is not None
                else {
                    "username": prefill.get("username", ""),
                    "team": prefill.get("team", ""),
                    "languages": ["de"],
                    "max_cases": 40,
                    "active": True,
                }
            )
        issuer = request.app.state.issuer
        accounts = issuer.accounts() if isinstance(issuer, LocalIssuer) else []
        on_roster = {c["id"] for c in roster or []}
        return render(
            ui,
            request,
            "admin_roster.html",
            user,
            sent.status if sent else 200,
            roster=roster,
            values=values,
            errors=sent.errors if sent else {},
            editing=current is not None or bool(values.get("editing")),
            candidates=[
                a["username"] for a in accounts if "caseworker" in a["roles"] and a["username"] not in on_roster
            ],
            teams=sorted({c["team"] for c in roster or []} | {a["team"] for a in accounts if a["team"]}),
        )

    ui.form_page(router, "/admin/roster", admin_only, roster_page)

    @router.post("/admin/roster", response_class=HTMLResponse)
    async def keep_caseworker(request: Request) -> Response:
        user, form = await admin_form(request)
        words, lang = ui.words(request), ui.lang_of(request)
        values = await ui.form_values(request, form, ("username", "name", "team", "max_cases"), ["languages"])
        values |= {
            "active": form.get("active") == "yes",
            "editing": form.get("editing") == "yes",
        }
        errors: dict[str, str] = {}
        if not USERNAME.fullmatch(values["username"]):
            errors["username"] = words["roster_err_username"]
        if values["team"] and not SLUG.fullmatch(values["team"]):
            errors["team"] = words["roster_err_team"]
        if errors:
            return await roster_page(request, user, Sent(values, errors))
        body = {
            "name": values["name"],
            "team": values["team"],
            "languages": values["languages"],
            "max_cases": whole_number(values["max_cases"]),
            "active": values["active"],
        }
        reply = await ui.call(request, user, "PUT", f"caseworkers/{quote(values['username'])}", json=body)
        if reply.ok:
            log.info("admin %s kept the roster entry of %s", user.subject, values["username"])
            return RedirectResponse("/ui/admin/roster?notice=caseworker_saved#main", 303)
        if reply.status == 422:
            errors = entry_errors(reply, lang, words)
            if "team" in errors and errors["team"] != FIELD_ERRORS[lang]["string_too_short"]:
                errors["team"] = words["roster_err_team"]
            if values["team"] == "":
                errors["team"] = FIELD_ERRORS[lang]["missing"]
            return await roster_page(request, user, Sent(values, errors))
        return ui.trouble(request, user, reply)


def form_rows(form: dict[str, str], prefix: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every repeated fieldset as it was sent, empty ones too (to show a refused form again)."""
    rows = []
    index = 0
    while f"{prefix}-{index}-{fields[0]}" in form:
        rows.append({name: form.get(f"{prefix}-{index}-{name}", "") for name in (*fields, "country")})
        index += 1
    return [row for row in rows if any(row[name] for name in fields)]
