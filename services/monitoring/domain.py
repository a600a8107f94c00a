"""Rules of the monitoring service: indicators, k-anonymity, segregation, planning, council proposals.

Pure: no I/O, no framework. The read model hands in *facts* (pseudonymous, minimal) and gets
back published figures. Everything a council report shows passes through :func:`protect`.

Privacy rules, documented here because the report cites them:

* Primary suppression: a count cell (or total) with ``0 < value < k`` is withheld (``k`` is a
  setting, default 5). Zeros are published: "nobody" discloses nothing about a person, and
  withholding zeros would hide most of a small city's tables.
* Complementary suppression: every published equation (a row or column with its total) that
  contains a withheld entry contains at least two, so no single difference reveals one; then an
  exact audit (linear algebra over all published equations) adds suppressions until no withheld
  entry is determined by the published figures.
* Derived figures (medians, shares, the dissimilarity index) are withheld when their base is
  below ``k``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from contracts.vocabulary import (
    AGE_BAND_YEARS,
    AgeBand,
    EsserDimension,
    Gender,
    GermanLevel,
    ResidenceStatusGroup,
    ServiceType,
)

LOCAL_TIME = ZoneInfo("Europe/Berlin")
CITY = "Landsberg am Lech"

# --- vocabulary of the indicators ------------------------------------------------------------


class Group(StrEnum):
    """How the indicators are grouped: Esser's four dimensions, then demography, segregation, network."""

    CULTURE_AND_LANGUAGE = EsserDimension.CULTURE_AND_LANGUAGE.value
    PLACEMENT = EsserDimension.PLACEMENT.value
    INTERACTION = EsserDimension.INTERACTION.value
    IDENTIFICATION = EsserDimension.IDENTIFICATION.value
    DEMOGRAPHY = "demography"
    SEGREGATION = "segregation"
    NETWORK = "network"


GROUP_TITLES = {
    Group.CULTURE_AND_LANGUAGE: "Culture and language (Kulturation)",
    Group.PLACEMENT: "Placement: education and work (Platzierung)",
    Group.INTERACTION: "Interaction (Interaktion)",
    Group.IDENTIFICATION: "Identification (Identifikation)",
    Group.DEMOGRAPHY: "Demography",
    Group.SEGREGATION: "Segregation",
    Group.NETWORK: "Partner network",
}

#: Course categories (the courses service's vocabulary) by what they serve.
LANGUAGE_CATEGORIES = ("integration_course", "german_second_language", "job_german", "literacy")
INTERACTION_CATEGORIES = ("cultural_education", "civic_education", "orientation", "parents_and_women")
COUNSELLING_SERVICES = frozenset(
    {ServiceType.ASYLUM_SOCIAL_COUNSELLING, ServiceType.MIGRATION_COUNSELLING, ServiceType.YOUTH_MIGRATION_SERVICE}
)
PLACEMENT_SERVICES = (ServiceType.JOB_PLACEMENT, ServiceType.QUALIFICATION_RECOGNITION)  # Jobcenter, IHK
CHILD_BANDS = (AgeBand.AGE_0_2, AgeBand.AGE_3_5, AgeBand.AGE_6_9, AgeBand.AGE_10_17)
SURVEY_ANSWERS = ("very_satisfied", "satisfied", "less_satisfied", "dissatisfied")

# --- periods ---------------------------------------------------------------------------------


