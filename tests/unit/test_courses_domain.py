"""Unit tests of the course rules (services/courses/domain.py): pure functions, no I/O, no real clock."""

from __future__ import annotations

import base64
import copy
import gzip
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, example, given
from hypothesis import strategies as st

from contracts.vocabulary import AgeBand, Gender, GermanLevel
from services.courses import domain
from services.courses.domain import (
    DEFAULT_PRIORITIES,
    CompletionResult,
    CourseCategory,
    CourseError,
    CourseRules,
    EnrolmentStatus,
    InvalidTransition,
    Learner,
    PriorityCriterion,
    Session,
    WaitingEntry,
)

E = EnrolmentStatus
T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
GERMAN_ORDER = ["none", "A1", "A2", "B1", "B2", "C1", "C2"]  # CEFR, written out independently of the enum
# The age bands' edges, written out independently of the domain's table.
BAND_AGES = {
    "0-2": (0, 2),
    "3-5": (3, 5),
    "6-9": (6, 9),
    "10-17": (10, 17),
    "18-26": (18, 26),
    "27-44": (27, 44),
    "45-64": (45, 64),
    "65+": (65, 130),
}
# The enrolment lifecycle as documented, written out independently of the domain's table.
MOVES = {
    (E.WAITLISTED, "offer"): E.OFFERED,
    (E.OFFERED, "accept"): E.ENROLLED,
    (E.OFFERED, "expire"): E.OFFER_EXPIRED,
    (E.ENROLLED, "cancel"): E.CANCELLED,
    (E.WAITLISTED, "cancel"): E.CANCELLED,
    (E.OFFERED, "cancel"): E.CANCELLED,
    (E.ENROLLED, "complete"): E.COMPLETED,
}
ACTIONS = ["offer", "accept", "expire", "cancel", "complete", "enrol", "", "CANCEL"]


def rules(**overrides: Any) -> CourseRules:
    values: dict[str, Any] = {
        "category": CourseCategory.INTEGRATION_COURSE,
        "target_level": None,
        "women_only": False,
        "min_age": None,
        "max_age": None,
    }
    values.update(overrides)
    return CourseRules(**values)


def learner(gender: Gender | None = Gender.FEMALE, age_band: AgeBand | None = None, level: Any = None) -> Learner:
    return Learner(gender=gender, age_band=age_band, german_level=level)


def at(hour: float, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour)


def session(start: float, end: float, day: int = 0) -> Session:
    return Session(at(start, day), at(end, day))


# --- eligibility ----------------------------------------------------------------------------


def test_a_course_without_restrictions_takes_anyone_even_a_person_we_know_nothing_about() -> None:
    assert domain.eligibility_problems(rules(), learner(None)) == []
    assert domain.eligibility_problems(rules(), learner(Gender.MALE, AgeBand.AGE_65_PLUS, GermanLevel.C2)) == []


@pytest.mark.parametrize("gender", [Gender.MALE, Gender.DIVERSE, Gender.UNSPECIFIED, None])
def test_a_women_only_course_refuses_everyone_not_known_as_a_woman(gender: Gender | None) -> None:
    problems = domain.eligibility_problems(rules(women_only=True), learner(gender))
    assert problems == ["the course is for women only"]


def test_a_women_only_course_accepts_a_woman_and_a_mixed_course_accepts_every_gender() -> None:
    assert domain.eligibility_problems(rules(women_only=True), learner(Gender.FEMALE)) == []
    for gender in [*Gender, None]:
        assert domain.eligibility_problems(rules(women_only=False), learner(gender)) == [], gender


@given(target=st.sampled_from(GermanLevel), level=st.none() | st.sampled_from(GermanLevel))
@example(target=GermanLevel.B1, level=GermanLevel.B1)
@example(target=GermanLevel.B1, level=GermanLevel.A2)
@example(target=GermanLevel.B1, level=GermanLevel.B2)
@example(target=GermanLevel.A1, level=GermanLevel.NONE)
@example(target=GermanLevel.B1, level=None)
def test_a_german_course_is_refused_at_or_above_its_target_level_and_open_below_or_when_unknown(
    target: GermanLevel, level: GermanLevel | None
) -> None:
    problems = domain.eligibility_problems(rules(target_level=target), learner(level=level))
    reached = level is not None and GERMAN_ORDER.index(level.value) >= GERMAN_ORDER.index(target.value)
    assert bool(problems) == reached, (target, level, problems)
    if reached:
        assert problems == [f"German level {level} already reaches the course's {target}"]


@given(level=st.none() | st.sampled_from(GermanLevel))
def test_a_course_without_target_level_ignores_the_german_level(level: GermanLevel | None) -> None:
    assert domain.eligibility_problems(rules(target_level=None), learner(level=level)) == []


