"""The caseworker's day (issue 14): names on the dashboard, search, the queue of unassigned cases, closing and
reopening a case, notes, reassignment, consents withdrawn, and on the case page the words that explain codes
(why routing proposed a referral, which partner, which caseworker).

Names come from registration in one audited call per page (``POST persons/lookup``), never one per row; the
services check every object (the team's cases, the team's persons), the pages hold no rule of their own.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway.ui.kit import Kit, Reply, field_errors
from gateway.ui.words import WORDS, more_words

CLOSE_REASONS = ("goals_reached", "moved_away", "no_contact", "other")
ELSEWHERE_REASONS = ("better_fit", "no_capacity", "language", "distance", "other")
PERSON_FIELDS = ("given_names", "family_name", "phone", "email", "street", "house_number", "postal_code", "district",
                 "preferred_language", "languages")  # fmt: skip
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_GERMAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_CASE_NUMBER = re.compile(r"^(?=.*\d)[0-9a-f-]{4,36}$")

more_words({
    "de": {
        "cw_name": "Name", "cw_language": "Sprache", "cw_age_band": "Altersgruppe", "cw_years": "{band} Jahre",
        "cw_names_unavailable": "Die Namen sind gerade nicht abrufbar (Meldedaten nicht erreichbar).",
        "cw_search": "Person oder Fall suchen", "cw_search_label": "Name, Geburtsdatum oder Fallnummer",
        "cw_search_hint": "Zum Beispiel: Haddad, 14.03.1991 oder die ersten Zeichen der Fallnummer.",
        "cw_search_button": "Suchen", "cw_search_nav": "Suche", "cw_results": "Suchergebnis",
        "cw_no_results": "Nichts gefunden.",
        "cw_search_too_short": "Bitte mindestens zwei Zeichen eingeben.",
        "cw_queue": "Fälle ohne Team (Warteschlange)", "cw_queue_intro":
        "Als niemand im Team Platz hatte, blieben diese Fälle ohne Zuständigkeit. Wer einen übernimmt, holt ihn "
        "in das eigene Team.", "cw_take": "Übernehmen", "cw_case_number": "Fallnummer",
        "cw_close": "Fall schließen", "cw_close_reason": "Grund des Abschlusses",
        "cw_close_intro": "Offene Vermittlungen werden zurückgezogen; die Personendaten sind danach für das Team "
        "nicht mehr abrufbar, bis der Fall wieder geöffnet wird.", "cw_close_button": "Fall schließen",
        "cw_reopen": "Fall wieder öffnen", "cw_reopen_intro": "Die Person hat sich wieder gemeldet.",
        "cw_closed_on": "Geschlossen am", "cw_close_goals_reached": "Ziele erreicht",
        "cw_close_moved_away": "weggezogen", "cw_close_no_contact": "kein Kontakt mehr",
        "cw_close_other": "anderer Grund", "cw_close_erased": "Daten gelöscht",
        "cw_notes": "Notizen", "cw_no_notes": "Noch keine Notizen.", "cw_note_text": "Notiz",
        "cw_add_note": "Notiz speichern", "cw_by": "von", "cw_who": "Wer",
        "cw_assign": "Zuständigkeit übergeben", "cw_assign_to": "Neue Zuständigkeit",
        "cw_assign_button": "Übergeben", "cw_why": "Warum vorgeschlagen", "cw_rule": "Regel",
        "cw_facts": "Ausschlaggebend", "cw_withdraw": "Widerrufen", "cw_given": "erteilt am",
        "cw_partner_choice": "Partner", "cw_partner_category": "oder alle Partner der Art",
        "cw_consent_intro": "Die Person willigt ein, dass ihre Kontaktdaten für diesen Zweck an den Partner gehen.",
        "cw_routing": "automatisch", "cw_also": "auch:", "cw_system": "System", "cw_team_none": "ohne Team",
        "cw_person_unreachable": "Die Personendaten sind für geschlossene Fälle nicht abrufbar.",
        "cw_childcare": "Kinderbetreuung nötig", "cw_children": "Kinder",
        "cw_languages": "Sprachen", "cw_nationality": "Staatsangehörigkeit",
        "cw_elsewhere": "Weitervermitteln", "cw_elsewhere_to": "An", "cw_elsewhere_reason": "Warum",
        "cw_elsewhere_better_fit": "passt dort besser", "cw_elsewhere_no_capacity": "hier kein Platz",
        "cw_elsewhere_language": "Sprache", "cw_elsewhere_distance": "Entfernung",
        "cw_elsewhere_other": "anderer Grund",
        "cw_elsewhere_to_partner": "weitervermittelt an {partner}",
        "cw_edit_person": "Personendaten ändern", "cw_save_person": "Änderungen speichern",
        "cw_preferred_language": "Bevorzugte Sprache", "cw_stale":
        "Die Personendaten wurden inzwischen geändert; bitte die Seite neu laden und erneut eintragen.",
        "cw_tasks": "Aufgaben und Wiedervorlagen", "cw_tasks_short": "Aufgaben",
        "cw_no_tasks": "Keine offenen Aufgaben.",
        "cw_task_title": "Aufgabe", "cw_task_due": "Fällig am", "cw_add_task": "Aufgabe anlegen",
        "cw_task_done": "Erledigt", "cw_task_undo": "Wieder öffnen", "cw_tasks_open": "{n} offen",
        "cw_next_due": "nächste fällig {date}", "cw_overdue": "überfällig", "cw_done_on": "erledigt am",
        "cw_goals_due": "Ziele des Integrationsplans, fällig", "cw_goals_due_intro":
        "Noch nicht erreichte Ziele, die überfällig sind oder in den nächsten sieben Tagen fällig werden.",
        "cw_due_today": "heute fällig",
    },
    "en": {
        "cw_name": "Name", "cw_language": "Language", "cw_age_band": "Age group", "cw_years": "{band} years",
        "cw_names_unavailable": "The names cannot be read right now (the register is not reachable).",
        "cw_search": "Find a person or case", "cw_search_label": "Name, date of birth or case number",
        "cw_search_hint": "For example: Haddad, 14.03.1991 or the first characters of the case number.",
        "cw_search_button": "Search", "cw_search_nav": "Search", "cw_results": "Results",
        "cw_no_results": "Nothing found.",
        "cw_search_too_short": "Please type two characters at least.",
        "cw_queue": "Cases without a team (queue)", "cw_queue_intro":
        "Nobody in a team had room when these cases opened. Whoever takes one brings it into their own team.",
        "cw_take": "Take", "cw_case_number": "Case number",
        "cw_close": "Close the case", "cw_close_reason": "Reason for closing",
        "cw_close_intro": "Open referrals are revoked; the team can no longer read the person's data until the "
        "case is reopened.", "cw_close_button": "Close the case",
        "cw_reopen": "Reopen the case", "cw_reopen_intro": "The person is back in touch.",
        "cw_closed_on": "Closed on", "cw_close_goals_reached": "goals reached", "cw_close_moved_away": "moved away",
        "cw_close_no_contact": "no contact any more", "cw_close_other": "other reason",
        "cw_close_erased": "data erased",
        "cw_notes": "Notes", "cw_no_notes": "No notes yet.", "cw_note_text": "Note", "cw_add_note": "Save the note",
        "cw_by": "by", "cw_who": "Who",
        "cw_assign": "Hand the case on", "cw_assign_to": "New caseworker", "cw_assign_button": "Hand on",
        "cw_why": "Why proposed", "cw_rule": "Rule", "cw_facts": "Decisive", "cw_withdraw": "Withdraw",
        "cw_given": "given on", "cw_partner_choice": "Partner", "cw_partner_category": "or every partner of the kind",
        "cw_consent_intro": "The person agrees that their contact data goes to the partner for this purpose.",
        "cw_routing": "automatically", "cw_also": "also:", "cw_system": "System", "cw_team_none": "no team",
        "cw_person_unreachable": "The person's data cannot be read for closed cases.",
        "cw_childcare": "Needs childcare", "cw_children": "Children",
        "cw_languages": "Languages", "cw_nationality": "Nationality",
        "cw_elsewhere": "Refer elsewhere", "cw_elsewhere_to": "To", "cw_elsewhere_reason": "Why",
        "cw_elsewhere_better_fit": "a better fit there", "cw_elsewhere_no_capacity": "no room here",
        "cw_elsewhere_language": "language", "cw_elsewhere_distance": "distance", "cw_elsewhere_other": "other reason",
        "cw_elsewhere_to_partner": "referred on to {partner}",
        "cw_edit_person": "Change the personal data", "cw_save_person": "Save the changes",
        "cw_preferred_language": "Preferred language", "cw_stale":
        "The personal data changed in the meantime; please reload the page and enter it again.",
        "cw_tasks": "Tasks and follow-ups", "cw_tasks_short": "Tasks", "cw_no_tasks": "No open tasks.",
        "cw_task_title": "Task", "cw_task_due": "Due on", "cw_add_task": "Add the task",
        "cw_task_done": "Done", "cw_task_undo": "Reopen", "cw_tasks_open": "{n} open",
        "cw_next_due": "next due {date}", "cw_overdue": "overdue", "cw_done_on": "done on",
        "cw_goals_due": "Integration plan goals due", "cw_goals_due_intro":
        "Goals not reached yet that are overdue or due within the next seven days.",
        "cw_due_today": "due today",
    },
})  # fmt: skip


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


async def dashboard(ui: Kit, request: Request, user: Identity, cases: list[dict[str, Any]],
                    members: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """What the caseworker's dashboard adds to the team's cases: names (of ``members`` too, the household members
    the reminders name), the queue, the caseworkers' names."""
    (persons, unavailable), queue, workers, directory = await asyncio.gather(
        persons_of(ui, request, user, [c["person_id"] for c in cases] + (members or [])),
        ui.call(request, user, "GET", "cases", params={"unassigned": "true", "status": "open", "page_size": 50}),
        caseworker_names(ui, request, user),
        ui.call(request, None, "GET", "partners", params={"page_size": 100}),
    )
    return {"persons": persons, "names_unavailable": unavailable, "queue": queue.items(), "workers": workers,
            "partner_names": _partner_names(directory), "team_workers": team_of(user, workers, user.team),
            "today": date.today().isoformat()}  # fmt: skip


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
    rules: dict[tuple[int, str], str] = {}
    for version in [*(versions.body if versions.ok and isinstance(versions.body, list) else []),
                    *([in_force.body] if in_force.ok and isinstance(in_force.body, dict) else [])]:  # fmt: skip
        for rule in version.get("rules", []):
            rules.setdefault((int(version.get("version", 0)), rule["id"]), rule.get("description", ""))
    return {
        "partner_names": _partner_names(directory),
        "directory": sorted(directory.items(), key=lambda p: p["name"]),
        "workers": workers,
        "team_workers": team_of(user, workers, case.get("team") or user.team),
        "rules": rules,
        "close_reasons": CLOSE_REASONS,
        "today": date.today().isoformat(),
        "elsewhere_reasons": ELSEWHERE_REASONS,
        "offering": _offering(directory),
    }


