"""School and Kita planning: the forecast against a hand-computed example, the trend's arithmetic, the merging
of small districts, capacities and the CSV."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from contracts.vocabulary import AgeBand, Gender, ResidenceStatusGroup
from services.monitoring import planning
from services.monitoring.domain import PersonFact
from services.monitoring.planning import OTHER, Capacity

TODAY = date(2026, 12, 1)
#: Children registered in each month from December 2025 (month 1) to November 2026 (month 12).
MONTHLY = [7, 1, 5, 3, 4, 4, 4, 4, 3, 5, 1, 7]


def child(pid: str, band: AgeBand, district: str, registered: date, moved: date | None = None) -> PersonFact:
    return PersonFact(
        pid, f"h-{pid}", registered, "SY", band, Gender.FEMALE, ResidenceStatusGroup.RECOGNISED_REFUGEE, district, moved
    )


def example() -> list[PersonFact]:
    """48 school children (band 6-9) registered over the last twelve months, every third in Altstadt and the
    rest in Weststadt; three toddlers (band 0-2) in Altstadt registered on 2025-09-01, before the twelve months;
    one adult, who counts nowhere."""
    persons = []
    index = 0
    for month, count in enumerate(MONTHLY):
        registered = date(2025 + (11 + month) // 12, (11 + month) % 12 + 1, 15)
        for _ in range(count):
            persons.append(
                child(f"s{index}", AgeBand.AGE_6_9, "Altstadt" if index % 3 == 0 else "Weststadt", registered)
            )
            index += 1
    persons += [child(f"t{i}", AgeBand.AGE_0_2, "Altstadt", date(2025, 9, 1)) for i in range(3)]
    persons.append(
        PersonFact(
            "adult",
            "h-a",
            date(2026, 5, 1),
            "SY",
            AgeBand.AGE_27_44,
            Gender.MALE,
            ResidenceStatusGroup.RECOGNISED_REFUGEE,
            "Weststadt",
        )
    )
    return persons


def test_forecast_against_a_hand_computed_example() -> None:
    """The example of :func:`example`, on 1 December 2026 with k = 5.

    Trend: the monthly counts 7 1 5 3 4 4 | 4 4 3 5 1 7 are 4 plus deviations that mirror around the middle
    (+3 -3 +1 -1 0 0 | 0 0 -1 +1 -3 +3), so the least-squares slope is 0 and the line is y = 4. Squared
    residuals: 4 * 9 + 4 * 1 = 40; s = sqrt(40 / (12 - 2)) = 2. Per month: expected 4, low 2, high 6.

    Months to come: from December 2026 (month 13) to the August before each school year: 2027/28 9 months,
    2028/29 21, 2029/30 33, 2030/31 45, 2031/32 57. Arrivals expected (low, high) = months * 4 (2, 6):
    36 (18, 54), 84 (42, 126), 132 (66, 198), 180 (90, 270), 228 (114, 342).

    Spread: of the 48 arrivals, 16 in Altstadt (1/3) and 32 in Weststadt (2/3), all school children.

    Registered: a 6-9 child is 6 + y to 10 + y years old after y years, at most 6 years here: all school (6-17).
    So school: Altstadt 16 and Weststadt 32 in every year. The toddlers (0-2 on 2025-09-01) are y = 2, 3, 4, 5, 6
    years older on 1 September 2027 ... 2031, ages [y, y + 3): Kita share (6 - y) / 3 capped at 1:
    1, 1, 2/3, 1/3, 0 each, so Altstadt Kita 3, 3, 2, 1, 0 and school 0, 0, 1, 2, 3.

    Altstadt school = 16 + toddlers at school + arrivals / 3:
    2027: 16 + 0 + 12 = 28 (16 + 6 = 22, 16 + 18 = 34); 2028: 16 + 28 = 44 (30, 58);
    2029: 17 + 44 = 61 (17 + 22 = 39, 17 + 66 = 83); 2030: 18 + 60 = 78 (48, 108); 2031: 19 + 76 = 95 (57, 133).
    Weststadt school = 32 + arrivals * 2/3: 2027: 56 (44, 68); 2028: 88 (60, 116); 2029: 120 (76, 164);
    2030: 152 (92, 212); 2031: 184 (108, 260). Weststadt Kita 0. Places for Altstadt's schools in 2027: 30,
    so the gap is 30 - 28 = 2.
    """
    result = planning.forecast(example(), TODAY, [Capacity(2027, "Altstadt", "school", 30)], k=5)
    assert result.trend is not None
    assert result.trend.slope == pytest.approx(0)
    assert result.trend.intercept == pytest.approx(4)
    assert result.trend.spread == pytest.approx(2)
    assert [d.isoformat() for d in result.starts] == [f"{y}-09-01" for y in range(2027, 2032)]
    got = {(r.year, r.district, r.kind): (r.expected, r.low, r.high) for r in result.rows}
    assert [got[(y, "Altstadt", "school")] for y in range(2027, 2032)] == [
        (28, 22, 34),
        (44, 30, 58),
        (61, 39, 83),
        (78, 48, 108),
        (95, 57, 133),
    ]
    assert [got[(y, "Weststadt", "school")] for y in range(2027, 2032)] == [
        (56, 44, 68),
        (88, 60, 116),
        (120, 76, 164),
        (152, 92, 212),
        (184, 108, 260),
    ]
    assert [got[(y, "Altstadt", "kita")][0] for y in range(2027, 2032)] == [3, 3, 2, 1, 0]
    assert [got[(y, "Weststadt", "kita")][0] for y in range(2027, 2032)] == [0] * 5
    first = next(r for r in result.rows if (r.year, r.district, r.kind) == (2027, "Altstadt", "school"))
    assert (first.places, first.gap, first.school_year) == (30, 2, "2027/28")
    assert all(r.places is None for r in result.rows if r is not first)


def test_a_rising_trend_is_continued() -> None:
    """Counts 0, 1, ..., 11 lie on y = t - 1 exactly: slope 1, s = 0; month 13 expects 12."""
    trend = planning.fit_trend(list(range(12)), date(2025, 12, 1))
    assert [trend.slope, trend.intercept, trend.spread] == pytest.approx([1, -1, 0])
    assert trend.expected(13) == pytest.approx(12)
    falling = planning.fit_trend(list(range(11, -1, -1)), date(2025, 12, 1))
    assert falling.expected(20) == 0  # never below zero


def test_small_districts_are_merged_and_a_small_city_withheld() -> None:
    """Pössing has 2 children (below k = 5): merged into "other districts"; that group alone is still below 5,
    so the smallest other district (Altstadt, 16 + 3 = 19 children) joins it; Weststadt (32) stays."""
    persons = [
        *example(),
        child("p1", AgeBand.AGE_10_17, "Pössing", date(2025, 1, 5)),
        child("p2", AgeBand.AGE_3_5, "Pössing", date(2025, 1, 5)),
    ]
    result = planning.forecast(
        persons, TODAY, [Capacity(2027, "Pössing", "school", 4), Capacity(2027, "Altstadt", "school", 30)], k=5
    )
    assert {r.district for r in result.rows} == {"Weststadt", OTHER}
    assert result.merged == ["Altstadt", "Pössing"]
    other = next(r for r in result.rows if (r.year, r.district, r.kind) == (2027, OTHER, "school"))
    assert other.places == 34  # the places of the merged districts add up
    tiny = planning.forecast([child("x", AgeBand.AGE_0_2, "Altstadt", date(2026, 6, 1))], TODAY, [], k=5)
    assert tiny.withheld and tiny.rows == []
    assert planning.document(tiny)["trend"] is None


def test_moved_away_children_leave_the_registered_figures() -> None:
    gone = child("g", AgeBand.AGE_6_9, "Altstadt", date(2024, 3, 1), moved=date(2026, 2, 1))
    result = planning.forecast([gone, *example()], TODAY, [], k=1)
    kept = planning.forecast(example(), TODAY, [], k=1)
    assert [r.expected for r in result.rows] == [r.expected for r in kept.rows]


def test_csv_has_one_line_per_year_district_and_need() -> None:
    result = planning.forecast(example(), TODAY, [Capacity(2027, "Altstadt", "school", 30)], k=5)
    lines = list(csv.DictReader(io.StringIO(planning.to_csv(result))))
    assert len(lines) == 5 * 2 * 2
    assert lines[1] == {
        "school_year": "2027/28",
        "starts_on": "2027-09-01",
        "district": "Altstadt",
        "kind": "school",
        "expected": "28",
        "low": "22",
        "high": "34",
        "places": "30",
        "gap": "2",
    }
