"""Unit tests of the referral rules (services/referral/domain.py): pure functions, no I/O, no real clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.vocabulary import (
    AgeBand,
    ConsentPurpose,
    Gender,
    GermanLevel,
    NeedCategory,
    PartnerCategory,
    ResidenceStatusGroup,
    ServiceType,
)
from services.referral import domain
from services.referral.directory import DEFAULT_RULES
from services.referral.domain import (
    TERMINAL,
    TRANSITIONS,
    Caseworker,
    ClockAction,
    Condition,
    ConsentRecord,
    DeclineReason,
    InvalidTransition,
    Outcome,
    PartnerOffer,
    PersonFacts,
    Proposal,
    ReferralAction,
    ReferralError,
    ReferralState,
    ReferralStatus,
    RoutingRule,
    RuleSet,
    UnsuccessfulReason,
)

S, A = ReferralStatus, ReferralAction

# The lifecycle as the brief states it, written out independently of the domain's table.
PREDECESSORS: dict[ReferralStatus, set[ReferralStatus]] = {
    S.SENT: {S.PROPOSED},
    S.ACCEPTED: {S.SENT},
    S.DECLINED: {S.SENT},
    S.EXPIRED: {S.SENT},
    S.IN_PROGRESS: {S.ACCEPTED},
    S.COMPLETED: {S.IN_PROGRESS},
    S.REFERRED_ELSEWHERE: {S.ACCEPTED, S.IN_PROGRESS},
    S.REVOKED: {S.PROPOSED, S.SENT, S.ACCEPTED, S.IN_PROGRESS},
}
GERMAN_ORDER = ["none", "A1", "A2", "B1", "B2", "C1", "C2"]  # CEFR, read independently of the enum's order

# --- strategies ---------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(ReferralAction),
        st.none() | st.sampled_from(DeclineReason),
        st.none() | st.sampled_from(Outcome),
        st.none() | st.sampled_from(UnsuccessfulReason),
    ),
    max_size=25,
)
german_levels = st.none() | st.sampled_from(GermanLevel)
facts_strategy = st.builds(
    PersonFacts,
    age_band=st.sampled_from(AgeBand),
    gender=st.sampled_from(Gender),
    residence_status_group=st.sampled_from(ResidenceStatusGroup),
    languages=st.lists(st.sampled_from(["ar", "ar-SY", "uk", "ru", "fa", "tr", "en-GB", "de"]), max_size=3).map(tuple),
    german_level=german_levels,
    need_categories=st.frozensets(st.sampled_from(NeedCategory)),
    childcare_needed=st.booleans(),
    has_children=st.booleans(),
)


def person(**overrides: Any) -> PersonFacts:
    """A 27-44 year old man, recognised refugee, German B2, no needs: no default rule fires for him."""
    base: dict[str, Any] = {
        "age_band": AgeBand.AGE_27_44,
        "gender": Gender.MALE,
        "residence_status_group": ResidenceStatusGroup.RECOGNISED_REFUGEE,
        "german_level": GermanLevel.B2,
    }
    return PersonFacts(**(base | overrides))


def by_service(proposals: list[Proposal]) -> dict[ServiceType, Proposal]:
    result = {p.service_type: p for p in proposals}
    assert len(result) == len(proposals), "one proposal per service type"
    return result


def rule(rule_id: str, when: Condition, service_type: ServiceType = ServiceType.JOB_PLACEMENT) -> RoutingRule:
    return RoutingRule(
        id=rule_id, description="a test rule", when=when, service_type=service_type, purpose=ConsentPurpose.REFERRAL
    )


# --- the referral lifecycle -------------------------------------------------------------------


def test_the_base_person_triggers_no_default_rule() -> None:
    assert domain.propose(DEFAULT_RULES, person()) == []


def test_the_transition_table_is_the_documented_lifecycle() -> None:
    happened = {(before, after) for (before, _), after in TRANSITIONS.items()}
    expected = {(before, after) for after, befores in PREDECESSORS.items() for before in befores}
    assert happened == expected
    assert not any(before in TERMINAL for before, _ in TRANSITIONS), "no way out of a terminal state"


def test_the_full_happy_path() -> None:
    state = ReferralState()
    assert state.status is S.PROPOSED
    for action in (A.SEND, A.ACCEPT, A.START):
        state = domain.apply(state, action)
    state = domain.apply(state, A.COMPLETE, outcome=Outcome.SUCCESSFUL)
    assert state == ReferralState(status=S.COMPLETED, outcome=Outcome.SUCCESSFUL)


def test_invalid_transition_is_a_referral_error_and_a_value_error() -> None:
    assert issubclass(InvalidTransition, ReferralError)
    assert issubclass(ReferralError, ValueError)


@pytest.mark.parametrize(
    ("status", "action"),
    [(S.PROPOSED, A.ACCEPT), (S.PROPOSED, A.COMPLETE), (S.SENT, A.START), (S.SENT, A.COMPLETE), (S.ACCEPTED, A.SEND)],
)
def test_skipping_a_state_is_refused(status: ReferralStatus, action: ReferralAction) -> None:
    state = ReferralState(status=status)
    with pytest.raises(InvalidTransition, match=f"a {status.value} referral cannot"):
        domain.apply(
            state,
            action,
            decline_reason=DeclineReason.OTHER,
            outcome=Outcome.SUCCESSFUL,
        )


@given(steps)
@example(
    [
        (A.SEND, None, None, None),
        (A.ACCEPT, None, None, None),
        (A.START, None, None, None),
        (A.COMPLETE, None, Outcome.UNSUCCESSFUL, UnsuccessfulReason.CLIENT_REFUSED),
        (A.REVOKE, None, None, None),
    ]
)
@example([(A.SEND, None, None, None), (A.DECLINE, DeclineReason.NO_CAPACITY, None, None), (A.EXPIRE, None, None, None)])
def test_random_action_sequences_keep_the_lifecycle_rules(
    sequence: list[tuple[ReferralAction, DeclineReason | None, Outcome | None, UnsuccessfulReason | None]],
) -> None:
    state = ReferralState()
    for action, decline_reason, outcome, unsuccessful_reason in sequence:
        before = state
        allowed = (before.status, action) in TRANSITIONS
        missing_reason = (action is A.DECLINE and decline_reason is None) or (
            action is A.COMPLETE
            and (outcome is None or (outcome is Outcome.UNSUCCESSFUL and unsuccessful_reason is None))
        )
        try:
            state = domain.apply(
                before,
                action,
                decline_reason=decline_reason,
                outcome=outcome,
                unsuccessful_reason=unsuccessful_reason,
            )
        except InvalidTransition:
            # (a) terminal states refuse everything; no action leaves the table
            assert not allowed
            assert state == before
            continue
        except ReferralError:
            # (d) a missing reason or outcome is refused and changes nothing
            assert allowed and missing_reason
            assert state == before
            continue
        assert before.status not in TERMINAL, "(a) a terminal state never changes"
        assert not missing_reason, "(d) a decline or completion without its reason went through"
        # (c) no transition skips a state
        assert TRANSITIONS[(before.status, action)] is state.status
        assert before.status in PREDECESSORS[state.status]
        # (b) reasons belong to the outcome they explain
        if state.status is S.DECLINED:
            assert state.decline_reason is decline_reason is not None
        if state.status is S.COMPLETED:
            assert state.outcome is outcome is not None
            if outcome is Outcome.UNSUCCESSFUL:
                assert state.unsuccessful_reason is unsuccessful_reason is not None
            else:
                assert state.unsuccessful_reason is None
        if state.status is not S.DECLINED:
            assert state.decline_reason is None
        if state.status is not S.COMPLETED:
            assert state.outcome is None and state.unsuccessful_reason is None
        if state.status in TERMINAL:
            # (a) every further action, with every reason given, is refused and changes nothing
            for further in ReferralAction:
                with pytest.raises(InvalidTransition):
                    domain.apply(
                        state,
                        further,
                        decline_reason=DeclineReason.OTHER,
                        outcome=Outcome.UNSUCCESSFUL,
                        unsuccessful_reason=UnsuccessfulReason.OTHER,
                    )


@pytest.mark.parametrize(
    "terminal",
    [
        ReferralState(status=S.DECLINED, decline_reason=DeclineReason.NOT_ELIGIBLE),
        ReferralState(status=S.COMPLETED, outcome=Outcome.SUCCESSFUL),
        ReferralState(status=S.REVOKED),
        ReferralState(status=S.EXPIRED),
        ReferralState(status=S.REFERRED_ELSEWHERE),
    ],
)
@pytest.mark.parametrize("action", list(ReferralAction))
def test_terminal_states_never_change(terminal: ReferralState, action: ReferralAction) -> None:
    with pytest.raises(InvalidTransition):
        domain.apply(terminal, action, decline_reason=DeclineReason.OTHER, outcome=Outcome.SUCCESSFUL)


def test_a_decline_needs_a_reason() -> None:
    sent = ReferralState(status=S.SENT)
    with pytest.raises(ReferralError, match="decline needs a reason") as raised:
        domain.apply(sent, A.DECLINE)
    assert not isinstance(raised.value, InvalidTransition)
    assert sent == ReferralState(status=S.SENT)
    declined = domain.apply(sent, A.DECLINE, decline_reason=DeclineReason.NO_CAPACITY)
    assert declined == ReferralState(status=S.DECLINED, decline_reason=DeclineReason.NO_CAPACITY)


def test_a_completion_needs_an_outcome_and_an_unsuccessful_one_a_reason() -> None:
    running = ReferralState(status=S.IN_PROGRESS)
    with pytest.raises(ReferralError, match="needs an outcome"):
        domain.apply(running, A.COMPLETE, unsuccessful_reason=UnsuccessfulReason.OTHER)
    with pytest.raises(ReferralError, match="unsuccessful completion needs a reason"):
        domain.apply(running, A.COMPLETE, outcome=Outcome.UNSUCCESSFUL)
    assert running == ReferralState(status=S.IN_PROGRESS)
    failed = domain.apply(
        running, A.COMPLETE, outcome=Outcome.UNSUCCESSFUL, unsuccessful_reason=UnsuccessfulReason.NO_LONGER_NEEDED
    )
    assert failed.unsuccessful_reason is UnsuccessfulReason.NO_LONGER_NEEDED


def test_a_successful_completion_drops_an_unsuccessful_reason() -> None:
    done = domain.apply(
        ReferralState(status=S.IN_PROGRESS),
        A.COMPLETE,
        outcome=Outcome.SUCCESSFUL,
        unsuccessful_reason=UnsuccessfulReason.OTHER,
    )
    assert done == ReferralState(status=S.COMPLETED, outcome=Outcome.SUCCESSFUL, unsuccessful_reason=None)


# --- routing with the default rules -------------------------------------------------------------


@pytest.mark.parametrize("status", [ResidenceStatusGroup.ASYLUM_SEEKER, ResidenceStatusGroup.TOLERATED])
def test_asylum_seekers_and_tolerated_persons_get_asylum_social_counselling(status: ResidenceStatusGroup) -> None:
    proposals = by_service(domain.propose(DEFAULT_RULES, person(residence_status_group=status)))
    proposal = proposals[ServiceType.ASYLUM_SOCIAL_COUNSELLING]
    assert proposal.rule_id == "asylum-social-counselling"
    assert proposal.purpose is ConsentPurpose.COUNSELLING
    assert proposal.matched_facts == {"residence_status_group": status.value}


def test_recognised_refugees_get_no_asylum_social_counselling() -> None:
    assert ServiceType.ASYLUM_SOCIAL_COUNSELLING not in by_service(domain.propose(DEFAULT_RULES, person()))


def test_an_adult_needing_counselling_gets_migration_counselling() -> None:
    facts = person(need_categories=frozenset({NeedCategory.COUNSELLING}))
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.MIGRATION_COUNSELLING]
    assert proposal.rule_id == "migration-counselling"
    assert proposal.matched_facts == {"need_categories": ["counselling"], "age_band": "27-44"}


@pytest.mark.parametrize("band", [AgeBand.AGE_18_26, AgeBand.AGE_27_44, AgeBand.AGE_45_64, AgeBand.AGE_65_PLUS])
def test_an_adult_with_german_a1_gets_an_integration_course(band: AgeBand) -> None:
    facts = person(age_band=band, german_level=GermanLevel.A1)
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.INTEGRATION_COURSE]
    assert proposal.rule_id == "german-below-b1"
    assert proposal.purpose is ConsentPurpose.COURSE_ENROLMENT
    assert proposal.matched_facts == {"german_level": "A1", "age_band": band.value}


def test_a_minor_with_german_a1_gets_no_adult_integration_course() -> None:
    facts = person(age_band=AgeBand.AGE_10_17, german_level=GermanLevel.A1)
    assert ServiceType.INTEGRATION_COURSE not in by_service(domain.propose(DEFAULT_RULES, facts))


@pytest.mark.parametrize("level", [GermanLevel.B1, GermanLevel.B2, GermanLevel.C1, GermanLevel.C2])
def test_german_b1_or_above_gets_no_integration_course(level: GermanLevel) -> None:
    facts = person(
        german_level=level,
        gender=Gender.FEMALE,
        childcare_needed=True,
        need_categories=frozenset({NeedCategory.LANGUAGE}),
    )
    services = by_service(domain.propose(DEFAULT_RULES, facts))
    assert ServiceType.INTEGRATION_COURSE not in services
    assert ServiceType.COURSE_WITH_CHILDCARE not in services


def test_job_seeking_gets_job_placement() -> None:
    facts = person(need_categories=frozenset({NeedCategory.EMPLOYMENT}))
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.JOB_PLACEMENT]
    assert (proposal.rule_id, proposal.purpose) == ("job-seeking", ConsentPurpose.JOB_PLACEMENT)
    assert proposal.matched_facts == {"need_categories": ["employment"]}


def test_a_qualification_to_recognise_gets_recognition_advice() -> None:
    facts = person(need_categories=frozenset({NeedCategory.RECOGNITION}))
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.QUALIFICATION_RECOGNITION]
    assert proposal.rule_id == "qualification-recognition"
    assert proposal.purpose is ConsentPurpose.QUALIFICATION_RECOGNITION


def test_a_young_adult_with_a_language_need_goes_to_the_youth_migration_service() -> None:
    facts = person(age_band=AgeBand.AGE_18_26, need_categories=frozenset({NeedCategory.LANGUAGE}))
    services = by_service(domain.propose(DEFAULT_RULES, facts))
    assert services[ServiceType.YOUTH_MIGRATION_SERVICE].rule_id == "youth-migration-service"
    assert services[ServiceType.YOUTH_MIGRATION_SERVICE].matched_facts == {
        "need_categories": ["language"],
        "age_band": "18-26",
    }
    assert ServiceType.MIGRATION_COUNSELLING not in services


def test_a_young_adult_needing_counselling_goes_to_the_youth_migration_service_not_mbe() -> None:
    facts = person(age_band=AgeBand.AGE_18_26, need_categories=frozenset({NeedCategory.COUNSELLING}))
    services = by_service(domain.propose(DEFAULT_RULES, facts))
    assert ServiceType.YOUTH_MIGRATION_SERVICE in services
    assert ServiceType.MIGRATION_COUNSELLING not in services


def test_a_woman_needing_childcare_with_german_a2_gets_a_course_with_childcare() -> None:
    facts = person(gender=Gender.FEMALE, childcare_needed=True, has_children=True, german_level=GermanLevel.A2)
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.COURSE_WITH_CHILDCARE]
    assert proposal.rule_id == "course-with-childcare"
    assert proposal.matched_facts == {"german_level": "A2", "gender": "female", "childcare_needed": True}


def test_a_man_with_the_same_facts_gets_no_course_with_childcare() -> None:
    facts = person(gender=Gender.MALE, childcare_needed=True, has_children=True, german_level=GermanLevel.A2)
    services = by_service(domain.propose(DEFAULT_RULES, facts))
    assert ServiceType.COURSE_WITH_CHILDCARE not in services
    assert ServiceType.INTEGRATION_COURSE in services


def test_the_example_newcomer_gets_exactly_four_proposals() -> None:
    newcomer = PersonFacts(
        age_band=AgeBand.AGE_27_44,
        gender=Gender.FEMALE,
        residence_status_group=ResidenceStatusGroup.RECOGNISED_REFUGEE,
        languages=("ar", "en"),
        preferred_language="ar",
        german_level=GermanLevel.A1,
        need_categories=frozenset({NeedCategory.EMPLOYMENT, NeedCategory.RECOGNITION}),
        childcare_needed=True,
        has_children=True,
    )
    proposals = by_service(domain.propose(DEFAULT_RULES, newcomer))
    assert set(proposals) == {
        ServiceType.INTEGRATION_COURSE,
        ServiceType.COURSE_WITH_CHILDCARE,
        ServiceType.JOB_PLACEMENT,
        ServiceType.QUALIFICATION_RECOGNITION,
    }
    made = {service: (p.rule_id, p.purpose, p.matched_facts) for service, p in proposals.items()}
    assert made == {
        ServiceType.INTEGRATION_COURSE: (
            "german-below-b1",
            ConsentPurpose.COURSE_ENROLMENT,
            {"german_level": "A1", "age_band": "27-44"},
        ),
        ServiceType.COURSE_WITH_CHILDCARE: (
            "course-with-childcare",
            ConsentPurpose.COURSE_ENROLMENT,
            {"german_level": "A1", "gender": "female", "childcare_needed": True},
        ),
        ServiceType.JOB_PLACEMENT: ("job-seeking", ConsentPurpose.JOB_PLACEMENT, {"need_categories": ["employment"]}),
        ServiceType.QUALIFICATION_RECOGNITION: (
            "qualification-recognition",
            ConsentPurpose.QUALIFICATION_RECOGNITION,
            {"need_categories": ["recognition"]},
        ),
    }


def test_the_first_matching_rule_of_a_service_type_wins() -> None:
    rules = RuleSet(
        rules=[
            rule("never", Condition(need_any=[NeedCategory.HEALTH])),
            rule("first", Condition(need_any=[NeedCategory.EMPLOYMENT])),
            rule("second", Condition(german_below=GermanLevel.C2)),
            rule("other-type", Condition(german_below=GermanLevel.C2), ServiceType.HOUSING_ADVICE),
        ]
    )
    facts = person(need_categories=frozenset({NeedCategory.EMPLOYMENT}))
    proposals = domain.propose(rules, facts)
    assert [(p.rule_id, p.service_type) for p in proposals] == [
        ("first", ServiceType.JOB_PLACEMENT),
        ("other-type", ServiceType.HOUSING_ADVICE),
    ]


@given(facts_strategy)
def test_default_rules_propose_the_first_matching_rule_per_service_type(facts: PersonFacts) -> None:
    proposals = by_service(domain.propose(DEFAULT_RULES, facts))
    expected: dict[ServiceType, str] = {}
    for r in DEFAULT_RULES.rules:
        if domain.matched_facts(r.when, facts) is not None:
            expected.setdefault(r.service_type, r.id)
    assert {service: p.rule_id for service, p in proposals.items()} == expected
    if facts.german_level is not None and GERMAN_ORDER.index(facts.german_level.value) >= GERMAN_ORDER.index("B1"):
        assert ServiceType.INTEGRATION_COURSE not in proposals
    if facts.gender is not Gender.FEMALE:
        assert ServiceType.COURSE_WITH_CHILDCARE not in proposals


# --- rule validation and matching ----------------------------------------------------------------


def test_duplicate_rule_ids_are_rejected_at_the_repeat_with_a_code() -> None:
    with pytest.raises(ValidationError, match="rule ids must be unique: twice") as raised:
        RuleSet(
            rules=[
                rule("twice", Condition(childcare_needed=True)),
                rule("once", Condition(has_children=True)),
                rule("twice", Condition(has_children=False)),
            ]
        )
    assert [(e["type"], e["loc"]) for e in raised.value.errors()] == [("duplicate-rule-id", ("rules", 2, "id"))]


def test_an_empty_condition_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one condition") as raised:
        Condition()
    assert [e["type"] for e in raised.value.errors()] == ["rule-without-condition"]
    with pytest.raises(ValidationError, match="at least one condition"):
        RoutingRule.model_validate(
            {"id": "empty", "description": "d", "when": {}, "service_type": "job_placement", "purpose": "referral"}
        )


def test_a_false_flag_is_a_condition() -> None:
    assert Condition(childcare_needed=False).childcare_needed is False


@pytest.mark.parametrize("field", ["need_any", "residence_status_in", "age_band_in", "gender_in", "language_any"])
def test_empty_lists_in_a_condition_are_rejected(field: str) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate({field: [], "childcare_needed": True})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Condition.model_validate({"childcare_needed": True, "nationality_in": ["SY"]})
    good = {"id": "ok", "description": "d", "when": {"has_children": True}, "service_type": "job_placement"}
    good |= {"purpose": "referral"}
    RoutingRule.model_validate(good)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RoutingRule.model_validate(good | {"priority": 1})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RuleSet.model_validate({"rules": [good], "version": 2})


@pytest.mark.parametrize("rule_id", ["x", "Upper", "-leading", "_leading", "has space", "dot.ted", "a" * 65, "abc\n"])
def test_bad_rule_ids_are_rejected(rule_id: str) -> None:
    with pytest.raises(ValidationError):
        rule(rule_id, Condition(has_children=True))


@pytest.mark.parametrize("rule_id", ["ab", "0a", "german-below-b1", "a_b", "a" * 64])
def test_good_rule_ids_are_accepted(rule_id: str) -> None:
    assert rule(rule_id, Condition(has_children=True)).id == rule_id


def test_an_empty_rule_set_is_rejected() -> None:
    with pytest.raises(ValidationError):
        RuleSet(rules=[])


@given(st.sampled_from(GermanLevel), german_levels)
def test_german_below_matches_exactly_a_known_lower_level(below: GermanLevel, level: GermanLevel | None) -> None:
    got = domain.matched_facts(Condition(german_below=below), person(german_level=level))
    if level is not None and GERMAN_ORDER.index(level.value) < GERMAN_ORDER.index(below.value):
        assert got == {"german_level": level.value}
    else:
        assert got is None


conditions = st.fixed_dictionaries(
    {},
    optional={
        "need_any": st.lists(st.sampled_from(NeedCategory), min_size=1, max_size=3),
        "german_below": st.sampled_from(GermanLevel),
        "residence_status_in": st.lists(st.sampled_from(ResidenceStatusGroup), min_size=1, max_size=3),
        "age_band_in": st.lists(st.sampled_from(AgeBand), min_size=1, max_size=3),
        "gender_in": st.lists(st.sampled_from(Gender), min_size=1, max_size=2),
        "childcare_needed": st.booleans(),
        "has_children": st.booleans(),
        "language_any": st.lists(st.sampled_from(["ar", "uk", "fa", "en"]), min_size=1, max_size=2),
    },
).filter(bool)


def part_holds(name: str, wanted: Any, facts: PersonFacts) -> bool:
    """One part of a condition, judged independently of the domain."""
    if name == "need_any":
        return bool(set(wanted) & facts.need_categories)
    if name == "german_below":
        level = facts.german_level
        return level is not None and GERMAN_ORDER.index(level.value) < GERMAN_ORDER.index(wanted.value)
    if name == "residence_status_in":
        return facts.residence_status_group in wanted
    if name == "age_band_in":
        return facts.age_band in wanted
    if name == "gender_in":
        return facts.gender in wanted
    if name == "childcare_needed":
        return facts.childcare_needed is wanted
    if name == "has_children":
        return facts.has_children is wanted
    assert name == "language_any"
    return bool(set(wanted) & {lang.partition("-")[0] for lang in facts.languages})


FACT_OF_PART = {
    "need_any": "need_categories",
    "german_below": "german_level",
    "residence_status_in": "residence_status_group",
    "age_band_in": "age_band",
    "gender_in": "gender",
    "childcare_needed": "childcare_needed",
    "has_children": "has_children",
    "language_any": "languages",
}


@given(conditions, facts_strategy)
def test_matched_facts_is_none_when_any_given_part_fails(parts: dict[str, Any], facts: PersonFacts) -> None:
    got = domain.matched_facts(Condition(**parts), facts)
    if all(part_holds(name, wanted, facts) for name, wanted in parts.items()):
        assert got is not None
        assert set(got) == {FACT_OF_PART[name] for name in parts}, "exactly the facts the given parts looked at"
    else:
        assert got is None


def test_language_any_ignores_region_subtags_of_the_person() -> None:
    facts = person(languages=("ar-SY", "en-GB"))
    assert domain.matched_facts(Condition(language_any=["ar", "fa"]), facts) == {"languages": ["ar"]}
    assert domain.matched_facts(Condition(language_any=["fa"]), facts) is None


# --- partner choice -------------------------------------------------------------------------------

COURSE = ServiceType.INTEGRATION_COURSE
S_JOB = ServiceType.JOB_PLACEMENT


def offer(
    partner_id: str, free: int | None, languages: set[str] | None = None, service: ServiceType = COURSE
) -> PartnerOffer:
    return PartnerOffer(
        partner_id=partner_id,
        partner_category=PartnerCategory.ADULT_EDUCATION,
        service_type=service,
        free_places=free,
        languages=frozenset(languages or set()),
    )


def test_a_partner_with_free_places_beats_a_full_one_that_speaks_the_language() -> None:
    choice = domain.choose_partner([offer("vhs-full", 0, {"ar"}), offer("vhs-open", 2)], COURSE, ["ar"])
    assert choice.offer is not None and choice.offer.partner_id == "vhs-open"
    assert choice.why is domain.Chosen.HAS_PLACES and choice.blocked is None


def test_no_announced_limit_counts_as_open() -> None:
    choice = domain.choose_partner([offer("full", 0), offer("unlimited", None)], COURSE, [])
    assert choice.offer is not None and choice.offer.partner_id == "unlimited"


def test_language_match_beats_more_room() -> None:
    choice = domain.choose_partner([offer("roomy", 30, {"uk"}), offer("arabic", 1, {"ar"})], COURSE, ["ar-SY"])
    assert choice.offer is not None and choice.offer.partner_id == "arabic"
    assert choice.why is domain.Chosen.SPEAKS_LANGUAGE


def test_among_equals_the_one_with_most_room_wins() -> None:
    offers = [offer("three", 3, {"ar"}), offer("seven", 7, {"ar"}), offer("five", 5), offer("other", 99, {"ar"}, S_JOB)]
    choice = domain.choose_partner(offers, COURSE, ["ar"])
    assert choice.offer is not None and choice.offer.partner_id == "seven"


def test_all_partners_full_gives_no_offer_and_names_them() -> None:
    offers = [offer("vhs-b", 0), offer("vhs-a", -1), offer("jobcentre", 4, service=S_JOB)]
    choice = domain.choose_partner(offers, COURSE, ["ar"])
    assert choice.offer is None
    assert choice.blocked == domain.Blocked(domain.Waiting.NO_CAPACITY, ("vhs-a", "vhs-b"))


def test_no_partner_for_the_service_type_gives_no_offer_and_says_so() -> None:
    choice = domain.choose_partner([offer("vhs", 5)], S_JOB, ["ar"])
    assert choice.offer is None and choice.blocked == domain.Blocked(domain.Waiting.NO_PARTNER)
    assert domain.choose_partner([], COURSE, []).offer is None


def test_why_a_referral_waits_is_kept_as_a_code_and_said_in_the_english_of_before() -> None:
    """The code is what the referral keeps and the pages word; API clients read the same English as before."""
    cases = [
        (domain.Blocked(domain.Waiting.CONSENT_MISSING), "consent-missing", "consent missing"),
        (
            domain.Blocked(domain.Waiting.NO_CAPACITY, ("vhs-a", "vhs-b")),
            "no-capacity:vhs-a,vhs-b",
            "no capacity: vhs-a, vhs-b full",
        ),
        (domain.Blocked(domain.Waiting.NO_PARTNER), "no-partner", "no partner offers job_placement"),
        (
            domain.Blocked(domain.Waiting.PARTNER_NOT_OFFERING, ("vhs",)),
            "partner-not-offering:vhs",
            "partner vhs does not offer job_placement",
        ),
    ]
    for blocked, stored, english in cases:
        assert blocked.stored() == stored
        assert blocked.english(S_JOB) == english
        assert domain.Blocked.read(stored) == blocked
        assert domain.Blocked.read(english) == blocked, "a referral kept the English sentence before the codes"
    with pytest.raises(ValueError):
        domain.Blocked.read("full moon")


offers_strategy = st.lists(
    st.builds(
        offer,
        partner_id=st.sampled_from(["p1", "p2", "p3", "p4", "p5"]),
        free=st.none() | st.integers(-1, 5),
        languages=st.sets(st.sampled_from(["ar", "uk", "fa"]), max_size=2),
        service=st.sampled_from([COURSE, S_JOB]),
    ),
    max_size=6,
)


@given(offers_strategy, st.lists(st.sampled_from(["ar", "uk-UA", "fa", "de"]), max_size=2))
def test_choose_partner_ranks_open_then_language_then_room(offers: list[PartnerOffer], languages: list[str]) -> None:
    choice = domain.choose_partner(offers, COURSE, languages)
    candidates = [o for o in offers if o.service_type is COURSE]
    open_ = [o for o in candidates if o.free_places is None or o.free_places > 0]
    if not candidates:
        assert choice.offer is None
        return
    if not open_:
        assert choice.blocked is not None and choice.blocked.code is domain.Waiting.NO_CAPACITY
        assert set(choice.blocked.partner_ids) == {o.partner_id for o in candidates}
        return
    best = choice.offer
    assert best is not None and best in open_
    spoken = {lang.split("-")[0] for lang in languages}

    def room(o: PartnerOffer) -> float:
        return float("inf") if o.free_places is None else o.free_places

    speaking = [o for o in open_ if o.languages & spoken]
    tier = speaking or open_
    assert best in tier
    assert room(best) == max(room(o) for o in tier)


# --- caseworker assignment ----------------------------------------------------------------------


def worker(cid: str, open_cases: int, max_cases: int, languages: set[str] | None = None) -> Caseworker:
    return Caseworker(cid, "team-nord", frozenset(languages or set()), max_cases, open_cases)


def test_language_match_beats_a_lighter_workload() -> None:
    roster = [worker("idle", 0, 20), worker("arabic", 9, 10, {"ar"})]
    assert domain.assign_caseworker(roster, ["ar-SY"]) == roster[1]


def test_the_lowest_workload_relative_to_capacity_wins() -> None:
    roster = [worker("small", 3, 4), worker("large", 5, 10), worker("mid", 4, 6)]
    chosen = domain.assign_caseworker(roster, ["de"])
    assert chosen is not None and chosen.id == "large"


def test_a_full_caseworker_is_never_chosen_even_if_they_speak_the_language() -> None:
    roster = [worker("full", 10, 10, {"ar"}), worker("over", 12, 10, {"ar"}), worker("free", 9, 10)]
    chosen = domain.assign_caseworker(roster, ["ar"])
    assert chosen is not None and chosen.id == "free"


def test_all_full_gives_nobody() -> None:
    assert domain.assign_caseworker([worker("a", 5, 5), worker("b", 0, 0)], ["ar"]) is None
    assert domain.assign_caseworker([], ["ar"]) is None


rosters = st.lists(
    st.builds(
        worker,
        cid=st.text("abcdef", min_size=1, max_size=3),
        open_cases=st.integers(0, 12),
        max_cases=st.integers(0, 10),
        languages=st.sets(st.sampled_from(["ar", "uk", "fa"]), max_size=2),
    ),
    max_size=6,
)


@given(rosters, st.lists(st.sampled_from(["ar", "uk", "fa-IR", "de"]), max_size=2))
def test_assign_caseworker_never_picks_a_full_one(roster: list[Caseworker], languages: list[str]) -> None:
    chosen = domain.assign_caseworker(roster, languages)
    available = [c for c in roster if c.open_cases < c.max_cases]
    if not available:
        assert chosen is None
        return
    assert chosen is not None and chosen in available
    spoken = {lang.split("-")[0] for lang in languages}
    tier = [c for c in available if c.languages & spoken] or available
    assert chosen in tier
    assert chosen.open_cases / chosen.max_cases == min(c.open_cases / c.max_cases for c in tier)


# --- consent ----------------------------------------------------------------------------------

AT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
GIVEN = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def consent(**overrides: Any) -> ConsentRecord:
    base: dict[str, Any] = {
        "consent_id": "c1",
        "partner_id": "vhs-landsberg",
        "partner_category": PartnerCategory.ADULT_EDUCATION,
        "purpose": ConsentPurpose.COURSE_ENROLMENT,
        "given_at": GIVEN,
    }
    return ConsentRecord(**(base | overrides))


def covers(consents: list[ConsentRecord], **overrides: Any) -> ConsentRecord | None:
    ask: dict[str, Any] = {
        "partner_id": "vhs-landsberg",
        "partner_category": PartnerCategory.ADULT_EDUCATION,
        "purpose": ConsentPurpose.COURSE_ENROLMENT,
        "at": AT,
    }
    return domain.consent_covers(consents, **(ask | overrides))


def test_a_consent_for_the_partner_covers_it() -> None:
    given_consent = consent()
    assert covers([given_consent]) is given_consent


def test_a_consent_for_the_partner_covers_it_whatever_category_is_asked() -> None:
    given_consent = consent(partner_category=None)
    assert covers([given_consent], partner_category=PartnerCategory.CHARITY) is given_consent


def test_a_consent_for_another_partner_does_not_cover() -> None:
    assert covers([consent(partner_id="vhs-kaufering")]) is None


def test_a_consent_for_a_category_covers_every_partner_of_it() -> None:
    for_category = consent(partner_id=None)
    assert covers([for_category], partner_id="any-vhs") is for_category
    assert covers([for_category], partner_category=PartnerCategory.CHARITY) is None


def test_a_category_counts_only_when_the_consent_names_no_partner() -> None:
    named = consent(partner_id="vhs-kaufering", partner_category=PartnerCategory.ADULT_EDUCATION)
    assert covers([named], partner_id="vhs-landsberg") is None


def test_a_consent_naming_neither_partner_nor_category_covers_nobody() -> None:
    assert covers([consent(partner_id=None, partner_category=None)]) is None


def test_the_purpose_must_match() -> None:
    assert covers([consent(purpose=ConsentPurpose.COUNSELLING)]) is None
    assert covers([consent()], purpose=ConsentPurpose.JOB_PLACEMENT) is None


def test_an_expired_consent_does_not_count() -> None:
    assert covers([consent(expires_on=AT.date())]) is not None, "valid through its last day"
    assert covers([consent(expires_on=AT.date() - timedelta(days=1))]) is None
    last_moment = datetime(2026, 6, 15, 21, 59, 59, tzinfo=UTC)  # 23:59:59 in Landsberg (CEST): the city's day
    assert covers([consent(expires_on=date(2026, 6, 15))], at=last_moment) is not None
    assert covers([consent(expires_on=date(2026, 6, 15))], at=last_moment + timedelta(seconds=1)) is None


def test_a_withdrawn_consent_does_not_count() -> None:
    assert covers([consent(withdrawn_at=AT)]) is None
    assert covers([consent(withdrawn_at=AT - timedelta(days=3))]) is None
    assert covers([consent(withdrawn_at=AT + timedelta(seconds=1))]) is not None, "withdrawn only later"


def test_a_consent_not_yet_given_does_not_count() -> None:
    assert covers([consent(given_at=AT + timedelta(seconds=1))]) is None
    assert covers([consent(given_at=AT)]) is not None


def test_the_consent_in_force_is_found_among_others() -> None:
    in_force = consent(consent_id="good", partner_id=None)
    consents = [
        consent(consent_id="withdrawn", withdrawn_at=GIVEN + timedelta(days=1)),
        consent(consent_id="wrong-purpose", purpose=ConsentPurpose.COUNSELLING),
        consent(consent_id="other-partner", partner_id="vhs-kaufering"),
        in_force,
    ]
    assert covers(consents) is in_force
    assert covers(consents[:3]) is None


# --- response clocks ------------------------------------------------------------------------------

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CHRISTMAS = frozenset({date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)})


def test_the_calendar_is_what_the_tests_think() -> None:
    assert FRIDAY.weekday() == 4
    assert date(2026, 12, 23).weekday() == 2


def test_five_working_days_from_friday_is_the_next_friday() -> None:
    assert domain.add_working_days(FRIDAY, 5) == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_one_working_day_from_friday_is_monday() -> None:
    assert domain.add_working_days(FRIDAY, 1) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_a_weekend_start_counts_from_monday() -> None:
    saturday = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)
    assert domain.add_working_days(saturday, 1) == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)


def test_working_days_are_the_citys_days() -> None:
    # Friday 23:30 UTC is Saturday 00:30 in Landsberg: one working day on is Monday 00:30 there (Sunday 23:30 UTC),
    # not Monday 23:30 UTC (Tuesday there).
    late_friday = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert domain.add_working_days(late_friday, 1) == datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    # Across the change to summer time (29 March 2026) the time of day in the city stays, the UTC hour moves.
    before = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)  # Friday, 09:00 in Landsberg
    assert domain.add_working_days(before, 1) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


def test_zero_working_days_is_the_start() -> None:
    assert domain.add_working_days(FRIDAY, 0) == FRIDAY


def test_holidays_are_skipped() -> None:
    sent = datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    assert domain.add_working_days(sent, 2) == datetime(2026, 12, 25, 9, 0, tzinfo=UTC)
    assert domain.add_working_days(sent, 2, CHRISTMAS) == datetime(2026, 12, 29, 9, 0, tzinfo=UTC)
    assert domain.add_working_days(sent, 4, CHRISTMAS) == datetime(2026, 12, 31, 9, 0, tzinfo=UTC)
    assert domain.add_working_days(sent, 5, CHRISTMAS) == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    st.integers(0, 30),
    st.frozensets(st.dates(min_value=date(2025, 1, 1), max_value=date(2029, 3, 31)), max_size=20),
)
def test_add_working_days_counts_exactly_the_working_days(
    start: datetime, days: int, holidays: frozenset[date]
) -> None:
    end = domain.add_working_days(start, days, holidays)
    assert end.time() == start.time()
    assert end >= start
    between = [start.date() + timedelta(days=n) for n in range(1, (end.date() - start.date()).days + 1)]
    working = [d for d in between if d.weekday() < 5 and d not in holidays]
    assert len(working) == days
    if days > 0:
        assert end.weekday() < 5 and end.date() not in holidays, "ends on a working day"


DUE = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # FRIDAY + 5 working days
EXPIRY = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)  # DUE + 3 working days
TICK = timedelta(microseconds=1)


def clock(now: datetime, *, escalated: bool = False, status: ReferralStatus = S.SENT, **kw: Any) -> ClockAction | None:
    args: dict[str, Any] = {
        "status": status,
        "sent_at": FRIDAY,
        "escalated": escalated,
        "response_days": 5,
        "expiry_days": 3,
        "now": now,
    }
    return domain.clock_action(**(args | kw))


def test_nothing_happens_before_the_response_time() -> None:
    assert clock(FRIDAY) is None
    assert clock(DUE - TICK) is None


def test_an_unanswered_referral_escalates_at_and_after_due() -> None:
    assert clock(DUE) is ClockAction.ESCALATE
    assert clock(DUE + timedelta(days=1)) is ClockAction.ESCALATE
    assert clock(EXPIRY - TICK) is ClockAction.ESCALATE


def test_an_escalated_referral_waits_until_expiry() -> None:
    assert clock(DUE, escalated=True) is None
    assert clock(EXPIRY - TICK, escalated=True) is None


@pytest.mark.parametrize("escalated", [False, True])
def test_an_unanswered_referral_expires_after_due_plus_expiry_days(escalated: bool) -> None:
    assert clock(EXPIRY, escalated=escalated) is ClockAction.EXPIRE
    assert clock(EXPIRY + timedelta(days=30), escalated=escalated) is ClockAction.EXPIRE


def test_holidays_move_the_clock() -> None:
    sent = datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    kw: dict[str, Any] = {"sent_at": sent, "response_days": 2, "holidays": CHRISTMAS}
    assert clock(datetime(2026, 12, 28, 9, 0, tzinfo=UTC), **kw) is None
    assert clock(datetime(2026, 12, 29, 9, 0, tzinfo=UTC), **kw) is ClockAction.ESCALATE
    # due Tue 29 Dec; 3 working days on: Wed 30, Thu 31, (Fri 1 Jan a holiday), Mon 4 Jan
    assert clock(datetime(2027, 1, 4, 9, 0, tzinfo=UTC) - TICK, escalated=True, **kw) is None
    assert clock(datetime(2027, 1, 4, 9, 0, tzinfo=UTC), escalated=True, **kw) is ClockAction.EXPIRE


@pytest.mark.parametrize("status", [s for s in ReferralStatus if s is not S.SENT])
@pytest.mark.parametrize("escalated", [False, True])
def test_only_a_sent_referral_has_a_clock(status: ReferralStatus, escalated: bool) -> None:
    assert clock(DUE, status=status, escalated=escalated) is None
    assert clock(EXPIRY + timedelta(days=30), status=status, escalated=escalated) is None


def test_no_send_time_no_clock() -> None:
    assert clock(EXPIRY + timedelta(days=30), sent_at=None) is None


@given(st.datetimes(min_value=datetime(2026, 11, 20), max_value=datetime(2027, 1, 31)), st.booleans())
def test_the_clock_agrees_with_its_deadlines(naive_now: datetime, escalated: bool) -> None:
    now = naive_now.replace(tzinfo=UTC)
    got = clock(now, escalated=escalated)
    if now >= EXPIRY:
        assert got is ClockAction.EXPIRE
    elif now >= DUE and not escalated:
        assert got is ClockAction.ESCALATE
    else:
        assert got is None


# --- what a partner learns of why (issue 12) ----------------------------------------------------


def test_a_partner_reads_only_the_facts_its_service_works_with() -> None:
    from services.referral.domain import PARTNER_FACTS, PARTNER_NEEDS, partner_facts

    assert set(PARTNER_FACTS) == set(PARTNER_NEEDS) == set(ServiceType), "every service has its rule"
    matched = {
        "need_categories": ["employment", "health", "language"],
        "gender": "female",
        "residence_status_group": "asylum_seeker",
        "german_level": "A1",
        "age_band": "27-44",
    }
    assert partner_facts(ServiceType.JOB_PLACEMENT, matched) == {
        "need_categories": ["employment", "language"],
        "german_level": "A1",
        "age_band": "27-44",
    }
    assert partner_facts("qualification_recognition", matched) == {}, "no category of its field: nothing"
    assert partner_facts(ServiceType.HEALTH_ADVICE, matched) == {"need_categories": ["health"]}
    assert partner_facts(ServiceType.ASYLUM_SOCIAL_COUNSELLING, matched) == {"residence_status_group": "asylum_seeker"}
    assert partner_facts(ServiceType.COURSE_WITH_CHILDCARE, matched) == {
        "need_categories": ["language"],
        "gender": "female",
        "german_level": "A1",
    }
    assert partner_facts(ServiceType.INTEGRATION_COURSE, {}) == {}
    for service in ServiceType:  # health needs (GDPR Art. 9) reach the health service alone
        assert ("health" in partner_facts(service, matched).get("need_categories", [])) is (
            service is ServiceType.HEALTH_ADVICE
        )


# --- closing and reopening a case (issue 14) ---------------------------------------------------------

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("reason", list(domain.CaseCloseReason))
def test_an_open_case_closes_with_its_reason_and_says_so_once(reason: domain.CaseCloseReason) -> None:
    state, facts = domain.close_case(domain.CaseState(), reason, at=AT, by="user:lotse")
    assert state == domain.CaseState(domain.CaseStatus.CLOSED, reason)
    assert facts == [domain.CaseWasClosed(reason, AT, "user:lotse")]
    again, nothing = domain.close_case(state, domain.CaseCloseReason.MOVED_AWAY, at=AT, by=None)
    assert (again, nothing) == (state, []), "a move away after a manual closing changes nothing"


def test_a_caseworker_closes_for_goals_contact_moving_or_other_never_for_an_erasure() -> None:
    assert set(domain.STAFF_CLOSE_REASONS) == set(domain.CaseCloseReason) - {domain.CaseCloseReason.ERASED}


def test_a_closed_case_reopens_while_the_person_is_registered() -> None:
    closed = domain.CaseState(domain.CaseStatus.CLOSED, domain.CaseCloseReason.NO_CONTACT)
    state, facts = domain.reopen_case(closed, person_registered=True, at=AT, by="user:lotse")
    assert state == domain.CaseState() and facts == [domain.CaseWasReopened(AT, "user:lotse")]
    with pytest.raises(domain.CaseError, match="open already"):
        domain.reopen_case(state, person_registered=True, at=AT, by="user:lotse")
    with pytest.raises(domain.CaseError, match="no longer registered"):
        domain.reopen_case(closed, person_registered=False, at=AT, by="user:lotse")
    erased = domain.CaseState(domain.CaseStatus.CLOSED, domain.CaseCloseReason.ERASED)
    with pytest.raises(domain.CaseError, match="erased"):
        domain.reopen_case(erased, person_registered=True, at=AT, by="user:lotse")


def test_a_referral_goes_elsewhere_only_to_another_partner_offering_the_service() -> None:
    offers = [
        domain.PartnerOffer("jobcenter-landsberg", PartnerCategory.JOB_CENTRE, ServiceType.JOB_PLACEMENT, None),
        domain.PartnerOffer("kolping-landsberg", PartnerCategory.CHARITY, ServiceType.JOB_PLACEMENT, 3),
        domain.PartnerOffer(
            "ihk-muenchen-oberbayern", PartnerCategory.CHAMBER, ServiceType.QUALIFICATION_RECOGNITION, None
        ),
    ]
    found = domain.elsewhere_target(offers, "job_placement", "jobcenter-landsberg", "kolping-landsberg")
    assert found.partner_id == "kolping-landsberg"
    with pytest.raises(domain.ReferralError, match="already"):
        domain.elsewhere_target(offers, "job_placement", "jobcenter-landsberg", "jobcenter-landsberg")
    with pytest.raises(domain.ReferralError, match="does not offer job_placement"):
        domain.elsewhere_target(offers, "job_placement", "jobcenter-landsberg", "ihk-muenchen-oberbayern")


# --- routes for every need the city names (issue 18) --------------------------------------------


def test_a_health_need_gets_health_counselling_and_only_the_health_service_reads_it() -> None:
    facts = person(need_categories=frozenset({NeedCategory.HEALTH}))
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.HEALTH_ADVICE]
    assert (proposal.rule_id, proposal.purpose) == ("health-counselling", ConsentPurpose.COUNSELLING)
    assert domain.partner_facts(ServiceType.HEALTH_ADVICE, proposal.matched_facts) == {"need_categories": ["health"]}
    assert domain.partner_facts(ServiceType.HOUSING_ADVICE, proposal.matched_facts) == {}


def test_a_housing_need_gets_the_housing_advice() -> None:
    facts = person(need_categories=frozenset({NeedCategory.HOUSING}))
    services = by_service(domain.propose(DEFAULT_RULES, facts))
    assert services[ServiceType.HOUSING_ADVICE].rule_id == "housing-advice"
    assert services[ServiceType.MIGRATION_COUNSELLING].rule_id == "migration-counselling"  # still counselled too


def test_people_without_a_right_to_stay_get_return_and_qualification_counselling() -> None:
    tolerated = by_service(domain.propose(DEFAULT_RULES, person(residence_status_group=ResidenceStatusGroup.TOLERATED)))
    assert tolerated[ServiceType.RETURN_COUNSELLING].matched_facts == {"residence_status_group": "tolerated"}
    assert ServiceType.ASYLUM_SOCIAL_COUNSELLING in tolerated
    for status in (ResidenceStatusGroup.ASYLUM_SEEKER, ResidenceStatusGroup.RECOGNISED_REFUGEE):
        assert ServiceType.RETURN_COUNSELLING not in by_service(
            domain.propose(DEFAULT_RULES, person(residence_status_group=status))
        )


def test_an_eu_skilled_worker_gets_recognition_job_german_and_eures() -> None:
    worker = person(
        residence_status_group=ResidenceStatusGroup.EU_CITIZEN,
        german_level=GermanLevel.A2,
        need_categories=frozenset({NeedCategory.EMPLOYMENT, NeedCategory.RECOGNITION}),
    )
    services = by_service(domain.propose(DEFAULT_RULES, worker))
    assert {s: p.rule_id for s, p in services.items() if p.rule_id.startswith("eu-")} == {
        ServiceType.RECOGNITION_COUNSELLING: "eu-skilled-recognition",
        ServiceType.JOB_SPECIFIC_GERMAN: "eu-skilled-job-german",
        ServiceType.EU_JOB_MOBILITY: "eu-skilled-eures",
    }
    assert services[ServiceType.JOB_SPECIFIC_GERMAN].matched_facts == {
        "residence_status_group": "eu_citizen",
        "need_categories": ["employment", "recognition"],
        "german_level": "A2",
    }
    # Fluent EU citizens need no job-specific German; refugees are routed to the Jobcenter and the IHK as before.
    fluent = by_service(domain.propose(DEFAULT_RULES, worker.model_copy(update={"german_level": GermanLevel.C1})))
    assert ServiceType.JOB_SPECIFIC_GERMAN not in fluent and ServiceType.EU_JOB_MOBILITY in fluent
    refugee = by_service(
        domain.propose(
            DEFAULT_RULES, worker.model_copy(update={"residence_status_group": ResidenceStatusGroup.RECOGNISED_REFUGEE})
        )
    )
    assert not {
        ServiceType.RECOGNITION_COUNSELLING,
        ServiceType.JOB_SPECIFIC_GERMAN,
        ServiceType.EU_JOB_MOBILITY,
    } & set(refugee)


def test_a_wish_to_take_part_gets_a_meeting_offer() -> None:
    facts = person(need_categories=frozenset({NeedCategory.PARTICIPATION}))
    proposal = by_service(domain.propose(DEFAULT_RULES, facts))[ServiceType.MEETING_OFFER]
    assert (proposal.rule_id, proposal.purpose) == ("participation-meeting", ConsentPurpose.REFERRAL)


def test_every_shipped_route_has_a_partner_in_the_landsberg_directory() -> None:
    from services.partners.directory import LANDSBERG_PARTNERS
    from services.referral.directory import LANDSBERG_PARTNER_OFFERS

    directory = {(p["id"], s["service_type"]) for p in LANDSBERG_PARTNERS for s in p["services"]}
    seeded = {(o["partner_id"], o["service_type"]) for o in LANDSBERG_PARTNER_OFFERS}
    assert seeded == directory, "referral starts with the directory the partners service starts with"
    offered = {service for _, service in directory}
    assert {r.service_type.value for r in DEFAULT_RULES.rules} <= offered
    assert set(domain.PARTNER_FACTS) == set(ServiceType), "every service has its data-minimisation rule"


def test_a_transition_returns_the_new_state_and_the_fact_its_event_reports() -> None:
    running = ReferralState(ReferralStatus.IN_PROGRESS)
    after, facts = domain.transition(
        running, A.COMPLETE, outcome=Outcome.SUCCESSFUL, unsuccessful_reason=UnsuccessfulReason.OTHER
    )
    assert after == ReferralState(ReferralStatus.COMPLETED, outcome=Outcome.SUCCESSFUL)  # no reason for a success
    assert facts == [domain.ReferralMoved(A.COMPLETE, ReferralStatus.COMPLETED, None, Outcome.SUCCESSFUL, None)]
    assert domain.apply(running, A.REVOKE) == domain.transition(running, A.REVOKE)[0]


def test_a_refused_transition_returns_no_fact_but_raises() -> None:
    with pytest.raises(domain.InvalidTransition):
        domain.transition(ReferralState(ReferralStatus.COMPLETED), A.ACCEPT)


def test_a_goal_is_the_households_or_a_members_and_keeps_its_title() -> None:
    domain.goal_for(None, [])
    domain.goal_for("p-1", ["p-1", "p-2"])
    with pytest.raises(domain.GoalError, match="not a member"):
        domain.goal_for("p-3", ["p-1"])
    assert domain.goal_changes({"status": domain.GoalStatus.ACHIEVED, "due_on": None}) == {
        "status": "achieved",
        "due_on": None,
    }
    with pytest.raises(domain.GoalError, match="title cannot be removed"):
        domain.goal_changes({"title": None})
