"""School and Kita planning (Schul- und Kindergartenbedarfsplanung): demand by school year and district for the
next five school years, against the places the city enters. Pure: no I/O, no framework.

The model, simple on purpose so that a planner can follow it by hand:

* **Registered children.** Every child of a newcomer household living here today counts where its age will
  be on 1 September of each school year. Only the age band is known: the age is taken as uniform within
  the band on the day of registration and advances by whole months. Ages 0-5 need a Kita place
  (Krippe and Kindergarten), ages 6-17 a school place; at 18 a child leaves the figures.
* **Arrivals to come.** The children registered in each of the last twelve full months give a straight
  line by least squares (month 1 the oldest, 12 the last); the line continued gives the expected
  arrivals of each month from the current one to the school year's start (never below 0). The band is
  that line plus and minus the residual standard deviation ``s = sqrt(sum of squared residuals / 10)``,
  month by month (the low end not below 0). Arrivals are spread over districts and over Kita and
  school as the last twelve months' child registrations were, and keep the need they arrived with.
* **Disclosure.** Districts where fewer than ``k`` children are behind the figures (living here or
  registered in the last twelve months) are merged into "other districts"; while that group itself
  is below ``k``, the smallest remaining district joins it. Below ``k`` children in the whole city,
  nothing is published. Monthly arrival counts are never published, only the fitted line.

The indicator report's planning tables (children by district and age cohort, expected on the next 1 Septembers)
are here too: :func:`children_tables`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.vocabulary import AGE_BAND_YEARS, AgeBand
from services.monitoring.domain import PersonFact
from services.monitoring.tables import CITY, Group, Table, count_table, protect

YEARS = 5
HISTORY_MONTHS = 12
OTHER = "other districts"
#: The need a child's age makes: [first year, year after the last).
KINDS: dict[str, tuple[int, int]] = {"kita": (0, 6), "school": (6, 18)}
#: The age bands of children: the children-by-cohort tables count these.
CHILD_BANDS = (AgeBand.AGE_0_2, AgeBand.AGE_3_5, AgeBand.AGE_6_9, AgeBand.AGE_10_17)


@dataclass(frozen=True)
class Capacity:
    """Places the city plans for a school year (starting 1 September of ``year``) in a district."""

    year: int
    district: str
    kind: str
    places: int


@dataclass(frozen=True)
class Trend:
    """The least-squares line through the last twelve months' child registrations (month 1 the oldest)."""

    first_month: date
    intercept: float
    slope: float
    spread: float
    arrivals: int

    def expected(self, month: int) -> float:
        return max(0.0, self.intercept + self.slope * month)

    def low(self, month: int) -> float:
        return max(0.0, self.intercept + self.slope * month - self.spread)

    def high(self, month: int) -> float:
        return max(0.0, self.intercept + self.slope * month + self.spread)


@dataclass(frozen=True)
class Demand:
    """Expected children needing a place (with the forecast's band) against the places entered."""

    year: int
    district: str
    kind: str
    expected: int
    low: int
    high: int
    places: int | None

    @property
    def school_year(self) -> str:
        return f"{self.year}/{(self.year + 1) % 100:02d}"

    @property
    def gap(self) -> int | None:
        """Places minus expected children: below 0, places are missing."""
        return None if self.places is None else self.places - self.expected


@dataclass(frozen=True)
class Forecast:
    as_of: date
    k: int
    starts: list[date]
    rows: list[Demand] = field(default_factory=list)
    trend: Trend | None = None
    #: The city total was below k: nothing is published.
    withheld: bool = False
    merged: list[str] = field(default_factory=list)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_between(start: date, end: date) -> int:
    """Whole months from ``start`` to ``end`` (2025-09-01 to 2027-09-01: 24)."""
    return (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)


def school_year_starts(today: date, years: int = YEARS) -> list[date]:
    """1 September of the next ``years`` school years (the first after today)."""
    first = today.year if date(today.year, 9, 1) > today else today.year + 1
    return [date(first + i, 9, 1) for i in range(years)]


def kind_shares(band: AgeBand, registered_on: date, on: date) -> dict[str, float]:
    """How much of a child of ``band`` at ``registered_on`` needs a Kita or a school place on ``on``."""
    first, last = AGE_BAND_YEARS[band]
    years = max(0, months_between(registered_on, on)) / 12
    low, high, width = first + years, last + 1 + years, last + 1 - first
    shares = {}
    for kind, (start, end) in KINDS.items():
        overlap = min(high, end) - max(low, start)
        if overlap > 0:
            shares[kind] = overlap / width
    return shares


