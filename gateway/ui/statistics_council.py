"""The integration council's pages, school and Kita planning and the district conference summary, for analysts
and admins (the monitoring service's roles; its routes check them again).

* **Integrationsrat** (``/ui/statistics/council``): the proposals with their state, made by hand or taken over
  from the council report's rules, each with its page to accept, reject, assign, complete or reopen it and its
  history.
* **Planung** (``/ui/statistics/planning``): Kita and school demand per school year for five years, as charts
  (the forecast's band as a whisker, the planned places as a tick) and tables per district; the places are
  entered here, the figures download as CSV.
* **Integrationskonferenz** (``/ui/statistics/conference``): the city's German summary for the district's
  conference, and the same as a printable document.

Registered from :mod:`gateway.ui.statistics`, so that the statistics pages stay one module's concern.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from gateway.ui import charts
from gateway.ui.kit import Kit, problem_text
from gateway.ui.words import more_words

#: Mirrors the monitoring's council rules: which steps a proposal in each status offers.
STEPS = {
    "proposed": ("accept", "reject"),
    "accepted": ("assign", "complete", "reject"),
    "in_progress": ("assign", "complete"),
    "rejected": ("reopen",),
    "done": ("reopen",),
}
BERLIN = ZoneInfo("Europe/Berlin")
STATUSES = ("proposed", "accepted", "in_progress", "done", "rejected")
KINDS = ("kita", "school")
PROPOSAL_ID = re.compile(r"^[0-9a-f-]{36}$")
YEAR = re.compile(r"^(199[0-9]|20[0-9]{2})$")
PERIOD = re.compile(r"^(199[0-9]|20[0-9]{2})(-(0[1-9]|1[0-2])|-Q[1-4])?$")

more_words({
    "de": {
        "cr_title": "Integrationsrat", "cr_intro": "Vorschläge an den Integrationsrat und ihre Umsetzung: annehmen "
        "oder ablehnen, einer Stelle zuweisen und bis zur Erledigung verfolgen. Jeder Schritt bleibt in der "
        "Geschichte des Vorschlags.", "cr_new": "Neuer Vorschlag", "cr_proposal": "Vorschlag",
        "cr_text": "Begründung und Inhalt", "cr_due": "Frist", "cr_assignee": "Zuständig",
        "cr_assignee_hint": "Amt, Person oder Rolle, z. B. „Amt für Soziales“ oder „Integrationsbeauftragte“.",
        "cr_note": "Bemerkung", "cr_reason": "Begründung (Pflicht)", "cr_create": "Vorschlag anlegen",
        "cr_all": "alle", "cr_show": "Zeigen", "cr_none": "Keine Vorschläge in dieser Auswahl.",
        "cr_from_report": "Vorschläge aus dem Bericht", "cr_from_report_intro": "Diese Vorschläge ergeben sich aus "
        "den Regeln des Berichts für den Zeitraum; übernehmen legt sie dem Integrationsrat vor.",
        "cr_take_over": "Dem Integrationsrat vorlegen", "cr_history": "Verlauf", "cr_by": "durch",
        "cr_created_by": "Angelegt von", "cr_updated": "Zuletzt geändert", "cr_rule": "Regel",
        "cr_status_proposed": "vorgeschlagen", "cr_status_accepted": "angenommen",
        "cr_status_rejected": "abgelehnt", "cr_status_in_progress": "in Umsetzung", "cr_status_done": "erledigt",
        "cr_do_accept": "Annehmen", "cr_do_reject": "Ablehnen", "cr_do_assign": "Zuweisen",
        "cr_do_complete": "Als erledigt markieren", "cr_do_reopen": "Wieder öffnen", "cr_did_create": "angelegt",
        "cr_did_accept": "angenommen", "cr_did_reject": "abgelehnt", "cr_did_assign": "zugewiesen",
        "cr_did_complete": "erledigt", "cr_did_reopen": "wieder geöffnet", "cr_back": "Alle Vorschläge",
        "cr_rule_R1-waiting-list": "Warteliste länger als die freien Plätze: einen weiteren Kurs einplanen",
        "cr_rule_R2-dissimilarity": "Segregation steigt: den Ortsteil bei der Wohnungsvergabe berücksichtigen",
        "cr_rule_R3-women": "Frauen in Kursen unterrepräsentiert: Frauenkurse mit Kinderbetreuung anbieten",
        "cr_rule_R4-counselling": "Zu lange bis zur ersten Beratung: Beratung ausbauen oder früher vermitteln",
        "pl_title": "Kita- und Schulplanung", "pl_intro": "Erwarteter Bedarf an Kita-Plätzen (0 bis 5 Jahre) und "
        "Schulplätzen (6 bis 17 Jahre) in neu zugewanderten Familien, je Schuljahr ab 1. September, gegen die "
        "geplanten Plätze.", "pl_method": "So wird gerechnet: Die angemeldeten Kinder werden Monat für Monat älter "
        "gerechnet; dazu kommen die Zuzüge, die der Trend der letzten zwölf Monate erwarten lässt (Spanne: der "
        "Trend plus und minus seine übliche Abweichung). Ortsteile mit weniger als fünf Kindern sind unter "
        "„übrige Ortsteile“ zusammengefasst.", "pl_kita": "Kita", "pl_school": "Schule",
        "pl_chart_kita": "Bedarf an Kita-Plätzen, ganze Stadt", "pl_chart_school": "Bedarf an Schulplätzen, "
        "ganze Stadt", "pl_expected": "erwartet", "pl_band": "Spanne", "pl_places": "geplante Plätze",
        "pl_gap": "frei (+) oder fehlend (\u2212)", "pl_school_year": "Schuljahr", "pl_csv": "Alle Zahlen als CSV",
        "pl_enter": "Geplante Plätze eintragen", "pl_enter_hint": "Ein Eintrag je Schuljahr, Ortsteil und Art; "
        "ein neuer Wert ersetzt den alten.", "pl_kind": "Art", "pl_entered": "Eingetragene Plätze",
        "pl_remove": "Entfernen", "pl_withheld": "Zu wenige Kinder für eine Veröffentlichung (weniger als fünf).",
        "pl_trend": "Trend der Zuzüge von Kindern", "pl_per_month": "je Monat zuletzt",
        "pl_other": "übrige Ortsteile", "pl_city": "ganze Stadt", "pl_places_short": "Plätze",
        "conf_title": "Integrationskonferenz Landkreis", "conf_intro": "Der Beitrag der Stadt Landsberg am Lech "
        "zur Integrationskonferenz des Landkreises: nur veröffentlichte, anonymisierte Zahlen eines Jahres, der "
        "Stand der Vorschläge an den Integrationsrat und der Bedarf des nächsten Schuljahres.",
        "conf_year": "Jahr", "conf_document": "Als Dokument öffnen (zum Drucken oder Weitergeben)",
        "conf_proposals": "Vorschläge an den Integrationsrat und ihre Umsetzung",
        "stat_more": "Weitere Auswertungen", "stat_council_followup": "Integrationsrat: Vorschläge und Umsetzung",
    },
    "en": {
        "cr_title": "Integration council", "cr_intro": "Proposals to the integration council and their follow-up: "
        "accept or reject, assign to an office and track to done. Every step stays in the proposal's history.",
        "cr_new": "New proposal", "cr_proposal": "Proposal", "cr_text": "Reasons and content", "cr_due": "Due",
        "cr_assignee": "Assigned to", "cr_assignee_hint": "An office, a person or a role, e.g. \"Social services "
        "office\" or \"Integration officer\".", "cr_note": "Note", "cr_reason": "Reason (required)",
        "cr_create": "Create proposal", "cr_all": "all", "cr_show": "Show",
        "cr_none": "No proposals in this selection.", "cr_from_report": "Proposals from the report",
        "cr_from_report_intro": "These proposals follow from the report's rules for the period; taking one over "
        "puts it before the integration council.", "cr_take_over": "Put before the integration council",
        "cr_history": "History", "cr_by": "by", "cr_created_by": "Created by", "cr_updated": "Last changed",
        "cr_rule": "Rule", "cr_status_proposed": "proposed", "cr_status_accepted": "accepted",
        "cr_status_rejected": "rejected", "cr_status_in_progress": "in progress", "cr_status_done": "done",
        "cr_do_accept": "Accept", "cr_do_reject": "Reject", "cr_do_assign": "Assign",
        "cr_do_complete": "Mark as done", "cr_do_reopen": "Reopen", "cr_did_create": "created",
        "cr_did_accept": "accepted", "cr_did_reject": "rejected", "cr_did_assign": "assigned",
        "cr_did_complete": "done", "cr_did_reopen": "reopened", "cr_back": "All proposals",
        "cr_rule_R1-waiting-list": "Waiting list longer than the free seats: schedule another course",
        "cr_rule_R2-dissimilarity": "Segregation rising: consider the district in housing allocation",
        "cr_rule_R3-women": "Women under-represented in courses: offer women-only courses with childcare",
        "cr_rule_R4-counselling": "Too long to the first counselling: add counselling or route earlier",
        "pl_title": "Kita and school planning", "pl_intro": "Expected demand for Kita places (ages 0 to 5) and "
        "school places (ages 6 to 17) in newcomer families, per school year from 1 September, against the "
        "planned places.", "pl_method": "How it is computed: the registered children grow older month by month; "
        "the arrivals the last twelve months' trend expects are added (band: the trend plus and minus its usual "
        "deviation). Districts with fewer than five children are merged into \"other districts\".",
        "pl_kita": "Kita", "pl_school": "School", "pl_chart_kita": "Demand for Kita places, whole city",
        "pl_chart_school": "Demand for school places, whole city", "pl_expected": "expected", "pl_band": "band",
        "pl_places": "planned places", "pl_gap": "free (+) or missing (\u2212)", "pl_school_year": "School year",
        "pl_csv": "All figures as CSV", "pl_enter": "Enter planned places", "pl_enter_hint": "One entry per "
        "school year, district and kind; a new value replaces the old one.", "pl_kind": "Kind",
        "pl_entered": "Places entered", "pl_remove": "Remove",
        "pl_withheld": "Too few children to publish (fewer than five).", "pl_trend": "Trend of children arriving",
        "pl_per_month": "per month lately", "pl_other": "other districts", "pl_city": "whole city",
        "pl_places_short": "places",
        "conf_title": "District integration conference", "conf_intro": "The city of Landsberg am Lech's "
        "contribution to the district's integration conference: only published, anonymised figures of a year, "
        "where the proposals to the integration council stand and the next school year's demand. The document "
        "is in German.", "conf_year": "Year", "conf_document": "Open as a document (to print or pass on)",
        "conf_proposals": "Proposals to the integration council and their follow-up",
        "stat_more": "More", "stat_council_followup": "Integration council: proposals and follow-up",
    },
})  # fmt: skip


def city_series(rows: list[dict[str, Any]], years: list[str], kind: str) -> dict[str, list[Any]]:
    """Per school year the whole city's expected, low and high demand of ``kind`` and the places entered (None
    for a year without any)."""
    series: dict[str, list[Any]] = {"expected": [], "low": [], "high": [], "places": []}
    for year in years:
        chosen = [r for r in rows if r["school_year"] == year and r["kind"] == kind]
        for key in ("expected", "low", "high"):
            series[key].append(sum(int(r[key]) for r in chosen))
        planned = [int(r["places"]) for r in chosen if r["places"] is not None]
        series["places"].append(sum(planned) if planned else None)
    return series


def by_district(rows: list[dict[str, Any]], kind: str) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """(district, school year -> row) for one kind, in the forecast's order."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["kind"] == kind:
            found.setdefault(r["district"], {})[r["school_year"]] = r
    return list(found.items())


