"""Charts as inline SVG, drawn on the server: no script, no image request (the pages' CSP stays as strict).

Pure functions of the figures the monitoring service publishes. A figure withheld for k-anonymity (``None``)
is drawn as a gap marked with a cross, never as zero. Every chart carries a <title> and is ``role="img"``; the pages put
the same figures in a table next to it for screen readers and for copying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

INK, MUTED, GRID, BRAND = "#1a1a1a", "#4a4a4a", "#c8c8c8", "#00507a"
#: Five shades of the brand blue, light to dark (text on the two darkest is white: contrast 4.5:1 or more).
SHADES = ("#e3eef5", "#b9d3e4", "#7fb0cf", "#2f7aa8", "#00507a")
SERIES = ("#00507a", "#0b6b2f", "#a4161a", "#7a4d00", "#5b2a86")
#: The sign of a withheld figure (k-anonymity), as the council report shows it.
WITHHELD = "\u00d7"
FONT = 'font-family="system-ui, sans-serif" font-size="13"'

#: A schematic map of Landsberg am Lech's parts (Ortsteile, reference/landsberg/districts.json): (column, row) on a
#: grid, roughly as they lie; the Lech runs north to south between the third and fourth column. Not to scale.
LANDSBERG: dict[str, tuple[int, int]] = {
    "Sandau": (2, 0),
    "Pössing": (4, 0),
    "Geratshof": (0, 1),
    "Weststadt": (1, 1),
    "Katharinenvorstadt": (2, 1),
    "Altstadt": (3, 1),
    "Bayervorstadt": (4, 1),
    "Mittelstetten": (0, 2),
    "Neuerpfting": (1, 2),
    "Schwaighofsiedlung": (2, 2),
    "Reisch": (4, 2),
    "Thalhofen": (5, 2),
    "Erpfting": (0, 3),
    "Friedheim": (1, 3),
    "Ellighofen": (2, 3),
    "Pitzling": (3, 3),
    "Pöring": (4, 3),
}
RIVER_AFTER_COLUMN = 2


def _svg(width: int, height: int, title: str, chart_id: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{chart_id}-t" id="{chart_id}" '
        f'class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>'
        f'<title id="{chart_id}-t">{escape(title)}</title>{"".join(body)}</svg>'
    )


def _nice_top(value: float) -> float:
    """A round upper end for an axis (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    title: str,
    chart_id: str,
    *,
    decimals: int = 0,
    top: float | None = None,
    gaps: Sequence[str] | None = None,
) -> str:
    """One series over time; a point without a figure breaks the line and is marked on the axis with its
    ``gaps`` entry (a cross, withheld, by default; a dash for "no figure")."""
    width, height, left, right, upper, lower = 660, 270, 48, 36, 28, 44
    plot_w, plot_h = width - left - right, height - upper - lower
    known = [v for v in values if v is not None]
    ceiling = top if top is not None else _nice_top(max(known, default=0))
    step = plot_w / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return upper + plot_h - plot_h * v / ceiling

    body = []
    for fraction in (0, 0.5, 1):
        level = ceiling * fraction
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(level):.1f}" y2="{y(level):.1f}" stroke="{GRID}"/>')
        shown = f"{level:.{decimals}f}" if decimals else f"{level:g}"
        body.append(f'<text x="{left - 6}" y="{y(level) + 4:.1f}" text-anchor="end" fill="{MUTED}">{shown}</text>')
    path: list[str] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        body.append(
            f'<text x="{x(i):.1f}" y="{height - lower + 18}" text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
        )
        if value is None:
            mark = gaps[i] if gaps is not None else WITHHELD
            body.append(
                f'<text x="{x(i):.1f}" y="{upper + plot_h - 4}" text-anchor="middle" fill="{MUTED}">'
                f"{escape(mark)}</text>"
            )
            if len(path) > 1:
                body.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{BRAND}" stroke-width="2.5"/>')
            path = []
            continue
        path.append(f"{x(i):.1f},{y(value):.1f}")
        shown = f"{value:.{decimals}f}" if decimals else f"{value:.0f}"
        body.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{BRAND}"/>')
        body.append(f'<text x="{x(i):.1f}" y="{y(value) - 8:.1f}" text-anchor="middle" fill="{INK}">{shown}</text>')
    if len(path) > 1:
        body.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{BRAND}" stroke-width="2.5"/>')
    return _svg(width, height, title, chart_id, body)


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], int | None],
    title: str,
    chart_id: str,
    series_labels: Mapping[str, str],
) -> str:
    """Horizontal bars: per group (a partner) one bar per series (a stage); withheld figures marked with a cross."""
    names = {group: group if len(group) <= 40 else group[:39] + "…" for group in groups}
    # The partners' names stand left of their bars in full: the margin grows with the longest (about 7.5 px a
    # character at 13 px), so that no name is cut off at the picture's edge.
    bar_h, gap, group_gap, plot_w = 12, 2, 14, 360
    left = max(120, int(7.5 * max((len(n) for n in names.values()), default=0)) + 16)
    legend_h = 24
    per_group = len(series) * (bar_h + gap) + group_gap
    height = legend_h + max(1, len(groups)) * per_group + 8
    width = left + plot_w + 60
    top = _nice_top(max((v for v in values.values() if v is not None), default=0))
    body = []
    x = 0.0
    for i, name in enumerate(series):  # the legend in one line; about 7.5 px a character at 13 px
        text = series_labels.get(name, name)
        body.append(f'<rect x="{x:.0f}" y="4" width="12" height="12" fill="{SERIES[i % len(SERIES)]}"/>')
        body.append(f'<text x="{x + 16:.0f}" y="15" fill="{INK}">{escape(text)}</text>')
        x += 16 + 8 * len(text) + 22
    width = max(width, int(x))
    for g, group in enumerate(groups):
        y0 = legend_h + g * per_group
        body.append(
            f'<text x="{left - 8}" y="{y0 + per_group / 2:.1f}" text-anchor="end" fill="{INK}">'
            f"{escape(names[group])}</text>"
        )
        for s, name in enumerate(series):
            y = y0 + s * (bar_h + gap)
            value = values.get((group, name))
            if value is None:
                body.append(f'<text x="{left + 2}" y="{y + bar_h - 2}" fill="{MUTED}" font-size="11">{WITHHELD}</text>')
                continue
            w = plot_w * value / top
            body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{SERIES[s % len(SERIES)]}"/>')
            body.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 2}" fill="{INK}" font-size="11">{value}</text>')
    return _svg(width, height, title, chart_id, body)