@pytest.mark.parametrize(
    ("min_age", "max_age", "band", "problem"),
    [
        (18, None, AgeBand.AGE_10_17, "the course is from age 18"),  # the band ends just below
        (18, None, AgeBand.AGE_18_26, None),  # the band starts exactly at the limit
        (17, None, AgeBand.AGE_10_17, None),  # the band ends exactly at the limit
        (20, None, AgeBand.AGE_18_26, None),  # the band straddles the limit: some of it may take part
        (27, None, AgeBand.AGE_18_26, "the course is from age 27"),
        (None, 26, AgeBand.AGE_27_44, "the course is up to age 26"),  # the band starts just above
        (None, 26, AgeBand.AGE_18_26, None),  # the band ends exactly at the limit
        (None, 27, AgeBand.AGE_27_44, None),  # the band starts exactly at the limit
        (None, 64, AgeBand.AGE_65_PLUS, "the course is up to age 64"),
        (None, 65, AgeBand.AGE_65_PLUS, None),
        (3, 5, AgeBand.AGE_0_2, "the course is from age 3"),
        (3, 5, AgeBand.AGE_6_9, "the course is up to age 5"),
        (3, 5, AgeBand.AGE_3_5, None),
        (18, 26, None, None),  # age unknown: not refused
    ],
)
def test_age_limits_are_checked_against_the_age_band_at_its_edges(
    min_age: int | None, max_age: int | None, band: AgeBand | None, problem: str | None
) -> None:
    problems = domain.eligibility_problems(rules(min_age=min_age, max_age=max_age), learner(Gender.MALE, age_band=band))
    assert problems == ([problem] if problem else [])


@given(
    limits=st.tuples(st.none() | st.integers(0, 130), st.none() | st.integers(0, 130)),
    band=st.sampled_from(AgeBand),
)
def test_an_age_band_is_refused_exactly_when_no_age_in_it_lies_within_the_limits(
    limits: tuple[int | None, int | None], band: AgeBand
) -> None:
    min_age, max_age = limits
    assume(min_age is None or max_age is None or min_age <= max_age)  # the API refuses min_age > max_age
    low, high = BAND_AGES[band.value]
    fits = any(
        (min_age is None or age >= min_age) and (max_age is None or age <= max_age) for age in range(low, high + 1)
    )
    problems = domain.eligibility_problems(rules(min_age=min_age, max_age=max_age), learner(Gender.MALE, band))
    assert (problems == []) == fits, (min_age, max_age, band, problems)


def test_every_broken_rule_is_named() -> None:
    course = rules(women_only=True, target_level=GermanLevel.A2, min_age=27)
    problems = domain.eligibility_problems(course, learner(Gender.MALE, AgeBand.AGE_18_26, GermanLevel.B1))
    assert len(problems) == 3
    assert problems[0] == "the course is for women only"
    assert "B1" in problems[1] and "A2" in problems[1]
    assert problems[2] == "the course is from age 27"


# --- sessions -------------------------------------------------------------------------------


def test_sessions_overlap_only_when_they_share_time_touching_is_not_overlapping() -> None:
    assert domain.sessions_overlap([session(9, 12)], [session(11, 13)])
    assert domain.sessions_overlap([session(9, 12)], [session(10, 11)])  # one inside the other
    assert domain.sessions_overlap([session(9, 12)], [session(9, 12)])  # the same time
    assert not domain.sessions_overlap([session(9, 12)], [session(12, 14)])  # one ends as the other starts
    assert not domain.sessions_overlap([session(9, 12)], [session(9, 12, day=1)])  # another day
    assert domain.sessions_overlap([session(8, 9), session(9, 12, day=7)], [session(1, 2), session(11, 13, day=7)])
    assert not domain.sessions_overlap([], [session(9, 12)])
    assert not domain.sessions_overlap([session(9, 12)], [])


# Sessions as (start, length) in quarter hours within one week.
session_lists = st.lists(
    st.tuples(st.integers(0, 7 * 96), st.integers(1, 16)).map(
        lambda t: Session(T0 + timedelta(minutes=15 * t[0]), T0 + timedelta(minutes=15 * (t[0] + t[1])))
    ),
    max_size=6,
)


@given(a=session_lists, b=session_lists)
def test_sessions_overlap_is_symmetric_and_means_some_shared_moment(a: list[Session], b: list[Session]) -> None:
    quarter = timedelta(minutes=15)

    def moments(sessions: list[Session]) -> set[datetime]:
        found = set()
        for s in sessions:
            t = s.starts_at
            while t < s.ends_at:
                found.add(t)
                t += quarter
        return found

    expected = bool(moments(a) & moments(b))
    assert domain.sessions_overlap(a, b) == expected
    assert domain.sessions_overlap(b, a) == expected
    assert domain.sessions_overlap(iter(a), iter(b)) == expected  # any iterables, consumed once


