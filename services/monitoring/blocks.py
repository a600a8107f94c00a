"""Segregation per residential block (Baublock), coarsened so that no small cell is revealed. Pure: no I/O.

Registration publishes each person's coarse block id (never the address); the city's block reference gives each
block its district and resident population. On a period's last day the newcomers living here are counted per
block and the index of dissimilarity is computed over *units*:

* a block is its own unit when at least ``k`` newcomers and ``k`` residents live there, and its district's count
  is published in ``newcomers_by_district`` (within a withheld district nothing finer may be shown: the blocks
  would add up to the withheld count);
* the district's other addresses (blocks below the threshold, addresses in no block) form one unit, its count
  the published district count minus the blocks shown. When it would be ``0 < n < k``, the shown block with the
  fewest newcomers joins it, until it is 0 or at least ``k`` (so the merged blocks' sum is no small cell either);
* the withheld districts together form one unit, its count the published total minus the published districts.

So every count in the table is 0, at least ``k``, or follows from the district table's published figures alone,
and the index is a function of the table: it reveals nothing the table does not. The attacker's check is in
``tests/unit/test_monitoring_disclosure.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from services.monitoring import segregation, tables

if TYPE_CHECKING:
    from services.monitoring.domain import Facts, PersonFact
    from services.monitoring.periods import Period

#: A district's other addresses, after the district's name (the web UI translates it).
REST_SUFFIX = ", other addresses"
#: The withheld districts together.
WITHHELD_DISTRICTS = "withheld districts"
COLUMNS = ["newcomers", "residents", "newcomers_percent", "residents_percent"]
TABLE_ID, INDEX_ID = "newcomers_by_block", "dissimilarity_index_by_block"


@dataclass(frozen=True)
class Block:
    block_id: str
    name: str
    district: str
    population: int


@dataclass(frozen=True)
class BlockReference:
    """The city's residential blocks with their resident population (analyst input, like the districts')."""

    blocks: Sequence[Block]
    source: str
    illustrative: bool


@dataclass(frozen=True)
class Unit:
    """One row of the coarsened table: a block, a district's other addresses, or the withheld districts."""

    label: str
    newcomers: int | None  # None: withheld (the published total it follows from is withheld)
    residents: int


def block_label(block: Block) -> str:
    return f"{block.name} ({block.district})"


def split_label(label: str) -> tuple[str, str | None]:
    """(district, block name) of a row label; the block name is None for a district's other addresses or a
    whole district, and the district is :data:`WITHHELD_DISTRICTS` for that row."""
    if label.endswith(REST_SUFFIX):
        return label[: -len(REST_SUFFIX)], None
    found = re.fullmatch(r"(.*) \(([^()]*)\)", label)
    return (found.group(2), found.group(1)) if found else (label, None)


def newcomers_by_block(persons: Sequence[PersonFact], day: date, reference: BlockReference) -> Counter[str]:
    """Block id -> newcomers living there on ``day`` (a block of another district than the person's: none)."""
    district_of = {b.block_id: b.district for b in reference.blocks}
    return Counter(
        p.block
        for p in persons
        if p.lives_here_on(day) and p.block is not None and district_of.get(p.block) == p.district
    )