def arrival_kind(band: AgeBand) -> str:
    return "kita" if AGE_BAND_YEARS[band][0] < KINDS["kita"][1] else "school"


def fit_trend(counts: Sequence[int], first_month: date) -> Trend:
    """Least squares y = a + b*t through (t, counts[t-1]), t = 1..n; s from the residuals (n - 2 degrees)."""
    n = len(counts)
    mean_t = (n + 1) / 2
    mean_y = sum(counts) / n
    sxx = sum((t - mean_t) ** 2 for t in range(1, n + 1))
    slope = sum((t - mean_t) * (y - mean_y) for t, y in enumerate(counts, start=1)) / sxx
    intercept = mean_y - slope * mean_t
    residuals = sum((y - intercept - slope * t) ** 2 for t, y in enumerate(counts, start=1))
    spread = math.sqrt(residuals / (n - 2)) if n > 2 else 0.0
    return Trend(first_month, intercept, slope, spread, sum(counts))


def _coarsen(basis: Mapping[str, int], k: int) -> tuple[dict[str, str], bool]:
    """district -> the published row it goes into; True when the whole city is below k."""
    total = sum(basis.values())
    if 0 < total < k:
        return {d: OTHER for d in basis}, True
    small = {d for d, n in basis.items() if 0 < n < k}
    if small:
        rest = sorted((n, d) for d, n in basis.items() if d not in small and n > 0)
        while 0 < sum(basis[d] for d in small) < k and rest:
            small.add(rest.pop(0)[1])
    return {d: OTHER if d in small else d for d in basis}, False


def forecast(
    persons: Sequence[PersonFact], today: date, capacities: Iterable[Capacity], k: int, years: int = YEARS
) -> Forecast:
    """Kita and school demand per school year and district (see the module docstring for the model)."""
    starts = school_year_starts(today, years)
    this_month = date(today.year, today.month, 1)
    first_month = _add_months(this_month, -HISTORY_MONTHS)
    children = [p for p in persons if p.age_band in CHILD_BANDS]
    living = [p for p in children if p.lives_here_on(today)]
    arrived = [p for p in children if first_month <= p.registered_on < this_month]

    monthly = Counter(months_between(first_month, p.registered_on) + 1 for p in arrived)
    trend = fit_trend([monthly.get(t, 0) for t in range(1, HISTORY_MONTHS + 1)], first_month)
    where = Counter((p.district, arrival_kind(p.age_band)) for p in arrived)

    basis = Counter({p.district: 0 for p in children})
    for p in {p.person_id: p for p in (*living, *arrived)}.values():
        basis[p.district] += 1
    published, withheld = _coarsen(basis, k)
    if withheld:
        return Forecast(today, k, starts, withheld=True)

    places: Counter[tuple[int, str, str]] = Counter()
    entered: set[tuple[int, str, str]] = set()
    for c in capacities:
        key = (c.year, published.get(c.district, c.district), c.kind)
        places[key] += c.places
        entered.add(key)

    rows: list[Demand] = []
    districts = sorted(set(published.values()) | {d for _, d, _ in entered}, key=lambda d: (d == OTHER, d))
    for start in starts:
        # Month t of the line: 13 is the current month, the last one counted is the school year's August.
        months = range(HISTORY_MONTHS + 1, HISTORY_MONTHS + 1 + months_between(this_month, start))
        coming = (
            sum(trend.expected(t) for t in months),
            sum(trend.low(t) for t in months),
            sum(trend.high(t) for t in months),
        )
        registered: dict[tuple[str, str], float] = defaultdict(float)
        for p in living:
            for kind, share in kind_shares(p.age_band, p.registered_on, start).items():
                registered[(published[p.district], kind)] += share
        share_of: Counter[tuple[str, str]] = Counter()
        for (district, kind), n in where.items():
            share_of[(published[district], kind)] += n
        for district in districts:
            for kind in KINDS:
                base = registered[(district, kind)]
                part = share_of[(district, kind)] / trend.arrivals if trend.arrivals else 0.0
                key = (start.year, district, kind)
                expected, low, high = (round(base + part * n) for n in coming)
                rows.append(
                    Demand(start.year, district, kind, expected, low, high, places[key] if key in entered else None)
                )
    merged = sorted(d for d, to in published.items() if to == OTHER)
    return Forecast(today, k, starts, rows, trend, merged=merged)