class PeriodError(ValueError):
    """Not a period this service reports on."""


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month (``2026-11``), quarter (``2026-Q4``) or year (``2026``)."""

    start: date
    end: date  # inclusive
    label: str

    @staticmethod
    def parse(text: str) -> Period:
        text = text.strip()
        try:
            if len(text) == 4 and text.isdigit():
                year = int(text)
                return Period(date(year, 1, 1), date(year, 12, 31), text)
            year_text, rest = text.split("-", 1)
            year = int(year_text)
            if len(year_text) != 4:
                raise PeriodError(text)
            if rest.upper().startswith("Q") and rest[1:].isdigit() and 1 <= int(rest[1:]) <= 4:
                quarter = int(rest[1:])
                start = date(year, 3 * quarter - 2, 1)
                return Period(start, _month_end(date(year, 3 * quarter, 1)), f"{year:04d}-Q{quarter}")
            if len(rest) == 2 and rest.isdigit() and 1 <= int(rest) <= 12:
                start = date(year, int(rest), 1)
                return Period(start, _month_end(start), f"{year:04d}-{rest}")
        except ValueError as exc:
            raise PeriodError(f"{text!r} is not a period: use 2026-11, 2026-Q4 or 2026") from exc
        raise PeriodError(f"{text!r} is not a period: use 2026-11, 2026-Q4 or 2026")

    @property
    def kind(self) -> str:
        return "year" if len(self.label) == 4 else "quarter" if "Q" in self.label else "month"

    def previous(self) -> Period:
        if self.kind == "year":
            return Period.parse(f"{self.start.year - 1:04d}")  # years below 1000 keep four digits
        if self.kind == "quarter":
            before = self.start - timedelta(days=1)
            return Period.parse(f"{before.year:04d}-Q{(before.month - 1) // 3 + 1}")
        before = self.start - timedelta(days=1)
        return Period.parse(f"{before.year:04d}-{before.month:02d}")

    def last_month(self) -> Period:
        return Period.parse(f"{self.end.year}-{self.end.month:02d}")

    def contains(self, day: date | None) -> bool:
        return day is not None and self.start <= day <= self.end


def _month_end(first: date) -> date:
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return following - timedelta(days=1)


def local_day(moment: datetime) -> date:
    """The calendar day in Landsberg (naive datetimes are UTC, as SQLite hands them back)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(LOCAL_TIME).date()


# --- facts (what the read model keeps) -------------------------------------------------------


@dataclass(frozen=True)
class PersonFact:
    """The latest pseudonymous profile of a registered newcomer; erased persons are not handed in."""

    person_id: str
    household_id: str
    registered_on: date
    nationality: str
    age_band: AgeBand
    gender: Gender
    residence_status_group: ResidenceStatusGroup
    district: str
    moved_away_on: date | None = None

    def lives_here_on(self, day: date) -> bool:
        return self.registered_on <= day and (self.moved_away_on is None or self.moved_away_on > day)


@dataclass(frozen=True)
class ReferralFact:
    """One referral event: kind is sent, accepted, declined, completed or escalated."""

    referral_id: str
    kind: str
    at: datetime
    partner: str
    service_type: ServiceType
    outcome: str | None = None
    #: Only on 'sent' of a counselling referral: links it to the registration day.
    person_id: str | None = None


@dataclass(frozen=True)
class CourseFact:
    course_id: str
    category: str
    capacity: int
    women_only: bool = False
    ends_on: date | None = None
    cancelled_on: date | None = None

    def open_on(self, day: date) -> bool:
        return (self.cancelled_on is None or self.cancelled_on > day) and (self.ends_on is None or self.ends_on >= day)


@dataclass(frozen=True)
class EnrolmentFact:
    """One enrolment event: kind is waitlisted, seat_offered, enrolled, offer_expired, cancelled or completed."""

    enrolment_id: str
    course_id: str
    category: str
    kind: str
    at: datetime
    #: Only on 'enrolled': links the enrolment to the gender for the share of women.
    person_id: str | None = None
    level_reached: GermanLevel | None = None
    result: str | None = None


@dataclass(frozen=True)
class PassFact:
    kind: str
    at: datetime


@dataclass(frozen=True)
class Survey:
    """The citizens' survey (Bürgerbefragung): percentages per question, entered by an analyst."""

    year: int
    source: str
    german_citizens_percent: float | None
    #: question -> answer (SURVEY_ANSWERS) -> percent
    questions: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class DistrictReference:
    population: Mapping[str, int]
    source: str
    illustrative: bool


@dataclass(frozen=True)
class Facts:
    persons: Sequence[PersonFact] = ()
    referrals: Sequence[ReferralFact] = ()
    courses: Sequence[CourseFact] = ()
    enrolments: Sequence[EnrolmentFact] = ()
    passes: Sequence[PassFact] = ()
    surveys: Sequence[Survey] = ()
    reference: DistrictReference | None = None


# --- published tables and k-anonymity -------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    value: float | int | None
    suppressed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "suppressed": self.suppressed}


