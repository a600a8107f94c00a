"""Monitoring rules: exact indicator values of a fixed scenario, the dissimilarity index on a hand-computed
example, planning cohorts, council proposals, and k-anonymity that no published total can undo."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.vocabulary import AgeBand, Gender, GermanLevel, ResidenceStatusGroup, ServiceType
from services.monitoring.domain import (
    CourseFact,
    DistrictReference,
    EnrolmentFact,
    Facts,
    PassFact,
    PersonFact,
    ReferralFact,
)
from services.monitoring.indicators import ROUTE_SERVICES
from services.monitoring.periods import Period, PeriodError, local_day
from services.monitoring.planning import band_probabilities, children_tables
from services.monitoring.proposals import RULES, proposals
from services.monitoring.protection import indicators
from services.monitoring.segregation import dissimilarity, newcomers_by_district
from services.monitoring.tables import Cell, Group, Table, count_table, protect

NOV = Period.parse("2026-11")
F, M = Gender.FEMALE, Gender.MALE
REF, OTHER, EU = ResidenceStatusGroup.RECOGNISED_REFUGEE, ResidenceStatusGroup.OTHER, ResidenceStatusGroup.EU_CITIZEN
A27, REG = AgeBand.AGE_27_44, date(2026, 11, 2)


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def person(
    pid: str,
    nat: str,
    band: AgeBand,
    gender: Gender,
    status: ResidenceStatusGroup,
    district: str,
    household: str,
    registered: date = REG,
    moved: date | None = None,
    block: str | None = None,
) -> PersonFact:
    return PersonFact(pid, household, registered, nat, band, gender, status, district, moved, block=block)


PERSONS = [
    person("P1", "SY", A27, F, REF, "Weststadt", "H1"),
    person("P2", "SY", A27, M, REF, "Weststadt", "H1"),
    person("P3", "SY", AgeBand.AGE_0_2, F, REF, "Weststadt", "H1"),
    person("P4", "SY", AgeBand.AGE_3_5, M, REF, "Weststadt", "H1"),
    person("P5", "SY", A27, F, REF, "Altstadt", "H2"),
    person("P6", "SY", AgeBand.AGE_6_9, F, REF, "Altstadt", "H2"),
    person("U1", "UA", A27, F, OTHER, "Weststadt", "H3"),
    person("U2", "UA", AgeBand.AGE_10_17, M, OTHER, "Weststadt", "H3"),
    person("U3", "UA", AgeBand.AGE_45_64, F, OTHER, "Schwaighofsiedlung", "H4"),
    person("U4", "UA", A27, F, OTHER, "Schwaighofsiedlung", "H5"),
    person("U5", "UA", AgeBand.AGE_18_26, M, OTHER, "Schwaighofsiedlung", "H5"),
    person("R1", "RO", A27, M, EU, "Altstadt", "H6"),
    person("R2", "RO", A27, M, EU, "Altstadt", "H7"),
    person("E1", "SY", A27, M, REF, "Weststadt", "H8", date(2026, 10, 15), moved=date(2026, 11, 20)),
]


def referral(rid: str, kind: str, when: datetime, partner: str, service: ServiceType, **extra: Any) -> ReferralFact:
    return ReferralFact(rid, kind, when, partner, service, **extra)


MIG, JOB, IHK = ServiceType.MIGRATION_COUNSELLING, ServiceType.JOB_PLACEMENT, ServiceType.QUALIFICATION_RECOGNITION
CAR, JC, IHKP = "caritas-landsberg", "jobcenter-landsberg", "ihk-muenchen"
REFERRALS = [
    # Counselling: first sent 3, 7, 10 and 2 days after registration (median 5); P1's second does not count.
    referral("c1", "sent", at("2026-11-05"), CAR, MIG, person_id="P1"),
    referral("c2", "sent", at("2026-11-09"), CAR, MIG, person_id="P5"),
    referral("c3", "sent", at("2026-11-12"), CAR, MIG, person_id="U1"),
    referral("c4", "sent", at("2026-11-04"), CAR, MIG, person_id="U3"),
    referral("c5", "sent", at("2026-11-20"), CAR, MIG, person_id="P1"),
    referral("c6", "sent", at("2026-12-03"), CAR, MIG, person_id="U4"),  # December
    referral("c1", "accepted", at("2026-11-06"), CAR, MIG),  # 24 h
    referral("c2", "accepted", at("2026-11-11"), CAR, MIG),  # 48 h
    referral("c3", "declined", at("2026-11-12", 16), CAR, MIG),  # 6 h
    referral("c1", "completed", at("2026-11-25"), CAR, MIG, outcome="successful"),
    referral("c4", "escalated", at("2026-11-10"), CAR, MIG),
    *(referral(f"j{i}", "sent", at("2026-11-06"), JC, JOB) for i in range(4)),
    *(referral(f"j{i}", "accepted", at("2026-11-08"), JC, JOB) for i in range(3)),
    referral("j0", "completed", at("2026-11-28"), JC, JOB, outcome="successful"),
    referral("j1", "completed", at("2026-11-28"), JC, JOB, outcome="unsuccessful"),
    *(referral(f"i{i}", "sent", at("2026-11-07"), IHKP, IHK) for i in range(3)),
    referral("i0", "accepted", at("2026-11-09"), IHKP, IHK),
    referral("i1", "declined", at("2026-11-09"), IHKP, IHK),
]
COURSES = [
    CourseFact("C1", "integration_course", 2, ends_on=date(2027, 3, 31)),
    CourseFact("C2", "civic_education", 20),
    CourseFact("C4", "german_second_language", 15, ends_on=date(2026, 11, 30)),
]


def enrolment(eid: str, course: str, kind: str, when: datetime, **extra: Any) -> EnrolmentFact:
    category = {c.course_id: c.category for c in COURSES}[course]
    return EnrolmentFact(eid, course, category, kind, when, **extra)


ENROLMENTS = [
    # C1 is full from October with one waiting; in November X1 leaves, X3 takes the seat, three more wait.
    enrolment("x1", "C1", "enrolled", at("2026-10-10")),
    enrolment("x2", "C1", "enrolled", at("2026-10-10")),
    enrolment("x3", "C1", "waitlisted", at("2026-10-11")),
    enrolment("x1", "C1", "cancelled", at("2026-11-05")),
    enrolment("x3", "C1", "seat_offered", at("2026-11-05")),
    enrolment("x3", "C1", "enrolled", at("2026-11-06")),
    *(enrolment(f"w{p}", "C1", "waitlisted", at("2026-11-11")) for p in ("P5", "U3", "U4")),
    enrolment("x2", "C1", "completed", at("2026-11-28"), level_reached=GermanLevel.B1, result="passed"),
    *(
        enrolment(f"v{p}", "C2", "enrolled", at("2026-11-15"), person_id=p)
        for p in ("P1", "P2", "P5", "P6", "U1", "U2", "U3", "U4", "U5", "R1")
    ),
    *(
        enrolment(f"g{i}", "C4", "completed", at("2026-11-29"), level_reached=level, result="passed")
        for i, level in enumerate([GermanLevel.A2] * 3 + [GermanLevel.B1] * 2)
    ),
]
PASSES = [PassFact("recognition", at("2026-11-20")) for _ in range(3)] + [PassFact("course", at("2026-11-28"))]
REFERENCE = DistrictReference({"Weststadt": 6000, "Altstadt": 2000, "Schwaighofsiedlung": 2000}, "test", True)
FACTS = Facts(PERSONS, REFERRALS, COURSES, ENROLMENTS, PASSES, (), REFERENCE)


def by_id(tables: list[Table]) -> dict[str, Table]:
    return {t.id: t for t in tables}


def values(table: Table, column: str = "count") -> dict[str, Any]:
    """row -> value, None where withheld; 'total' -> the column total."""
    found = {r: table.cell(r, column).value for r in table.rows}
    if table.column_totals is not None:
        found["total"] = table.column_totals[column].value
    return found


def test_fixed_scenario_gives_exactly_the_expected_indicators() -> None:
    t = by_id(indicators(FACTS, NOV, k=3))
    # Demography: RO (2) is withheld. E1 (SY, 27-44, recognised refugee, male, Weststadt) registered alone
    # in October: the fourth quarter (published) less November would give that one person away, so
    # November's figures that hold E1 in the quarter are withheld: SY, the total (in all four tables), ...
    assert values(t["registrations_by_nationality"]) == {"RO": None, "SY": None, "UA": 5, "total": None}
    assert values(t["registrations_by_residence_status"])["recognised_refugee"] is None
    assert values(t["registrations_by_residence_status"])["other"] == 5
    ages = values(t["registrations_by_age_band"])
    assert ages["27-44"] is None and ages["65+"] == 0 and ages["0-2"] is None and ages["total"] is None
    grid = t["registrations_by_district_and_gender"]
    assert [grid.cell("Weststadt", g).value for g in ("female", "male", "diverse")] == [3, None, 0]
    assert all(grid.cell(d, g).suppressed for d in ("Altstadt", "Schwaighofsiedlung") for g in ("female", "male"))
    assert grid.row_totals is not None and grid.column_totals is not None and grid.total is not None
    assert (grid.row_totals["Weststadt"].value, grid.row_totals["Altstadt"].value) == (None, None)
    assert (grid.column_totals["female"].value, grid.column_totals["male"].value, grid.total.value) == (7, None, None)
    assert values(t["households_and_moves"]) == {"households_registered": 7, "persons_moved_away": None}
    # Culture and language.
    assert values(t["language_course_enrolments"])["integration_course"] is None  # one enrolment (X3)
    assert values(t["cefr_levels_reached"]) == {"A1": 0, "A2": 3, "B1": 3, "B2": 0, "C1": 0, "C2": 0, "total": 6}
    # One integration-course completion: the total goes with it (the cell for German as a second language
    # is course_completions' too, and withholding it there as well would cost more).
    assert values(t["language_course_completions"]) == {
        "integration_course": None,
        "german_second_language": 5,
        "job_german": 0,
        "literacy": 0,
        "total": None,
    }
    # Placement.
    placement = t["placement_referrals"]
    assert [placement.cell(s, "sent").value for s in ("job_placement", "qualification_recognition")] == [4, 3]
    # The IHK's single acceptance: the Jobcenter's 3 is in the referral funnel anyway (it takes job placement
    # only), so the total goes with it; 4 - 3 gave the IHK's 1 away when the Jobcenter's cell was withheld here.
    assert placement.column_totals is not None and placement.column_totals["accepted"].suppressed
    assert placement.cell("job_placement", "accepted").value == 3
    assert values(t["recognitions"]) == {"Landsberg am Lech": 3}
    assert t["days_to_first_counselling"].cell("Landsberg am Lech", "median_days").value == 5.0
    # Interaction: ten enrolments in civic education.
    assert values(t["participation_offers"])["civic_education"] == 10
    # Segregation: D = 1/2 (|6/13 - .6| + |4/13 - .2| + |3/13 - .2|) = 0.138
    assert values(t["newcomers_by_district"]) == {"Altstadt": 4, "Schwaighofsiedlung": 3, "Weststadt": 6, "total": 13}
    assert t["dissimilarity_index"].cell("Landsberg am Lech", "D").value == 0.138
    # Network.
    funnel = t["referral_funnel"]
    # Caritas' five sent in November are withheld: one more in December, and the quarter shows six.
    assert [funnel.cell(CAR, c).value for c in ("sent", "escalated")] == [None, None]
    assert [funnel.cell(JC, c).value for c in ("sent", "accepted", "declined")] == [4, 3, 0]
    assert funnel.column_totals is not None and funnel.column_totals["sent"].suppressed
    assert t["partner_response_hours"].cell(CAR, "median_hours").value == 24.0
    assert t["partner_response_hours"].cell(IHKP, "median_hours").suppressed  # two answers only
    queue = {"civic_education": 0, "german_second_language": 0, "integration_course": 3, "total": 3}
    assert values(t["waiting_list"]) == queue
    seats = {"civic_education": 10, "german_second_language": 15, "integration_course": 1, "total": 26}
    assert values(t["free_seats"]) == seats  # X2 completed: a seat is free; C4 is open until 30 November
    assert t["women_share_in_courses"].cell("Landsberg am Lech", "percent").value == 60.0


def test_fixed_scenario_proposals_name_their_rules() -> None:
    found = [p.as_dict() for p in proposals(FACTS, NOV, k=3)]
    assert [(p["rule"], p["subject"]) for p in found] == [("R1-waiting-list", "integration_course")]
    assert {r.id for r in RULES} >= {"R1-waiting-list", "R2-dissimilarity", "R3-women", "R4-counselling"}


def test_rising_dissimilarity_flags_the_district() -> None:
    # October: spread like the city; November: five more newcomers, all in Weststadt.
    october = [
        person(f"o{i}", "SY", A27, F, REF, d, f"h{i}", date(2026, 10, 5))
        for i, d in enumerate(["Weststadt"] * 3 + ["Altstadt", "Schwaighofsiedlung"])
    ]
    november = [person(f"n{i}", "SY", A27, M, REF, "Weststadt", f"k{i}") for i in range(5)]
    facts = Facts(persons=october + november, reference=REFERENCE)
    assert dissimilarity(newcomers_by_district(october, NOV.previous().end), REFERENCE.population) == 0
    found = proposals(facts, NOV, k=5)
    assert [(p.rule, p.subject) for p in found] == [("R2-dissimilarity", "Weststadt")]


def test_dissimilarity_on_a_hand_computed_example() -> None:
    # Newcomers 10 / 30 / 0, population 1000 / 1000 / 2000: shares .25/.75/0 against .25/.25/.5 -> D = 0.5.
    assert dissimilarity({"A": 10, "B": 30}, {"A": 1000, "B": 1000, "C": 2000}) == 0.5
    assert dissimilarity({"A": 5, "B": 5}, {"A": 50, "B": 50}) == 0
    assert dissimilarity({"A": 7}, {"B": 100}) == 1
    assert dissimilarity({}, {"A": 1}) is None


def test_periods() -> None:
    assert (NOV.start, NOV.end, NOV.previous().label) == (date(2026, 11, 1), date(2026, 11, 30), "2026-10")
    q4 = Period.parse("2026-Q4")
    assert (q4.start, q4.end, q4.previous().label, q4.last_month().label) == (
        date(2026, 10, 1),
        date(2026, 12, 31),
        "2026-Q3",
        "2026-12",
    )
    assert Period.parse("2026").previous().label == "2025" and Period.parse("2026-01").previous().label == "2025-12"
    # Years below 1000 keep their four digits (a fuzzer found "0552" failing on its previous year).
    assert [Period.parse(p).previous().label for p in ("0552", "0552-Q1", "0552-01")] == ["0551", "0551-Q4", "0551-12"]
    for bad in ("2026-13", "2026-Q5", "26-11", "next year", "2026-1"):
        try:
            Period.parse(bad)
        except PeriodError:
            continue
        raise AssertionError(bad)
    # Events are counted on the Landsberg calendar day: 23:30 UTC on 30 November is 1 December there.
    assert local_day(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) == date(2026, 12, 1)


def test_children_age_out_of_their_band_uniformly() -> None:
    registered = date(2022, 1, 1)
    four_years = registered + timedelta(days=1461)
    spread = band_probabilities(AgeBand.AGE_0_2, registered, four_years)
    assert spread == {AgeBand.AGE_3_5: 2 / 3, AgeBand.AGE_6_9: 1 / 3}
    assert band_probabilities(AgeBand.AGE_10_17, registered, registered + timedelta(days=365 * 9)) == {}


def test_planning_tables() -> None:
    tables = by_id(children_tables(PERSONS, date(2026, 12, 1), k=1))
    grid = tables["children_by_district"]
    assert [grid.cell("Weststadt", b).value for b in ("0-2", "3-5", "6-9", "10-17")] == [1, 1, 0, 1]
    assert [grid.cell("Altstadt", b).value for b in ("0-2", "3-5", "6-9", "10-17")] == [0, 0, 1, 0]
    assert grid.total is not None and grid.total.value == 4
    projection = tables["children_projection"]
    assert projection.columns == ["2026-12-01", "2027-09-01", "2028-09-01", "2029-09-01"]
    assert projection.column_totals is not None and projection.column_totals["2026-12-01"].value == 4
    assert tables["households_with_children"].cell("Landsberg am Lech", "count").value == 3  # H1, H2, H3
    withheld = by_id(children_tables(PERSONS, date(2026, 12, 1), k=5))["children_by_district"]
    assert withheld.total is not None and withheld.total.suppressed  # four children: below k


# --- k-anonymity: no withheld cell can be recovered ---------------------------------------------


def rank(matrix: list[list[Fraction]]) -> int:
    rows = [row[:] for row in matrix]
    found = 0
    for col in range(len(rows[0]) if rows else 0):
        pivot = next((i for i in range(found, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[found], rows[pivot] = rows[pivot], rows[found]
        for i in range(len(rows)):
            if i != found and rows[i][col] != 0:
                factor = rows[i][col] / rows[found][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[found], strict=True)]
        found += 1
    return found


def published_equations(table: Table) -> tuple[list[list[tuple[str, ...]]], dict[tuple[str, ...], Any]]:
    """The lines an outsider sees (cells + their total) and the published entries (None where withheld)."""
    entries: dict[tuple[str, ...], Any] = {("c", r, c): table.cell(r, c) for r in table.rows for c in table.columns}
    lines: list[list[tuple[str, ...]]] = []
    if table.row_totals is not None:
        for r in table.rows:
            entries[("rt", r)] = table.row_totals[r]
            lines.append([*(("c", r, c) for c in table.columns), ("rt", r)])
    if table.column_totals is not None:
        for c in table.columns:
            entries[("ct", c)] = table.column_totals[c]
            lines.append([*(("c", r, c) for r in table.rows), ("ct", c)])
    if table.total is not None:
        entries[("t",)] = table.total
        lines.append([*(("ct", c) for c in table.columns), ("t",)])
        lines.append([*(("rt", r) for r in table.rows), ("t",)])
    return lines, entries


tables_strategy = st.integers(1, 5).flatmap(
    lambda rows: st.integers(1, 5).flatmap(
        lambda cols: st.tuples(
            st.lists(st.lists(st.integers(0, 12), min_size=cols, max_size=cols), min_size=rows, max_size=rows),
            st.sampled_from([(True, True), (False, True), (True, False)]),
            st.integers(2, 6),
        )
    )
)


@settings(max_examples=3 * settings().max_examples, deadline=None)  # 300 in `make test`: many table shapes
@given(tables_strategy)
def test_no_withheld_cell_can_be_recovered_from_the_published_totals(case: Any) -> None:
    matrix, (row_totals, column_totals), k = case
    rows, cols = [f"r{i}" for i in range(len(matrix))], [f"c{j}" for j in range(len(matrix[0]))]
    counts = {(r, c): matrix[i][j] for i, r in enumerate(rows) for j, c in enumerate(cols)}
    spec = count_table(
        "t", "t", Group.DEMOGRAPHY, "persons", rows, cols, counts, row_totals=row_totals, column_totals=column_totals
    )
    table = protect(spec, k)
    lines, entries = published_equations(table)
    hidden = sorted(key for key, cell in entries.items() if cell.suppressed)
    # Every count between 1 and k-1 is withheld, and published values are the true ones.
    for (i, r), (j, c) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
        cell = table.cell(r, c)
        assert cell.suppressed or (cell.value == matrix[i][j] and not 0 < matrix[i][j] < k)
    # The stated rule: a line holding a withheld entry holds at least two (a cell and another cell or its total).
    for line in lines:
        assert sum(entries[key].suppressed for key in line) != 1, line
    # And the exact check: no withheld entry is fixed by the published equations (rank test).
    if hidden:
        index = {key: n for n, key in enumerate(hidden)}
        matrix_a = []
        for line in lines:
            row = [Fraction(0)] * len(hidden)
            for key in line:
                if key in index:
                    row[index[key]] += -1 if key[0] in ("rt", "ct", "t") else 1
            matrix_a.append(row)
        full = rank(matrix_a)
        for n, key in enumerate(hidden):
            without = [row[:n] + row[n + 1 :] for row in matrix_a]
            assert rank(without) == full, f"{key} is determined by the published totals"


def test_a_single_small_cell_takes_the_next_smallest_with_it() -> None:
    counts = {("a", "count"): 2, ("b", "count"): 9, ("c", "count"): 7}
    table = protect(count_table("t", "t", Group.DEMOGRAPHY, "persons", ["a", "b", "c"], ["count"], counts), 5)
    assert values(table) == {"a": None, "b": 9, "c": None, "total": 18}
    as_json = table.as_dict()
    assert as_json["rows"][0]["cells"]["count"] == {"value": None, "suppressed": True}


# --- the routes of the city's named needs (issue 18) --------------------------------------------------


def test_routes_show_women_and_eu_skilled_workers_apart_where_the_numbers_allow() -> None:
    """EURES: 6 EU citizens (3 women, 3 men) and 5 refugees (all women) sent in November. The share of EU
    citizens (6 of 11) is published; the share of women (8 of 11) is withheld, as the 3 men are fewer than k."""
    people = [person(f"X{i}", "RO", A27, F if i < 3 else M, EU, "Weststadt", f"HX{i}") for i in range(6)]
    people += [person(f"Y{i}", "SY", A27, F, REF, "Weststadt", f"HY{i}") for i in range(5)]
    sent = [
        referral(
            f"r{p.person_id}", "sent", at("2026-11-10"), "eures", ServiceType.EU_JOB_MOBILITY, person_id=p.person_id
        )
        for p in people
    ]
    meet = [
        referral(f"m{p.person_id}", "sent", at("2026-11-12"), "stadt", ServiceType.MEETING_OFFER, person_id=p.person_id)
        for p in people[:5]
    ]
    tables = {t.id: t for t in indicators(Facts(persons=people, referrals=sent + meet), NOV, 5)}
    eu = tables["need_routes_eu_share"]
    assert eu.cell("eu_job_mobility", "percent").value == round(100 * 6 / 11, 1)
    assert tables["need_routes_women_share"].cell("eu_job_mobility", "percent").suppressed
    assert eu.cell("health_advice", "percent") == Cell(None)  # nobody referred: nothing to hide
    # Meeting offers: 5 persons, 3 women and 2 men: the women's share would tell the 2 men apart.
    assert tables["need_routes_women_share"].cell("meeting_offer", "percent").suppressed
    assert tables["meeting_offer_referrals"].group is Group.INTERACTION
    assert tables["meeting_offer_referrals"].cell("meeting_offer", "sent").value == 5
    assert tables["need_routes"].cell("eu_job_mobility", "sent").value == 11
    assert set(tables["need_routes"].rows) == {s.value for s in ROUTE_SERVICES}


def test_women_and_eu_citizens_are_shown_apart_in_registrations() -> None:
    """November's registrations by residence-status group and gender: the two Romanian men are the EU citizens;
    women make up 4 of the 6 recognised refugees registered in November (E1 registered in October)."""
    table = by_id(indicators(Facts(PERSONS), NOV, k=1))["registrations_by_residence_status_and_gender"]
    assert table.cell("eu_citizen", "male").value == 2 and table.cell("eu_citizen", "female").value == 0
    assert table.cell("recognised_refugee", "female").value == 4
    assert table.row_totals is not None and table.row_totals["recognised_refugee"].value == 6
    assert table.total == Cell(13)
    protected = by_id(indicators(Facts(PERSONS), NOV, k=5))["registrations_by_residence_status_and_gender"]
    assert protected.cell("eu_citizen", "male").suppressed, "two men: withheld"