def test_check_sessions_accepts_separate_and_touching_sessions_in_any_order() -> None:
    domain.check_sessions([])
    domain.check_sessions([session(9, 12)])
    domain.check_sessions([session(9, 12, day=7), session(9, 12), session(12, 13)])


@pytest.mark.parametrize(
    "sessions",
    [
        [session(12, 9)],  # ends before it starts
        [session(9, 9)],  # no length
        [session(9, 12), session(14, 13, day=1)],
    ],
)
def test_check_sessions_refuses_a_session_that_does_not_end_after_it_starts(sessions: list[Session]) -> None:
    with pytest.raises(CourseError, match="end after it starts"):
        domain.check_sessions(sessions)


@pytest.mark.parametrize(
    "sessions",
    [
        [session(9, 12), session(11, 13)],
        [session(11, 13, day=7), session(9, 10), session(9, 12, day=7)],  # unordered
        [session(9, 12), session(10, 11)],  # one inside the other
        [session(9, 12), session(9, 12)],  # the same session twice
    ],
)
def test_check_sessions_refuses_overlapping_sessions_of_one_course(sessions: list[Session]) -> None:
    with pytest.raises(CourseError, match="must not overlap"):
        domain.check_sessions(sessions)


@given(sessions=session_lists)
def test_check_sessions_refuses_exactly_when_two_sessions_overlap(sessions: list[Session]) -> None:
    overlapping = any(domain.sessions_overlap([a], [b]) for i, a in enumerate(sessions) for b in sessions[i + 1 :])
    if overlapping:
        with pytest.raises(CourseError):
            domain.check_sessions(sessions)
    else:
        domain.check_sessions(sessions)


# --- the enrolment lifecycle ------------------------------------------------------------------


@pytest.mark.parametrize("status", list(EnrolmentStatus))
@pytest.mark.parametrize("action", ACTIONS)
def test_move_follows_the_documented_lifecycle_and_refuses_everything_else(
    status: EnrolmentStatus, action: str
) -> None:
    expected = MOVES.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action}"):
            domain.move(status, action)
    else:
        assert domain.move(status, action) is expected


def test_move_takes_the_status_as_stored_text_and_an_invalid_transition_is_a_course_error() -> None:
    assert domain.move("offered", "accept") is E.ENROLLED  # type: ignore[arg-type]
    assert issubclass(InvalidTransition, CourseError)
    with pytest.raises(CourseError):
        domain.move(E.COMPLETED, "cancel")


@pytest.mark.parametrize("status", [E.CANCELLED, E.COMPLETED, E.OFFER_EXPIRED])
def test_ended_enrolments_have_no_moves_left(status: EnrolmentStatus) -> None:
    for action in ACTIONS:
        with pytest.raises(InvalidTransition):
            domain.move(status, action)


def test_active_and_seat_holding_states_are_as_documented() -> None:
    assert frozenset({E.ENROLLED, E.WAITLISTED, E.OFFERED}) == domain.ACTIVE
    assert frozenset({E.ENROLLED, E.OFFERED}) == domain.HOLDS_SEAT  # an offer holds the seat until it expires


@given(capacity=st.integers(1, 500), taken=st.integers(0, 600))
@example(capacity=12, taken=11)
@example(capacity=12, taken=12)
def test_admit_gives_a_seat_while_there_is_one_else_a_place_in_line(capacity: int, taken: int) -> None:
    expected = E.ENROLLED if taken < capacity else E.WAITLISTED
    assert domain.admit(taken, capacity) is expected


def test_an_offer_expires_after_the_configured_hours() -> None:
    assert domain.offer_expires_at(T0, 72) == T0 + timedelta(days=3)
    assert domain.offer_expires_at(T0, 1.5) == T0 + timedelta(minutes=90)


# --- the waiting list ---------------------------------------------------------------------


OBLIGATION = PriorityCriterion.INTEGRATION_COURSE_OBLIGATION
CHILDCARE = PriorityCriterion.WOMAN_NEEDING_CHILDCARE
REFERRED = PriorityCriterion.REFERRED


def entry(enrolment_id: str, minute: int, *flags: PriorityCriterion) -> WaitingEntry:
    return WaitingEntry(enrolment_id, T0 + timedelta(minutes=minute), frozenset(flags))


def ids(entries: list[WaitingEntry]) -> list[str]:
    return [e.enrolment_id for e in entries]


