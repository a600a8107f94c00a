"""Unit tests of the registration rules (services/registration/domain.py): pure functions, no I/O."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from contracts.vocabulary import AgeBand, EmploymentSituation, GermanLevel, NeedCategory, Schooling
from services.registration import domain
from services.registration.domain import (
    ConsentTerms,
    InvalidTransition,
    NeedsFacts,
    PersonState,
    PersonStatus,
    RegistrationError,
)

TODAY = date(2026, 6, 15)
BAND_ORDER = list(AgeBand)

# --- strategies ---------------------------------------------------------------------------

dates = st.dates(min_value=date(1880, 1, 1), max_value=date(2120, 12, 31))
# Letters people's names are written in: Latin (with Latin-1 and Extended-A/B), Greek, Cyrillic, Arabic.
name_letters = st.characters(
    categories=("Lu", "Ll", "Lo"),
    include_characters="ßæøđłıÆØĐŁ",
    max_codepoint=0x06FF,
)
words = st.text(name_letters, min_size=1, max_size=8)
ascii_words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=8)
separators = st.text(st.sampled_from(" -\u2010_'.,\t"), min_size=1, max_size=3)
combining_marks = st.sampled_from(["\u0301", "\u0300", "\u0308", "\u0302", "\u030c", "\u0327", "\u0303", "\u030a"])
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


def band_bounds(band: AgeBand) -> tuple[int, float]:
    """Read the age range off the band's label ("27-44", "65+"), independently of the domain's table."""
    if band.value.endswith("+"):
        return int(band.value[:-1]), float("inf")
    low, high = band.value.split("-")
    return int(low), int(high)


def nth_birthday(birth: date, n: int) -> date:
    """The day someone turns ``n``; a 29 February birthday falls on 1 March in common years."""
    try:
        return birth.replace(year=birth.year + n)
    except ValueError:
        return date(birth.year + n, 3, 1)


# --- transitions -----------------------------------------------------------------------------


ON = date(2026, 6, 1)
AT = datetime(2026, 6, 1, 9, tzinfo=UTC)


def test_a_registered_person_can_move_away() -> None:
    state, facts = domain.move_away(PersonState(PersonStatus.REGISTERED, 3), ON)
    assert state == PersonState(PersonStatus.MOVED_AWAY, 4)
    assert facts == [domain.MovedAway(ON)]


@pytest.mark.parametrize("status", [PersonStatus.MOVED_AWAY, PersonStatus.ERASED])
def test_only_a_registered_person_can_move_away(status: PersonStatus) -> None:
    with pytest.raises(InvalidTransition, match=status.value):
        domain.move_away(PersonState(status), ON)


@pytest.mark.parametrize("status", [PersonStatus.REGISTERED, PersonStatus.MOVED_AWAY])
def test_registered_and_moved_away_persons_can_be_erased(status: PersonStatus) -> None:
    state, facts = domain.erase(PersonState(status, 2), AT)
    assert state == PersonState(PersonStatus.ERASED, 3)
    assert facts == [domain.Erased(AT)]


def test_erasing_twice_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="already erased"):
        domain.erase(PersonState(PersonStatus.ERASED), AT)


def test_a_registration_starts_each_person_registered_at_version_one() -> None:
    state, facts = domain.register(["a", "b"])
    assert state == PersonState(PersonStatus.REGISTERED, 1)
    assert facts == [domain.Registered("a"), domain.Registered("b")]


def test_a_registration_lists_nobody_twice() -> None:
    with pytest.raises(domain.Refused, match="listed twice"):
        domain.register(["a", "b", "a"])


def test_a_change_is_a_new_version_of_a_registered_person_only() -> None:
    assert domain.change(PersonState(PersonStatus.REGISTERED, 1)) == (
        PersonState(PersonStatus.REGISTERED, 2),
        [domain.Changed(2)],
    )
    with pytest.raises(InvalidTransition, match="cannot be changed"):
        domain.change(PersonState(PersonStatus.MOVED_AWAY, 2))


def test_a_registered_person_is_changeable() -> None:
    domain.ensure_changeable(PersonStatus.REGISTERED)  # no refusal


@pytest.mark.parametrize("status", [PersonStatus.MOVED_AWAY, PersonStatus.ERASED])
def test_moved_away_and_erased_persons_are_not_changeable(status: PersonStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"{status.value} cannot be changed"):
        domain.ensure_changeable(status)


def test_invalid_transition_is_a_registration_error_and_a_value_error() -> None:
    assert issubclass(InvalidTransition, RegistrationError)
    assert issubclass(RegistrationError, ValueError)


# --- names and duplicates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Müller-Lüdenscheidt", "muller ludenscheidt"),
        ("Amina Haddad", "amina haddad"),
        ("AMINA   HADDAD", "Amina Haddad"),
        ("  Amina\tHaddad  ", "Amina Haddad"),
        ("Strauß", "STRAUSS"),
        ("Çelik", "celik"),
        ("Øberg", "oberg"),
        ("Łukasz", "lukasz"),
        ("Đorđević", "dordevic"),
        ("Y\u0131ld\u0131z", "yildiz"),  # Turkish dotless i
        ("Ærø", "aero"),
        ("Jean_Luc", "jean luc"),
        ("O'Brien", "o brien"),
    ],
)
def test_normalise_name_treats_spellings_of_the_same_name_alike(left: str, right: str) -> None:
    assert domain.normalise_name(left) == domain.normalise_name(right)


def test_normalise_name_output_is_lowercase_single_spaced_ascii_for_latin_names() -> None:
    assert domain.normalise_name("  José-María   Gómez_Pérez ") == "jose maria gomez perez"


@pytest.mark.parametrize(("left", "right"), [("Amina", "Amira"), ("Haddad", "Hadad"), ("Anna Maria", "Annamaria")])
def test_normalise_name_keeps_different_names_apart(left: str, right: str) -> None:
    assert domain.normalise_name(left) != domain.normalise_name(right)


@given(st.text(name_letters | st.sampled_from(" -_'\t"), max_size=30))
@example("ǿ")  # ø with acute: the accent is stripped only after the ø -> o transliteration ran
@example("Ǣ")  # æ with macron
def test_normalise_name_is_idempotent(name: str) -> None:
    once = domain.normalise_name(name)
    assert domain.normalise_name(once) == once


@given(st.lists(words, min_size=1, max_size=4))
def test_normalise_name_ignores_case(parts: list[str]) -> None:
    name = " ".join(parts)
    assert domain.normalise_name(name.upper()) == domain.normalise_name(name.lower()) == domain.normalise_name(name)


@given(st.lists(ascii_words, min_size=1, max_size=4), st.data())
def test_normalise_name_ignores_accents(parts: list[str], data: st.DataObject) -> None:
    plain = " ".join(parts)
    accented = "".join(
        c + (data.draw(combining_marks) if c.isalpha() and data.draw(st.booleans()) else "") for c in plain
    )
    precomposed = unicodedata.normalize("NFC", accented)
    assert domain.normalise_name(precomposed) == domain.normalise_name(accented) == plain


@example(base="o", mark="\u0301")  # "ó" is "o", so "ǿ" should be "ø", which is "o"
@example(base="ø", mark="\u0301")
@example(base="æ", mark="\u0304")
@given(base=st.sampled_from(["a", "o", "u", "ø", "æ", "ł", "đ"]), mark=combining_marks)
def test_an_accent_on_any_letter_does_not_make_a_different_name(base: str, mark: str) -> None:
    composed = unicodedata.normalize("NFC", f"S{base}{mark}ren")
    assert domain.normalise_name(composed) == domain.normalise_name(f"S{base}ren")


@given(st.lists(words, min_size=1, max_size=4), st.data())
def test_normalise_name_ignores_hyphens_and_spacing(parts: list[str], data: st.DataObject) -> None:
    joined = parts[0] + "".join(data.draw(separators) + part for part in parts[1:])
    padded = data.draw(st.sampled_from(["", " ", "  "])) + joined + data.draw(st.sampled_from(["", " ", "-"]))
    assert domain.normalise_name(padded) == domain.normalise_name(" ".join(parts))


@given(st.lists(words, min_size=1, max_size=3), st.lists(words, min_size=1, max_size=3), dates)
def test_duplicate_key_is_the_same_for_swapped_names(
    given_parts: list[str], family_parts: list[str], born: date
) -> None:
    given_names, family_name = " ".join(given_parts), " ".join(family_parts)
    assert domain.duplicate_key(given_names, family_name, born) == domain.duplicate_key(family_name, given_names, born)


@given(st.permutations(["Amina", "Fatima", "Haddad", "Al-Sayed"]), dates)
def test_duplicate_key_ignores_word_order_across_given_and_family_names(words: list[str], born: date) -> None:
    expected = domain.duplicate_key("Amina Fatima", "Haddad Al-Sayed", born)
    assert domain.duplicate_key(" ".join(words[:2]), " ".join(words[2:]), born) == expected


def test_duplicate_key_matches_spelling_variants() -> None:
    born = date(1991, 3, 14)
    assert domain.duplicate_key("amina", "haddad", born) == domain.duplicate_key("Ámina", "HADDAD", born)
    key = domain.duplicate_key("Amina", "Haddad", born)
    assert len(key) == 64 and "amina" not in key, "a fixed-length hash, no second copy of the name"


@given(dates, dates)
def test_duplicate_key_differs_for_different_birth_dates(first: date, second: date) -> None:
    assume(first != second)
    assert domain.duplicate_key("Amina", "Haddad", first) != domain.duplicate_key("Amina", "Haddad", second)


def test_duplicate_key_differs_for_different_names() -> None:
    born = date(1991, 3, 14)
    assert domain.duplicate_key("Amina", "Haddad", born) != domain.duplicate_key("Amira", "Haddad", born)


# --- age -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "day", "age"),
    [
        (date(2000, 6, 15), date(2026, 6, 15), 26),
        (date(2000, 6, 16), date(2026, 6, 15), 25),
        (date(2000, 12, 31), date(2001, 1, 1), 0),
        (date(2000, 2, 29), date(2001, 2, 28), 0),
        (date(2000, 2, 29), date(2001, 3, 1), 1),
        (date(2000, 2, 29), date(2004, 2, 29), 4),
    ],
)
def test_age_on_examples(born: date, day: date, age: int) -> None:
    assert domain.age_on(born, day) == age


@given(dates, dates)
def test_age_on_counts_birthdays_passed(born: date, day: date) -> None:
    assume(born <= day)
    age = domain.age_on(born, day)
    assert age >= 0
    assert nth_birthday(born, age) <= day
    if born.year + age + 1 <= date.max.year:
        assert day < nth_birthday(born, age + 1)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, AgeBand.AGE_0_2),
        (2, AgeBand.AGE_0_2),
        (3, AgeBand.AGE_3_5),
        (5, AgeBand.AGE_3_5),
        (6, AgeBand.AGE_6_9),
        (9, AgeBand.AGE_6_9),
        (10, AgeBand.AGE_10_17),
        (17, AgeBand.AGE_10_17),
        (18, AgeBand.AGE_18_26),
        (26, AgeBand.AGE_18_26),
        (27, AgeBand.AGE_27_44),
        (44, AgeBand.AGE_27_44),
        (45, AgeBand.AGE_45_64),
        (64, AgeBand.AGE_45_64),
        (65, AgeBand.AGE_65_PLUS),
        (110, AgeBand.AGE_65_PLUS),
    ],
)
def test_age_band_boundaries(age: int, band: AgeBand) -> None:
    assert domain.age_band(date(TODAY.year - age, TODAY.month, TODAY.day), TODAY) is band
    if age > 0:  # one day short of the birthday still counts as the age before
        assert domain.age_band(date(TODAY.year - age, TODAY.month, TODAY.day + 1), TODAY) is (
            band if band_bounds(band)[0] < age else BAND_ORDER[BAND_ORDER.index(band) - 1]
        )


@given(dates, dates)
def test_age_band_contains_age_on(born: date, day: date) -> None:
    assume(born <= day)
    low, high = band_bounds(domain.age_band(born, day))
    assert low <= domain.age_on(born, day) <= high


@given(dates, dates, dates)
def test_age_band_never_goes_down_as_time_passes(born: date, day: date, later: date) -> None:
    born, day, later = sorted((born, day, later))  # ordered, not filtered: no input is thrown away
    assert BAND_ORDER.index(domain.age_band(born, day)) <= BAND_ORDER.index(domain.age_band(born, later))


@given(dates, dates, dates)
def test_age_band_is_higher_or_equal_for_who_is_born_earlier(earlier: date, born: date, day: date) -> None:
    earlier, born, day = sorted((earlier, born, day))
    assert BAND_ORDER.index(domain.age_band(earlier, day)) >= BAND_ORDER.index(domain.age_band(born, day))


def test_check_birth_date_accepts_today_and_the_oldest_plausible_age() -> None:
    domain.check_birth_date(TODAY, TODAY)
    domain.check_birth_date(date(TODAY.year - 130, TODAY.month, TODAY.day), TODAY)  # exactly 130
    domain.check_birth_date(date(TODAY.year - 131, TODAY.month, TODAY.day + 1), TODAY)  # 130, a day short of 131


def test_check_birth_date_rejects_tomorrow() -> None:
    with pytest.raises(RegistrationError, match="future"):
        domain.check_birth_date(TODAY + timedelta(days=1), TODAY)


def test_check_birth_date_rejects_more_than_130_years() -> None:
    with pytest.raises(RegistrationError, match="130"):
        domain.check_birth_date(date(TODAY.year - 131, TODAY.month, TODAY.day), TODAY)


@given(st.dates(min_value=TODAY + timedelta(days=1), max_value=date(2200, 1, 1)))
def test_check_birth_date_rejects_every_future_date(born: date) -> None:
    with pytest.raises(RegistrationError):
        domain.check_birth_date(born, TODAY)


@given(st.dates(min_value=date(1, 1, 1), max_value=date(TODAY.year - 131, TODAY.month, TODAY.day)))
def test_check_birth_date_rejects_every_implausibly_old_date(born: date) -> None:
    with pytest.raises(RegistrationError):
        domain.check_birth_date(born, TODAY)


@given(st.dates(min_value=date(TODAY.year - 130, TODAY.month, TODAY.day), max_value=TODAY))
def test_check_birth_date_accepts_every_plausible_date(born: date) -> None:
    domain.check_birth_date(born, TODAY)


# --- needs ---------------------------------------------------------------------------------

NO_NEEDS = NeedsFacts(
    german_level=GermanLevel.B2,
    schooling=Schooling.SECONDARY,
    employment_situation=EmploymentSituation.EMPLOYED,
    foreign_qualification_to_recognise=False,
    childcare_needed=False,
    housing_need=False,
    counselling_need=False,
    health_need=False,
    adult=True,
)

SINGLE_NEEDS = [
    ({"german_level": GermanLevel.NONE}, NeedCategory.LANGUAGE),
    ({"german_level": GermanLevel.A1}, NeedCategory.LANGUAGE),
    ({"german_level": GermanLevel.A2}, NeedCategory.LANGUAGE),
    ({"employment_situation": EmploymentSituation.JOB_SEEKING}, NeedCategory.EMPLOYMENT),
    ({"foreign_qualification_to_recognise": True}, NeedCategory.RECOGNITION),
    ({"schooling": Schooling.NONE}, NeedCategory.EDUCATION),
    ({"schooling": Schooling.PRIMARY}, NeedCategory.EDUCATION),
    ({"childcare_needed": True}, NeedCategory.CHILDCARE),
    ({"housing_need": True}, NeedCategory.HOUSING),
    ({"counselling_need": True}, NeedCategory.COUNSELLING),
    ({"health_need": True}, NeedCategory.HEALTH),
]


def test_no_facts_no_needs() -> None:
    assert domain.need_categories(NO_NEEDS) == []


@pytest.mark.parametrize(("change", "category"), SINGLE_NEEDS, ids=lambda x: str(x))
def test_each_fact_gives_its_need_category(change: dict[str, object], category: NeedCategory) -> None:
    assert domain.need_categories(replace(NO_NEEDS, **change)) == [category]  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [GermanLevel.B1, GermanLevel.B2, GermanLevel.C1, GermanLevel.C2])
def test_german_from_b1_up_is_no_language_need(level: GermanLevel) -> None:
    assert NeedCategory.LANGUAGE not in domain.need_categories(replace(NO_NEEDS, german_level=level))


@pytest.mark.parametrize(
    "situation", [s for s in EmploymentSituation if s is not EmploymentSituation.JOB_SEEKING], ids=str
)
def test_only_job_seeking_is_an_employment_need(situation: EmploymentSituation) -> None:
    assert domain.need_categories(replace(NO_NEEDS, employment_situation=situation)) == []


@pytest.mark.parametrize("schooling", [Schooling.NONE, Schooling.PRIMARY])
def test_little_schooling_is_an_education_need_for_adults_only(schooling: Schooling) -> None:
    assert domain.need_categories(replace(NO_NEEDS, schooling=schooling, adult=False)) == []


@given(
    german_level=st.sampled_from(GermanLevel),
    schooling=st.sampled_from(Schooling),
    employment_situation=st.sampled_from(EmploymentSituation),
    foreign_qualification_to_recognise=st.booleans(),
    childcare_needed=st.booleans(),
    housing_need=st.booleans(),
    counselling_need=st.booleans(),
    health_need=st.booleans(),
    adult=st.booleans(),
)
def test_need_categories_are_the_union_of_each_fact_alone_in_vocabulary_order(**fields: object) -> None:
    facts = NeedsFacts(**fields)  # type: ignore[arg-type]
    alone: set[NeedCategory] = set()
    for name in ("german_level", "schooling", "employment_situation", *(n for n, v in fields.items() if v is True)):
        if name == "adult":
            continue
        base = replace(NO_NEEDS, adult=facts.adult)
        alone.update(domain.need_categories(replace(base, **{name: getattr(facts, name)})))
    result = domain.need_categories(facts)
    assert set(result) == alone
    assert result == [c for c in NeedCategory if c in alone]


def test_an_assessment_is_the_next_version_with_the_adult_rule_and_bands_only() -> None:
    child = date(TODAY.year - 15, 1, 1)
    found = replace(NO_NEEDS, schooling=Schooling.NONE, adult=True)
    fact = domain.assess_needs(
        PersonState(PersonStatus.REGISTERED), found, birth_date=child, children_ages=[], latest_version=2, today=TODAY
    )
    assert fact.version == 3
    assert NeedCategory.EDUCATION not in fact.need_categories  # a minor's schooling is the school's, not a need
    adult = domain.assess_needs(
        PersonState(PersonStatus.REGISTERED),
        found,
        birth_date=date(1990, 1, 1),
        children_ages=[0, 4],
        latest_version=0,
        today=TODAY,
    )
    assert adult.version == 1 and NeedCategory.EDUCATION in adult.need_categories
    assert adult.age_band is domain.age_band(date(1990, 1, 1), TODAY)
    assert adult.children_age_bands == (AgeBand.AGE_0_2, AgeBand.AGE_3_5)
    with pytest.raises(InvalidTransition):
        domain.assess_needs(
            PersonState(PersonStatus.MOVED_AWAY),
            found,
            birth_date=child,
            children_ages=[],
            latest_version=0,
            today=TODAY,
        )


# --- consent ---------------------------------------------------------------------------------

GIVEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_consent_is_in_force_from_the_moment_it_is_given() -> None:
    terms = ConsentTerms(GIVEN, None, None)
    assert domain.consent_in_force(terms, GIVEN)
    assert domain.consent_in_force(terms, GIVEN + timedelta(days=3650))
    assert not domain.consent_in_force(terms, GIVEN - timedelta(microseconds=1))


def test_consent_is_in_force_through_its_expiry_day_in_the_city_and_not_after() -> None:
    terms = ConsentTerms(GIVEN, date(2026, 4, 30), None)
    assert domain.consent_in_force(terms, datetime(2026, 4, 30, 21, 59, 59, tzinfo=UTC))  # 23:59:59 in Landsberg
    assert not domain.consent_in_force(terms, datetime(2026, 4, 30, 22, 0, tzinfo=UTC))  # midnight there (CEST)


def test_consent_ends_when_withdrawn() -> None:
    withdrawn = GIVEN + timedelta(days=10)
    terms = ConsentTerms(GIVEN, None, withdrawn)
    assert domain.consent_in_force(terms, withdrawn - timedelta(seconds=1))
    assert not domain.consent_in_force(terms, withdrawn)
    assert not domain.consent_in_force(terms, withdrawn + timedelta(days=1))


def test_a_consent_given_in_the_future_is_not_yet_in_force() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert not domain.consent_in_force(ConsentTerms(now + timedelta(hours=1), None, None), now)


@given(moments, st.none() | st.dates(date(2020, 1, 1), date(2031, 1, 1)), st.none() | moments, moments)
def test_consent_in_force_iff_given_not_withdrawn_not_expired(
    given_at: datetime, expires_on: date | None, withdrawn_at: datetime | None, at: datetime
) -> None:
    in_force = domain.consent_in_force(ConsentTerms(given_at, expires_on, withdrawn_at), at)
    withdrawn = withdrawn_at is not None and withdrawn_at <= at
    expired = expires_on is not None and at.date() > expires_on
    assert in_force == (given_at <= at and not withdrawn and not expired)


def test_withdraw_records_the_moment_and_keeps_the_terms() -> None:
    at = GIVEN + timedelta(days=2)
    withdrawn, facts = domain.withdraw(ConsentTerms(GIVEN, date(2027, 1, 1), None), at)
    assert withdrawn == ConsentTerms(GIVEN, date(2027, 1, 1), at)
    assert facts == [domain.ConsentWasWithdrawn(at)]
    assert not domain.consent_in_force(withdrawn, at)


def test_withdrawing_twice_is_refused() -> None:
    once, _ = domain.withdraw(ConsentTerms(GIVEN, None, None), GIVEN + timedelta(days=1))
    with pytest.raises(InvalidTransition, match="already withdrawn"):
        domain.withdraw(once, GIVEN + timedelta(days=2))


def test_a_consent_is_given_now_or_before_by_a_registered_person() -> None:
    at = GIVEN + timedelta(days=1)
    assert domain.give_consent(PersonState(PersonStatus.REGISTERED), given_at=None, expires_on=None, at=at) == (
        ConsentTerms(at, None, None),
        [domain.ConsentWasGiven(at)],
    )
    terms, _ = domain.give_consent(PersonState(PersonStatus.REGISTERED), given_at=GIVEN, expires_on=None, at=at)
    assert terms.given_at == GIVEN
    with pytest.raises(domain.Refused, match="future"):
        domain.give_consent(PersonState(PersonStatus.REGISTERED), given_at=at, expires_on=None, at=GIVEN)
    with pytest.raises(InvalidTransition, match="cannot be changed"):
        domain.give_consent(PersonState(PersonStatus.MOVED_AWAY), given_at=None, expires_on=None, at=at)


# --- information pack language --------------------------------------------------------------

PACKS = {"de", "en", "ar", "uk", "tr", "fa", "ru", "ro"}


@pytest.mark.parametrize(
    ("preferred", "available", "expected"),
    [
        ("ar", PACKS, "ar"),
        ("AR", PACKS, "ar"),
        ("ar-SY", PACKS, "ar"),
        ("uk-UA", PACKS, "uk"),
        ("fa-AF", PACKS, "fa"),
        ("ps", PACKS, "en"),
        ("ps-AF", PACKS, "en"),
        ("ti", {"de", "ar"}, "de"),
        ("ti", {"de", "en"}, "en"),
        ("de", {"de", "en"}, "de"),
        ("pt-br", {"pt-br", "pt", "en"}, "pt-br"),
        ("pt-BR", {"pt", "en"}, "pt"),
    ],
)
def test_info_pack_language(preferred: str, available: set[str], expected: str) -> None:
    assert domain.info_pack_language(preferred, available) == expected


def test_no_info_pack_at_all_is_an_error() -> None:
    with pytest.raises(RegistrationError):
        domain.info_pack_language("ps", {"ar", "fa"})


@given(st.sampled_from(sorted(PACKS)), st.sets(st.sampled_from(sorted(PACKS - {"en", "de"})), max_size=4))
def test_info_pack_language_prefers_the_exact_language(preferred: str, others: set[str]) -> None:
    assert domain.info_pack_language(preferred, {preferred, "de", *others}) == preferred


@given(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=2, max_size=3),
    st.sets(st.sampled_from(["en", "de", "ar", "fa", "uk", "tr"]), min_size=1),
)
def test_info_pack_language_always_answers_an_available_pack(preferred: str, available: set[str]) -> None:
    assume({"en", "de"} & available or preferred in available)
    assert domain.info_pack_language(preferred, available) in available