@dataclass(frozen=True)
class Table:
    """One indicator: a grid of cells with the totals that are published beside it."""

    id: str
    title: str
    group: Group
    unit: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    row_totals: dict[str, Cell] | None = None
    column_totals: dict[str, Cell] | None = None
    total: Cell | None = None
    note: str = ""

    def cell(self, row: str, column: str) -> Cell:
        return self.cells[(row, column)]

    def headline(self) -> Cell | None:
        """The one figure a trend compares: the grand total, a single column's total, or the only cell."""
        if self.total is not None:
            return self.total
        if self.column_totals is not None and len(self.columns) == 1:
            return self.column_totals[self.columns[0]]
        if len(self.rows) == 1 and len(self.columns) == 1:
            return self.cells[(self.rows[0], self.columns[0])]
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "columns": self.columns,
            "rows": [
                {
                    "label": row,
                    "cells": {c: self.cells[(row, c)].as_dict() for c in self.columns},
                    "total": self.row_totals[row].as_dict() if self.row_totals is not None else None,
                }
                for row in self.rows
            ],
            "column_totals": (
                {c: cell.as_dict() for c, cell in self.column_totals.items()}
                if self.column_totals is not None
                else None
            ),
            "total": self.total.as_dict() if self.total is not None else None,
            "note": self.note,
        }


Position = tuple[int, int]


@dataclass
class _Grid:
    """A count table with its published totals as one augmented grid: totals sit at index R / C."""

    values: dict[Position, int]
    lines: list[list[Position]]  # each: cells..., then the total that they sum to
    totals: set[Position] = field(default_factory=set)


def _grid(matrix: Sequence[Sequence[int]], n_cols: int, row_totals: bool, column_totals: bool) -> _Grid:
    n_rows = len(matrix)
    values = {(r, c): int(matrix[r][c]) for r in range(n_rows) for c in range(n_cols)}
    grid = _Grid(values=values, lines=[])
    if row_totals:
        for r in range(n_rows):
            values[(r, n_cols)] = sum(matrix[r])
            grid.totals.add((r, n_cols))
            grid.lines.append([*((r, c) for c in range(n_cols)), (r, n_cols)])
    if column_totals:
        for c in range(n_cols):
            values[(n_rows, c)] = sum(matrix[r][c] for r in range(n_rows))
            grid.totals.add((n_rows, c))
            grid.lines.append([*((r, c) for r in range(n_rows)), (n_rows, c)])
    if row_totals and column_totals:
        values[(n_rows, n_cols)] = sum(map(sum, matrix))
        grid.totals.add((n_rows, n_cols))
        grid.lines.append([*((n_rows, c) for c in range(n_cols)), (n_rows, n_cols)])
        grid.lines.append([*((r, n_cols) for r in range(n_rows)), (n_rows, n_cols)])
    return grid


