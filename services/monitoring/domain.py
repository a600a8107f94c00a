"""Rules of the monitoring service: indicators, k-anonymity, segregation, planning, council proposals.

Pure: no I/O, no framework. The read model hands in *facts* (pseudonymous, minimal) and gets
back published figures. Every count a council report shows is protected by the rules below
(:func:`indicators_of` for the indicators of a period, :func:`protect` for a table on its own; the
arithmetic is in :mod:`services.monitoring.disclosure`).

Privacy rules, documented here because the report cites them:

* Primary suppression: a count cell (or total) with ``0 < value < k`` is withheld (``k`` is a
  setting, default 5). Zeros are published: "nobody" discloses nothing about a person, and
  withholding zeros would hide most of a small city's tables.
* Complementary suppression across tables and periods: the count tables of a year's twelve
  months, four quarters and the year are protected together, as one system of every identity
  an outsider knows between their figures: each row and column with its total; a quarter as the
  sum of its months and a year as the sum of its quarters (counts of events; a label a table lacks
  is a published zero); a stock on a quarter's or a year's end day as its last month's (the same
  table, so the same pattern); the same figure in two tables (the persons registered in the
  period in four tables, language-course completions in two, a partner that takes one placement
  service only and that service's row); and the newcomers living here at a month's end as those
  at the month before plus the month's registrations minus its moves away. Further entries are
  withheld until an exact audit (linear algebra over that whole system) finds no withheld entry
  determined by the published figures of any periods. The same facts give the same pattern
  whichever period is asked for.
* Years meet in one figure only, the newcomers living here at the end of a year. It and the
  year's moves away are withheld by a rule of their own, never as complements: the stock when
  below ``k`` or when the year's registrations or its moves are the only figure of
  ``end = start + registrations - moves`` below ``k``; the moves when below ``k`` or when the
  stock at the start or at the end is the only one withheld. So each year's system is protected
  on its own, and all years together still are.
* Derived figures (medians, shares, the dissimilarity index) are withheld when their base is
  below ``k``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import MINYEAR, UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
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
from services.monitoring import disclosure, housing

if TYPE_CHECKING:
    from services.monitoring.blocks import BlockReference

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
#: The routes for the needs the city names (issue 18): health, housing, a perspective without a right to stay,
#: EU skilled workers; and participation (meeting offers), an indicator of interaction.
ROUTE_SERVICES = (
    ServiceType.HEALTH_ADVICE,
    ServiceType.HOUSING_ADVICE,
    ServiceType.RETURN_COUNSELLING,
    ServiceType.RECOGNITION_COUNSELLING,
    ServiceType.JOB_SPECIFIC_GERMAN,
    ServiceType.EU_JOB_MOBILITY,
)
PARTICIPATION_SERVICES = (ServiceType.MEETING_OFFER,)
ROUTE_STAGES = ["sent", "accepted", "declined", "completed"]
#: The count table each route's referrals are in (the identities with the referral funnel name them).
ROUTE_TABLES = {s: "need_routes" for s in ROUTE_SERVICES} | {
    s: "meeting_offer_referrals" for s in PARTICIPATION_SERVICES
}
#: The referrals whose 'sent' event keeps the (pseudonymous) person: for the days to the first counselling, and
#: for the shares of women and of EU citizens on each route.
LINKED_SERVICES = COUNSELLING_SERVICES | frozenset(ROUTE_TABLES)
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
    #: The day of the latest needs assessment when it names a housing need (else None).
    housing_need_since: date | None = None
    #: The residential block (Baublock) registration found for the address, if any.
    block: str | None = None

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
    blocks: BlockReference | None = None


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


#: Where a figure sits in its table: ("cell", row, column), ("row_total", row, ""), ("column_total", "", column)
#: or ("total", "", "").
Part = tuple[str, str, str]


@dataclass(frozen=True)
class _Counts:
    """A count table before suppression: :func:`_render` turns it into a :class:`Table`."""

    id: str
    title: str
    group: Group
    unit: str
    rows: list[str]
    columns: list[str]
    counts: Mapping[tuple[str, str], int]
    row_totals: bool = False
    column_totals: bool = True
    note: str = ""
    suppress: bool = True
    #: How the same table of different periods relates: "flow" counts events in the period (a
    #: quarter is the sum of its months), "stock" counts on the period's end day.
    kind: str = "flow"
    #: Rows of a flow table that are not additive across periods (distinct counts).
    distinct_rows: frozenset[str] = frozenset()

    def figures(self) -> dict[Part, int]:
        """Every published figure, totals included."""
        found: dict[Part, int] = {}
        for r in self.rows:
            for c in self.columns:
                found[("cell", r, c)] = int(self.counts.get((r, c), 0))
        if self.row_totals:
            for r in self.rows:
                found[("row_total", r, "")] = sum(found[("cell", r, c)] for c in self.columns)
        if self.column_totals:
            for c in self.columns:
                found[("column_total", "", c)] = sum(found[("cell", r, c)] for r in self.rows)
        if self.row_totals and self.column_totals:
            found[("total", "", "")] = sum(found[("column_total", "", c)] for c in self.columns)
        return found

    def lines(self) -> list[dict[Part, int]]:
        """The identities the table itself shows: each row and column with its total (a total counts -1)."""
        found: list[dict[Part, int]] = []
        if self.row_totals:
            for r in self.rows:
                found.append({**{("cell", r, c): 1 for c in self.columns}, ("row_total", r, ""): -1})
        if self.column_totals:
            for c in self.columns:
                found.append({**{("cell", r, c): 1 for r in self.rows}, ("column_total", "", c): -1})
        if self.row_totals and self.column_totals:
            found.append({**{("column_total", "", c): 1 for c in self.columns}, ("total", "", ""): -1})
            found.append({**{("row_total", r, ""): 1 for r in self.rows}, ("total", "", ""): -1})
        return found


def _render(spec: _Counts, withheld: Callable[[Part], bool]) -> Table:
    figures = spec.figures()

    def cell(part: Part) -> Cell:
        return Cell(None, True) if spec.suppress and withheld(part) else Cell(figures[part])

    return Table(
        id=spec.id,
        title=spec.title,
        group=spec.group,
        unit=spec.unit,
        rows=list(spec.rows),
        columns=list(spec.columns),
        cells={(r, c): cell(("cell", r, c)) for r in spec.rows for c in spec.columns},
        row_totals={r: cell(("row_total", r, "")) for r in spec.rows} if spec.row_totals else None,
        column_totals={c: cell(("column_total", "", c)) for c in spec.columns} if spec.column_totals else None,
        total=cell(("total", "", "")) if spec.row_totals and spec.column_totals else None,
        note=spec.note,
    )


def _complement_class(part: Part, value: int) -> int:
    """Complements are taken from positive cells first, then totals, zeros last."""
    return 1 if part[0] != "cell" else 0 if value > 0 else 2


def _counts(
    table_id: str,
    title: str,
    group: Group,
    unit: str,
    rows: Sequence[str],
    columns: Sequence[str],
    counts: Mapping[tuple[str, str], int],
    *,
    row_totals: bool = False,
    column_totals: bool = True,
    note: str = "",
    suppress: bool = True,
    kind: str = "flow",
    distinct_rows: Iterable[str] = (),
) -> _Counts:
    return _Counts(table_id, title, group, unit, list(rows), list(columns), dict(counts), row_totals, column_totals,
                   note, suppress, kind, frozenset(distinct_rows))  # fmt: skip


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
    """One count table on its own, k-anonymous with complementary suppression (``suppress=False``
    for public figures). The indicators of a period are protected jointly: see :func:`indicators_of`."""
    spec = _counts(table_id, title, group, unit, rows, columns, counts, row_totals=row_totals,
                   column_totals=column_totals, note=note, suppress=suppress)  # fmt: skip
    system = disclosure.System()
    for part, value in spec.figures().items():
        system.add(part, value, (_complement_class(part, value), value))
    for line in spec.lines():
        system.equation({tuple(part): c for part, c in line.items()})
    hidden = disclosure.suppress(system, k) if suppress else set()
    return _render(spec, lambda part: part in hidden)


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
    order: Iterable[str] | None = None,
    *,
    kind: str = "flow",
) -> _Counts:
    rows = list(order) if order is not None else sorted(counts)
    return _counts(table_id, title, group, unit, rows, ["count"], {(r, "count"): counts.get(r, 0) for r in rows},
                   kind=kind)  # fmt: skip


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


def route_shares(
    facts: Facts, period: Period, services: Iterable[ServiceType]
) -> dict[str, dict[str, tuple[float | None, int, int]]]:
    """Per route: (percent, persons of the group, persons known) of the referrals sent in the period, for the
    groups the seed names apart: women, and EU citizens (the skilled workers of "Fokus auf EU-Migranten")."""
    persons = {p.person_id: p for p in facts.persons}
    found: dict[str, dict[str, tuple[float | None, int, int]]] = {}
    for service in services:
        sent = [persons[f.person_id] for f in facts.referrals
                if f.kind == "sent" and f.service_type is service and _in(period, f.at)
                and f.person_id in persons]  # fmt: skip
        groups = {
            "women": sum(p.gender is Gender.FEMALE for p in sent),
            "eu_citizens": sum(p.residence_status_group is ResidenceStatusGroup.EU_CITIZEN for p in sent),
        }
        found[service.value] = {
            group: ((round(100 * n / len(sent), 1) if sent else None), n, len(sent)) for group, n in groups.items()
        }
    return found


def _tables(facts: Facts, period: Period, k: int, *, with_derived: bool = True) -> list[_Counts | Table]:
    """Every indicator of a period before suppression, in the order of the groups: count tables as
    :class:`_Counts`, derived figures (withheld by their own rule) and survey percentages as tables."""
    tables: list[_Counts | Table] = []
    registered = [p for p in facts.persons if period.contains(p.registered_on)]
    enrolled = [f for f in facts.enrolments if f.kind == "enrolled" and _in(period, f.at)]
    completed = [f for f in facts.enrolments if f.kind == "completed" and _in(period, f.at)]
    referrals = [f for f in facts.referrals if _in(period, f.at)]

    # Culture and language.
    g = Group.CULTURE_AND_LANGUAGE
    tables.append(_distribution(
        "language_course_enrolments", "Language-course enrolments by course category", g, "enrolments",
        Counter(f.category for f in enrolled if f.category in LANGUAGE_CATEGORIES), LANGUAGE_CATEGORIES,
    ))  # fmt: skip
    tables.append(_distribution(
        "language_course_completions", "Language-course completions by course category", g, "learners",
        Counter(f.category for f in completed if f.category in LANGUAGE_CATEGORIES), LANGUAGE_CATEGORIES,
    ))  # fmt: skip
    levels = [lv.value for lv in GermanLevel if lv is not GermanLevel.NONE]
    tables.append(_distribution(
        "cefr_levels_reached", "German levels (CEFR) reached at course completion", g, "learners",
        Counter(f.level_reached.value for f in completed if f.level_reached is not None), levels,
    ))  # fmt: skip

    # Placement.
    g = Group.PLACEMENT
    columns = ["sent", "accepted", "declined", "completed_successful", "completed_unsuccessful"]
    counts: Counter[tuple[str, str]] = Counter()
    for f in referrals:
        if f.service_type in PLACEMENT_SERVICES:
            kind = f"completed_{f.outcome}" if f.kind == "completed" else f.kind
            counts[(f.service_type.value, kind)] += 1
    tables.append(_counts(
        "placement_referrals", "Referrals to the Jobcenter (job placement) and the IHK (recognition) and outcomes",
        g, "referrals", [s.value for s in PLACEMENT_SERVICES], columns, counts,
        note="Columns are stages of one funnel, not parts of a whole: only column totals are published.",
    ))  # fmt: skip
    recognitions = sum(1 for p in facts.passes if p.kind == "recognition" and _in(period, p.at))
    tables.append(_counts(
        "recognitions", "Foreign qualifications recognised (education pass entries)", g, "recognitions",
        [CITY], ["count"], {(CITY, "count"): recognitions}, column_totals=False,
    ))  # fmt: skip
    tables.append(_distribution(
        "course_completions", "Course completions by course category", g, "learners",
        Counter(f.category for f in completed),
    ))  # fmt: skip
    if with_derived:
        days = _first_counselling_days(facts, period)
        tables.append(derived(
            "days_to_first_counselling", "Median days from registration to the first counselling referral sent",
            g, "days", {CITY: (_median(days), len(days))}, k, column="median_days",
            note="Persons whose first counselling referral was sent in the period.",
        ))  # fmt: skip

    # Interaction.
    g = Group.INTERACTION
    tables.append(_distribution(
        "participation_offers", "Enrolments in cultural, civic and meeting offers", g, "enrolments",
        Counter(f.category for f in enrolled if f.category in INTERACTION_CATEGORIES), INTERACTION_CATEGORIES,
    ))  # fmt: skip

    route_counts = Counter(
        (f.service_type.value, f.kind) for f in referrals if f.service_type in ROUTE_TABLES and f.kind in ROUTE_STAGES
    )
    tables.append(_counts(
        "meeting_offer_referrals", "Referrals to meeting offers (participation) and their answers", g, "referrals",
        [s.value for s in PARTICIPATION_SERVICES], ROUTE_STAGES, route_counts,
        note="Stages of one funnel: only column totals are published.",
    ))  # fmt: skip

    # Identification: the latest survey up to the period's year (already aggregate percentages).
    g = Group.IDENTIFICATION
    survey = max((s for s in facts.surveys if s.year <= period.end.year), key=lambda s: s.year, default=None)
    if survey is not None and with_derived:
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
                                Counter(p.nationality for p in registered)))  # fmt: skip
    tables.append(_distribution("registrations_by_age_band", "Registrations by age band", g, "persons",
                                Counter(p.age_band.value for p in registered), list(AgeBand)))  # fmt: skip
    tables.append(_distribution(
        "registrations_by_residence_status", "Registrations by residence-status group", g, "persons",
        Counter(p.residence_status_group.value for p in registered), [s.value for s in ResidenceStatusGroup],
    ))  # fmt: skip
    genders = [x.value for x in Gender]
    # Women and EU citizens (the skilled workers of "Fokus auf EU-Migranten") apart, as far as k allows.
    tables.append(_counts(
        "registrations_by_residence_status_and_gender", "Registrations by residence-status group and gender", g,
        "persons", [s.value for s in ResidenceStatusGroup], genders,
        Counter((p.residence_status_group.value, p.gender.value) for p in registered), row_totals=True,
    ))  # fmt: skip
    districts = sorted({p.district for p in registered})
    tables.append(_counts(
        "registrations_by_district_and_gender", "Registrations by district and gender", g, "persons",
        districts, genders, Counter((p.district, p.gender.value) for p in registered),
        row_totals=True, column_totals=True,
    ))  # fmt: skip
    households = len({p.household_id for p in registered})
    moved = sum(1 for p in facts.persons if period.contains(p.moved_away_on))
    tables.append(_counts(
        "households_and_moves", "Newcomer households registered and persons who moved away", g, "count",
        ["households_registered", "persons_moved_away"], ["count"],
        {("households_registered", "count"): households, ("persons_moved_away", "count"): moved},
        column_totals=False, distinct_rows=["households_registered"],  # a household may register over months
    ))  # fmt: skip

    # Segregation.
    g = Group.SEGREGATION
    stock = newcomers_by_district(facts.persons, period.end)
    tables.append(_distribution(
        "newcomers_by_district", f"Newcomers living in each district on {period.end.isoformat()}", g, "persons",
        stock, sorted(set(stock) | set(facts.reference.population if facts.reference else {})), kind="stock",
    ))  # fmt: skip
    need = housing.housing_need_counts(facts.persons, period.end)
    tables.append(_counts(
        "housing_need", f"Newcomers with a housing need on {period.end.isoformat()}, by district and household "
        "size", g, "persons", sorted({d for d, _ in need}), housing.HOUSEHOLD_SIZES, need, row_totals=True,
        kind="stock", note="From the latest needs assessment naming housing; household size: its members living here.",
    ))  # fmt: skip
    if with_derived:
        index = dissimilarity(stock, facts.reference.population) if facts.reference else None
        note = "No district population uploaded." if facts.reference is None else (
            f"Reference: {facts.reference.source}" + (" (ILLUSTRATIVE figures)" if facts.reference.illustrative else "")
        )  # fmt: skip
        tables.append(derived(
            "dissimilarity_index", "Index of dissimilarity of newcomers against the district population", g,
            "index", {CITY: (round(index, 3) if index is not None else None, sum(stock.values()))}, k, column="D",
            note=note,
        ))  # fmt: skip

    # Network.
    g = Group.NETWORK
    funnel = ["sent", "accepted", "declined", "completed", "escalated"]
    partner_counts = Counter((f.partner, f.kind) for f in referrals if f.kind in funnel)
    tables.append(_counts(
        "referral_funnel", "Referrals per partner", g, "referrals",
        sorted({p for p, _ in partner_counts}), funnel, partner_counts,
        note="Stages of one funnel: only column totals are published.",
    ))  # fmt: skip
    if with_derived:
        hours = _response_hours(facts, period)
        tables.append(derived(
            "partner_response_hours", "Median hours from sending a referral to the partner's answer", g, "hours",
            {p: (_median(v), len(v)) for p, v in sorted(hours.items())}, k, column="median_hours",
        ))  # fmt: skip
    tables.append(_counts(
        "need_routes", "Referrals on the routes for the needs the city names (health, housing, return, EU skilled "
        "workers)", g, "referrals", [s.value for s in ROUTE_SERVICES], ROUTE_STAGES, route_counts,
        note="Stages of one funnel: only column totals are published.",
    ))  # fmt: skip
    if with_derived:
        shares = route_shares(facts, period, (*ROUTE_SERVICES, *PARTICIPATION_SERVICES))
        for group, name, title in (("women", "women", "Share of women"), ("eu_citizens", "eu", "Share of EU citizens")):
            tables.append(derived(
                f"need_routes_{name}_share", f"{title} among the persons referred on each route", g, "percent",
                {s: (v[group][0], v[group][2]) for s, v in shares.items()}, k, column="percent",
                # Like the share of women in courses: withheld when the group or the rest is a small number.
                extra_risk={s: 0 < v[group][1] < k or 0 < v[group][2] - v[group][1] < k for s, v in shares.items()},
            ))  # fmt: skip
    queue = waiting_and_free(facts, period.end)
    categories = sorted(queue)
    tables.append(_distribution(
        "waiting_list", f"People on course waiting lists on {period.end.isoformat()}", g, "persons",
        {c: queue[c][0] for c in categories}, categories, kind="stock",
    ))  # fmt: skip
    tables.append(_counts(
        "free_seats", f"Free seats in open courses on {period.end.isoformat()}", g, "seats",
        categories, ["count"], {(c, "count"): queue[c][1] for c in categories}, suppress=False, kind="stock",
        note="Seats are not persons: published as in the public course catalogue.",
    ))  # fmt: skip
    if with_derived:
        share, women, known = women_share(facts, period)
        tables.append(derived(
            "women_share_in_courses", "Share of women in course enrolments", g, "percent",
            {CITY: (share, known)}, k, column="percent",
            extra_risk={CITY: 0 < women < k or 0 < known - women < k},
        ))  # fmt: skip
    return tables


# --- disclosure control across periods ---------------------------------------------------------

#: Tables that publish the same figure: (table, part) pairs equal in every period.
_REGISTERED = ("registrations_by_nationality", ("column_total", "", "count"))
SAME_FIGURES: tuple[tuple[tuple[str, Part], tuple[str, Part]], ...] = (
    (_REGISTERED, ("registrations_by_age_band", ("column_total", "", "count"))),
    (_REGISTERED, ("registrations_by_residence_status", ("column_total", "", "count"))),
    (_REGISTERED, ("registrations_by_district_and_gender", ("total", "", ""))),
    (_REGISTERED, ("registrations_by_residence_status_and_gender", ("total", "", ""))),
    *(
        (
            ("registrations_by_residence_status", ("cell", s.value, "count")),
            ("registrations_by_residence_status_and_gender", ("row_total", s.value, "")),
        )
        for s in ResidenceStatusGroup
    ),
    *(
        (
            ("registrations_by_district_and_gender", ("column_total", "", g.value)),
            ("registrations_by_residence_status_and_gender", ("column_total", "", g.value)),
        )
        for g in Gender
    ),
    *(
        (("language_course_completions", ("cell", c, "count")), ("course_completions", ("cell", c, "count")))
        for c in LANGUAGE_CATEGORIES
    ),
)
_STOCK_TOTAL: Part = ("column_total", "", "count")
_MOVED: Part = ("cell", "persons_moved_away", "count")


def family(year: int) -> list[Period]:
    """The periods whose tables are protected together: the year's months, its quarters and the year."""
    months = [Period.parse(f"{year:04d}-{m:02d}") for m in range(1, 13)]
    quarters = [Period.parse(f"{year:04d}-Q{q}") for q in range(1, 5)]
    return [*months, *quarters, Period.parse(f"{year:04d}")]


