"""Reporting periods (Berichtszeiträume): a month, a quarter or a year, and the day in Landsberg. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from contracts.calendar import local_day

__all__ = ["Period", "PeriodError", "family", "local_day"]


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


def family(year: int) -> list[Period]:
    """The periods whose tables are protected together: the year's months, its quarters and the year."""
    months = [Period.parse(f"{year:04d}-{m:02d}") for m in range(1, 13)]
    quarters = [Period.parse(f"{year:04d}-Q{q}") for q in range(1, 5)]
    return [*months, *quarters, Period.parse(f"{year:04d}")]