def document(result: Forecast) -> dict[str, Any]:
    """The forecast as the API publishes it."""
    trend = result.trend
    return {
        "as_of": result.as_of.isoformat(),
        "k": result.k,
        "withheld": result.withheld,
        "school_years": [f"{d.year}/{(d.year + 1) % 100:02d}" for d in result.starts],
        "merged_into_other": len(result.merged),
        "trend": None
        if trend is None or result.withheld
        else {
            "from_month": trend.first_month.isoformat()[:7],
            "months": HISTORY_MONTHS,
            "per_month_now": round(trend.expected(HISTORY_MONTHS), 2),
            "slope_per_month": round(trend.slope, 3),
            "band_per_month": round(trend.spread, 2),
        },
        "rows": [
            {
                "year": r.year,
                "school_year": r.school_year,
                "district": r.district,
                "kind": r.kind,
                "expected": r.expected,
                "low": r.low,
                "high": r.high,
                "places": r.places,
                "gap": r.gap,
            }
            for r in result.rows
        ],
        "note": (
            "Children of newcomer households living here, aged by whole months from their age band (ages uniform "
            "within it), plus the arrivals the last twelve months' straight-line trend expects (low and high: "
            "the line minus and plus the residual standard deviation per month). Districts with fewer than k "
            "children behind the figures are merged into 'other districts'."
        ),
    }


CSV_HEADER = ["school_year", "starts_on", "district", "kind", "expected", "low", "high", "places", "gap"]


def to_csv(result: Forecast) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in result.rows:
        writer.writerow(
            [
                r.school_year,
                date(r.year, 9, 1).isoformat(),
                r.district,
                r.kind,
                r.expected,
                r.low,
                r.high,
                "" if r.places is None else r.places,
                "" if r.gap is None else r.gap,
            ]
        )
    return out.getvalue()


# --- children by age cohort: the planning tables of the indicator report ---------------------


def band_probabilities(band: AgeBand, registered_on: date, on: date) -> dict[AgeBand, float]:
    """Where a person of ``band`` on ``registered_on`` is on ``on``: ages uniform within the band."""
    first, last = AGE_BAND_YEARS[band]
    years = max(0.0, (on - registered_on).days / 365.25)
    low, high = first + years, last + 1 + years
    width = last + 1 - first
    spread: dict[AgeBand, float] = {}
    for target in CHILD_BANDS:
        t_first, t_last = AGE_BAND_YEARS[target]
        overlap = min(high, t_last + 1) - max(low, t_first)
        if overlap > 0:
            spread[target] = overlap / width
    return spread


def planning_dates(today: date, years: int = 3) -> list[date]:
    """Today, then 1 September (start of the school and kindergarten year) of the next years."""
    september = date(today.year, 9, 1)
    first = september if september > today else date(today.year + 1, 9, 1)
    return [today, *(date(first.year + i, 9, 1) for i in range(years))]


def children_tables(persons: Sequence[PersonFact], today: date, k: int) -> list[Table]:
    """Children of newcomer households by age cohort: now by district, and expected for the next years.

    Bands are known, birth dates are not: each child's age is taken as uniform within its band on
    the day it registered and aged from there; expected numbers are rounded to whole children.
    Children who move away leave the figures; newcomers still to come are not projected.
    """
    bands = [b.value for b in CHILD_BANDS]
    children = [p for p in persons if p.age_band in CHILD_BANDS and p.lives_here_on(today)]

    def expected(on: date, key: str | None) -> dict[tuple[str, str], int]:
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for p in children:
            for band, share in band_probabilities(p.age_band, p.registered_on, on).items():
                sums[(p.district if key is None else key, band.value)] += share
        return {cell: round(value) for cell, value in sums.items()}

    by_district = expected(today, None)
    districts = sorted({d for d, _ in by_district})
    dates = planning_dates(today)
    projection: dict[tuple[str, str], int] = {}
    for on in dates:
        for (_, band), value in expected(on, "all").items():
            projection[(band, on.isoformat())] = value
    households = len({p.household_id for p in children if any(band_probabilities(p.age_band, p.registered_on, today))})
    note = "Expected values: ages are uniform within a band; no further arrivals are projected."
    g = Group.DEMOGRAPHY
    counts = (
        count_table(
            "children_by_district",
            f"Children of newcomer households by district on {today.isoformat()}",
            g,
            "children",
            districts,
            bands,
            by_district,
            row_totals=True,
            column_totals=True,
            note=note,
        ),
        count_table(
            "children_projection",
            "Children of newcomer households by age cohort, expected",
            g,
            "children",
            bands,
            [d.isoformat() for d in dates],
            projection,
            note=note,
        ),
        count_table(
            "households_with_children",
            "Newcomer households with children",
            g,
            "households",
            [CITY],
            ["count"],
            {(CITY, "count"): households},
            column_totals=False,
        ),
    )
    return [protect(spec, k) for spec in counts]
