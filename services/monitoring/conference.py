"""The district conference summary (Integrationskonferenz Landkreis Landsberg am Lech): what the city of
Landsberg contributes, in German, as a document of a year. Pure: no I/O.

It combines only what the city already publishes: the year's indicators after disclosure control (a
withheld figure stays withheld, shown as a cross), the integration council's proposals and where they stand, and the
next school year's Kita and school demand from the planning forecast (districts merged below k as there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

TITLE = "Integrationskonferenz Landkreis Landsberg am Lech"
CONTRIBUTOR = "Große Kreisstadt Landsberg am Lech"
PRIVACY_DE = (
    "Nur anonymisierte Summen. Zahlen von 1 bis {k_minus} werden zurückgehalten (k = {k}), dazu weitere, damit "
    "keine Summe und kein Vergleich zwischen Monaten, Quartalen und Jahren sie verrät; zurückgehaltene Zahlen "
    "stehen als \u00d7. Mediane, Anteile und der Index entfallen, wenn weniger als {k} Fälle dahinter stehen."
)

STATUS_DE = {
    "proposed": "vorgeschlagen",
    "accepted": "angenommen",
    "rejected": "abgelehnt",
    "in_progress": "in Umsetzung",
    "done": "erledigt",
}
RESIDENCE_DE = {
    "eu_citizen": "EU-Bürgerinnen und -Bürger",
    "recognised_refugee": "Anerkannte Geflüchtete",
    "asylum_seeker": "Asylsuchende",
    "tolerated": "Geduldete",
    "skilled_worker_or_study_visa": "Fachkräfte und Studierende (Visum)",
    "family_reunification": "Familiennachzug",
    "other": "Sonstige",
}
ROUTES_DE = {
    "health_advice": "Gesundheitsberatung",
    "housing_advice": "Wohnberatung",
    "return_counselling": "Rückkehr- und Perspektivberatung",
    "recognition_counselling": "Anerkennungsberatung",
    "job_specific_german": "Berufssprachkurse",
    "eu_job_mobility": "EU-Arbeitsmobilität (EURES)",
    "meeting_offer": "Begegnungsangebote",
}
DASH = "\u2013"
KIND_DE = {"kita": "Kita-Plätzen", "school": "Schulplätzen"}  # "Bedarf an ..."


def _indicator(document: Mapping[str, Any], table_id: str) -> dict[str, Any] | None:
    for group in document.get("groups", []):
        for table in group["indicators"]:
            if table["id"] == table_id:
                return dict(table)
    return None


def show(cell: Mapping[str, Any] | None) -> str:
    """A published figure in German notation, a cross when withheld, a dash when there is none."""
    if cell is None or cell.get("value") is None:
        return "\u00d7" if cell is not None and cell.get("suppressed") else "\u2013"
    value = cell["value"]
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}".rstrip("0").replace(".", ",")
    return f"{int(value):,}".replace(",", ".")


def de_date(iso: str | None) -> str:
    """2026-12-31 as 31.12.2026; nothing as a dash."""
    if not iso:
        return DASH
    year, month, day = iso[:10].split("-")
    return f"{day}.{month}.{year}"


def _has_figure(cell: Mapping[str, Any] | None) -> bool:
    """Published or withheld: not a share of nobody."""
    return cell is not None and (cell.get("suppressed") or cell.get("value") is not None)


def _row(label: str, cell: Mapping[str, Any] | None) -> dict[str, str]:
    return {"label": label, "value": show(cell)}


def _headline(document: Mapping[str, Any], table_id: str) -> dict[str, Any] | None:
    table = _indicator(document, table_id)
    return None if table is None else table.get("headline")


def _column_total(document: Mapping[str, Any], table_id: str, column: str) -> dict[str, Any] | None:
    table = _indicator(document, table_id)
    return None if table is None or table.get("column_totals") is None else table["column_totals"].get(column)


def _cells(document: Mapping[str, Any], table_id: str, column: str) -> list[tuple[str, dict[str, Any]]]:
    table = _indicator(document, table_id)
    return [] if table is None else [(row["label"], row["cells"][column]) for row in table["rows"]]


def summary(
    indicators: Mapping[str, Any], proposals: Sequence[Mapping[str, Any]], forecast: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The summary of a year as sections of (label, figure) lines, German throughout."""
    year = indicators["period"]
    sections: list[dict[str, Any]] = []
    moves = dict(_cells(indicators, "households_and_moves", "count"))
    end = de_date(indicators["to"])
    lines = [
        _row("Anmeldungen von Neuzugewanderten", _headline(indicators, "registrations_by_nationality")),
        _row("davon Haushalte", moves.get("households_registered")),
        _row("Weggezogen", moves.get("persons_moved_away")),
        _row(f"Neuzugewanderte in der Stadt am {end}", _headline(indicators, "newcomers_by_district")),
    ]
    lines += [
        _row(f"Anmeldungen: {RESIDENCE_DE.get(label, label)}", cell)
        for label, cell in _cells(indicators, "registrations_by_residence_status", "count")
    ]
    sections.append({"title": "Zuzug", "lines": lines})
    sections.append(
        {
            "title": "Sprache, Bildung und Arbeit",
            "lines": [
                _row("Anmeldungen zu Sprachkursen", _headline(indicators, "language_course_enrolments")),
                _row("Abschlüsse von Sprachkursen", _headline(indicators, "language_course_completions")),
                _row("Anerkannte ausländische Abschlüsse", _headline(indicators, "recognitions")),
                _row("Vermittlungen an Jobcenter und IHK", _column_total(indicators, "placement_referrals", "sent")),
                _row("Anteil der Frauen an den Kursanmeldungen (%)", _headline(indicators, "women_share_in_courses")),
            ],
        }
    )
    routes = [
        _row(f"Vermittlungen: {ROUTES_DE.get(label, label)}", cell)
        for label, cell in _cells(indicators, "need_routes", "sent")
    ]
    routes += [
        _row(f"Vermittlungen: {ROUTES_DE.get(label, label)}", cell)
        for label, cell in _cells(indicators, "meeting_offer_referrals", "sent")
    ]
    # Women and EU citizens apart where a route had anybody: a share without a base says nothing.
    for table_id, group in (
        ("need_routes_eu_share", "der EU-Bürgerinnen und -Bürger"),
        ("need_routes_women_share", "der Frauen"),
    ):
        routes += [
            _row(f"Anteil {group}: {ROUTES_DE.get(label, label)} (%)", cell)
            for label, cell in _cells(indicators, table_id, "percent")
            if _has_figure(cell)
        ]
    sections.append(
        {
            "title": "Beratung, Teilhabe und die Wege für besondere Bedarfe",
            "lines": [
                _row("Vermittlungen an Partner insgesamt", _column_total(indicators, "referral_funnel", "sent")),
                *routes,
            ],
        }
    )
    sections.append(
        {
            "title": "Wohnen und Segregation",
            "lines": [
                _row(f"Neuzugewanderte mit Wohnungsbedarf am {end}", _headline(indicators, "housing_need")),
                _row("Segregationsindex (Dissimilarität, 0 bis 1)", _headline(indicators, "dissimilarity_index")),
            ],
        }
    )
    planning_lines: list[dict[str, str]] = []
    if forecast is not None and not forecast.get("withheld") and forecast.get("rows"):
        first = forecast["school_years"][0]
        for kind, name in KIND_DE.items():
            rows = [r for r in forecast["rows"] if r["school_year"] == first and r["kind"] == kind]
            expected, low, high = (sum(r[key] for r in rows) for key in ("expected", "low", "high"))
            planned = [r["places"] for r in rows if r["places"] is not None]
            text = f"{expected} (Spanne {low} bis {high})"
            if planned:
                text += f"; geplant: {sum(planned)}"
            planning_lines.append({"label": f"Bedarf an {name} im Schuljahr {first}", "value": text})
    elif forecast is not None:
        planning_lines.append({"label": "Bedarf an Kita- und Schulplätzen", "value": "\u00d7"})
    sections.append({"title": "Planung", "lines": planning_lines})
    return {
        "title": f"{TITLE} {year}",
        "contributor": CONTRIBUTOR,
        "year": year,
        "from": indicators["from"],
        "to": indicators["to"],
        "k": indicators["k"],
        "privacy": PRIVACY_DE.format(k=indicators["k"], k_minus=indicators["k"] - 1),
        "sections": sections,
        "proposals": [
            {
                "title": p["title"],
                "status": STATUS_DE.get(p["status"], p["status"]),
                "assignee": p.get("assignee"),
                "due_on": de_date(p["due_on"]) if p.get("due_on") else None,
            }
            for p in proposals
        ],
    }


