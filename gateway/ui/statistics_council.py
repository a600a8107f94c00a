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
from gateway.ui.kit import Kit, problem_key

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
        shown = request.query_params.get("status", "all")
        shown = shown if shown in STATUSES else "all"
        period = request.query_params.get("period") or datetime.now(UTC).strftime("%Y-%m")
        period = period if PERIOD.fullmatch(period) else datetime.now(UTC).strftime("%Y-%m")
        params = {} if shown == "all" else {"status": shown}
        listed = await ui.read(request, user, "monitoring/council/proposals", params=params)
        derived = await ui.call(request, user, "GET", "monitoring/indicators", params={"period": period})
        from_report = derived.body.get("proposals", []) if derived.ok and isinstance(derived.body, dict) else []
        taken = {(p["rule"], p["period"], p["title"]) for p in listed.body["items"]}
        return ui.render(
            request,
            "statistics_council.html",
            user=user,
            found=listed.body,
            shown=shown,
            statuses=STATUSES,
            period=period,
            from_report=from_report,
            taken=taken,
        )

    @router.post("/statistics/council", response_class=HTMLResponse)
    async def create_proposal(request: Request) -> Response:
        posted = await ui.posted(request)
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
        return ui.back("/ui/statistics/council", error=problem_key(reply.body))

    async def proposal_page(request: Request, user: Identity, proposal_id: str) -> Response:
        reply = await ui.read(request, user, f"monitoring/council/proposals/{proposal_id}")
        proposal = reply.body
        return ui.render(
            request, "statistics_proposal.html", user=user, p=proposal, steps=STEPS.get(proposal["status"], ())
        )

    @router.get("/statistics/council/{proposal_id}", response_class=HTMLResponse)
    async def proposal(request: Request, proposal_id: str) -> Response:
        user = await ui.signed_in(request)
        if not PROPOSAL_ID.fullmatch(proposal_id):
            return ui.refused(request, user, "not_found", 404)
        return await proposal_page(request, user, proposal_id)

    @router.post("/statistics/council/{proposal_id}", response_class=HTMLResponse)
    async def act(request: Request, proposal_id: str) -> Response:
        posted = await ui.posted(request)
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
        forecast = await ui.read(request, user, "monitoring/planning/forecast")
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
                charts.demand_chart(
                    years,
                    s["expected"],
                    s["low"],
                    s["high"],
                    s["places"],
                    words[f"pl_chart_{kind}"],
                    f"chart-{kind}",
                    chart_words,
                ),
                list(zip(years, s["expected"], s["low"], s["high"], s["places"], strict=True)),
            )
        districts = sorted((reference.body or {}).get("districts", {})) if reference.ok else []
        return ui.render(
            request,
            "statistics_planning.html",
            user=user,
            document=document,
            years=years,
            charts_by_kind=charts_by_kind,
            tables={k: by_district(document["rows"], k) for k in KINDS},
            capacities=(entered.body or {}).get("capacities", []) if entered.ok else [],
            districts=districts,
            kinds=KINDS,
            first_years=[int(y[:4]) for y in years],
        )

    @router.get("/statistics/planning.csv")
    async def planning_csv(request: Request) -> Response:
        user = await ui.signed_in(request)
        table = await ui.read(request, user, "monitoring/planning/forecast", params={"format": "csv"})
        disposition = 'attachment; filename="kita-und-schulplanung.csv"'
        return Response(table.content, media_type=table.media_type, headers={"Content-Disposition": disposition})

    async def store_places(request: Request, user: Identity, change: Any) -> Response:
        entered = await ui.read(request, user, "monitoring/planning/capacities")
        capacities = change([c for c in entered.body["capacities"]])
        reply = await ui.call(request, user, "PUT", "monitoring/planning/capacities", json={"capacities": capacities})
        if reply.status in (401, 403):
            return ui.trouble(request, user, reply)
        return ui.after("/ui/statistics/planning", reply)

    @router.post("/statistics/planning/places", response_class=HTMLResponse)
    async def enter_places(request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        try:
            entry = {
                "year": int(form.get("year", "")),
                "district": form.get("district", "").strip(),
                "kind": form.get("kind", ""),
                "places": int(form.get("places", "")),
            }
        except ValueError:  # the browser checks the number first; this is for a hand-made request
            return ui.back("/ui/statistics/planning", error=ui.words(request)["pl_places"])
        key = (entry["year"], entry["district"], entry["kind"])

        def replace(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [c for c in current if (c["year"], c["district"], c["kind"]) != key] + [entry]

        return await store_places(request, user, replace)

    @router.post("/statistics/planning/places/remove", response_class=HTMLResponse)
    async def remove_places(request: Request) -> Response:
        posted = await ui.posted(request)
        user, form = posted
        key = (form.get("year", ""), form.get("district", ""), form.get("kind", ""))

        def without(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [c for c in current if (str(c["year"]), c["district"], c["kind"]) != key]

        return await store_places(request, user, without)

    # --- the district conference ----------------------------------------------------------------------

    @router.get("/statistics/conference", response_class=HTMLResponse)
    async def conference(request: Request) -> Response:
        user = await ui.signed_in(request)
        year = request.query_params.get("year") or str(datetime.now(UTC).year)
        if not YEAR.fullmatch(year):
            return ui.refused(request, user, "bad_period", 422)
        reply = await ui.read(request, user, "monitoring/conference", params={"year": year})
        return ui.render(request, "statistics_conference.html", user=user, year=year, document=reply.body)

    @router.get("/statistics/conference/document")
    async def conference_document(request: Request) -> Response:
        user = await ui.signed_in(request)
        year = request.query_params.get("year", "")
        if not YEAR.fullmatch(year):
            return ui.refused(request, user, "bad_period", 422)
        reply = await ui.read(request, user, "monitoring/conference", params={"year": year, "format": "html"})
        # The monitoring's own document, inline styles only: served with a CSP that allows them and nothing else.
        policy = "default-src 'none'; style-src 'unsafe-inline'"
        return Response(
            reply.content, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": policy}
        )
