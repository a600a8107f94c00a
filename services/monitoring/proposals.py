"""Proposals for the council report (Beschlussvorschläge): the documented rules and what the facts make of them.

Pure: no I/O. Numbers below k are never quoted.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from contracts.vocabulary import Gender
from services.monitoring.domain import Facts
from services.monitoring.indicators import first_counselling_days, waiting_and_free, women_share
from services.monitoring.periods import Period
from services.monitoring.segregation import dissimilarity, newcomers_by_district, over_representation


@dataclass(frozen=True)
class Rule:
    id: str
    description: str


RULES = (
    Rule(
        "R1-waiting-list",
        "At the end of each of the last two months of the period, more people wait for courses "
        "of a category than there are free seats in its open courses: propose another course of that category.",
    ),
    Rule(
        "R2-dissimilarity",
        "The index of dissimilarity rose against the previous period and a district's share of "
        "newcomers exceeds its share of the population by more than before (with at least k newcomers there): "
        "flag the district for housing allocation.",
    ),
    Rule(
        "R3-women",
        "Women make up under 40 % of course enrolments while they are at least 40 % of the period's "
        "registrations: propose women-only courses with childcare.",
    ),
    Rule(
        "R4-counselling",
        "The median time from registration to the first counselling referral exceeds 14 days: "
        "propose more counselling capacity or earlier routing.",
    ),
)


@dataclass(frozen=True)
class Proposal:
    rule: str
    subject: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "subject": self.subject, "proposal": self.text}


def proposals(facts: Facts, period: Period, k: int) -> list[Proposal]:
    """The council proposals the documented :data:`RULES` derive (numbers below k are never quoted)."""
    found: list[Proposal] = []
    last = period.last_month()
    before = last.previous()
    now, then = waiting_and_free(facts, last.end), waiting_and_free(facts, before.end)
    for category in sorted(now):
        if all(q.get(category, (0, 0))[0] > q.get(category, (0, 0))[1] for q in (now, then)):
            found.append(
                Proposal(
                    "R1-waiting-list",
                    category,
                    f"Schedule another '{category}' course: its waiting list was longer than the free "
                    f"seats at the end of {before.label} and of {last.label}.",
                )
            )
    if facts.reference is not None:
        population = facts.reference.population
        stock_now = newcomers_by_district(facts.persons, period.end)
        stock_then = newcomers_by_district(facts.persons, period.previous().end)
        d_now, d_then = dissimilarity(stock_now, population), dissimilarity(stock_then, population)
        if d_now is not None and d_then is not None and d_now > d_then and sum(stock_now.values()) >= k:
            over_now, over_then = (
                over_representation(stock_now, population),
                over_representation(stock_then, population),
            )
            for district in sorted(over_now):
                gap = over_now[district]
                if gap > 0 and gap > over_then.get(district, 0.0) and stock_now[district] >= k:
                    found.append(
                        Proposal(
                            "R2-dissimilarity",
                            district,
                            f"Flag {district} for housing allocation: dissimilarity rose from "
                            f"{d_then:.3f} to {d_now:.3f} and newcomers are increasingly "
                            f"over-represented there.",
                        )
                    )
    share, _, known = women_share(facts, period)
    registered = [p for p in facts.persons if period.contains(p.registered_on)]
    women_registered = sum(p.gender is Gender.FEMALE for p in registered)
    if share is not None and known >= k and share < 40 and registered and women_registered / len(registered) >= 0.4:
        found.append(
            Proposal(
                "R3-women",
                "courses",
                "Offer women-only courses with childcare: women are under-represented in course "
                "enrolments compared with the registrations.",
            )
        )
    days = first_counselling_days(facts, period)
    if len(days) >= k and statistics.median(days) > 14:
        found.append(
            Proposal(
                "R4-counselling",
                "counselling",
                "Add counselling capacity or route earlier: the median time from registration to the "
                "first counselling referral exceeds 14 days.",
            )
        )
    return found
