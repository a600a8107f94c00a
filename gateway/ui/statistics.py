"""The analysts' and the council's pages: charts of the monitoring's indicators, the council report in the page's
language (German by default) and its figures as CSV.

Everything comes from the monitoring service's API (``/monitoring/indicators`` per period): figures already
anonymised there, a withheld one (k-anonymity) stays withheld here. The charts are inline SVG drawn on the server
(``charts``): registrations and the dissimilarity index over the twelve months up to the period, newcomers on a
schematic map of Landsberg's parts, and referral outcomes per partner. The council report shows the integration
council's proposals with their follow-up; the council's, planning and conference pages are in
:mod:`gateway.ui.statistics_council`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from gateway.ui import charts, statistics_council
from gateway.ui.kit import Kit

#: As the monitoring service takes it: a year 1990-2099, a quarter or a month of it.
PERIOD = re.compile(r"^(199[0-9]|20[0-9]{2})(-(0[1-9]|1[0-2])|-Q[1-4])?$")
MONTHS = 12
FUNNEL = ("sent", "accepted", "declined", "completed")
BLOCK_COLUMNS = ("newcomers", "residents", "newcomers_percent", "residents_percent")
#: How the monitoring labels the block table's rows (services.monitoring.blocks): "<block> (<district>)", a
#: district's other addresses, a whole district by its name, and the withheld districts together.
REST_SUFFIX, WITHHELD_DISTRICTS = ", other addresses", "withheld districts"
BLOCK_LABEL = re.compile(r"(.*) \(([^()]*)\)")


def split_label(label: str) -> tuple[str, str | None]:
    """(district, block name or None) of a block table's row."""
    if label.endswith(REST_SUFFIX):
        return label[: -len(REST_SUFFIX)], None
    found = BLOCK_LABEL.fullmatch(label)
    return (found.group(2), found.group(1)) if found else (label, None)


def last_months(period: str, count: int = MONTHS) -> list[str]:
    """The ``count`` months up to the period's last one (a year's December, a quarter's third month)."""
    year = int(period[:4])
    month = 12 if len(period) == 4 else 3 * int(period[-1]) if "-Q" in period else int(period[5:7])
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return months[::-1]


def indicator(document: dict[str, Any] | None, table_id: str) -> dict[str, Any] | None:
    for group in (document or {}).get("groups", []):
        for table in group["indicators"]:
            if table["id"] == table_id:
                return dict(table)
    return None


def figure(cell: dict[str, Any] | None) -> float | None:
    """A published figure, or None for withheld or missing."""
    if cell is None or cell.get("suppressed") or cell.get("value") is None:
        return None
    return float(cell["value"])


def mark(cell: dict[str, Any] | None) -> str:
    """How a figure that is not drawn is shown: a cross when withheld, a dash when there is none."""
    return charts.WITHHELD if cell is not None and cell.get("suppressed") else "\u2013"


def whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def block_rows(document: dict[str, Any] | None, words: dict[str, str]) -> list[dict[str, Any]]:
    """The coarsened block table's rows for the page: district and block in words, the figures as published."""
    found = indicator(document, "newcomers_by_block")
    rows = []
    for row in (found or {}).get("rows", []):
        label, cells = row["label"], row["cells"]
        if label == WITHHELD_DISTRICTS:
            district, block = words["stat_block_withheld"], ""
        else:
            district, name = split_label(label)
            block = (
                name
                if name is not None
                else (words["stat_block_rest"] if label.endswith(REST_SUFFIX) else words["stat_block_whole"])
            )
        rows.append({"district": district, "block": block, **{c: cells[c] for c in BLOCK_COLUMNS}})
    return rows