def district_map(values: Mapping[str, int | None], title: str, chart_id: str, *, withheld: str) -> str:
    """Landsberg's parts as tiles shaded by ``values`` (darker: more); a withheld figure is a cross on a white tile."""
    cell_w, cell_h, pad, river = 150, 62, 6, 18
    columns = 1 + max(c for c, _ in LANDSBERG.values())
    rows = 1 + max(r for _, r in LANDSBERG.values())
    width, height = columns * cell_w + river + 2 * pad, rows * cell_h + 2 * pad
    top = max((v for v in values.values() if v), default=0)

    def shade(value: int | None) -> tuple[str, str]:
        if value is None:
            return "#ffffff", INK
        if top == 0 or value == 0:
            return "#f6f6f6", INK
        index = min(len(SHADES) - 1, int(len(SHADES) * value / (top + 1)))
        return SHADES[index], ("#ffffff" if index >= 3 else INK)

    body = [
        f'<rect x="{pad + (RIVER_AFTER_COLUMN + 1) * cell_w + 2}" y="0" width="{river - 4}" height="{height}" '
        'fill="#9cc3dd"/>',
        f'<text x="{pad + (RIVER_AFTER_COLUMN + 1) * cell_w + river / 2:.1f}" y="{height - 8}" '
        f'text-anchor="middle" fill="{INK}" font-size="11" writing-mode="tb">Lech</text>',
    ]
    for district, (col, row) in LANDSBERG.items():
        x = pad + col * cell_w + (river if col > RIVER_AFTER_COLUMN else 0)
        y = pad + row * cell_h
        value = values.get(district, 0)
        fill, text = shade(value)
        shown = withheld if value is None else str(value)
        body.append(
            f'<g data-district="{escape(district)}"><rect x="{x + 2}" y="{y + 2}" width="{cell_w - 4}" '
            f'height="{cell_h - 4}" rx="6" fill="{fill}" stroke="{MUTED}"/>'
            f'<text x="{x + cell_w / 2}" y="{y + 24}" text-anchor="middle" fill="{text}">{escape(district)}'
            f'</text><text x="{x + cell_w / 2}" y="{y + 44}" text-anchor="middle" fill="{text}" '
            f'font-weight="700">{escape(shown)}</text></g>'
        )
    return _svg(width, height, title, chart_id, body)