def _dedicated_partners(facts: Facts) -> list[tuple[list[str], str, dict[str, list[str]]]]:
    """Placement services whose partners take nothing else (the Jobcenter, the IHK): the referral
    funnel of those partners is then the service's row of the placement table, which anyone who
    knows the partner directory can tell. (partners, service, funnel stage -> placement columns)."""
    services: dict[str, set[ServiceType]] = defaultdict(set)
    for f in facts.referrals:
        services[f.partner].add(f.service_type)
    found = []
    for service in PLACEMENT_SERVICES:
        partners = sorted(p for p, offered in services.items() if service in offered)
        if partners and all(services[p] == {service} for p in partners):
            stages = {"sent": ["sent"], "accepted": ["accepted"], "declined": ["declined"]}
            outcomes = {f.outcome for f in facts.referrals if f.service_type is service and f.kind == "completed"}
            if outcomes <= {"successful", "unsuccessful"}:  # else some completions are in no placement column
                stages["completed"] = ["completed_successful", "completed_unsuccessful"]
            found.append((partners, service.value, stages))
    return found


def _route_partners(facts: Facts) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Groups of partners whose referrals are all on the routes' tables and who alone take those routes: their
    rows of the referral funnel add up to those routes' rows, which anyone who knows the directory can tell (the
    IQ network, EURES, the Gesundheitsamt). (partners, [(table, service)])."""
    services_of: dict[str, set[ServiceType]] = defaultdict(set)
    partners_of: dict[ServiceType, set[str]] = defaultdict(set)
    for f in facts.referrals:
        services_of[f.partner].add(f.service_type)
        partners_of[f.service_type].add(f.partner)
    found, seen = [], set()
    for start in sorted(services_of):
        if start in seen:
            continue
        partners: set[str] = set()
        services: set[ServiceType] = set()
        todo = [start]
        while todo:  # the partners and services linked to ``start`` by referrals, in any number of steps
            partner = todo.pop()
            if partner in partners:
                continue
            partners.add(partner)
            for service in services_of[partner] - services:
                services.add(service)
                todo.extend(partners_of[service] - partners)
        seen |= partners
        if services <= set(ROUTE_TABLES):
            found.append((sorted(partners), sorted((ROUTE_TABLES[s], s.value) for s in services)))
    return found


def _slot(period: Period, spec: _Counts) -> str:
    """Where a table's figures live: a flow table per period, a stock table per end day (a quarter's
    and a year's stock tables are their last month's)."""
    return period.end.isoformat() if spec.kind == "stock" else period.label


def _granularity(slot: str) -> int:
    """Complements come from months before quarters before years (a month-end stock counts by its month)."""
    if len(slot) == 10:  # a day: the stock on a month's end
        month = int(slot[5:7])
        return 2 if month == 12 else 1 if month % 3 == 0 else 0
    return {"year": 2, "quarter": 1}.get(Period.parse(slot).kind, 0)


def _family_system(facts: Facts, year: int, k: int) -> disclosure.System:
    """The count tables of a year's 17 periods before suppression, as one system to protect.

    The identities are those of the module docstring. The newcomers living here at the end of the
    year before and of this year, and this year's moves away, are withheld by :func:`_year_rule`
    alone: the first is the figure this system shares with the year before's, which must agree on
    it without knowing of each other; the two others follow from it.
    """
    periods = family(year)
    specs = {p.label: _tables(facts, p, k, with_derived=False) for p in periods}
    system = disclosure.System()

    def key(slot: str, table_id: str, part: Part) -> disclosure.Key:
        return (slot, table_id, *part)

    added: set[tuple[str, str]] = set()
    for period in periods:
        for spec in specs[period.label]:
            if not isinstance(spec, _Counts) or not spec.suppress:
                continue
            slot = _slot(period, spec)
            if (slot, spec.id) in added:
                continue  # a quarter's or the year's stock table: its last month's
            added.add((slot, spec.id))
            for part, value in spec.figures().items():
                system.add(key(slot, spec.id, part), value, (_granularity(slot), _complement_class(part, value), value))
            for line in spec.lines():
                system.equation({key(slot, spec.id, part): c for part, c in line.items()})
        for (table_a, part_a), (table_b, part_b) in SAME_FIGURES:
            system.equation({key(period.label, table_a, part_a): 1, key(period.label, table_b, part_b): -1})
        for partners, cells in _route_partners(facts):
            for stage in ROUTE_STAGES:
                terms = {key(period.label, "referral_funnel", ("cell", p, stage)): 1 for p in partners}
                terms.update({key(period.label, table, ("cell", service, stage)): -1 for table, service in cells})
                system.equation(terms)
        for partners, service, stages in _dedicated_partners(facts):
            for stage, columns in stages.items():
                terms = {key(period.label, "referral_funnel", ("cell", p, stage)): 1 for p in partners}
                terms.update({key(period.label, "placement_referrals", ("cell", service, c)): -1 for c in columns})
                system.equation(terms)

    # A quarter is the sum of its months, the year the sum of its quarters (flow tables).
    sums = [(periods[12 + q], periods[3 * q : 3 * q + 3]) for q in range(4)] + [(periods[16], periods[12:16])]
    for whole, parts in sums:
        for spec in specs[whole.label]:
            if not isinstance(spec, _Counts) or not spec.suppress or spec.kind != "flow":
                continue
            labels = set(spec.figures())
            for part_period in parts:
                labels |= set(_same_table(specs[part_period.label], spec.id).figures())
            for part in sorted(labels):
                if part[1] in spec.distinct_rows:
                    continue
                terms = {key(whole.label, spec.id, part): 1}
                terms.update({key(p.label, spec.id, part): -1 for p in parts})
                system.equation(terms)

    # Newcomers living here: end of a month = end of the month before + registrations - moves away.
    def stock(day: date) -> disclosure.Key:
        return key(day.isoformat(), "newcomers_by_district", _STOCK_TOTAL)

    def moves(label: str) -> disclosure.Key:
        return key(label, "households_and_moves", _MOVED)

    end_withheld, moves_withheld = _year_rule(facts, year, k)
    rule = {stock(date(year, 12, 31)): end_withheld, moves(periods[16].label): moves_withheld}
    previous = stock(date(year - 1, 12, 31)) if year > MINYEAR else None  # else: a constant, nobody
    if previous is not None:
        system.add(previous, sum(newcomers_by_district(facts.persons, date(year - 1, 12, 31)).values()))
        rule[previous] = _year_rule(facts, year - 1, k)[0]
    for figure, withheld in rule.items():
        system.fixed.add(figure)
        if withheld:
            system.withheld.add(figure)
    for month in periods[:12]:
        now = stock(month.end)
        terms = {now: 1, key(month.label, *_REGISTERED): -1, moves(month.label): 1}
        system.equation(terms if previous is None else {**terms, previous: -1})
        previous = now
    return system


def _year_rule(facts: Facts, year: int, k: int) -> tuple[bool, bool]:
    """Whether (the newcomers living here at the end of ``year``, the persons who moved away in
    ``year``) are withheld: a rule that each year's system applies alone, so that two years agree.

    A year's stocks at either end, its registrations and its moves make one published identity
    (end = start + registrations - moves), and the stocks are the only way one year's tables reach
    another's. None of the four may be the only one withheld: when one is (below k, or the start
    withheld by the year before), the year's moves or its end stock go with it, never the
    registrations, which would drag the four registration tables along.
    """
    first = min((p.registered_on.year for p in facts.persons), default=year)
    start_withheld = False
    for y in range(min(first, year), year + 1):
        end = date(y, 12, 31)
        stock = sum(1 for p in facts.persons if p.lives_here_on(end))
        registered = sum(1 for p in facts.persons if p.registered_on.year == y)
        moved = sum(1 for p in facts.persons if p.moved_away_on is not None and p.moved_away_on.year == y)
        r, m, s = 0 < registered < k, 0 < moved < k, 0 < stock < k
        lone = start_withheld + r + m + s == 1
        end_withheld, moves_withheld = s or (lone and (r or m)), m or (lone and (start_withheld or s))
        if y == year:
            return end_withheld, moves_withheld
        start_withheld = end_withheld
    raise AssertionError("unreachable")  # pragma: no cover


def _same_table(tables: list[_Counts | Table], table_id: str) -> _Counts:
    found = next(t for t in tables if t.id == table_id)
    assert isinstance(found, _Counts)
    return found


def indicators_of(facts: Facts, periods: Iterable[Period], k: int) -> dict[Period, list[Table]]:
    """Every indicator of each period, k-anonymous, in the order of the groups.

    Count tables are protected jointly with every other period of their year (see
    :func:`_family_system`): whichever period is asked for, and in whatever order, the same
    facts give the same pattern, and no difference of published tables of any periods reveals a
    withheld count.
    """
    wanted = list(periods)
    patterns = {year: disclosure.suppress(_family_system(facts, year, k), k) for year in {p.start.year for p in wanted}}
    found: dict[Period, list[Table]] = {}
    for period in wanted:
        hidden = patterns[period.start.year]
        found[period] = [
            _render(item, _withheld(hidden, _slot(period, item), item.id)) if isinstance(item, _Counts) else item
            for item in _tables(facts, period, k)
        ]
        if facts.blocks is not None:  # segregation per residential block, coarsened from the district table
            from services.monitoring import blocks  # here: it builds on this module

            found[period] = blocks.block_tables(found[period], facts, period, k)
    return found


def _withheld(hidden: set[disclosure.Key], slot: str, table_id: str) -> Callable[[Part], bool]:
    return lambda part: (slot, table_id, *part) in hidden


def indicators(facts: Facts, period: Period, k: int) -> list[Table]:
    """Every indicator of a period, k-anonymous, in the order of the groups (see :func:`indicators_of`)."""
    return indicators_of(facts, [period], k)[period]


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
