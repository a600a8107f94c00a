"""Segregation (Wohnverteilung): where newcomers live against the district population. Pure: no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date

from services.monitoring.domain import PersonFact


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