STYLE = """
body { font-family: "Segoe UI", Arial, sans-serif; margin: 2rem; color: #1b1b1b; max-width: 50rem; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 2px solid #005a9c; padding-bottom: .2rem; font-size: 1.15rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: .8rem; }
th, td { border-bottom: 1px solid #c8c8c8; padding: .25rem .4rem; text-align: left; vertical-align: top; }
td.figure { text-align: right; white-space: nowrap; } .note { font-size: .85rem; color: #4a4a4a; }
@page { size: A4; margin: 18mm 15mm; } @media print { body { margin: 0; max-width: none; } }
"""


def to_html(document: Mapping[str, Any], generated_at: datetime) -> str:
    sections = "".join(
        f"<section><h2>{escape(s['title'])}</h2><table><tbody>"
        + "".join(
            f"<tr><th scope='row'>{escape(line['label'])}</th><td class='figure'>{escape(line['value'])}</td></tr>"
            for line in s["lines"]
        )
        + "</tbody></table></section>"
        for s in document["sections"]
    )
    proposals = (
        "".join(
            f"<tr><td>{escape(p['title'])}</td><td>{escape(p['status'])}</td><td>{escape(p['assignee'] or DASH)}</td>"
            f"<td>{escape(str(p['due_on'] or DASH))}</td></tr>"
            for p in document["proposals"]
        )
        or "<tr><td colspan='4'>Keine Vorschläge.</td></tr>"
    )
    return f"""<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8"><title>{escape(document["title"])}</title><style>{STYLE}</style></head>
<body><header><h1>{escape(document["title"])}</h1>
<p>Beitrag der {escape(document["contributor"])} · {escape(de_date(document["from"]))} bis
{escape(de_date(document["to"]))} ·
erstellt {escape(generated_at.strftime("%d.%m.%Y %H:%M"))}</p>
<p class="note">{escape(document["privacy"])}</p></header>
<main>{sections}
<section><h2>Vorschläge an den Integrationsrat und ihre Umsetzung</h2><table>
<thead><tr><th scope="col">Vorschlag</th><th scope="col">Stand</th><th scope="col">Zuständig</th>
<th scope="col">Frist</th></tr></thead><tbody>{proposals}</tbody></table></section>
</main></body></html>
"""