def determined(lines: Sequence[Sequence[Position]], totals: set[Position], hidden: set[Position]) -> set[Position]:
    """The hidden entries that the published equations pin down exactly (an exact rank test).

    Each line says ``sum(cells) - total = 0``; known entries move to the right-hand side, so the
    system in the hidden entries has the matrix ``A``. Entry ``j`` is determined exactly when it
    is fixed in every solution, i.e. when ``e_j`` lies in the row space of ``A``.
    """
    order = sorted(hidden)
    index = {pos: i for i, pos in enumerate(order)}
    rows: list[list[Fraction]] = []
    for line in lines:
        coefficients = [Fraction(0)] * len(order)
        for pos in line:
            if pos in index:
                coefficients[index[pos]] += -1 if pos in totals else 1
        if any(coefficients):
            rows.append(coefficients)
    # Reduced row echelon form.
    pivots: list[int] = []
    r = 0
    for col in range(len(order)):
        pivot = next((i for i in range(r, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        lead = rows[r][col]
        rows[r] = [x / lead for x in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[r], strict=True)]
        pivots.append(col)
        r += 1
    free = [c for c in range(len(order)) if c not in pivots]
    found = set()
    for row_index, col in enumerate(pivots):
        if all(rows[row_index][f] == 0 for f in free):
            found.add(order[col])
    return found


def suppression_pattern(
    matrix: Sequence[Sequence[int]], k: int, *, row_totals: bool, column_totals: bool, n_cols: int | None = None
) -> tuple[set[Position], _Grid]:
    """Which entries of the augmented grid to withhold (see the module docstring)."""
    grid = _grid(matrix, len(matrix[0]) if n_cols is None and matrix else n_cols or 0, row_totals, column_totals)
    hidden = {pos for pos, value in grid.values.items() if 0 < value < k}

    def complement(line: Sequence[Position]) -> Position | None:
        free = [p for p in line if p not in hidden]
        ranked = sorted(
            free,
            key=lambda p: (
                0 if p not in grid.totals and grid.values[p] > 0 else 1 if p in grid.totals else 2,
                grid.values[p],
                p,
            ),
        )
        return ranked[0] if ranked else None

    while True:
        single = next((line for line in grid.lines if sum(p in hidden for p in line) == 1), None)
        if single is not None:
            extra = complement(single)
            if extra is None:  # pragma: no cover - a line has at least two entries
                break
            hidden.add(extra)
            continue
        exposed = sorted(determined(grid.lines, grid.totals, hidden))
        if not exposed:
            break
        candidates = [p for line in grid.lines if exposed[0] in line for p in [complement(line)] if p is not None]
        if not candidates:
            break  # everything on its lines is withheld already: nothing more to do
        hidden.add(min(candidates, key=lambda p: (p in grid.totals, grid.values[p], p)))
    return hidden, grid


def protect(
    table_id: str,
    title: str,
    group: Group,
    unit: str,
    rows: Sequence[str],
    columns: Sequence[str],
    counts: Mapping[tuple[str, str], int],
    k: int,
    *,
    row_totals: bool = False,
    column_totals: bool = True,
    note: str = "",
    suppress: bool = True,
) -> Table:
    """A count table, k-anonymous with complementary suppression (``suppress=False`` for public figures)."""
    matrix = [[int(counts.get((r, c), 0)) for c in columns] for r in rows]
    hidden, grid = suppression_pattern(
        matrix, k if suppress else 0, row_totals=row_totals, column_totals=column_totals, n_cols=len(columns)
    )
    n_rows, n_cols = len(rows), len(columns)

    def cell(pos: Position) -> Cell:
        return Cell(None, True) if pos in hidden else Cell(grid.values[pos])

    return Table(
        id=table_id,
        title=title,
        group=group,
        unit=unit,
        rows=list(rows),
        columns=list(columns),
        cells={(r, c): cell((i, j)) for i, r in enumerate(rows) for j, c in enumerate(columns)},
        row_totals={r: cell((i, n_cols)) for i, r in enumerate(rows)} if row_totals else None,
        column_totals={c: cell((n_rows, j)) for j, c in enumerate(columns)} if column_totals else None,
        total=cell((n_rows, n_cols)) if row_totals and column_totals else None,
        note=note,
    )


def derived(
    table_id: str,
    title: str,
    group: Group,
    unit: str,
    values: Mapping[str, tuple[float | None, int]],
    k: int,
    *,
    column: str = "value",
    note: str = "",
    extra_risk: Mapping[str, bool] | None = None,
) -> Table:
    """A table of derived figures (median, share, index), one per row; withheld when its base is below k."""
    cells = {}
    for row, (value, base) in values.items():
        risky = (0 < base < k) or bool(extra_risk and extra_risk.get(row))
        cells[(row, column)] = Cell(None, True) if risky else Cell(value if base else None)
    return Table(table_id, title, group, unit, list(values), [column], cells, note=note)


def _distribution(
    table_id: str,
    title: str,
    group: Group,
    unit: str,
    counts: Mapping[str, int],
    k: int,
    order: Iterable[str] | None = None,
    note: str = "",
) -> Table:
    rows = list(order) if order is not None else sorted(counts)
    return protect(table_id, title, group, unit, rows, ["count"], {(r, "count"): counts.get(r, 0) for r in rows}, k,
                   note=note)  # fmt: skip


# --- the indicators --------------------------------------------------------------------------


def _median(values: list[float], digits: int = 1) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _in(period: Period, moment: datetime) -> bool:
    return period.contains(local_day(moment))


def _living(persons: Sequence[PersonFact], day: date) -> list[PersonFact]:
    return [p for p in persons if p.lives_here_on(day)]


def dissimilarity(newcomers: Mapping[str, int], population: Mapping[str, int]) -> float | None:
    """Index of dissimilarity D = 1/2 * sum_i |n_i/N - p_i/P| (0: same spread, 1: fully apart)."""
    n_total, p_total = sum(newcomers.values()), sum(population.values())
    if n_total <= 0 or p_total <= 0:
        return None
    districts = set(newcomers) | set(population)
    return sum(abs(newcomers.get(d, 0) / n_total - population.get(d, 0) / p_total) for d in districts) / 2


def over_representation(newcomers: Mapping[str, int], population: Mapping[str, int]) -> dict[str, float]:
    """n_i/N - p_i/P per district: positive where newcomers live more than the city as a whole."""
    n_total, p_total = sum(newcomers.values()), sum(population.values())
    if n_total <= 0 or p_total <= 0:
        return {}
    return {d: newcomers.get(d, 0) / n_total - population.get(d, 0) / p_total for d in set(newcomers) | set(population)}


def newcomers_by_district(persons: Sequence[PersonFact], day: date) -> Counter[str]:
    return Counter(p.district for p in _living(persons, day))


def enrolment_status_on(enrolments: Sequence[EnrolmentFact], day: date) -> dict[str, tuple[str, str]]:
    """enrolment id -> (course id, last status) at the end of ``day``."""
    ranked = {"waitlisted": 0, "seat_offered": 1, "offer_expired": 2, "enrolled": 3, "cancelled": 4, "completed": 5}
    status: dict[str, tuple[str, str]] = {}
    for fact in sorted(enrolments, key=lambda f: (f.at, ranked.get(f.kind, 9))):
        if fact.kind in ranked and local_day(fact.at) <= day:
            status[fact.enrolment_id] = (fact.course_id, fact.kind)
    return status


def waiting_and_free(facts: Facts, day: date) -> dict[str, tuple[int, int]]:
    """category -> (people waiting, free seats) over the courses open at the end of ``day``."""
    courses = {c.course_id: c for c in facts.courses if c.open_on(day)}
    held: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    for course_id, kind in enrolment_status_on(facts.enrolments, day).values():
        if course_id not in courses:
            continue
        if kind in ("enrolled", "seat_offered"):
            held[course_id] += 1
        elif kind == "waitlisted":
            waiting[courses[course_id].category] += 1
    result: dict[str, tuple[int, int]] = {}
    for course in courses.values():
        w, f = result.get(course.category, (0, 0))
        result[course.category] = (w, f + max(0, course.capacity - held[course.course_id]))
    for category, count in waiting.items():
        w, f = result.get(category, (0, 0))
        result[category] = (w + count, f)
    return result


def _first_counselling_days(facts: Facts, period: Period) -> list[float]:
    """Days from registration to the first counselling referral sent, for those first sent in the period."""
    registered = {p.person_id: p.registered_on for p in facts.persons}
    first: dict[str, datetime] = {}
    for fact in facts.referrals:
        counselling = fact.kind == "sent" and fact.service_type in COUNSELLING_SERVICES
        person = fact.person_id
        if counselling and person in registered and (person not in first or fact.at < first[person]):
            first[person] = fact.at
    return [float((local_day(at) - registered[person]).days) for person, at in first.items() if _in(period, at)]


def _response_hours(facts: Facts, period: Period) -> dict[str, list[float]]:
    """partner -> hours from sending to the first answer (accepted or declined), answered in the period."""
    sent: dict[str, ReferralFact] = {}
    answered: dict[str, ReferralFact] = {}
    for fact in sorted(facts.referrals, key=lambda f: f.at):
        if fact.kind == "sent":
            sent.setdefault(fact.referral_id, fact)
        elif fact.kind in ("accepted", "declined"):
            answered.setdefault(fact.referral_id, fact)
    hours: dict[str, list[float]] = defaultdict(list)
    for referral_id, answer in answered.items():
        origin = sent.get(referral_id)
        if origin is not None and _in(period, answer.at):
            hours[answer.partner].append((answer.at - origin.at).total_seconds() / 3600)
    return hours


def women_share(facts: Facts, period: Period) -> tuple[float | None, int, int]:
    """(percent of course enrolments by women, women, enrolments with a known gender) in the period."""
    gender = {p.person_id: p.gender for p in facts.persons}
    known = [gender[f.person_id] for f in facts.enrolments
             if f.kind == "enrolled" and _in(period, f.at) and f.person_id in gender]  # fmt: skip
    women = sum(g is Gender.FEMALE for g in known)
    return (round(100 * women / len(known), 1) if known else None), women, len(known)


def indicators(facts: Facts, period: Period, k: int) -> list[Table]:
    """Every indicator of a period, k-anonymous, in the order of the groups."""
    tables: list[Table] = []
    registered = [p for p in facts.persons if period.contains(p.registered_on)]
    enrolled = [f for f in facts.enrolments if f.kind == "enrolled" and _in(period, f.at)]
    completed = [f for f in facts.enrolments if f.kind == "completed" and _in(period, f.at)]
    referrals = [f for f in facts.referrals if _in(period, f.at)]

    # Culture and language.
    g = Group.CULTURE_AND_LANGUAGE
    tables.append(_distribution(
        "language_course_enrolments", "Language-course enrolments by course category", g, "enrolments",
        Counter(f.category for f in enrolled if f.category in LANGUAGE_CATEGORIES), k, LANGUAGE_CATEGORIES,
    ))  # fmt: skip
    tables.append(_distribution(
        "language_course_completions", "Language-course completions by course category", g, "learners",
        Counter(f.category for f in completed if f.category in LANGUAGE_CATEGORIES), k, LANGUAGE_CATEGORIES,
    ))  # fmt: skip
    levels = [lv.value for lv in GermanLevel if lv is not GermanLevel.NONE]
    tables.append(_distribution(
        "cefr_levels_reached", "German levels (CEFR) reached at course completion", g, "learners",
        Counter(f.level_reached.value for f in completed if f.level_reached is not None), k, levels,
    ))  # fmt: skip

    # Placement.
    g = Group.PLACEMENT
    columns = ["sent", "accepted", "declined", "completed_successful", "completed_unsuccessful"]
    counts: Counter[tuple[str, str]] = Counter()
    for f in referrals:
        if f.service_type in PLACEMENT_SERVICES:
            kind = f"completed_{f.outcome}" if f.kind == "completed" else f.kind
            counts[(f.service_type.value, kind)] += 1
    tables.append(protect(
        "placement_referrals", "Referrals to the Jobcenter (job placement) and the IHK (recognition) and outcomes",
        g, "referrals", [s.value for s in PLACEMENT_SERVICES], columns, counts, k,
        note="Columns are stages of one funnel, not parts of a whole: only column totals are published.",
    ))  # fmt: skip
    recognitions = sum(1 for p in facts.passes if p.kind == "recognition" and _in(period, p.at))
    tables.append(protect(
        "recognitions", "Foreign qualifications recognised (education pass entries)", g, "recognitions",
        [CITY], ["count"], {(CITY, "count"): recognitions}, k, column_totals=False,
    ))  # fmt: skip
    tables.append(_distribution(
        "course_completions", "Course completions by course category", g, "learners",
        Counter(f.category for f in completed), k,
    ))  # fmt: skip
    days = _first_counselling_days(facts, period)
    tables.append(derived(
        "days_to_first_counselling", "Median days from registration to the first counselling referral sent", g,
        "days", {CITY: (_median(days), len(days))}, k, column="median_days",
        note="Persons whose first counselling referral was sent in the period.",
    ))  # fmt: skip

    # Interaction.
    g = Group.INTERACTION
    tables.append(_distribution(
        "participation_offers", "Enrolments in cultural, civic and meeting offers", g, "enrolments",
        Counter(f.category for f in enrolled if f.category in INTERACTION_CATEGORIES), k, INTERACTION_CATEGORIES,
    ))  # fmt: skip

    # Identification: the latest survey up to the period's year (already aggregate percentages).
    g = Group.IDENTIFICATION
    survey = max((s for s in facts.surveys if s.year <= period.end.year), key=lambda s: s.year, default=None)
    if survey is not None:
        questions = list(survey.questions)
        citizens = survey.german_citizens_percent
        tables.append(Table(
            "citizens_survey", f"Citizens' survey {survey.year}: satisfaction (percent of respondents)", g,
            "percent", questions, list(SURVEY_ANSWERS),
            {(q, a): Cell(survey.questions[q].get(a)) for q in questions for a in SURVEY_ANSWERS},
            note=f"Source: {survey.source}. Aggregate percentages, not counts: not suppressed. Respondents with "
            f"German citizenship: {citizens if citizens is not None else 'n/a'} %.",
        ))  # fmt: skip

    # Demography.
    g = Group.DEMOGRAPHY
    tables.append(_distribution("registrations_by_nationality", "Registrations by nationality", g, "persons",
                                Counter(p.nationality for p in registered), k))  # fmt: skip
    tables.append(_distribution("registrations_by_age_band", "Registrations by age band", g, "persons",
                                Counter(p.age_band.value for p in registered), k, list(AgeBand)))  # fmt: skip
    tables.append(_distribution(
        "registrations_by_residence_status", "Registrations by residence-status group", g, "persons",
        Counter(p.residence_status_group.value for p in registered), k, [s.value for s in ResidenceStatusGroup],
    ))  # fmt: skip
    districts = sorted({p.district for p in registered})
    genders = [x.value for x in Gender]
    tables.append(protect(
        "registrations_by_district_and_gender", "Registrations by district and gender", g, "persons",
        districts, genders, Counter((p.district, p.gender.value) for p in registered), k,
        row_totals=True, column_totals=True,
    ))  # fmt: skip
    households = len({p.household_id for p in registered})
    moved = sum(1 for p in facts.persons if period.contains(p.moved_away_on))
    tables.append(protect(
        "households_and_moves", "Newcomer households registered and persons who moved away", g, "count",
        ["households_registered", "persons_moved_away"], ["count"],
        {("households_registered", "count"): households, ("persons_moved_away", "count"): moved}, k,
        column_totals=False,
    ))  # fmt: skip

    # Segregation.
    g = Group.SEGREGATION
    stock = newcomers_by_district(facts.persons, period.end)
    tables.append(_distribution(
        "newcomers_by_district", f"Newcomers living in each district on {period.end.isoformat()}", g, "persons",
        stock, k, sorted(set(stock) | set(facts.reference.population if facts.reference else {})),
    ))  # fmt: skip
    index = dissimilarity(stock, facts.reference.population) if facts.reference else None
    note = "No district population uploaded." if facts.reference is None else (
        f"Reference: {facts.reference.source}" + (" (ILLUSTRATIVE figures)" if facts.reference.illustrative else "")
    )  # fmt: skip
    tables.append(derived(
        "dissimilarity_index", "Index of dissimilarity of newcomers against the district population", g, "index",
        {CITY: (round(index, 3) if index is not None else None, sum(stock.values()))}, k, column="D", note=note,
    ))  # fmt: skip

    # Network.
    g = Group.NETWORK
    funnel = ["sent", "accepted", "declined", "completed", "escalated"]
    partner_counts = Counter((f.partner, f.kind) for f in referrals if f.kind in funnel)
    tables.append(protect(
        "referral_funnel", "Referrals per partner", g, "referrals",
        sorted({p for p, _ in partner_counts}), funnel, partner_counts, k,
        note="Stages of one funnel: only column totals are published.",
    ))  # fmt: skip
    hours = _response_hours(facts, period)
    tables.append(derived(
        "partner_response_hours", "Median hours from sending a referral to the partner's answer", g, "hours",
        {p: (_median(v), len(v)) for p, v in sorted(hours.items())}, k, column="median_hours",
    ))  # fmt: skip
    queue = waiting_and_free(facts, period.end)
    categories = sorted(queue)
    tables.append(_distribution(
        "waiting_list", f"People on course waiting lists on {period.end.isoformat()}", g, "persons",
        {c: queue[c][0] for c in categories}, k, categories,
    ))  # fmt: skip
    tables.append(protect(
        "free_seats", f"Free seats in open courses on {period.end.isoformat()}", g, "seats",
        categories, ["count"], {(c, "count"): queue[c][1] for c in categories}, k, suppress=False,
        note="Seats are not persons: published as in the public course catalogue.",
    ))  # fmt: skip
    share, women, known = women_share(facts, period)
    tables.append(derived(
        "women_share_in_courses", "Share of women in course enrolments", g, "percent",
        {CITY: (share, known)}, k, column="percent",
        extra_risk={CITY: 0 < women < k or 0 < known - women < k},
    ))  # fmt: skip
    return tables


# --- council report proposals ----------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    description: str


RULES = (
    Rule("R1-waiting-list", "At the end of each of the last two months of the period, more people wait for courses "
         "of a category than there are free seats in its open courses: propose another course of that category."),
    Rule("R2-dissimilarity", "The index of dissimilarity rose against the previous period and a district's share of "
         "newcomers exceeds its share of the population by more than before (with at least k newcomers there): "
         "flag the district for housing allocation."),
    Rule("R3-women", "Women make up under 40 % of course enrolments while they are at least 40 % of the period's "
         "registrations: propose women-only courses with childcare."),
    Rule("R4-counselling", "The median time from registration to the first counselling referral exceeds 14 days: "
         "propose more counselling capacity or earlier routing."),
)  # fmt: skip


@dataclass(frozen=True)
class Proposal:
    rule: str
    subject: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "subject": self.subject, "proposal": self.text}


def proposals(facts: Facts, period: Period, k: int) -> list[Proposal]:
    """The council proposals the documented :data:`RULES` derive (numbers below k are never quoted)."""
    found: list[Proposal] = []
    last = period.last_month()
    before = last.previous()
    now, then = waiting_and_free(facts, last.end), waiting_and_free(facts, before.end)
    for category in sorted(now):
        if all(q.get(category, (0, 0))[0] > q.get(category, (0, 0))[1] for q in (now, then)):
            found.append(Proposal("R1-waiting-list", category,
                                  f"Schedule another '{category}' course: its waiting list was longer than the free "
                                  f"seats at the end of {before.label} and of {last.label}."))  # fmt: skip
    if facts.reference is not None:
        population = facts.reference.population
        stock_now = newcomers_by_district(facts.persons, period.end)
        stock_then = newcomers_by_district(facts.persons, period.previous().end)
        d_now, d_then = dissimilarity(stock_now, population), dissimilarity(stock_then, population)
        if d_now is not None and d_then is not None and d_now > d_then and sum(stock_now.values()) >= k:
            over_now, over_then = (
                over_representation(stock_now, population),
                over_representation(stock_then, population),
            )
            for district in sorted(over_now):
                gap = over_now[district]
                if gap > 0 and gap > over_then.get(district, 0.0) and stock_now[district] >= k:
                    found.append(Proposal("R2-dissimilarity", district,
                                          f"Flag {district} for housing allocation: dissimilarity rose from "
                                          f"{d_then:.3f} to {d_now:.3f} and newcomers are increasingly "
                                          f"over-represented there."))  # fmt: skip
    share, _, known = women_share(facts, period)
    registered = [p for p in facts.persons if period.contains(p.registered_on)]
    women_registered = sum(p.gender is Gender.FEMALE for p in registered)
    if share is not None and known >= k and share < 40 and registered and women_registered / len(registered) >= 0.4:
        found.append(Proposal("R3-women", "courses",
                              "Offer women-only courses with childcare: women are under-represented in course "
                              "enrolments compared with the registrations."))  # fmt: skip
    days = _first_counselling_days(facts, period)
    if len(days) >= k and statistics.median(days) > 14:
        found.append(Proposal("R4-counselling", "counselling",
                              "Add counselling capacity or route earlier: the median time from registration to the "
                              "first counselling referral exceeds 14 days."))  # fmt: skip
    return found


# --- planning data ---------------------------------------------------------------------------


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


def planning(persons: Sequence[PersonFact], today: date, k: int) -> list[Table]:
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
    return [
        protect("children_by_district", f"Children of newcomer households by district on {today.isoformat()}", g,
                "children", districts, bands, by_district, k, row_totals=True, column_totals=True, note=note),
        protect("children_projection", "Children of newcomer households by age cohort, expected", g, "children",
                bands, [d.isoformat() for d in dates], projection, k, note=note),
        protect("households_with_children", "Newcomer households with children", g, "households", [CITY], ["count"],
                {(CITY, "count"): households}, k, column_totals=False),
    ]  # fmt: skip
