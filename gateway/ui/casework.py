"""The caseworker's day (issue 14): names on the dashboard, search, the queue of unassigned cases, closing and
reopening a case, notes, reassignment, consents withdrawn, and on the case page the words that explain codes
(why routing proposed a referral, which partner, which caseworker).

Names come from registration in one audited call per page (``POST persons/lookup``), never one per row; the
services check every object (the team's cases, the team's persons), the pages hold no rule of their own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts import calendar
from contracts.vocabulary import STAFF_CLOSE_REASONS, ElsewhereReason
from gateway.ui.kit import Kit, Reply, field_errors
from gateway.ui.names import language_name
from gateway.ui.words import CODES, RULES, WORDS

CLOSE_REASONS = tuple(r.value for r in STAFF_CLOSE_REASONS)
ELSEWHERE_REASONS = tuple(r.value for r in ElsewhereReason)
PERSON_FIELDS = (
    "given_names",
    "family_name",
    "phone",
    "email",
    "street",
    "house_number",
    "postal_code",
    "district",
    "preferred_language",
    "languages",
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_GERMAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_CASE_NUMBER = re.compile(r"^(?=.*\d)[0-9a-f-]{4,36}$")


def is_caseworker(user: Identity) -> bool:
    return bool(user.roles & {"caseworker", "admin"})


async def persons_of(ui: Kit, request: Request, user: Identity, person_ids: list[str]) -> tuple[dict[str, Any], bool]:
    """Name, languages and age band of each person, in one audited call; and whether the call failed."""
    wanted = list(dict.fromkeys(person_ids))[:200]
    if not wanted:
        return {}, False
    reply = await ui.call(request, user, "POST", "persons/lookup", json={"person_ids": wanted})
    if not reply.ok or not isinstance(reply.body, list):
        return {}, True
    return {p["person_id"]: p for p in reply.body}, False


async def caseworker_names(ui: Kit, request: Request, user: Identity) -> dict[str, dict[str, Any]]:
    reply = await ui.call(request, user, "GET", "caseworkers", params={"include_inactive": "true"})
    if not reply.ok or not isinstance(reply.body, list):
        return {}
    return {c["id"]: c for c in reply.body}


async def dashboard(
    ui: Kit, request: Request, user: Identity, cases: list[dict[str, Any]], members: list[str] | None = None
) -> dict[str, Any]:
    """What the caseworker's dashboard adds to the team's cases: names (of ``members`` too, the household members
    the reminders name), the queue, the caseworkers' names."""
    (persons, unavailable), queue, workers, directory = await asyncio.gather(
        persons_of(ui, request, user, [c["person_id"] for c in cases] + (members or [])),
        ui.call(request, user, "GET", "cases", params={"unassigned": "true", "status": "open", "page_size": 50}),
        caseworker_names(ui, request, user),
        ui.call(request, None, "GET", "partners", params={"page_size": 100}),
    )
    names = _partner_names(directory)
    lang = ui.lang_of(request)
    return {
        "persons": persons,
        "names_unavailable": unavailable,
        "queue": queue.items(),
        "workers": workers,
        "partner_names": names,
        "waits": lambda blocked: waiting(blocked, lang, names),
        "team_workers": team_of(user, workers, user.team),
        "today": calendar.today().isoformat(),
    }


def team_of(user: Identity, workers: dict[str, dict[str, Any]], team: str | None) -> list[dict[str, Any]]:
    """The active caseworkers a case may go to: the team's (an admin's choice: everyone), the caller first."""
    chosen = [w for w in workers.values() if w.get("active", True) and ("admin" in user.roles or w["team"] == team)]
    return sorted(chosen, key=lambda w: (w["id"] != user.subject, w["name"]))


def _search_terms(text: str) -> dict[str, str] | None:
    """What the one search field means: a birth date, a case number's start, or words of a name."""
    text = " ".join(text.split())
    if (m := _GERMAN_DATE.match(text)) is not None:
        return {"birth_date": f"{m[3]}-{int(m[2]):02d}-{int(m[1]):02d}"}
    if _DATE.match(text):
        return {"birth_date": text}
    if _CASE_NUMBER.match(text.lower()):
        return {"number": text.lower()}
    return {"name": text} if len(text) >= 2 else None


