"""Disclosure control (Geheimhaltung) of the indicators across periods: what :func:`indicators_of` publishes.

Pure: no I/O, no framework. The read model hands in *facts* (pseudonymous, minimal) and gets
back published figures. Every count a council report shows is protected by the rules below
(:func:`indicators_of` for the indicators of a period, :func:`~services.monitoring.tables.protect`
for a table on its own; the arithmetic is in :mod:`services.monitoring.disclosure`).

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

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import MINYEAR, date

from contracts.vocabulary import Gender, ResidenceStatusGroup, ServiceType
from services.monitoring import blocks, disclosure
from services.monitoring.domain import Facts
from services.monitoring.indicators import (
    LANGUAGE_CATEGORIES,
    PLACEMENT_SERVICES,
    ROUTE_STAGES,
    ROUTE_TABLES,
    before_suppression,
)
from services.monitoring.periods import Period, family
from services.monitoring.segregation import newcomers_by_district
from services.monitoring.tables import Counts, Part, Table, complement_class, render

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


def _slot(period: Period, spec: Counts) -> str:
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
    specs = {p.label: before_suppression(facts, p, k, with_derived=False) for p in periods}
    system = disclosure.System()

    def key(slot: str, table_id: str, part: Part) -> disclosure.Key:
        return (slot, table_id, *part)

    added: set[tuple[str, str]] = set()
    for period in periods:
        for spec in specs[period.label]:
            if not isinstance(spec, Counts) or not spec.suppress:
                continue
            slot = _slot(period, spec)
            if (slot, spec.id) in added:
                continue  # a quarter's or the year's stock table: its last month's
            added.add((slot, spec.id))
            for part, value in spec.figures().items():
                system.add(key(slot, spec.id, part), value, (_granularity(slot), complement_class(part, value), value))
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
            if not isinstance(spec, Counts) or not spec.suppress or spec.kind != "flow":
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


def _same_table(tables: list[Counts | Table], table_id: str) -> Counts:
    found = next(t for t in tables if t.id == table_id)
    assert isinstance(found, Counts)
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
            render(item, _withheld(hidden, _slot(period, item), item.id)) if isinstance(item, Counts) else item
            for item in before_suppression(facts, period, k)
        ]
        if facts.blocks is not None:  # segregation per residential block, coarsened from the district table
            found[period] = blocks.block_tables(found[period], facts, period, k)
    return found


def _withheld(hidden: set[disclosure.Key], slot: str, table_id: str) -> Callable[[Part], bool]:
    return lambda part: (slot, table_id, *part) in hidden


def indicators(facts: Facts, period: Period, k: int) -> list[Table]:
    """Every indicator of a period, k-anonymous, in the order of the groups (see :func:`indicators_of`)."""
    return indicators_of(facts, [period], k)[period]