def test_waiting_order_puts_obligation_first_then_women_needing_childcare_then_time_then_id() -> None:
    line = [
        entry("late-plain", 50),
        entry("early-plain", 1),
        entry("childcare", 40, CHILDCARE),
        entry("obligation-late", 60, OBLIGATION),
        entry("obligation-early", 30, OBLIGATION),
        entry("both", 70, OBLIGATION, CHILDCARE),
        entry("referred", 0, REFERRED),  # not a default criterion: ranked by time only
        entry("b-same-moment", 20),
        entry("a-same-moment", 20),
    ]
    assert DEFAULT_PRIORITIES == (OBLIGATION, CHILDCARE)
    assert ids(domain.waiting_order(line)) == [
        "both",  # obligation and childcare
        "obligation-early",
        "obligation-late",
        "childcare",
        "referred",
        "early-plain",
        "a-same-moment",  # the id breaks a tie of time
        "b-same-moment",
        "late-plain",
    ]


def test_a_custom_priority_list_changes_the_order_accordingly() -> None:
    line = [
        entry("obligation", 10, OBLIGATION),
        entry("childcare", 20, CHILDCARE),
        entry("referred", 30, REFERRED),
        entry("plain", 0),
    ]
    assert ids(domain.waiting_order(line)) == ["obligation", "childcare", "plain", "referred"]
    assert ids(domain.waiting_order(line, [CHILDCARE, OBLIGATION])) == ["childcare", "obligation", "plain", "referred"]
    assert ids(domain.waiting_order(line, [REFERRED])) == ["referred", "plain", "obligation", "childcare"]
    assert ids(domain.waiting_order(line, [])) == ["plain", "obligation", "childcare", "referred"]  # time only


waiting_entries = st.lists(
    st.builds(
        WaitingEntry,
        enrolment_id=st.uuids().map(str),
        requested_at=st.integers(0, 20).map(lambda m: T0 + timedelta(minutes=m)),  # many ties of time
        flags=st.frozensets(st.sampled_from(PriorityCriterion)),
    ),
    max_size=30,
    unique_by=lambda e: e.enrolment_id,
)
priority_lists = st.lists(st.sampled_from(PriorityCriterion), unique=True).map(tuple)


@given(entries=waiting_entries, priorities=priority_lists)
def test_waiting_order_is_a_permutation_sorted_by_the_documented_key(
    entries: list[WaitingEntry], priorities: tuple[PriorityCriterion, ...]
) -> None:
    ordered = domain.waiting_order(iter(entries), priorities)
    assert sorted(ids(ordered)) == sorted(ids(entries))
    assert len(ordered) == len(entries)

    def key(e: WaitingEntry) -> tuple[Any, ...]:
        return (*(p not in e.flags for p in priorities), e.requested_at, e.enrolment_id)

    for before, after in itertools.pairwise(ordered):
        assert key(before) < key(after), (before, after)  # strictly: the id makes every key unique


@given(entries=waiting_entries, priorities=priority_lists)
def test_waiting_order_does_not_depend_on_the_order_requests_are_read_in(
    entries: list[WaitingEntry], priorities: tuple[PriorityCriterion, ...]
) -> None:
    assert domain.waiting_order(entries, priorities) == domain.waiting_order(list(reversed(entries)), priorities)


@given(entries=waiting_entries)
def test_with_the_default_priorities_someone_with_an_obligation_never_waits_behind_someone_without(
    entries: list[WaitingEntry],
) -> None:
    flags = [OBLIGATION in e.flags for e in domain.waiting_order(entries)]
    assert flags == sorted(flags, reverse=True)


# --- completion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("certificate", "target", "expected"),
    [
        ("DTZ B1", GermanLevel.B1, GermanLevel.B1),
        ("DTZ A2", GermanLevel.B1, GermanLevel.A2),  # the certificate's level wins over the target
        ("dtz b1", GermanLevel.A2, GermanLevel.B1),
        ("telc Deutsch B2 Beruf", GermanLevel.B1, GermanLevel.B2),
        ("Goethe-Zertifikat C1", None, GermanLevel.C1),
        ("Leben in Deutschland", GermanLevel.B1, GermanLevel.B1),  # no level named: the course's target
        ("Leben in Deutschland", None, None),
        (None, GermanLevel.B1, GermanLevel.B1),  # passed without certificate: the target
        (None, None, None),
        ("", GermanLevel.A2, GermanLevel.A2),
    ],
)
def test_a_passed_completion_reaches_the_certificates_level_or_else_the_target(
    certificate: str | None, target: GermanLevel | None, expected: GermanLevel | None
) -> None:
    assert domain.level_reached(CompletionResult.PASSED, target, certificate) is expected


@pytest.mark.parametrize("result", [CompletionResult.NOT_PASSED, CompletionResult.ATTENDED])
@pytest.mark.parametrize("certificate", ["DTZ B1", None])
def test_a_completion_not_passed_reaches_no_level(result: CompletionResult, certificate: str | None) -> None:
    assert domain.level_reached(result, GermanLevel.B1, certificate) is None


def test_a_completion_date_cannot_lie_in_the_future() -> None:
    today = T0.date()
    domain.completed_on_or_before(today, today)
    domain.completed_on_or_before(today - timedelta(days=30), today)
    with pytest.raises(CourseError, match="future"):
        domain.completed_on_or_before(today + timedelta(days=1), today)


