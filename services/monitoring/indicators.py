"""The indicators (Integrationsindikatoren) of a period before suppression, and the measures behind them.

Grouped by Esser's four dimensions, then demography, segregation and the partner network. Pure: no I/O. The
published, k-anonymous figures come from :func:`services.monitoring.protection.indicators_of`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from contracts.vocabulary import AgeBand, Gender, GermanLevel, ResidenceStatusGroup, ServiceType
from services.monitoring import housing
from services.monitoring.domain import SURVEY_ANSWERS, EnrolmentFact, Facts, ReferralFact
from services.monitoring.periods import Period, local_day
from services.monitoring.segregation import dissimilarity, newcomers_by_district
from services.monitoring.tables import CITY, Cell, Counts, Group, Table, count_table, derived, distribution

#: Course categories (the courses service's vocabulary) by what they serve.
LANGUAGE_CATEGORIES = ("integration_course", "german_second_language", "job_german", "literacy")
INTERACTION_CATEGORIES = ("cultural_education", "civic_education", "orientation", "parents_and_women")
COUNSELLING_SERVICES = frozenset(
    {ServiceType.ASYLUM_SOCIAL_COUNSELLING, ServiceType.MIGRATION_COUNSELLING, ServiceType.YOUTH_MIGRATION_SERVICE}
)
PLACEMENT_SERVICES = (ServiceType.JOB_PLACEMENT, ServiceType.QUALIFICATION_RECOGNITION)  # Jobcenter, IHK
#: The routes for the needs the city names (issue 18): health, housing, a perspective without a right to stay,
#: EU skilled workers; and participation (meeting offers), an indicator of interaction.
ROUTE_SERVICES = (
    ServiceType.HEALTH_ADVICE,
    ServiceType.HOUSING_ADVICE,
    ServiceType.RETURN_COUNSELLING,
    ServiceType.RECOGNITION_COUNSELLING,
    ServiceType.JOB_SPECIFIC_GERMAN,
    ServiceType.EU_JOB_MOBILITY,
)
PARTICIPATION_SERVICES = (ServiceType.MEETING_OFFER,)
ROUTE_STAGES = ["sent", "accepted", "declined", "completed"]
#: The count table each route's referrals are in (the identities with the referral funnel name them).
ROUTE_TABLES = {s: "need_routes" for s in ROUTE_SERVICES} | {
    s: "meeting_offer_referrals" for s in PARTICIPATION_SERVICES
}
#: The referrals whose 'sent' event keeps the (pseudonymous) person: for the days to the first counselling, and
#: for the shares of women and of EU citizens on each route.
LINKED_SERVICES = COUNSELLING_SERVICES | frozenset(ROUTE_TABLES)


def _median(values: list[float], digits: int = 1) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _in(period: Period, moment: datetime) -> bool:
    return period.contains(local_day(moment))


def enrolment_status_on(enrolments: Sequence[EnrolmentFact], day: date) -> dict[str, tuple[str, str]]:
    """enrolment id -> (course id, last status) at the end of ``day``."""
    ranked = {"waitlisted": 0, "seat_offered": 1, "offer_expired": 2, "enrolled": 3, "cancelled": 4, "completed": 5}
    status: dict[str, tuple[str, str]] = {}
    for fact in sorted(enrolments, key=lambda f: (f.at, ranked.get(f.kind, 9))):
        if fact.kind in ranked and local_day(fact.at) <= day:
            status[fact.enrolment_id] = (fact.course_id, fact.kind)
    return status


def waiting_and_free(facts: Facts, day: date) -> dict[str, tuple[int, int]]:
    """category -> (people waiting, free seats) over the courses open at the end of ``day``."""
    courses = {c.course_id: c for c in facts.courses if c.open_on(day)}
    held: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    for course_id, kind in enrolment_status_on(facts.enrolments, day).values():
        if course_id not in courses:
            continue
        if kind in ("enrolled", "seat_offered"):
            held[course_id] += 1
        elif kind == "waitlisted":
            waiting[courses[course_id].category] += 1
    result: dict[str, tuple[int, int]] = {}
    for course in courses.values():
        w, f = result.get(course.category, (0, 0))
        result[course.category] = (w, f + max(0, course.capacity - held[course.course_id]))
    for category, count in waiting.items():
        w, f = result.get(category, (0, 0))
        result[category] = (w + count, f)
    return result


def first_counselling_days(facts: Facts, period: Period) -> list[float]:
    """Days from registration to the first counselling referral sent, for those first sent in the period."""
    registered = {p.person_id: p.registered_on for p in facts.persons}
    first: dict[str, datetime] = {}
    for fact in facts.referrals:
        counselling = fact.kind == "sent" and fact.service_type in COUNSELLING_SERVICES
        person = fact.person_id
        if counselling and person in registered and (person not in first or fact.at < first[person]):
            first[person] = fact.at
    return [float((local_day(at) - registered[person]).days) for person, at in first.items() if _in(period, at)]


def _response_hours(facts: Facts, period: Period) -> dict[str, list[float]]:
    """partner -> hours from sending to the first answer (accepted or declined), answered in the period."""
    sent: dict[str, ReferralFact] = {}
    answered: dict[str, ReferralFact] = {}
    for fact in sorted(facts.referrals, key=lambda f: f.at):
        if fact.kind == "sent":
            sent.setdefault(fact.referral_id, fact)
        elif fact.kind in ("accepted", "declined"):
            answered.setdefault(fact.referral_id, fact)
    hours: dict[str, list[float]] = defaultdict(list)
    for referral_id, answer in answered.items():
        origin = sent.get(referral_id)
        if origin is not None and _in(period, answer.at):
            hours[answer.partner].append((answer.at - origin.at).total_seconds() / 3600)
    return hours


def women_share(facts: Facts, period: Period) -> tuple[float | None, int, int]:
    """(percent of course enrolments by women, women, enrolments with a known gender) in the period."""
    gender = {p.person_id: p.gender for p in facts.persons}
    known = [
        gender[f.person_id]
        for f in facts.enrolments
        if f.kind == "enrolled" and _in(period, f.at) and f.person_id in gender
    ]
    women = sum(g is Gender.FEMALE for g in known)
    return (round(100 * women / len(known), 1) if known else None), women, len(known)


def route_shares(
    facts: Facts, period: Period, services: Iterable[ServiceType]
) -> dict[str, dict[str, tuple[float | None, int, int]]]:
    """Per route: (percent, persons of the group, persons known) of the referrals sent in the period, for the
    groups the seed names apart: women, and EU citizens (the skilled workers of "Fokus auf EU-Migranten")."""
    persons = {p.person_id: p for p in facts.persons}
    found: dict[str, dict[str, tuple[float | None, int, int]]] = {}
    for service in services:
        sent = [
            persons[f.person_id]
            for f in facts.referrals
            if f.kind == "sent" and f.service_type is service and _in(period, f.at) and f.person_id in persons
        ]
        groups = {
            "women": sum(p.gender is Gender.FEMALE for p in sent),
            "eu_citizens": sum(p.residence_status_group is ResidenceStatusGroup.EU_CITIZEN for p in sent),
        }
        found[service.value] = {
            group: ((round(100 * n / len(sent), 1) if sent else None), n, len(sent)) for group, n in groups.items()
        }
    return found


def before_suppression(facts: Facts, period: Period, k: int, *, with_derived: bool = True) -> list[Counts | Table]:
    """Every indicator of a period before suppression, in the order of the groups: count tables as
    :class:`Counts`, derived figures (withheld by their own rule) and survey percentages as tables."""
    tables: list[Counts | Table] = []
    registered = [p for p in facts.persons if period.contains(p.registered_on)]
    enrolled = [f for f in facts.enrolments if f.kind == "enrolled" and _in(period, f.at)]
    completed = [f for f in facts.enrolments if f.kind == "completed" and _in(period, f.at)]
    referrals = [f for f in facts.referrals if _in(period, f.at)]

    # Culture and language.
    g = Group.CULTURE_AND_LANGUAGE
    tables.append(
        distribution(
            "language_course_enrolments",
            "Language-course enrolments by course category",
            g,
            "enrolments",
            Counter(f.category for f in enrolled if f.category in LANGUAGE_CATEGORIES),
            LANGUAGE_CATEGORIES,
        )
    )
    tables.append(
        distribution(
            "language_course_completions",
            "Language-course completions by course category",
            g,
            "learners",
            Counter(f.category for f in completed if f.category in LANGUAGE_CATEGORIES),
            LANGUAGE_CATEGORIES,
        )
    )
    levels = [lv.value for lv in GermanLevel if lv is not GermanLevel.NONE]
    tables.append(
        distribution(
            "cefr_levels_reached",
            "German levels (CEFR) reached at course completion",
            g,
            "learners",
            Counter(f.level_reached.value for f in completed if f.level_reached is not None),
            levels,
        )
    )

    # Placement.
    g = Group.PLACEMENT
    columns = ["sent", "accepted", "declined", "completed_successful", "completed_unsuccessful"]
    counts: Counter[tuple[str, str]] = Counter()
    for f in referrals:
        if f.service_type in PLACEMENT_SERVICES:
            kind = f"completed_{f.outcome}" if f.kind == "completed" else f.kind
            counts[(f.service_type.value, kind)] += 1
    tables.append(
        count_table(
            "placement_referrals",
            "Referrals to the Jobcenter (job placement) and the IHK (recognition) and outcomes",
            g,
            "referrals",
            [s.value for s in PLACEMENT_SERVICES],
            columns,
            counts,
            note="Columns are stages of one funnel, not parts of a whole: only column totals are published.",
        )
    )
    recognitions = sum(1 for p in facts.passes if p.kind == "recognition" and _in(period, p.at))
    tables.append(
        count_table(
            "recognitions",
            "Foreign qualifications recognised (education pass entries)",
            g,
            "recognitions",
            [CITY],
            ["count"],
            {(CITY, "count"): recognitions},
            column_totals=False,
        )
    )
    tables.append(
        distribution(
            "course_completions",
            "Course completions by course category",
            g,
            "learners",
            Counter(f.category for f in completed),
        )
    )
    if with_derived:
        days = first_counselling_days(facts, period)
        tables.append(
            derived(
                "days_to_first_counselling",
                "Median days from registration to the first counselling referral sent",
                g,
                "days",
                {CITY: (_median(days), len(days))},
                k,
                column="median_days",
                note="Persons whose first counselling referral was sent in the period.",
            )
        )

    # Interaction.
    g = Group.INTERACTION
    tables.append(
        distribution(
            "participation_offers",
            "Enrolments in cultural, civic and meeting offers",
            g,
            "enrolments",
            Counter(f.category for f in enrolled if f.category in INTERACTION_CATEGORIES),
            INTERACTION_CATEGORIES,
        )
    )

    route_counts = Counter(
        (f.service_type.value, f.kind) for f in referrals if f.service_type in ROUTE_TABLES and f.kind in ROUTE_STAGES
    )
    tables.append(
        count_table(
            "meeting_offer_referrals",
            "Referrals to meeting offers (participation) and their answers",
            g,
            "referrals",
            [s.value for s in PARTICIPATION_SERVICES],
            ROUTE_STAGES,
            route_counts,
            note="Stages of one funnel: only column totals are published.",
        )
    )

    # Identification: the latest survey up to the period's year (already aggregate percentages).
    g = Group.IDENTIFICATION
    survey = max((s for s in facts.surveys if s.year <= period.end.year), key=lambda s: s.year, default=None)
    if survey is not None and with_derived:
        questions = list(survey.questions)
        citizens = survey.german_citizens_percent
        tables.append(
            Table(
                "citizens_survey",
                f"Citizens' survey {survey.year}: satisfaction (percent of respondents)",
                g,
                "percent",
                questions,
                list(SURVEY_ANSWERS),
                {(q, a): Cell(survey.questions[q].get(a)) for q in questions for a in SURVEY_ANSWERS},
                note=f"Source: {survey.source}. Aggregate percentages, not counts: not suppressed. Respondents with "
                f"German citizenship: {citizens if citizens is not None else 'n/a'} %.",
            )
        )

    # Demography.
    g = Group.DEMOGRAPHY
    tables.append(
        distribution(
            "registrations_by_nationality",
            "Registrations by nationality",
            g,
            "persons",
            Counter(p.nationality for p in registered),
        )
    )
    tables.append(
        distribution(
            "registrations_by_age_band",
            "Registrations by age band",
            g,
            "persons",
            Counter(p.age_band.value for p in registered),
            list(AgeBand),
        )
    )
    tables.append(
        distribution(
            "registrations_by_residence_status",
            "Registrations by residence-status group",
            g,
            "persons",
            Counter(p.residence_status_group.value for p in registered),
            [s.value for s in ResidenceStatusGroup],
        )
    )
    genders = [x.value for x in Gender]
    # Women and EU citizens (the skilled workers of "Fokus auf EU-Migranten") apart, as far as k allows.
    tables.append(
        count_table(
            "registrations_by_residence_status_and_gender",
            "Registrations by residence-status group and gender",
            g,
            "persons",
            [s.value for s in ResidenceStatusGroup],
            genders,
            Counter((p.residence_status_group.value, p.gender.value) for p in registered),
            row_totals=True,
        )
    )
    districts = sorted({p.district for p in registered})
    tables.append(
        count_table(
            "registrations_by_district_and_gender",
            "Registrations by district and gender",
            g,
            "persons",
            districts,
            genders,
            Counter((p.district, p.gender.value) for p in registered),
            row_totals=True,
            column_totals=True,
        )
    )
    households = len({p.household_id for p in registered})
    moved = sum(1 for p in facts.persons if period.contains(p.moved_away_on))
    tables.append(
        count_table(
            "households_and_moves",
            "Newcomer households registered and persons who moved away",
            g,
            "count",
            ["households_registered", "persons_moved_away"],
            ["count"],
            {("households_registered", "count"): households, ("persons_moved_away", "count"): moved},
            column_totals=False,
            distinct_rows=["households_registered"],  # a household may register over months
        )
    )

    # Segregation.
    g = Group.SEGREGATION
    stock = newcomers_by_district(facts.persons, period.end)
    tables.append(
        distribution(
            "newcomers_by_district",
            f"Newcomers living in each district on {period.end.isoformat()}",
            g,
            "persons",
            stock,
            sorted(set(stock) | set(facts.reference.population if facts.reference else {})),
            kind="stock",
        )
    )
    need = housing.housing_need_counts(facts.persons, period.end)
    tables.append(
        count_table(
            "housing_need",
            f"Newcomers with a housing need on {period.end.isoformat()}, by district and household size",
            g,
            "persons",
            sorted({d for d, _ in need}),
            housing.HOUSEHOLD_SIZES,
            need,
            row_totals=True,
            kind="stock",
            note="From the latest needs assessment naming housing; household size: its members living here.",
        )
    )
    if with_derived:
        index = dissimilarity(stock, facts.reference.population) if facts.reference else None
        note = (
            "No district population uploaded."
            if facts.reference is None
            else (
                f"Reference: {facts.reference.source}"
                + (" (ILLUSTRATIVE figures)" if facts.reference.illustrative else "")
            )
        )
        tables.append(
            derived(
                "dissimilarity_index",
                "Index of dissimilarity of newcomers against the district population",
                g,
                "index",
                {CITY: (round(index, 3) if index is not None else None, sum(stock.values()))},
                k,
                column="D",
                note=note,
            )
        )

    # Network.
    g = Group.NETWORK
    funnel = ["sent", "accepted", "declined", "completed", "escalated"]
    partner_counts = Counter((f.partner, f.kind) for f in referrals if f.kind in funnel)
    tables.append(
        count_table(
            "referral_funnel",
            "Referrals per partner",
            g,
            "referrals",
            sorted({p for p, _ in partner_counts}),
            funnel,
            partner_counts,
            note="Stages of one funnel: only column totals are published.",
        )
    )
    if with_derived:
        hours = _response_hours(facts, period)
        tables.append(
            derived(
                "partner_response_hours",
                "Median hours from sending a referral to the partner's answer",
                g,
                "hours",
                {p: (_median(v), len(v)) for p, v in sorted(hours.items())},
                k,
                column="median_hours",
            )
        )
    tables.append(
        count_table(
            "need_routes",
            "Referrals on the routes for the needs the city names (health, housing, return, EU skilled workers)",
            g,
            "referrals",
            [s.value for s in ROUTE_SERVICES],
            ROUTE_STAGES,
            route_counts,
            note="Stages of one funnel: only column totals are published.",
        )
    )
    if with_derived:
        shares = route_shares(facts, period, (*ROUTE_SERVICES, *PARTICIPATION_SERVICES))
        for group, name, title in (("women", "women", "Share of women"), ("eu_citizens", "eu", "Share of EU citizens")):
            tables.append(
                derived(
                    f"need_routes_{name}_share",
                    f"{title} among the persons referred on each route",
                    g,
                    "percent",
                    {s: (v[group][0], v[group][2]) for s, v in shares.items()},
                    k,
                    column="percent",
                    # Like the share of women in courses: withheld when the group or the rest is a small number.
                    extra_risk={s: 0 < v[group][1] < k or 0 < v[group][2] - v[group][1] < k for s, v in shares.items()},
                )
            )
    queue = waiting_and_free(facts, period.end)
    categories = sorted(queue)
    tables.append(
        distribution(
            "waiting_list",
            f"People on course waiting lists on {period.end.isoformat()}",
            g,
            "persons",
            {c: queue[c][0] for c in categories},
            categories,
            kind="stock",
        )
    )
    tables.append(
        count_table(
            "free_seats",
            f"Free seats in open courses on {period.end.isoformat()}",
            g,
            "seats",
            categories,
            ["count"],
            {(c, "count"): queue[c][1] for c in categories},
            suppress=False,
            kind="stock",
            note="Seats are not persons: published as in the public course catalogue.",
        )
    )
    if with_derived:
        share, women, known = women_share(facts, period)
        tables.append(
            derived(
                "women_share_in_courses",
                "Share of women in course enrolments",
                g,
                "percent",
                {CITY: (share, known)},
                k,
                column="percent",
                extra_risk={CITY: 0 < women < k or 0 < known - women < k},
            )
        )
    return tables