def add_routes(router: APIRouter, ui: Kit) -> None:
    # --- the integration council ---------------------------------------------------------------

    @router.get("/statistics/council", response_class=HTMLResponse)
    async def council(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        shown = request.query_params.get("status", "all")
        shown = shown if shown in STATUSES else "all"
        period = request.query_params.get("period") or datetime.now(UTC).strftime("%Y-%m")
        period = period if PERIOD.fullmatch(period) else datetime.now(UTC).strftime("%Y-%m")
        params = {} if shown == "all" else {"status": shown}
        listed = await ui.call(request, user, "GET", "monitoring/council/proposals", params=params)
        if not listed.ok:
            return ui.trouble(request, user, listed)
        derived = await ui.call(request, user, "GET", "monitoring/indicators", params={"period": period})
        from_report = derived.body.get("proposals", []) if derived.ok and isinstance(derived.body, dict) else []
        taken = {(p["rule"], p["period"], p["title"]) for p in listed.body["items"]}
        return ui.render(request, "statistics_council.html", user=user, found=listed.body, shown=shown,
                         statuses=STATUSES, period=period, from_report=from_report, taken=taken)  # fmt: skip

    @router.post("/statistics/council", response_class=HTMLResponse)
    async def create_proposal(request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body: dict[str, Any] = {"title": form.get("title", ""), "text": form.get("text", "")}
        for key in ("rule", "period", "due_on"):
            if form.get(key):
                body[key] = form[key]
        reply = await ui.call(request, user, "POST", "monitoring/council/proposals", json=body)
        if reply.ok:
            return ui.back(f"/ui/statistics/council/{reply.body['proposal_id']}", notice="done")
        if reply.status in (401, 403):
            return ui.trouble(request, user, reply)
        return ui.back("/ui/statistics/council", error=problem_text(reply))

    async def proposal_page(request: Request, user: Identity, proposal_id: str) -> Response:
        reply = await ui.call(request, user, "GET", f"monitoring/council/proposals/{proposal_id}")
        if not reply.ok:
            return ui.trouble(request, user, reply)
        proposal = reply.body
        return ui.render(request, "statistics_proposal.html", user=user, p=proposal,
                         steps=STEPS.get(proposal["status"], ()))  # fmt: skip

    @router.get("/statistics/council/{proposal_id}", response_class=HTMLResponse)
    async def proposal(request: Request, proposal_id: str) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        if not PROPOSAL_ID.fullmatch(proposal_id):
            return ui.refused(request, user, "not_found", 404)
        return await proposal_page(request, user, proposal_id)

    @router.post("/statistics/council/{proposal_id}", response_class=HTMLResponse)
    async def act(request: Request, proposal_id: str) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if not PROPOSAL_ID.fullmatch(proposal_id):
            return ui.refused(request, user, "not_found", 404)
        step: dict[str, Any] = {"action": form.get("action", "")}
        for key in ("assignee", "note", "due_on"):
            if form.get(key, "").strip():
                step[key] = form[key]
        reply = await ui.call(request, user, "POST", f"monitoring/council/proposals/{proposal_id}/actions", json=step)
        if reply.status in (401, 403, 404):
            return ui.trouble(request, user, reply)
        return ui.after(f"/ui/statistics/council/{proposal_id}", reply)

    # --- school and Kita planning -----------------------------------------------------------------

    @router.get("/statistics/planning", response_class=HTMLResponse)
    async def planning(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        forecast = await ui.call(request, user, "GET", "monitoring/planning/forecast")
        if not forecast.ok:
            return ui.trouble(request, user, forecast)
        entered = await ui.call(request, user, "GET", "monitoring/planning/capacities")
        reference = await ui.call(request, user, "GET", "monitoring/reference/districts")
        words = ui.words(request)
        document = forecast.body
        years = list(document["school_years"])
        chart_words = {"expected": words["pl_expected"], "band": words["pl_band"], "places": words["pl_places"]}
        charts_by_kind = {}
        for kind in KINDS:
            s = city_series(document["rows"], years, kind)
            charts_by_kind[kind] = (
                charts.demand_chart(years, s["expected"], s["low"], s["high"], s["places"],
                                    words[f"pl_chart_{kind}"], f"chart-{kind}", chart_words),
                list(zip(years, s["expected"], s["low"], s["high"], s["places"], strict=True)),
            )  # fmt: skip
        districts = sorted((reference.body or {}).get("districts", {})) if reference.ok else []
        return ui.render(request, "statistics_planning.html", user=user, document=document, years=years,
                         charts_by_kind=charts_by_kind, tables={k: by_district(document["rows"], k) for k in KINDS},
                         capacities=(entered.body or {}).get("capacities", []) if entered.ok else [],
                         districts=districts, kinds=KINDS,
                         first_years=[int(y[:4]) for y in years])  # fmt: skip

    @router.get("/statistics/planning.csv")
    async def planning_csv(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        table = await ui.call(request, user, "GET", "monitoring/planning/forecast", params={"format": "csv"})
        if not table.ok:
            return ui.trouble(request, user, table)
        disposition = 'attachment; filename="kita-und-schulplanung.csv"'
        return Response(table.content, media_type=table.media_type, headers={"Content-Disposition": disposition})

    async def store_places(request: Request, user: Identity, change: Any) -> Response:
        entered = await ui.call(request, user, "GET", "monitoring/planning/capacities")
        if not entered.ok:
            return ui.trouble(request, user, entered)
        capacities = change([c for c in entered.body["capacities"]])
        reply = await ui.call(request, user, "PUT", "monitoring/planning/capacities", json={"capacities": capacities})
        if reply.status in (401, 403):
            return ui.trouble(request, user, reply)
        return ui.after("/ui/statistics/planning", reply)

    @router.post("/statistics/planning/places", response_class=HTMLResponse)
    async def enter_places(request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        try:
            entry = {"year": int(form.get("year", "")), "district": form.get("district", "").strip(),
                     "kind": form.get("kind", ""), "places": int(form.get("places", ""))}  # fmt: skip
        except ValueError:  # the browser checks the number first; this is for a hand-made request
            return ui.back("/ui/statistics/planning", error=ui.words(request)["pl_places"])
        key = (entry["year"], entry["district"], entry["kind"])

        def replace(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [c for c in current if (c["year"], c["district"], c["kind"]) != key] + [entry]

        return await store_places(request, user, replace)

    @router.post("/statistics/planning/places/remove", response_class=HTMLResponse)
    async def remove_places(request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        key = (form.get("year", ""), form.get("district", ""), form.get("kind", ""))

        def without(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [c for c in current if (str(c["year"]), c["district"], c["kind"]) != key]

        return await store_places(request, user, without)

    # --- the district conference ----------------------------------------------------------------------

    @router.get("/statistics/conference", response_class=HTMLResponse)
    async def conference(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        year = request.query_params.get("year") or str(datetime.now(UTC).year)
        if not YEAR.fullmatch(year):
            return ui.refused(request, user, "bad_period", 422)
        reply = await ui.call(request, user, "GET", "monitoring/conference", params={"year": year})
        if not reply.ok:
            return ui.trouble(request, user, reply)
        return ui.render(request, "statistics_conference.html", user=user, year=year, document=reply.body)

    @router.get("/statistics/conference/document")
    async def conference_document(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        year = request.query_params.get("year", "")
        if not YEAR.fullmatch(year):
            return ui.refused(request, user, "bad_period", 422)
        reply = await ui.call(request, user, "GET", "monitoring/conference", params={"year": year, "format": "html"})
        if not reply.ok:
            return ui.trouble(request, user, reply)
        # The monitoring's own document, inline styles only: served with a CSP that allows them and nothing else.
        policy = "default-src 'none'; style-src 'unsafe-inline'"
        return Response(reply.content, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": policy})  # fmt: skip
