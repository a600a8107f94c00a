"""Housing need as an indicator: persons whose latest needs assessment names housing, by district and household
size on a period's last day, protected like every other count."""

from __future__ import annotations

from datetime import date

from contracts.vocabulary import AgeBand, Gender, ResidenceStatusGroup
from services.monitoring import housing
from services.monitoring.domain import Facts, PersonFact
from services.monitoring.periods import Period
from services.monitoring.protection import indicators
from services.monitoring.tables import Cell, Group, Table


def member(
    pid: str, household: str, district: str, need_since: date | None = None, moved: date | None = None
) -> PersonFact:
    return PersonFact(
        pid,
        household,
        date(2026, 10, 1),
        "SY",
        AgeBand.AGE_27_44,
        Gender.FEMALE,
        ResidenceStatusGroup.RECOGNISED_REFUGEE,
        district,
        moved,
        need_since,
    )


#: Household A (Weststadt): five members, two name housing; B (Weststadt): alone, names housing; C (Altstadt): two,
#: one names housing on 20 November; D (Altstadt): three, one names housing but the household's third member
#: moved away on 15 November, so on 30 November it is a household of two.
PERSONS = [
    *(member(f"a{i}", "A", "Weststadt", date(2026, 10, 5) if i < 2 else None) for i in range(5)),
    member("b", "B", "Weststadt", date(2026, 10, 5)),
    member("c1", "C", "Altstadt", date(2026, 11, 20)),
    member("c2", "C", "Altstadt"),
    member("d1", "D", "Altstadt", date(2026, 10, 5)),
    member("d2", "D", "Altstadt"),
    member("d3", "D", "Altstadt", moved=date(2026, 11, 15)),
]


def test_household_size_bands() -> None:
    assert [housing.size_band(n) for n in (1, 2, 3, 4, 5, 9)] == ["1", "2", "3-4", "3-4", "5+", "5+"]


def test_counts_on_a_day() -> None:
    assert housing.housing_need_counts(PERSONS, date(2026, 11, 30)) == {
        ("Weststadt", "5+"): 2,
        ("Weststadt", "1"): 1,
        ("Altstadt", "2"): 2,
    }
    # On 31 October: C has named no need yet, D is still three.
    assert housing.housing_need_counts(PERSONS, date(2026, 10, 31)) == {
        ("Weststadt", "5+"): 2,
        ("Weststadt", "1"): 1,
        ("Altstadt", "3-4"): 1,
    }


def test_the_indicator_is_published_and_small_cells_withheld() -> None:
    def table(k: int) -> Table:
        tables = indicators(Facts(PERSONS), Period.parse("2026-11"), k)
        return next(t for t in tables if t.id == "housing_need")

    open_table = table(1)
    assert open_table.group is Group.SEGREGATION
    assert (open_table.rows, open_table.columns) == (["Altstadt", "Weststadt"], ["1", "2", "3-4", "5+"])
    assert open_table.cell("Weststadt", "5+").value == 2 and open_table.total == Cell(5)
    protected = table(5)
    assert protected.total == Cell(5)  # five persons: published
    assert all(protected.cell(r, c).suppressed for r, c in [("Weststadt", "5+"), ("Weststadt", "1"), ("Altstadt", "2")])
    assert all(cell.suppressed for cell in (protected.row_totals or {}).values())