def _partner_names(directory: Reply) -> dict[str, str]:
    return {p["partner_id"]: p["name"] for p in directory.items()}


async def case_extras(ui: Kit, request: Request, user: Identity, case: dict[str, Any]) -> dict[str, Any]:
    """The case page's words for codes: partners and caseworkers by name, and why each referral was proposed."""
    directory, workers, versions, in_force = await asyncio.gather(
        ui.call(request, None, "GET", "partners", params={"page_size": 100}),
        caseworker_names(ui, request, user),
        ui.call(request, user, "GET", "routing-rules/versions"),
        ui.call(request, user, "GET", "routing-rules"),
    )
    # A rule of the shipped set (version 0) is explained in the catalogue's words, its English description never
    # shown; a version an admin saved by its parts in the catalogue's words, the admin's description as its note.
    lang = ui.lang_of(request)
    rules: dict[tuple[int, str], tuple[str, str | None]] = {}
    for version in [
        *(versions.body if versions.ok and isinstance(versions.body, list) else []),
        *([in_force.body] if in_force.ok and isinstance(in_force.body, dict) else []),
    ]:
        number = int(version.get("version", 0))
        for rule in version.get("rules", []):
            rules.setdefault((number, rule["id"]), rule_words(number, rule, lang))
    names = _partner_names(directory)
    return {
        "partner_names": names,
        "waits": lambda blocked: waiting(blocked, lang, names),
        "directory": sorted(directory.items(), key=lambda p: p["name"]),
        "workers": workers,
        "team_workers": team_of(user, workers, case.get("team") or user.team),
        "rules": rules,
        "close_reasons": CLOSE_REASONS,
        "today": calendar.today().isoformat(),
        "elsewhere_reasons": ELSEWHERE_REASONS,
        "offering": _offering(directory),
    }


def rule_words(version: int, rule: dict[str, Any], lang: str) -> tuple[str, str | None]:
    """Why a rule proposes, and the note it carries. A rule of the shipped set (version 0): the catalogue's sentence,
    never its English description, and no note. A rule of a version an admin saved: its parts in the catalogue's
    words (the conditions, then the service it proposes), and the admin's description as a note (the shipped rule's
    description, where the admin left it as it was, in the catalogue's words, not the service's English)."""
    rule_id = str(rule["id"])
    if version == 0:
        return RULES[lang].get(rule_id, rule_id), None
    words, codes = WORDS[lang], CODES[lang]
    when = "; ".join(f"{name}: {value}" for name, value in condition_words(rule.get("when") or {}, lang))
    service = str(rule.get("service_type") or "")
    text = words["admin_rule_reads"].replace("{when}", when).replace("{service}", codes.get(service, service))
    description = str(rule.get("description") or "")
    if description and description == RULES["en"].get(rule_id):
        description = RULES[lang][rule_id]
    return text, description or None