def _offering(directory: Reply) -> dict[str, list[dict[str, str]]]:
    """Service type -> the partners of the directory offering it (the targets of "refer elsewhere")."""
    found: dict[str, list[dict[str, str]]] = {}
    for partner in sorted(directory.items(), key=lambda p: p["name"]):
        for service in partner.get("services", []):
            found.setdefault(service["service_type"], []).append({"partner_id": partner["partner_id"],
                                                                  "name": partner["name"]})  # fmt: skip
    return found


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/search", response_class=HTMLResponse)
    async def search(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
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
            cases = await ui.call(request, user, "GET", "cases", params={"person_id": ids, "page_size": 50}) if ids \
                else None  # fmt: skip
            case_of = {m: c for c in (cases.items() if cases else []) for m in c.get("member_ids") or [c["person_id"]]}
            results = [{"case": case_of.get(p["person_id"]), "person": p} for p in found.items()]
        return ui.render(request, "search.html", user=user, query=query, results=results,
                         too_short=bool(query) and terms is None)  # fmt: skip

    @router.post("/cases/{case_id}/closing")
    async def close(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/closing",
                              json={"reason": form.get("reason", "")})  # fmt: skip
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "case-h")

    @router.post("/cases/{case_id}/reopening")
    async def reopen(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, _ = posted
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/reopening")
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "case-h")

    @router.post("/cases/{case_id}/notes")
    async def add_note(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/notes",
                              json={"text": form.get("text", "")})  # fmt: skip
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "notes-h")

    @router.post("/cases/{case_id}/assignment")
    async def assign(case_id: str, request: Request) -> Response:
        """Hand the case to a colleague, or take one from the queue (into one's own name)."""
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        worker = form.get("caseworker_id", "").strip()
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/assignment",
                              json={"caseworker_id": worker})  # fmt: skip
        if form.get("from") == "queue" and not reply.ok:
            return ui.after("/ui/", reply)
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "case-h")

    @router.post("/referrals/{referral_id}/elsewhere")
    async def refer_elsewhere(referral_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body = {"partner_id": form.get("partner_id", ""), "reason": form.get("reason", "")}
        reply = await ui.call(request, user, "POST", f"referrals/{quote(referral_id)}/refer-elsewhere", json=body)
        return _to(ui, f"/ui/cases/{quote(form.get('case_id', ''))}", reply, "ref-h")

    @router.post("/cases/{case_id}/tasks")
    async def add_task(case_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body = {"title": form.get("title", ""), "due_on": form.get("due_on", "").strip() or None}
        reply = await ui.call(request, user, "POST", f"cases/{quote(case_id)}/tasks", json=body)
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "tasks-h")

    @router.post("/cases/{case_id}/tasks/{task_id}")
    async def mark_task(case_id: str, task_id: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        path = f"cases/{quote(case_id)}/tasks/{quote(task_id)}"
        reply = await ui.call(request, user, "PATCH", path, json={"done": form.get("done") == "true"})
        return _to(ui, f"/ui/cases/{quote(case_id)}", reply, "tasks-h")

    @router.post("/persons/{person_id}/edit")
    async def edit_person(person_id: str, request: Request) -> Response:
        """Change the person's names, contact data, address and languages (If-Match: the version read)."""
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
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
        reply = await ui.call(request, user, "PATCH", f"persons/{quote(person_id)}", json=body,
                              headers={"If-Match": f'"{version}"'})  # fmt: skip
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
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        path = f"persons/{quote(person_id)}/consents/{quote(consent_id)}/withdrawal"
        reply = await ui.call(request, user, "POST", path)
        target = form.get("return_to", "")
        target = target if target.startswith("/ui/") and not target.startswith("//") else f"/ui/persons/{person_id}"
        return _to(ui, target, reply, "consents-h")


def _to(ui: Kit, target: str, reply: Reply, section: str) -> RedirectResponse:
    """Back to ``target``'s section with "done" or the Problem's detail."""
    response = ui.after(target, reply)
    response.headers["location"] += f"#{section}"
    return response
