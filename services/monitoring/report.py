"""The published forms of the indicators: a JSON document, the council report (HTML with SVG charts
and print CSS, so that a browser prints it to PDF) and CSV of every cell. No I/O."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from html import escape
from typing import Any

from services.monitoring import planning, proposals, protection
from services.monitoring.domain import Facts
from services.monitoring.periods import Period
from services.monitoring.tables import GROUP_TITLES, Cell, Group

PRIVACY_NOTE = (
    "Anonymised aggregates only. Counts between 1 and {k_minus} are withheld (k = {k}), with complementary "
    "suppression so that neither totals nor differences between tables or between the reports of any months, "
    "quarters and years reveal them; withheld cells are shown as \u00d7. "
    "Medians, shares and the index are withheld when they rest on fewer than {k} cases. "
    "Residential blocks with fewer than {k} newcomers or residents count with their district's other addresses, "
    "which are themselves 0 or at least {k}; within a withheld district no block is shown."
)


def _cell(cell: Cell | None) -> dict[str, Any] | None:
    return cell.as_dict() if cell is not None else None


def indicator_document(facts: Facts, period: Period, k: int) -> dict[str, Any]:
    previous_period = period.previous()
    both = protection.indicators_of(facts, [period, previous_period], k)  # one suppression per year
    tables = both[period]
    previous = {t.id: t.headline() for t in both[previous_period]}
    groups: list[dict[str, Any]] = []
    for group in Group:
        members = [t for t in tables if t.group is group]
        if not members:
            continue
        groups.append(
            {
                "group": group.value,
                "title": GROUP_TITLES[group],
                "indicators": [
                    t.as_dict() | {"headline": _cell(t.headline()), "previous_headline": _cell(previous.get(t.id))}
                    for t in members
                ],
            }
        )
    return {
        "period": period.label,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "previous_period": previous_period.label,
        "k": k,
        "privacy": PRIVACY_NOTE.format(k=k, k_minus=k - 1),
        "groups": groups,
        "proposals": [p.as_dict() for p in proposals.proposals(facts, period, k)],
        "rules": [{"rule": r.id, "description": r.description} for r in proposals.RULES],
    }


def planning_document(facts: Facts, today: Any, k: int) -> dict[str, Any]:
    tables = planning.children_tables(facts.persons, today, k)
    return {
        "as_of": today.isoformat(),
        "k": k,
        "privacy": PRIVACY_NOTE.format(k=k, k_minus=k - 1),
        "tables": [t.as_dict() for t in tables],
    }


# --- CSV -------------------------------------------------------------------------------------

CSV_HEADER = ["period", "group", "indicator", "unit", "row", "column", "value", "suppressed"]


def _value(cell: dict[str, Any] | None) -> str:
    if cell is None or cell["value"] is None:
        return ""
    return str(cell["value"])


def to_csv(document: dict[str, Any]) -> str:
    """One line per published cell, totals included (row 'total' / column 'total')."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for group in document["groups"]:
        for t in group["indicators"]:
            base = [document["period"], group["group"], t["id"], t["unit"]]
            for row in t["rows"]:
                for column in t["columns"]:
                    cell = row["cells"][column]
                    writer.writerow([*base, row["label"], column, _value(cell), str(cell["suppressed"]).lower()])
                if row["total"] is not None:
                    writer.writerow(
                        [*base, row["label"], "total", _value(row["total"]), str(row["total"]["suppressed"]).lower()]
                    )
            for column, cell in (t["column_totals"] or {}).items():
                writer.writerow([*base, "total", column, _value(cell), str(cell["suppressed"]).lower()])
            if t["total"] is not None:
                writer.writerow([*base, "total", "total", _value(t["total"]), str(t["total"]["suppressed"]).lower()])
    return out.getvalue()


# --- HTML ------------------------------------------------------------------------------------

STYLE = """
body { font-family: "Segoe UI", Arial, sans-serif; margin: 2rem; color: #1b1b1b; max-width: 60rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #005a9c; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .4rem 0 .6rem; font-size: .9rem; }
th, td { border: 1px solid #b5b5b5; padding: .2rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.withheld { color: #6b6b6b; } .note { font-size: .8rem; color: #4a4a4a; }
.trend { font-size: .85rem; } .indicator { break-inside: avoid; page-break-inside: avoid; }
.proposals li { margin-bottom: .3rem; } svg text { font-size: 11px; font-family: inherit; }
@page { size: A4; margin: 18mm 15mm; }
@media print {
  body { margin: 0; max-width: none; } h2 { break-after: avoid; page-break-after: avoid; }
  section.group { break-before: auto; } a { color: inherit; text-decoration: none; }
}
"""