def condition_words(when: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """A rule's conditions that are set, each as (what it asks, the values it accepts) in the catalogue's words:
    need categories, age bands and languages by their names, never the service's codes."""
    words, codes = WORDS[lang], CODES[lang]

    def value_words(key: str, value: Any) -> str:
        if value is True or value is False:
            return words["yes" if value else "no"]
        if key == "need_any":
            return words.get(f"staff_need_{value}", str(value))
        if key == "age_band_in":
            return words["cw_years"].replace("{band}", str(value).replace("-", "\N{EN DASH}"))
        if key == "language_any":
            return language_name(str(value), lang)
        return codes.get(str(value), str(value).replace("_", " "))

    return [
        (
            words.get(f"admin_cond_{key}", key),
            ", ".join(value_words(key, v) for v in value) if isinstance(value, list) else value_words(key, value),
        )
        for key, value in when.items()
        if value is not None
    ]


def waiting(blocked: dict[str, Any], lang: str, partner_names: dict[str, str]) -> str:
    """Why a proposed referral waits (the service's code and the partners it concerns) as the catalogue's sentence,
    naming the partners by name."""
    words = WORDS[lang]
    partners = ", ".join(partner_names.get(p, p) for p in blocked.get("partner_ids") or [])
    return words.get(f"cw_blocked_{blocked.get('code')}", words["cw_blocked_other"]).replace("{partners}", partners)


def _offering(directory: Reply) -> dict[str, list[dict[str, str]]]:
    """Service type -> the partners of the directory offering it (the targets of "refer elsewhere")."""
    found: dict[str, list[dict[str, str]]] = {}
    for partner in sorted(directory.items(), key=lambda p: p["name"]):
        for service in partner.get("services", []):
            found.setdefault(service["service_type"], []).append(
                {"partner_id": partner["partner_id"], "name": partner["name"]}
            )
    return found


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/search", response_class=HTMLResponse)
    async def search(request: Request) -> Response:
        user = await ui.signed_in(request)
        if not is_caseworker(user):
            return ui.refused(request, user, "forbidden", 403)
        query = request.query_params.get("q", "").strip()[:100]
        terms = _search_terms(query) if query else None
        results: list[dict[str, Any]] = []
        if terms and "number" in terms:
            found = await ui.call(request, user, "GET", "cases", params=terms | {"page_size": 20})
            if found.status == 503:
                return ui.trouble(request, user, found)
            persons, _ = await persons_of(ui, request, user, [c["person_id"] for c in found.items()])
            results = [{"case": c, "person": persons.get(c["person_id"])} for c in found.items()]
        elif terms:
            found = await ui.call(request, user, "GET", "persons", params=terms | {"page_size": 20})
            if found.status == 503:
                return ui.trouble(request, user, found)
            # The case each person belongs to, in one call: a household member's is the household's case.
            ids = [p["person_id"] for p in found.items()]
            cases = (
                await ui.call(request, user, "GET", "cases", params={"person_id": ids, "page_size": 50})
                if ids
                else None
            )
            case_of = {m: c for c in (cases.items() if cases else []) for m in c.get("member_ids") or [c["person_id"]]}
            results = [{"case": case_of.get(p["person_id"]), "person": p} for p in found.items()]
        return ui.render(
            request, "search.html", user=user, query=query, results=results, too_short=bool(query) and terms is None
        )

    for action, (method, body, section) in CASE_FORMS.items():
        router.add_api_route(
            f"/cases/{{case_id}}/{action}", _case_form(ui, action, method, body, section), methods=["POST"]
        )

    @router.post("/cases/{case_id}/assignment")
    async def assign(case_id: str, request: Request) -> Response:
        """Hand the case to a colleague, or take one from the queue (into one's own name)."""
        form, reply = await _posted_call(ui, request, "POST", f"cases/{quote(case_id)}/assignment", _assignment)
        if form.get("from") == "queue" and not reply.ok:
            return ui.after("/ui/", reply)
        return _to(ui, _case_page(case_id), reply, "case-h")

    @router.post("/referrals/{referral_id}/elsewhere")
    async def refer_elsewhere(referral_id: str, request: Request) -> Response:
        path = f"referrals/{quote(referral_id)}/refer-elsewhere"
        form, reply = await _posted_call(ui, request, "POST", path, _elsewhere)
        return _to(ui, _case_page(form.get("case_id", "")), reply, "ref-h")

    @router.post("/persons/{person_id}/edit")
    async def edit_person(person_id: str, request: Request) -> Response:
        """Change the person's names, contact data, address and languages (If-Match: the version read)."""
        posted = await ui.posted(request)
        user, form = posted
        values = {name: form.get(name, "").strip() for name in PERSON_FIELDS}
        body: dict[str, Any] = {k: values[k] for k in ("given_names", "family_name", "preferred_language")}
        body |= {"phone": values["phone"] or None, "email": values["email"] or None}
        # The check boxes (one value each); a value with commas is split as well, as the register form does.
        body["languages"] = [
            c for v in await ui.form_list(request, "languages") for c in (p.strip() for p in v.split(",")) if c
        ]
        body["address"] = {k: values[k] for k in ("street", "house_number", "postal_code", "district")}
        version = form.get("version", "")
        reply = await ui.call(
            request, user, "PATCH", f"persons/{quote(person_id)}", json=body, headers={"If-Match": f'"{version}"'}
        )
        back = f"/ui/persons/{quote(person_id)}"
        words = WORDS[ui.lang_of(request)]
        if reply.status == 412:
            return ui.back(back, error=words["cw_stale"])
        if reply.status == 422:
            names = {name: name for name in PERSON_FIELDS}
            errors = field_errors(reply.body, ui.lang_of(request), names)
            texts = [f"{words.get(k, k)}: {v}" for k, v in errors.items()]
            return ui.back(back, error="; ".join(texts))
        return _to(ui, back, reply, "pd-h")

    @router.post("/persons/{person_id}/consents/{consent_id}/withdrawal")
    async def withdraw(person_id: str, consent_id: str, request: Request) -> Response:
        path = f"persons/{quote(person_id)}/consents/{quote(consent_id)}/withdrawal"
        form, reply = await _posted_call(ui, request, "POST", path)
        target = form.get("return_to", "")
        target = target if target.startswith("/ui/") and not target.startswith("//") else f"/ui/persons/{person_id}"
        return _to(ui, target, reply, "consents-h")


FormBody = Callable[[dict[str, str]], Any]

#: The case page's forms that go on to the same path of the referral service (below ``cases/{case_id}/``) and back to
#: a section of the page: the service's method, what the form sends (nothing: None), the section.
CASE_FORMS: dict[str, tuple[str, FormBody | None, str]] = {
    "closing": ("POST", lambda form: {"reason": form.get("reason", "")}, "case-h"),
    "reopening": ("POST", None, "case-h"),
    "notes": ("POST", lambda form: {"text": form.get("text", "")}, "notes-h"),
    "tasks": (
        "POST",
        lambda form: {"title": form.get("title", ""), "due_on": form.get("due_on", "").strip() or None},
        "tasks-h",
    ),
    "tasks/{task_id}": ("PATCH", lambda form: {"done": form.get("done") == "true"}, "tasks-h"),
}


def _assignment(form: dict[str, str]) -> dict[str, str]:
    return {"caseworker_id": form.get("caseworker_id", "").strip()}


def _elsewhere(form: dict[str, str]) -> dict[str, str]:
    return {"partner_id": form.get("partner_id", ""), "reason": form.get("reason", "")}


def _case_form(
    ui: Kit, action: str, method: str, body: FormBody | None, section: str
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """The page handler of one of ``CASE_FORMS``."""

    async def handle(request: Request) -> Response:
        ids = {name: quote(str(value)) for name, value in request.path_params.items()}
        case_id = ids["case_id"]
        _, reply = await _posted_call(ui, request, method, f"cases/{case_id}/{action.format(**ids)}", body)
        return _to(ui, f"/ui/cases/{case_id}", reply, section)

    return handle


async def _posted_call(
    ui: Kit, request: Request, method: str, path: str, body: FormBody | None = None
) -> tuple[dict[str, str], Reply]:
    """The one flow of the case page's forms: the signed-in user's form (CSRF checked), the service called as that
    user with what ``body`` makes of the form; the form and the reply, for the page to say "done" or why not."""
    user, form = await ui.posted(request)
    reply = await ui.call(request, user, method, path, json=body(form) if body else None)
    return form, reply


def _case_page(case_id: str) -> str:
    return f"/ui/cases/{quote(case_id)}"


def _to(ui: Kit, target: str, reply: Reply, section: str) -> RedirectResponse:
    """Back to ``target``'s section with "done" or the Problem's detail."""
    response = ui.after(target, reply)
    response.headers["location"] += f"#{section}"
    return response