def demand_chart(
    labels: Sequence[str],
    expected: Sequence[int],
    low: Sequence[int],
    high: Sequence[int],
    places: Sequence[int | None],
    title: str,
    chart_id: str,
    legend: Mapping[str, str],
) -> str:
    """Columns of expected demand per school year, the forecast's band as a whisker from low to high and the
    planned places as a dark tick across the column (none where no places were entered).

    ``legend`` names the three marks (keys ``expected``, ``band``, ``places``) in the page's language."""
    width, height, left, right, upper, lower = 660, 300, 52, 20, 44, 40
    plot_w, plot_h = width - left - right, height - upper - lower
    ceiling = _nice_top(max([*high, *expected, *(p for p in places if p is not None)], default=0))
    slot = plot_w / max(1, len(labels))
    bar_w = min(56.0, slot * 0.5)

    def y(v: float) -> float:
        return upper + plot_h - plot_h * v / ceiling

    body = []
    x = float(left)
    marks = (
        ("expected", f'<rect x="{{x}}" y="8" width="12" height="12" fill="{SHADES[2]}"/>'),
        ("band", f'<line x1="{{mid}}" x2="{{mid}}" y1="6" y2="22" stroke="{INK}" stroke-width="2"/>'),
        ("places", f'<line x1="{{x}}" x2="{{end}}" y1="14" y2="14" stroke="{SERIES[2]}" stroke-width="4"/>'),
    )
    for key, shape in marks:
        body.append(shape.format(x=f"{x:.0f}", mid=f"{x + 6:.0f}", end=f"{x + 12:.0f}"))
        text = legend.get(key, key)
        body.append(f'<text x="{x + 18:.0f}" y="19" fill="{INK}">{escape(text)}</text>')
        x += 18 + 7.5 * len(text) + 22
    for fraction in (0, 0.5, 1):
        level = ceiling * fraction
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(level):.1f}" y2="{y(level):.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{y(level) + 4:.1f}" text-anchor="end" fill="{MUTED}">{level:g}</text>')
    for i, label in enumerate(labels):
        mid = left + slot * (i + 0.5)
        body.append(
            f'<text x="{mid:.1f}" y="{height - lower + 18}" text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
        )
        body.append(
            f'<rect x="{mid - bar_w / 2:.1f}" y="{y(expected[i]):.1f}" width="{bar_w:.1f}" '
            f'height="{y(0) - y(expected[i]):.1f}" fill="{SHADES[2]}"/>'
        )
        body.append(
            f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="{y(high[i]):.1f}" y2="{y(low[i]):.1f}" stroke="{INK}" '
            f'stroke-width="2"/>'
        )
        for end in (low[i], high[i]):
            body.append(
                f'<line x1="{mid - 6:.1f}" x2="{mid + 6:.1f}" y1="{y(end):.1f}" y2="{y(end):.1f}" '
                f'stroke="{INK}" stroke-width="2"/>'
            )
        body.append(
            f'<text x="{mid + bar_w / 2 + 4:.1f}" y="{y(expected[i]) + 4:.1f}" fill="{INK}" '
            f'font-weight="700">{expected[i]}</text>'
        )
        planned = places[i]
        if planned is not None:
            body.append(
                f'<line x1="{mid - bar_w / 2 - 4:.1f}" x2="{mid + bar_w / 2 + 4:.1f}" y1="{y(planned):.1f}" '
                f'y2="{y(planned):.1f}" stroke="{SERIES[2]}" stroke-width="4"/>'
            )
    return _svg(width, height, title, chart_id, body)
