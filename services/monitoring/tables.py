"""Published tables (Tabellen) and k-anonymity of a table on its own: cells, totals, the groups of the report.

Pure: no I/O. The indicators of a period are protected jointly across periods: :mod:`services.monitoring.protection`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contracts.vocabulary import EsserDimension
from services.monitoring import disclosure

CITY = "Landsberg am Lech"


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
class Counts:
    """A count table before suppression: :func:`render` turns it into a :class:`Table`."""

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


def render(spec: Counts, withheld: Callable[[Part], bool]) -> Table:
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


def complement_class(part: Part, value: int) -> int:
    """Complements are taken from positive cells first, then totals, zeros last."""
    return 1 if part[0] != "cell" else 0 if value > 0 else 2


def count_table(
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
) -> Counts:
    return Counts(
        table_id,
        title,
        group,
        unit,
        list(rows),
        list(columns),
        dict(counts),
        row_totals,
        column_totals,
        note,
        suppress,
        kind,
        frozenset(distinct_rows),
    )


def protect(spec: Counts, k: int) -> Table:
    """One count table on its own, k-anonymous with complementary suppression (none for a table of public figures,
    ``suppress=False``). The indicators of a period are protected jointly: see :func:`indicators_of`."""
    system = disclosure.System()
    for part, value in spec.figures().items():
        system.add(part, value, (complement_class(part, value), value))
    for line in spec.lines():
        system.equation({tuple(part): c for part, c in line.items()})
    hidden = disclosure.suppress(system, k) if spec.suppress else set()
    return render(spec, lambda part: part in hidden)


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


def distribution(
    table_id: str,
    title: str,
    group: Group,
    unit: str,
    counts: Mapping[str, int],
    order: Iterable[str] | None = None,
    *,
    kind: str = "flow",
) -> Counts:
    rows = list(order) if order is not None else sorted(counts)
    return count_table(
        table_id, title, group, unit, rows, ["count"], {(r, "count"): counts.get(r, 0) for r in rows}, kind=kind
    )