# --- the education pass -------------------------------------------------------------------

ENTRIES = [
    {"kind": "course", "course": "Integrationskurs", "result": "passed", "completed_on": "2026-06-30"},
    {"kind": "certificate", "certificate": "DTZ B1", "issued_on": "2026-06-30"},
    {"kind": "language_level", "language": "de", "level": "B1", "reached_on": "2026-06-30"},
]
ISSUER = "https://integration.landsberg.de"
CODE = re.compile(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")  # base32's alphabet


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def credential(holder: str | None = "Amina Haddad", entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return domain.education_pass(
        pass_id="6f1c2b1e-1111-4222-8333-444455556666",
        issuer=ISSUER,
        person_id="0b9a7c6d-aaaa-4bbb-8ccc-ddddeeeeffff",
        holder_name=holder,
        entries=copy.deepcopy(ENTRIES if entries is None else entries),
        issued_at=T0,
    )


def signed(key: Ed25519PrivateKey, **kwargs: Any) -> dict[str, Any]:
    return domain.sign(credential(**kwargs), key, f"{ISSUER}/keys#k1", T0)


def test_the_unsigned_pass_has_the_verifiable_credential_shape() -> None:
    document = credential()
    assert document["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert document["type"] == ["VerifiableCredential", "EducationPass"]
    assert document["id"] == "urn:uuid:6f1c2b1e-1111-4222-8333-444455556666"
    assert document["issuer"] == ISSUER
    assert document["validFrom"] == "2026-10-05T08:00:00Z"
    subject = document["credentialSubject"]
    assert subject["id"] == "urn:uuid:0b9a7c6d-aaaa-4bbb-8ccc-ddddeeeeffff"
    assert subject["name"] == "Amina Haddad" and subject["entries"] == ENTRIES
    assert "name" not in credential(holder=None)["credentialSubject"]  # the name only at the holder's request


def test_a_signed_pass_verifies_with_its_key(key: Ed25519PrivateKey) -> None:
    document = signed(key)
    proof = document["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["verificationMethod"] == f"{ISSUER}/keys#k1" and proof["proofPurpose"] == "assertionMethod"
    assert proof["created"] == "2026-10-05T08:00:00Z"
    assert proof["proofValue"].startswith("z")  # multibase base58btc
    assert len(domain._unbase58btc(proof["proofValue"])) == 64  # an Ed25519 signature
    assert domain.verify(document, key.public_key())
    # Signing again replaces the proof rather than signing the old one.
    assert domain.verify(domain.sign(document, key, f"{ISSUER}/keys#k1", T0), key.public_key())


def test_a_proof_value_longer_than_any_signature_is_refused_without_decoding(
    key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may ask for a verification, and base58 decoding is quadratic: 63 KB took 0.9 s of CPU."""
    document = signed(key)
    longest = "z" + "z" * 88  # 88 base58 digits: the most a 64-byte signature needs
    assert len(domain._base58btc(b"\xff" * 64)) <= len(longest) == domain.MAX_PROOF_VALUE_CHARS
    monkeypatch.setattr(domain, "_unbase58btc", lambda text: pytest.fail("an over-long proof value was decoded"))
    oversized = document | {"proof": document["proof"] | {"proofValue": "z" + "2" * 63_000}}
    assert not domain.verify(oversized, key.public_key())


def test_the_signature_does_not_depend_on_key_order_or_a_json_round_trip(key: Ed25519PrivateKey) -> None:
    import json

    document = signed(key)
    reordered = dict(reversed(list(json.loads(json.dumps(document)).items())))
    assert domain.verify(reordered, key.public_key())


@given(
    holder=st.none() | st.text(min_size=1, max_size=40),
    entries=st.lists(
        st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20) | st.integers(), max_size=4),
        max_size=4,
    ),
)
def test_any_pass_verifies_after_signing_and_fails_once_its_content_changes(
    holder: str | None, entries: list[dict[str, Any]]
) -> None:
    key = Ed25519PrivateKey.generate()
    document = signed(key, holder=holder, entries=entries)
    assert domain.verify(document, key.public_key())
    tampered = copy.deepcopy(document)
    tampered["credentialSubject"]["entries"] = [*entries, {"kind": "certificate", "certificate": "C2"}]
    assert not domain.verify(tampered, key.public_key())


def tampered(document: dict[str, Any], change: str) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    subject = copied["credentialSubject"]
    if change == "name":
        subject["name"] = "Amina Haddae"  # one character
    elif change == "level":
        subject["entries"][2]["level"] = "C1"
    elif change == "entry removed":
        subject["entries"].pop(1)
    elif change == "issuer":
        copied["issuer"] = ISSUER + ".evil"
    elif change == "validFrom":
        copied["validFrom"] = "2026-10-05T08:00:01Z"
    elif change == "subject id":
        subject["id"] = "urn:uuid:0b9a7c6d-aaaa-4bbb-8ccc-ddddeeeefff0"
    elif change == "field added":
        copied["validUntil"] = "2099-01-01T00:00:00Z"
    elif change == "name added":
        subject["name"] = "Someone Else"
    return copied


@pytest.mark.parametrize(
    "change", ["name", "level", "entry removed", "issuer", "validFrom", "subject id", "field added"]
)
def test_one_changed_field_of_the_credential_fails_verification(key: Ed25519PrivateKey, change: str) -> None:
    document = signed(key)
    assert not domain.verify(tampered(document, change), key.public_key())
    assert domain.verify(document, key.public_key())  # the original is untouched and still valid


def test_a_name_added_to_a_pass_issued_without_one_fails_verification(key: Ed25519PrivateKey) -> None:
    document = signed(key, holder=None)
    assert not domain.verify(tampered(document, "name added"), key.public_key())


@pytest.mark.parametrize("position", [0, 17, 31, 63])
def test_one_changed_byte_of_the_signature_fails_verification(key: Ed25519PrivateKey, position: int) -> None:
    document = signed(key)
    raw = bytearray(domain._unbase58btc(document["proof"]["proofValue"]))
    raw[position] ^= 0x01
    document["proof"]["proofValue"] = domain._base58btc(bytes(raw))
    assert not domain.verify(document, key.public_key())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created", "2020-01-01T00:00:00Z"),
        ("verificationMethod", "https://elsewhere.example/keys#k9"),
        ("proofPurpose", "authentication"),
    ],
)
def test_the_proof_options_are_protected_by_the_signature_as_eddsa_jcs_2022_requires(
    key: Ed25519PrivateKey, field: str, value: str
) -> None:
    """The proof claims cryptosuite eddsa-jcs-2022 (W3C VC Data Integrity EdDSA Cryptosuites), which signs
    SHA-256(JCS(proof configuration)) || SHA-256(JCS(document)): the proof's created date, verification method
    and purpose cannot be changed without breaking the proof."""
    document = signed(key)
    document["proof"][field] = value
    assert not domain.verify(document, key.public_key())


def test_a_different_key_fails_verification(key: Ed25519PrivateKey) -> None:
    document = signed(key)
    assert not domain.verify(document, Ed25519PrivateKey.generate().public_key())
    assert domain.verify(document, key.public_key())


@pytest.mark.parametrize(
    "proof",
    [
        "missing",
        None,
        "a string, not a proof",
        {},
        {"proofValue": None},
        {"proofValue": 12345},
        {"proofValue": ""},
        {"proofValue": "a"},  # not base64 at all (bad padding)
        {"proofValue": "!!!!"},
        {"proofValue": "not-a-signature"},
        {"proofValue": base64.urlsafe_b64encode(bytes(64)).decode()},  # base64url, not multibase
        {"proofValue": "z" + "2" * 88},  # multibase, wrong bytes
        {"proofValue": domain._base58btc(bytes(200))},  # too long
    ],
)
def test_a_missing_or_garbage_proof_fails_verification_without_raising(key: Ed25519PrivateKey, proof: Any) -> None:
    document = signed(key)
    if proof == "missing":
        del document["proof"]
    elif isinstance(proof, dict):
        document["proof"] = {k: v for k, v in document["proof"].items() if k != "proofValue"} | proof
    else:
        document["proof"] = proof
    assert domain.verify(document, key.public_key()) is False


def test_the_verification_code_has_its_format_and_is_stable_for_the_same_credential(key: Ed25519PrivateKey) -> None:
    document = signed(key)
    code = domain.verification_code(document)
    assert CODE.match(code), code
    assert domain.verification_code(copy.deepcopy(document)) == code
    assert domain.verification_code(dict(reversed(list(document.items())))) == code  # key order does not matter
    assert domain.verification_code(tampered(document, "name")) != code
    assert domain.verification_code(signed(Ed25519PrivateKey.generate())) != code  # another signature


@given(holder=st.text(min_size=1, max_size=40))
def test_every_verification_code_has_the_printed_format(holder: str) -> None:
    assert CODE.match(domain.verification_code(credential(holder=holder)))


def test_the_public_jwk_round_trips_to_a_key_that_verifies(key: Ed25519PrivateKey) -> None:
    jwk = domain.public_jwk(key.public_key(), "key-1")
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
    assert jwk["kid"] == "key-1" and jwk["use"] == "sig"
    assert "=" not in jwk["x"] and len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32
    assert "d" not in jwk  # never the private part
    document = signed(key)
    assert domain.verify(document, domain.key_from_jwk(jwk))
    other = domain.public_jwk(Ed25519PrivateKey.generate().public_key(), "key-2")
    assert not domain.verify(document, domain.key_from_jwk(other))


def test_canonical_json_sorts_keys_and_keeps_no_white_space() -> None:
    assert (
        domain.canonical_json({"b": 1, "a": [1, {"d": "ä", "c": None}]})
        == '{"a":[1,{"c":null,"d":"ä"}],"b":1}'.encode()
    )


# --- revocation: the Bitstring Status List ------------------------------------------------------------------

LIST_URL = f"{ISSUER}/api/v1/education-passes/status"


def status_list(
    key: Ed25519PrivateKey, revoked: list[int], length: int = domain.STATUS_LIST_MIN_BITS
) -> dict[str, Any]:
    unsigned = domain.status_list_credential(
        list_url=LIST_URL, issuer=ISSUER, revoked=revoked, length_bits=length, valid_from=T0
    )
    return domain.sign(unsigned, key, f"{ISSUER}/keys#k1", T0)


def placed(key: Ed25519PrivateKey, index: int) -> dict[str, Any]:
    document = credential()
    document["credentialStatus"] = domain.status_entry(LIST_URL, index)
    return domain.sign(document, key, f"{ISSUER}/keys#k1", T0)


def test_the_status_list_is_a_signed_bitstring_status_list_credential(key: Ed25519PrivateKey) -> None:
    listed = status_list(key, [0, 7, 8, 131_071])
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listed["id"] == LIST_URL and listed["issuer"] == ISSUER and domain.verify(listed, key.public_key())
    subject = listed["credentialSubject"]
    assert (subject["type"], subject["statusPurpose"]) == ("BitstringStatusList", "revocation")
    bits = domain.decode_status_list(subject["encodedList"])
    assert len(bits) == 16 * 1024, "16 KiB, the specification's minimum"
    # Bit 0 is the most significant bit of the first byte (W3C Bitstring Status List, section 3.2).
    assert (bits[0], bits[1], bits[-1]) == (0b1000_0001, 0b1000_0000, 0b0000_0001)
    assert sum(bin(b).count("1") for b in bits) == 4
    assert subject["encodedList"].startswith("u") and "=" not in subject["encodedList"]  # multibase base64url


@given(revoked=st.sets(st.integers(0, domain.STATUS_LIST_MIN_BITS - 1), max_size=40))
def test_encoding_and_decoding_keep_exactly_the_revoked_places(revoked: set[int]) -> None:
    bits = domain.decode_status_list(domain.encode_status_list(revoked, domain.STATUS_LIST_MIN_BITS))
    # Only the bytes with a bit set: a list is 16 KiB of mostly zeros, and every bit in Python took seconds.
    found = {at * 8 + bit for at, byte in enumerate(bits) if byte for bit in range(8) if byte & (0x80 >> bit)}
    assert found == revoked


def test_a_place_outside_the_list_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="outside"):
        domain.encode_status_list([domain.STATUS_LIST_MIN_BITS], domain.STATUS_LIST_MIN_BITS)


def test_a_status_list_bigger_than_a_verifier_reads_is_refused() -> None:
    """Zeros compress a thousandfold: a small body must not unpack to gigabytes in a verifier."""
    bomb = "u" + domain._b64url(gzip.compress(bytes(domain.STATUS_LIST_MAX_BYTES + 1)))
    assert len(bomb) < 40_000
    with pytest.raises(ValueError, match="longer"):
        domain.decode_status_list(bomb)
    for garbage in ("", "zabc", "u!!!!", "u" + domain._b64url(b"not gzip")):
        with pytest.raises(ValueError):
            domain.decode_status_list(garbage)


def test_the_list_grows_in_steps_of_the_minimum_and_places_are_drawn_from_a_half_empty_range() -> None:
    minimum = domain.STATUS_LIST_MIN_BITS
    assert domain.status_list_length(None) == minimum
    assert domain.status_list_length(minimum - 1) == minimum
    assert domain.status_list_length(minimum) == 2 * minimum
    assert domain.status_index_range(0) == minimum
    assert domain.status_index_range(minimum // 2 - 1) == minimum
    assert domain.status_index_range(minimum // 2) == 2 * minimum
    assert domain.status_index_range(minimum) == 4 * minimum


def test_an_offline_verifier_reads_a_pass_revoked_or_not_from_the_list(key: Ed25519PrivateKey) -> None:
    document = placed(key, 4711)
    assert document["credentialStatus"] == {
        "id": f"{LIST_URL}#4711",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "4711",
        "statusListCredential": LIST_URL,
    }
    assert domain.verify(document, key.public_key()), "the status entry is signed with the pass"
    assert domain.revoked_in(document, status_list(key, [4710, 4712]), key.public_key()) is False
    assert domain.revoked_in(document, status_list(key, [4711]), key.public_key()) is True
    assert domain.revoked_in(signed(key), status_list(key, [4711]), key.public_key()) is None, "no place: no answer"


@pytest.mark.parametrize(
    "fault", ["list changed", "another key", "another list", "another issuer", "place outside", "not a number"]
)
def test_a_list_that_cannot_answer_for_the_pass_says_so(key: Ed25519PrivateKey, fault: str) -> None:
    document, listed, public = placed(key, 4711), status_list(key, [4711]), key.public_key()
    if fault == "list changed":
        listed["credentialSubject"]["encodedList"] = domain.encode_status_list([], domain.STATUS_LIST_MIN_BITS)
    elif fault == "another key":
        public = Ed25519PrivateKey.generate().public_key()
    elif fault == "another list":
        listed = domain.sign({**listed, "id": f"{LIST_URL}/2"}, key, f"{ISSUER}/keys#k1", T0)
    elif fault == "another issuer":
        listed = domain.sign({**listed, "issuer": "https://elsewhere.example"}, key, f"{ISSUER}/keys#k1", T0)
    elif fault == "place outside":
        document = placed(key, domain.STATUS_LIST_MIN_BITS)
    else:
        document["credentialStatus"]["statusListIndex"] = "-1"
    with pytest.raises(domain.StatusUnknown):
        domain.revoked_in(document, listed, public)


def test_the_pass_id_is_read_from_the_credential_id_only_in_its_form() -> None:
    assert domain.pass_id_of(credential()) == "6f1c2b1e-1111-4222-8333-444455556666"
    for value in (None, 5, "6f1c2b1e", "urn:uuid:", "urn:uuid:" + "x" * 37):
        assert domain.pass_id_of({"id": value}) is None, value


# --- who may act on what --------------------------------------------------------------------------------------


def test_the_caller_follows_the_forwarded_roles_provider_team_and_subject() -> None:
    nobody = domain.caller_from(None, "vhs-landsberg", "integration-nord", "user:x")
    assert nobody.unrestricted and nobody.manages("any-provider"), "no identity forwarded: development and tests"
    admin = domain.caller_from("admin", None, None, "user:t.vogel")
    assert admin.unrestricted and admin.manages("vhs-landsberg") and admin.has(domain.REGISTRAR)
    vhs = domain.caller_from("course_admin", "vhs-landsberg", None, "user:k.schulz")
    assert (vhs.provider_id, vhs.unrestricted) == ("vhs-landsberg", False)
    assert vhs.manages("vhs-landsberg") and not vhs.manages("kolping-bildungswerk")
    assert vhs.has(domain.COURSE_ADMIN) and not vhs.has(domain.CASEWORKER, domain.REGISTRAR)
    untied = domain.caller_from("course_admin", "", None, "user:n.n")
    assert untied.provider_id is None and not untied.manages("vhs-landsberg"), "no provider, no course"
    partner = domain.caller_from("partner", "vhs-landsberg", None, "user:vhs-partner")
    assert partner.provider_id is None and not partner.manages("vhs-landsberg"), "partner staff are no course admins"
    lotse = domain.caller_from("caseworker", "", "integration-nord", "user:lotse")
    assert (lotse.team, lotse.caseworker_id, lotse.provider_id) == ("integration-nord", "lotse", None)
    assert not lotse.manages("vhs-landsberg")
    assert domain.caller_from("caseworker", None, None, "api_key:x").caseworker_id is None


def test_a_step_returns_the_status_and_the_fact_its_event_reports() -> None:
    assert domain.step(E.WAITLISTED, "offer") == (E.OFFERED, [domain.EnrolmentMoved("offer", E.OFFERED)])
    with pytest.raises(domain.InvalidTransition):
        domain.step(E.CANCELLED, "offer")


@pytest.mark.parametrize(("taken", "status", "second"), [(0, E.ENROLLED, "enrol"), (2, E.WAITLISTED, "waitlist")])
def test_an_admission_is_a_request_then_a_seat_or_a_place_in_line(
    taken: int, status: EnrolmentStatus, second: str
) -> None:
    assert domain.admission(taken, 2) == (
        status,
        [domain.EnrolmentMoved("request", status), domain.EnrolmentMoved(second, status)],
    )


def test_only_a_scheduled_course_changes_and_never_below_its_seats_taken() -> None:
    domain.changeable("scheduled")
    with pytest.raises(domain.InvalidTransition, match="a cancelled course cannot be changed"):
        domain.changeable("cancelled")
    assert domain.course_changes({"capacity": 3, "district": None}, seats_held=3) == {"capacity": 3, "district": None}
    with pytest.raises(domain.CourseError, match="3 seats are taken"):
        domain.course_changes({"capacity": 2}, seats_held=3)
    with pytest.raises(domain.CourseError, match="title cannot be removed"):
        domain.course_changes({"title": None}, seats_held=0)