def _show(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    if cell["suppressed"]:
        return '<span class="withheld" title="withheld (k-anonymity)">\u00d7</span>'
    return "\u2013" if cell["value"] is None else escape(str(cell["value"]))


def bar_chart(labels: list[str], values: list[float | None], title: str) -> str:
    """A horizontal bar chart as inline SVG; withheld or missing values get no bar."""
    bar_h, gap, left, width = 16, 6, 170, 300
    height = len(labels) * (bar_h + gap) + gap
    top = max((v for v in values if v is not None), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 60}" height="{height}" '
        f'viewBox="0 0 {left + width + 60} {height}"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = gap + i * (bar_h + gap)
        parts.append(f'<text x="{left - 6}" y="{y + bar_h - 4}" text-anchor="end">{escape(label[:28])}</text>')
        if value is None:
            parts.append(f'<text x="{left + 4}" y="{y + bar_h - 4}" fill="#6b6b6b">\u00d7 withheld</text>')
            continue
        w = max(1.0, width * float(value) / float(top)) if value else 0
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#005a9c"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 4}">{escape(str(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table_html(t: dict[str, Any]) -> str:
    has_row_totals = any(row["total"] is not None for row in t["rows"])
    head = "".join(f"<th scope='col'>{escape(c)}</th>" for c in t["columns"])
    head += "<th scope='col'>total</th>" if has_row_totals else ""
    body = []
    for row in t["rows"]:
        cells = "".join(f"<td>{_show(row['cells'][c])}</td>" for c in t["columns"])
        cells += f"<td>{_show(row['total'])}</td>" if has_row_totals else ""
        body.append(f"<tr><th scope='row'>{escape(row['label'])}</th>{cells}</tr>")
    if t["column_totals"] is not None:
        cells = "".join(f"<td>{_show(t['column_totals'][c])}</td>" for c in t["columns"])
        cells += f"<td>{_show(t['total'])}</td>" if has_row_totals else ""
        body.append(f"<tr><th scope='row'>total</th>{cells}</tr>")
    return f"<table><thead><tr><th>{escape(t['unit'])}</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _chart(t: dict[str, Any]) -> str:
    if len(t["rows"]) < 2 or not t["columns"]:
        return ""  # one figure needs no chart
    column = t["columns"][0]
    labels = [row["label"] for row in t["rows"]]
    values = [None if row["cells"][column]["suppressed"] else row["cells"][column]["value"] for row in t["rows"]]
    if all(v in (None, 0) for v in values) or isinstance(values[0], str):
        return ""
    return bar_chart(labels, values, f"{t['title']} ({column})")


def to_html(document: dict[str, Any], generated_at: datetime) -> str:
    sections = []
    for group in document["groups"]:
        items = []
        for t in group["indicators"]:
            trend = ""
            now, before = t["headline"], t["previous_headline"]
            if now is not None:
                trend = (
                    f"<p class='trend'>{escape(document['period'])}: {_show(now)} \u00b7 "
                    f"{escape(document['previous_period'])}: {_show(before)}</p>"
                )
            note = f"<p class='note'>{escape(t['note'])}</p>" if t["note"] else ""
            items.append(
                f"<div class='indicator' id='{escape(t['id'])}'><h3>{escape(t['title'])}</h3>"
                f"{trend}{_chart(t)}{_table_html(t)}{note}</div>"
            )
        sections.append(f"<section class='group'><h2>{escape(group['title'])}</h2>{''.join(items)}</section>")
    proposals = (
        "".join(
            f"<li><strong>{escape(p['rule'])}</strong> ({escape(p['subject'])}): {escape(p['proposal'])}</li>"
            for p in document["proposals"]
        )
        or "<li>No rule applies in this period.</li>"
    )
    rules = "".join(
        f"<li><strong>{escape(r['rule'])}</strong>: {escape(r['description'])}</li>" for r in document["rules"]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Integration monitoring {escape(document["period"])}: report to the city council</title>
<style>{STYLE}</style></head>
<body>
<header><h1>Integration and demographic monitoring, {escape(document["period"])}</h1>
<p>Große Kreisstadt Landsberg am Lech \u00b7 report to the city council \u00b7 {escape(document["from"])} to
{escape(document["to"])}, compared with {escape(document["previous_period"])} \u00b7 generated
{escape(generated_at.isoformat(timespec="minutes"))}</p>
<p class="note">{escape(document["privacy"])}</p></header>
<main>
<section class="group"><h2>Proposals</h2><ul class="proposals">{proposals}</ul>
<h3>Rules the proposals follow</h3><ul class="note">{rules}</ul></section>
{"".join(sections)}
</main></body></html>
"""