def block_label_words(label: str, words: dict[str, str]) -> str:
    """A row of the block table in the page's language (the council report's generic table)."""
    if label == WITHHELD_DISTRICTS:
        return words["stat_block_withheld"]
    if label.endswith(REST_SUFFIX):
        return f"{label[: -len(REST_SUFFIX)]}: {words['stat_block_rest']}"
    return label


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def documents(request: Request, user: Identity, periods: list[str]) -> dict[str, dict[str, Any] | None]:
        replies = await asyncio.gather(
            *(ui.call(request, user, "GET", "monitoring/indicators", params={"period": p}) for p in periods)
        )
        return {p: r.body if r.ok and isinstance(r.body, dict) else None for p, r in zip(periods, replies, strict=True)}

    async def partner_names(request: Request, user: Identity) -> dict[str, str]:
        """Partner id -> name, from the public directory: the charts name organisations, not ids."""
        listed = await ui.call(request, user, "GET", "partners", params={"page_size": 200})
        return {p["partner_id"]: p["name"] for p in listed.items()}

    def chart_context(
        request: Request, period: str, found: dict[str, dict[str, Any] | None], names: dict[str, str]
    ) -> dict[str, Any]:
        words = ui.words(request)
        lang = ui.lang_of(request)
        months = last_months(period)
        month_labels = [f"{m[5:7]}/{m[2:4]}" if lang == "de" else m for m in months]
        registrations = [
            figure((indicator(found[m], "registrations_by_nationality") or {}).get("headline")) for m in months
        ]
        index_cells = [(indicator(found[m], "dissimilarity_index") or {}).get("headline") for m in months]
        index = [figure(cell) for cell in index_cells]
        current = found[period]
        stock = indicator(current, "newcomers_by_district") or {"rows": []}
        by_district = {row["label"]: whole(figure(row["cells"].get("count"))) for row in stock["rows"]}
        funnel = indicator(current, "referral_funnel") or {"rows": []}
        partners = [names.get(row["label"], row["label"]) for row in funnel["rows"]]
        outcomes = {
            (names.get(row["label"], row["label"]), stage): whole(figure(row["cells"].get(stage)))
            for row in funnel["rows"]
            for stage in FUNNEL
        }
        stages = {stage: words[f"stat_c_{stage}"] for stage in FUNNEL}
        block_table = indicator(current, "newcomers_by_block")
        return {
            "blocks": block_rows(current, words),
            "has_blocks": block_table is not None,
            "blocks_illustrative": "ILLUSTRATIVE" in (block_table or {}).get("note", ""),
            "block_index": (indicator(current, "dissimilarity_index_by_block") or {})
            .get("rows", [{}])[0]
            .get("cells", {})
            .get("D"),
            "district_index": (indicator(current, "dissimilarity_index") or {}).get("headline"),
            "block_row": lambda label: block_label_words(label, words),
            "months": list(zip(month_labels, registrations, index, [mark(c) for c in index_cells], strict=True)),
            "districts": sorted(by_district.items()),
            "partners": partners,
            "outcomes": outcomes,
            "stages": stages,
            "registrations_chart": charts.line_chart(
                month_labels, registrations, words["stat_registrations_over_time"], "chart-registrations"
            ),
            "dissimilarity_chart": charts.line_chart(
                month_labels,
                index,
                words["stat_dissimilarity_over_time"],
                "chart-dissimilarity",
                decimals=2,
                top=1.0,
                gaps=[mark(c) for c in index_cells],
            ),
            "district_map": charts.district_map(
                by_district, words["stat_district_map"], "chart-districts", withheld=charts.WITHHELD
            ),
            "partner_chart": charts.grouped_bars(
                partners, FUNNEL, outcomes, words["stat_outcomes_per_partner"], "chart-partners", stages
            )
            if partners
            else "",
        }

    @router.get("/statistics", response_class=HTMLResponse)
    async def statistics(request: Request) -> Response:
        user = await ui.signed_in(request)
        period = request.query_params.get("period") or datetime.now(UTC).strftime("%Y-%m")
        if not PERIOD.fullmatch(period):
            return ui.render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        first = await ui.read(request, user, "monitoring/indicators", params={"period": period})
        found = await documents(request, user, [m for m in last_months(period) if m != period])
        found[period] = first.body
        return ui.render(
            request,
            "statistics.html",
            user=user,
            period=period,
            period_error=False,
            **chart_context(request, period, found, await partner_names(request, user)),
        )

    @router.get("/statistics/report")
    async def statistics_report(request: Request) -> Response:
        user = await ui.signed_in(request)
        period = request.query_params.get("period", "")
        fmt = "csv" if request.query_params.get("format") == "csv" else "html"
        if not PERIOD.fullmatch(period):
            return ui.render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        if fmt == "csv":
            table = await ui.read(request, user, "monitoring/report", params={"period": period, "format": fmt})
            return Response(table.content, media_type=table.media_type)
        # The council report, drawn here in the page's language from the same figures the monitoring publishes.
        first = await ui.read(request, user, "monitoring/indicators", params={"period": period})
        found = await documents(request, user, [m for m in last_months(period) if m != period])
        found[period] = first.body
        # The integration council's view: every proposal and where its follow-up stands.
        council = await ui.call(request, user, "GET", "monitoring/council/proposals")
        return ui.render(
            request,
            "statistics_report.html",
            user=user,
            period=period,
            document=first.body,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            council=council.body["items"] if council.ok else None,
            **chart_context(request, period, found, await partner_names(request, user)),
        )

    statistics_council.add_routes(router, ui)