def coarsen(
    in_block: Mapping[str, int],
    districts: Mapping[str, int | None],
    total: int | None,
    reference: BlockReference,
    population: Mapping[str, int] | None,
    k: int,
) -> list[Unit]:
    """The units of the coarsened table (see the module's doc).

    ``districts`` holds the published newcomers per district (None: withheld) and ``total`` their published sum;
    ``population`` the residents per district when uploaded (else a district's blocks add up its residents).
    """
    by_district: dict[str, list[Block]] = {}
    for block in reference.blocks:
        by_district.setdefault(block.district, []).append(block)

    def residents(district: str) -> int:
        if population is not None and district in population:
            return population[district]
        return sum(b.population for b in by_district.get(district, []))

    units: list[Unit] = []
    withheld: list[str] = []
    for district, count in sorted(districts.items()):
        if count is None:
            withheld.append(district)
            continue
        shown = [b for b in by_district.get(district, []) if in_block.get(b.block_id, 0) >= k and b.population >= k]
        rest = count - sum(in_block[b.block_id] for b in shown)
        while 0 < rest < k and shown:
            smallest = min(shown, key=lambda b: (in_block[b.block_id], b.block_id))
            shown.remove(smallest)
            rest += in_block[smallest.block_id]
        units.extend(Unit(block_label(b), in_block[b.block_id], b.population) for b in sorted(shown, key=block_label))
        rest_residents = max(residents(district) - sum(b.population for b in shown), 0)
        if rest or rest_residents:
            label = f"{district}{REST_SUFFIX}" if shown else district
            units.append(Unit(label, rest, rest_residents))
    if withheld:
        known = sum(c for c in districts.values() if c is not None)
        units.append(
            Unit(WITHHELD_DISTRICTS, None if total is None else total - known, sum(residents(d) for d in withheld))
        )
    # Districts with residents but no newcomer do not appear in the district table: they are units too.
    for district in sorted(set(by_district) | set(population or {})):
        if district not in districts and residents(district):
            units.append(Unit(district, 0, residents(district)))
    return units


def block_tables(found: list[tables.Table], facts: Facts, period: Period, k: int) -> list[tables.Table]:
    """The period's tables with the coarsened block table and the block-level index after the district index."""

    reference = facts.blocks
    stock = next((t for t in found if t.id == "newcomers_by_district"), None)
    if reference is None or stock is None:
        return found
    counts = {row: stock.cell(row, "count") for row in stock.rows}
    districts = {row: None if c.suppressed else int(c.value or 0) for row, c in counts.items()}
    total_cell = (stock.column_totals or {}).get("count")
    total = None if total_cell is None or total_cell.suppressed else int(total_cell.value or 0)
    population = facts.reference.population if facts.reference is not None else None
    units = coarsen(
        newcomers_by_block(facts.persons, period.end, reference), districts, total, reference, population, k
    )
    n_total = total if total is not None else 0
    p_total = sum(u.residents for u in units)

    def percent(part: int | None, whole: int) -> tables.Cell:
        if part is None:
            return tables.Cell(None, True)
        return tables.Cell(round(100 * part / whole, 1) if whole else None)

    cells: dict[tuple[str, str], tables.Cell] = {}
    for u in units:
        cells[(u.label, "newcomers")] = tables.Cell(None, True) if u.newcomers is None else tables.Cell(u.newcomers)
        cells[(u.label, "residents")] = tables.Cell(u.residents)
        cells[(u.label, "newcomers_percent")] = percent(u.newcomers, n_total)
        cells[(u.label, "residents_percent")] = percent(u.residents, p_total)
    marked = " (ILLUSTRATIVE figures)" if reference.illustrative else ""
    table = tables.Table(
        TABLE_ID,
        f"Newcomers and residents per residential block on {period.end.isoformat()}, coarsened",
        tables.Group.SEGREGATION,
        "persons",
        [u.label for u in units],
        list(COLUMNS),
        cells,
        note=f"Blocks with fewer than {k} newcomers or residents, and a district's addresses in no block, are "
        f"counted as the district's other addresses; within a withheld district nothing finer is shown. Reference: "
        f"{reference.source}{marked}",
    )
    complete = total is not None and all(u.newcomers is not None for u in units)
    index = (
        segregation.dissimilarity({u.label: u.newcomers or 0 for u in units}, {u.label: u.residents for u in units})
        if complete
        else None
    )
    derived = tables.derived(
        INDEX_ID,
        "Index of dissimilarity of newcomers against the residents, per residential block (coarsened)",
        tables.Group.SEGREGATION,
        "index",
        {tables.CITY: (round(index, 3) if index is not None else None, n_total)},
        k,
        column="D",
        note="Over the units of the block table: its figures alone give it.",
        extra_risk={tables.CITY: not complete},
    )
    at = next((i + 1 for i, t in enumerate(found) if t.id == "dissimilarity_index"), found.index(stock) + 1)
    return [*found[:at], table, derived, *found[at:]]
