"""Segregation per residential block, coarsened: the units and the index against a hand-computed example."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from contracts.vocabulary import AgeBand, Gender, ResidenceStatusGroup
from services.monitoring import blocks, protection
from services.monitoring.blocks import Block, BlockReference, Unit
from services.monitoring.domain import DistrictReference, Facts, PersonFact
from services.monitoring.periods import Period
from services.monitoring.tables import CITY, Table

K = 5
NOV = Period.parse("2026-11")
REFERENCE = BlockReference(
    [
        Block("a-1", "Hauptplatz", "Altstadt", 200),
        Block("a-2", "Anger", "Altstadt", 300),
        Block("a-3", "Schlossberg", "Altstadt", 3),  # fewer residents than k: never shown
        Block("w-1", "Spöttinger Straße", "Weststadt", 500),
        Block("w-2", "Iglinger Straße", "Weststadt", 500),
    ],
    "test blocks",
    True,
)
POPULATION = {"Altstadt": 1000, "Weststadt": 1000}


def people(district: str, block: str | None, n: int, start: int = 0) -> list[PersonFact]:
    return [
        PersonFact(
            f"{district}-{block}-{i}",
            f"h-{district}-{block}-{i}",
            date(2026, 11, 2),
            "SY",
            AgeBand.AGE_27_44,
            Gender.FEMALE if i % 2 else Gender.MALE,
            ResidenceStatusGroup.OTHER,
            district,
            block=block,
        )
        for i in range(start, start + n)
    ]


# Altstadt: 10 in a-1, 3 in a-2 (below k), 5 in a-3 (too few residents), 1 in no block = 19.
# Weststadt: 6 in w-1, 4 in w-2 (below k) = 10: the rest would be 4, so w-1 joins it and the district is one unit.
PERSONS = [
    *people("Altstadt", "a-1", 10),
    *people("Altstadt", "a-2", 3),
    *people("Altstadt", "a-3", 5),
    *people("Altstadt", None, 1),
    *people("Weststadt", "w-1", 6),
    *people("Weststadt", "w-2", 4),
]
FACTS = Facts(persons=PERSONS, reference=DistrictReference(POPULATION, "test", True), blocks=REFERENCE)


def tables(facts: Facts = FACTS, period: Period = NOV) -> dict[str, Table]:
    return {t.id: t for t in protection.indicators(facts, period, K)}


def test_the_units_by_hand() -> None:
    counts = blocks.newcomers_by_block(PERSONS, NOV.end, REFERENCE)
    assert counts == {"a-1": 10, "a-2": 3, "a-3": 5, "w-1": 6, "w-2": 4}
    units = blocks.coarsen(counts, {"Altstadt": 19, "Weststadt": 10}, 29, REFERENCE, POPULATION, K)
    assert units == [
        Unit("Hauptplatz (Altstadt)", 10, 200),
        Unit("Altstadt, other addresses", 9, 800),  # a-2 + a-3 + no block; residents 1000 - 200
        Unit("Weststadt", 10, 1000),  # the whole district: w-1 alone would leave a rest of 4
    ]


def test_the_coarsened_index_by_hand() -> None:
    found = tables()
    table = found["newcomers_by_block"]
    assert table.rows == ["Hauptplatz (Altstadt)", "Altstadt, other addresses", "Weststadt"]
    assert [table.cell(r, "newcomers").value for r in table.rows] == [10, 9, 10]
    assert [table.cell(r, "residents").value for r in table.rows] == [200, 800, 1000]
    assert [table.cell(r, "newcomers_percent").value for r in table.rows] == [34.5, 31.0, 34.5]
    assert [table.cell(r, "residents_percent").value for r in table.rows] == [10.0, 40.0, 50.0]
    assert "ILLUSTRATIVE" in table.note
    # D = 1/2 (|10/29 - 1/10| + |9/29 - 2/5| + |10/29 - 1/2|) = 1/2 (71 + 26 + 45)/290 = 71/290
    d = Fraction(1, 2) * (
        abs(Fraction(10, 29) - Fraction(1, 10))
        + abs(Fraction(9, 29) - Fraction(2, 5))
        + abs(Fraction(10, 29) - Fraction(1, 2))
    )
    assert d == Fraction(71, 290)
    assert found["dissimilarity_index_by_block"].cell(CITY, "D").value == round(float(d), 3) == 0.245
    # Per district the same newcomers give 9/58: the blocks show what the districts hide.
    assert found["dissimilarity_index"].cell(CITY, "D").value == round(9 / 58, 3)
    ids = list(found)
    assert ids.index("newcomers_by_block") == ids.index("dissimilarity_index") + 1


def test_within_a_withheld_district_nothing_finer_is_shown() -> None:
    # Three in Pitzling: withheld (and one more district with it, so that the total does not give it away).
    persons = [*PERSONS, *people("Pitzling", None, 3)]
    facts = Facts(
        persons=persons, reference=DistrictReference(POPULATION | {"Pitzling": 500}, "test", True), blocks=REFERENCE
    )
    found = tables(facts)
    stock = found["newcomers_by_district"]
    withheld = [r for r in stock.rows if stock.cell(r, "count").suppressed]
    assert "Pitzling" in withheld and len(withheld) >= 2
    table = found["newcomers_by_block"]
    for district in withheld:
        assert not any(blocks.split_label(r)[0] == district for r in table.rows)
    total = stock.column_totals["count"].value if stock.column_totals else None
    shown = sum(stock.cell(r, "count").value or 0 for r in stock.rows if r not in withheld)
    row = table.cell(blocks.WITHHELD_DISTRICTS, "newcomers")
    assert row.value == (total - shown if isinstance(total, int) else None)


def test_no_reference_no_block_tables() -> None:
    found = tables(Facts(persons=PERSONS, reference=DistrictReference(POPULATION, "test", True)))
    assert "newcomers_by_block" not in found and "dissimilarity_index_by_block" not in found


def test_few_newcomers_withhold_the_index() -> None:
    found = tables(Facts(persons=people("Altstadt", "a-1", 3), blocks=REFERENCE))
    assert found["dissimilarity_index_by_block"].cell(CITY, "D").suppressed


def test_labels_split_into_district_and_block() -> None:
    assert blocks.split_label("Hauptplatz (Altstadt)") == ("Altstadt", "Hauptplatz")
    assert blocks.split_label("Altstadt, other addresses") == ("Altstadt", None)
    assert blocks.split_label("Weststadt") == ("Weststadt", None)
