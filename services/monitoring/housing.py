"""Housing need (Wohnungsbedarf) as an indicator: the newcomers whose latest needs assessment names a housing
need, by district and household size, on a period's last day. Pure: no I/O.

The need comes from registration's needs assessments (the category ``housing``), which carry no address; the
household size counts the household's members living here that day. Only the latest assessment is kept: a
person counts from its day on while it names housing, and no longer once a newer one does not (so a report
of an earlier period may then show one fewer; the figures are protected like every other count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.monitoring.domain import PersonFact

#: Household sizes as the city's housing statistics group them (persons).
HOUSEHOLD_SIZES = ("1", "2", "3-4", "5+")


def size_band(members: int) -> str:
    return "1" if members <= 1 else "2" if members == 2 else "3-4" if members <= 4 else "5+"


def in_need(person: PersonFact, day: date) -> bool:
    since = person.housing_need_since
    return since is not None and since <= day and person.lives_here_on(day)


def housing_need_counts(persons: Sequence[PersonFact], day: date) -> Counter[tuple[str, str]]:
    """(district, household size band) -> persons with a housing need living here on ``day``."""
    members = Counter(p.household_id for p in persons if p.lives_here_on(day))
    return Counter((p.district, size_band(members[p.household_id])) for p in persons if in_need(p, day))
