"""The charts the analysts' pages draw (inline SVG, no script), and the course admins' form choices, which must be
the courses service's own vocabulary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from contracts.vocabulary import GermanLevel
from gateway.ui import charts, course_admin, statistics
from services.courses import domain as courses_domain

SVG = "{http://www.w3.org/2000/svg}"
REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "landsberg" / "districts.json"


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None, "every chart says what it shows"
    assert not list(root.iter(f"{SVG}script")), "no script in a chart"
    return root


def test_a_line_chart_breaks_at_a_withheld_figure_and_marks_it() -> None:
    root = parsed(charts.line_chart(["01", "02", "03", "04"], [3, None, 6, 7], "Anmeldungen <je> Monat", "c"))
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 1, "one line after the gap; a single point before it is a dot"
    assert len(list(root.iter(f"{SVG}circle"))) == 3
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert charts.WITHHELD in texts and "7" in texts
    assert root.find(f"{SVG}title").text == "Anmeldungen <je> Monat"  # type: ignore[union-attr]
    dashed = parsed(charts.line_chart(["01", "02"], [None, 0.5], "D", "d", decimals=2, top=1.0, gaps=["\u2013", ""]))
    assert "\u2013" in [t.text for t in dashed.iter(f"{SVG}text")]


def test_the_map_has_every_part_of_landsberg_and_shades_by_count() -> None:
    districts = json.loads(REFERENCE.read_text())["districts"]
    assert set(charts.LANDSBERG) == set(districts), "the map knows exactly the Ortsteile registration accepts"
    root = parsed(
        charts.district_map({"Weststadt": 40, "Altstadt": None, "Sandau": 0}, "Karte", "m", withheld=charts.WITHHELD)
    )
    tiles = {g.get("data-district"): g for g in root.iter(f"{SVG}g")}
    assert set(tiles) == set(districts)
    fill = {name: tile.find(f"{SVG}rect").get("fill") for name, tile in tiles.items()}  # type: ignore[union-attr]
    assert fill["Weststadt"] == charts.SHADES[-1] and fill["Altstadt"] == "#ffffff"
    assert [t.text for t in tiles["Altstadt"].iter(f"{SVG}text")][-1] == charts.WITHHELD
    positions = list(charts.LANDSBERG.values())
    assert len(set(positions)) == len(positions), "no two parts on one tile"


def test_grouped_bars_mark_withheld_figures() -> None:
    values = {("Jobcenter", "sent"): 12, ("Jobcenter", "accepted"): None, ("Caritas", "sent"): 7}
    root = parsed(
        charts.grouped_bars(
            ["Jobcenter", "Caritas"],
            ["sent", "accepted"],
            values,
            "Je Partner",
            "b",
            {"sent": "gesendet", "accepted": "angenommen"},
        )
    )
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"gesendet", "angenommen", "Jobcenter", "Caritas", "12", "7", charts.WITHHELD} <= set(texts)


def test_the_months_up_to_a_period() -> None:
    assert statistics.last_months("2026-03", 4) == ["2025-12", "2026-01", "2026-02", "2026-03"]
    assert statistics.last_months("2026-Q2", 2) == ["2026-05", "2026-06"]
    assert statistics.last_months("2026")[-1] == "2026-12" and len(statistics.last_months("2026")) == 12


def test_the_course_forms_offer_the_courses_services_vocabulary() -> None:
    assert set(course_admin.CATEGORIES) == {c.value for c in courses_domain.CourseCategory}
    assert set(course_admin.FUNDING) == {f.value for f in courses_domain.Funding}
    assert set(course_admin.LEVELS) == {lv.value for lv in GermanLevel} - {"none"}


def test_a_qr_code_is_inline_svg_with_a_title() -> None:
    svg = course_admin.qr_svg("https://integration.landsberg.de/ui/verify/ABCD-EFGH", "QR-Code")
    root = ET.fromstring(svg)  # inline in HTML: the parser puts an <svg> in the SVG namespace itself
    assert root.tag == "svg" and root.find("title") is not None and root.find("title").text == "QR-Code"  # type: ignore[union-attr]
