"""Registration rules: pure functions and small value objects, no I/O, no framework.

The registration office (Einwohnermeldeamt) is where a newcomer first meets the
city. What is decided here: who is a likely duplicate, which age band someone
falls in, which needs an assessment reveals, which consent is in force, which
language the information pack (Grundinformation) is given in, and what may
happen to a person record in which state, and who may do what with a person's data.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from contracts.calendar import local_day
from contracts.vocabulary import AGE_BAND_YEARS, AgeBand, EmploymentSituation, GermanLevel, NeedCategory, Schooling

OLDEST_PLAUSIBLE_AGE = 130


class RegistrationError(ValueError):
    """A rule of registration was broken; the message says which, for a caseworker."""


class PersonStatus(StrEnum):
    REGISTERED = "registered"
    MOVED_AWAY = "moved_away"  # Abmeldung
    ERASED = "erased"  # GDPR Art. 17: only a tombstone is left


class InvalidTransition(RegistrationError):
    pass


class Refused(RegistrationError):
    """A request the rules refuse as it stands (the caller can correct it), not a transition of the record."""


@dataclass(frozen=True)
class PersonState:
    """What the rules need of a person record: its state and its version (the ETag a change must name)."""

    status: PersonStatus
    version: int = 1


# Facts: what happened, as the domain says; the workflow turns each into the event its consumers read.


@dataclass(frozen=True)
class Registered:
    """A newcomer was registered (one fact per person of a registration, in its order)."""

    duplicate_key: str


@dataclass(frozen=True)
class Changed:
    """The record changed; ``version`` is the new one."""

    version: int


@dataclass(frozen=True)
class MovedAway:
    on: date


@dataclass(frozen=True)
class Erased:
    at: datetime


def register(duplicate_keys: list[str]) -> tuple[PersonState, list[Registered]]:
    """Register the persons of one registration (a newcomer and the household members with them): each new
    record starts registered, at version 1; nobody may be listed twice."""
    if len(set(duplicate_keys)) < len(duplicate_keys):
        raise Refused("The same person is listed twice in this registration.")
    return PersonState(PersonStatus.REGISTERED, 1), [Registered(key) for key in duplicate_keys]


def ensure_changeable(status: PersonStatus) -> None:
    if status is not PersonStatus.REGISTERED:
        raise InvalidTransition(f"a person who is {status.value} cannot be changed")


def change(state: PersonState) -> tuple[PersonState, list[Changed]]:
    """Correct the record of a registered person: a new version."""
    ensure_changeable(state.status)
    return PersonState(state.status, state.version + 1), [Changed(state.version + 1)]


def move_away(state: PersonState, on: date) -> tuple[PersonState, list[MovedAway]]:
    """Abmeldung: only a registered person moves away."""
    if state.status is not PersonStatus.REGISTERED:
        raise InvalidTransition(f"a person who is {state.status.value} cannot move away")
    return PersonState(PersonStatus.MOVED_AWAY, state.version + 1), [MovedAway(on)]


def erase(state: PersonState, at: datetime) -> tuple[PersonState, list[Erased]]:
    """GDPR Art. 17: only a tombstone is left; once."""
    if state.status is PersonStatus.ERASED:
        raise InvalidTransition("the person's data is already erased")
    return PersonState(PersonStatus.ERASED, state.version + 1), [Erased(at)]


# --- who may do what -----------------------------------------------------------------------


class Act(StrEnum):
    """What a caller does with a person's data (the routes of the registration API)."""

    REGISTER = "register"  # a new registration, with its duplicate check
    READ_PERSON = "read_person"  # the person record, and the persons list
    CHANGE_PERSON = "change_person"
    READ_CONSENTS = "read_consents"
    RECORD_CONSENTS = "record_consents"  # give or withdraw
    READ_NEEDS = "read_needs"
    RECORD_NEEDS = "record_needs"
    READ_ACCESS_LOG = "read_access_log"
    EXPORT = "export"  # everything held on the person, for their Art. 15 request
    MOVE_AWAY = "move_away"
    ERASE = "erase"


class Reach(StrEnum):
    """How far a permission reaches."""

    EVERYONE = "everyone"
    OWN_CASES = "own_cases"  # the persons whose case is open in the caller's team
    NOBODY = "nobody"


_ALL = frozenset(Act)
#: Role -> what it may do, for everyone. Registrars keep the register (Melderegister): they register, check for
#: duplicates, read and correct the record and take consents at the desk; needs (health, counselling, notes)
#: and the access log (which partners read the contact data) are not theirs. Privacy officers answer data
#: subjects (Art. 15: they read everything) and alone with admins erase (Art. 17) and record a move away.
EVERYONE: dict[str, frozenset[Act]] = {
    "admin": _ALL,
    "registrar": frozenset({Act.REGISTER, Act.READ_PERSON, Act.CHANGE_PERSON, Act.READ_CONSENTS, Act.RECORD_CONSENTS}),
    "privacy_officer": frozenset(
        {Act.READ_PERSON, Act.READ_CONSENTS, Act.READ_NEEDS, Act.READ_ACCESS_LOG, Act.EXPORT, Act.MOVE_AWAY, Act.ERASE}
    ),
}
# The export (Art. 15) is the data protection office's answer to the person, not a caseworker's: it gathers what
# every service holds, also what is outside a caseworker's purpose (other providers' course records, partners'
# webhook deliveries), so caseworkers read their team's persons through the ordinary routes only.
#: Role -> what it may do for the persons of its own cases only (an open case in the caller's team).
OWN_CASES: dict[str, frozenset[Act]] = {
    "caseworker": frozenset(
        {
            Act.READ_PERSON,
            Act.CHANGE_PERSON,
            Act.READ_CONSENTS,
            Act.RECORD_CONSENTS,
            Act.READ_NEEDS,
            Act.RECORD_NEEDS,
            Act.READ_ACCESS_LOG,
        }
    ),
}
#: Acts that say why: an erasure or a move away is recorded with its reason.
NEEDS_A_REASON = frozenset({Act.MOVE_AWAY, Act.ERASE})


def reach(roles: frozenset[str] | None, act: Act) -> Reach:
    """How far the caller's roles let them ``act``; the widest role wins.

    ``None``: no identity was forwarded at all (development and tests calling the service directly; production
    refuses such a call before it gets here), which reaches everyone, as before object-level rules existed.
    """
    if roles is None:
        return Reach.EVERYONE
    if any(act in EVERYONE.get(role, ()) for role in roles):
        return Reach.EVERYONE
    if any(act in OWN_CASES.get(role, ()) for role in roles):
        return Reach.OWN_CASES
    return Reach.NOBODY


# --- duplicates --------------------------------------------------------------------------

_TRANSLITERATIONS = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "\u0131": "i"})
_NOT_LETTERS = re.compile(r"[^\w]+|_")


def normalise_name(name: str) -> str:
    """Case, accents, hyphens and spacing do not make a different person.

    "Müller-Lüdenscheidt" and "muller ludenscheidt" are the same name.
    """
    text = name
    # Decomposing can reveal capitals (U+03D2 -> U+03A5) and folding can compose: repeat to a fixed point.
    for _ in range(3):
        decomposed = unicodedata.normalize("NFKD", text.casefold())
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_TRANSLITERATIONS)
        if folded == text:
            break
        text = folded
    return " ".join(_NOT_LETTERS.sub(" ", text).split())


def duplicate_key(given_names: str, family_name: str, birth_date: date) -> str:
    """Two registrations with the same key are probably the same person.

    A hash, so that the key has a fixed length and is no second copy of the name.
    """
    names = " ".join(sorted(normalise_name(f"{given_names} {family_name}").split()))
    return hashlib.sha256(f"{names}|{birth_date.isoformat()}".encode()).hexdigest()


# --- age ---------------------------------------------------------------------------------


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def check_birth_date(birth_date: date, today: date) -> None:
    if birth_date > today:
        raise RegistrationError("the birth date lies in the future")
    if age_on(birth_date, today) > OLDEST_PLAUSIBLE_AGE:
        raise RegistrationError(f"the birth date is more than {OLDEST_PLAUSIBLE_AGE} years ago")


def age_band(birth_date: date, day: date) -> AgeBand:
    age = age_on(birth_date, day)
    for band, (_, last) in AGE_BAND_YEARS.items():
        if age <= last:
            return band
    return AgeBand.AGE_65_PLUS


# --- needs -------------------------------------------------------------------------------

_BELOW_B1 = {GermanLevel.NONE, GermanLevel.A1, GermanLevel.A2}


@dataclass(frozen=True)
class NeedsFacts:
    """What a needs assessment found, reduced to what decides need categories."""

    german_level: GermanLevel
    schooling: Schooling
    employment_situation: EmploymentSituation
    foreign_qualification_to_recognise: bool
    childcare_needed: bool
    housing_need: bool
    counselling_need: bool
    health_need: bool
    #: Set by :func:`assess_needs` from the birth date.
    adult: bool = False


def need_categories(facts: NeedsFacts) -> list[NeedCategory]:
    """The seed's levers (language, education, labour market, participation) and support needs."""
    needs: set[NeedCategory] = set()
    if facts.german_level in _BELOW_B1:
        needs.add(NeedCategory.LANGUAGE)
    if facts.employment_situation is EmploymentSituation.JOB_SEEKING:
        needs.add(NeedCategory.EMPLOYMENT)
    if facts.foreign_qualification_to_recognise:
        needs.add(NeedCategory.RECOGNITION)
    if facts.adult and facts.schooling in (Schooling.NONE, Schooling.PRIMARY):
        needs.add(NeedCategory.EDUCATION)
    if facts.childcare_needed:
        needs.add(NeedCategory.CHILDCARE)
    if facts.housing_need:
        needs.add(NeedCategory.HOUSING)
    if facts.counselling_need:
        needs.add(NeedCategory.COUNSELLING)
    if facts.health_need:
        needs.add(NeedCategory.HEALTH)
    return sorted(needs, key=list(NeedCategory).index)


ADULT_AGE = 18


@dataclass(frozen=True)
class NeedsWereAssessed:
    """A new version of a person's needs assessment, with what it found."""

    version: int
    need_categories: tuple[NeedCategory, ...]
    age_band: AgeBand
    #: The children's ages only as bands: the event carries no exact age.
    children_age_bands: tuple[AgeBand, ...]


def assess_needs(
    state: PersonState,
    found: NeedsFacts,
    *,
    birth_date: date,
    children_ages: list[int],
    latest_version: int,
    today: date,
) -> NeedsWereAssessed:
    """Record what an assessment found about a registered person: the next version, and the need categories."""
    ensure_changeable(state.status)
    categories = need_categories(replace(found, adult=age_on(birth_date, today) >= ADULT_AGE))
    return NeedsWereAssessed(
        version=latest_version + 1,
        need_categories=tuple(categories),
        age_band=age_band(birth_date, today),
        children_age_bands=tuple(age_band(date(today.year - age, today.month, 1), today) for age in children_ages),
    )


# --- consent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentTerms:
    given_at: datetime
    expires_on: date | None
    withdrawn_at: datetime | None


def consent_in_force(consent: ConsentTerms, at: datetime) -> bool:
    if consent.withdrawn_at is not None and consent.withdrawn_at <= at:
        return False
    if consent.expires_on is not None and local_day(at) > consent.expires_on:  # its last day is the city's
        return False
    return consent.given_at <= at


def consent_addresses(
    consent_partner_id: str | None,
    consent_partner_category: str | None,
    *,
    partner_id: str,
    partner_category: str | None,
) -> bool:
    """A consent names one partner, or a category of partners: does it name this one?"""
    if consent_partner_id is not None:
        return consent_partner_id == partner_id
    return consent_partner_category is not None and consent_partner_category == partner_category


@dataclass(frozen=True)
class ConsentWasGiven:
    given_at: datetime


@dataclass(frozen=True)
class ConsentWasWithdrawn:
    at: datetime


def give_consent(
    state: PersonState, *, given_at: datetime | None, expires_on: date | None, at: datetime
) -> tuple[ConsentTerms, list[ConsentWasGiven]]:
    """A registered person's consent, given now or (taken on paper) before, never later than now."""
    ensure_changeable(state.status)
    given = given_at or at
    if given > at:
        raise Refused("given_at lies in the future.")
    return ConsentTerms(given, expires_on, None), [ConsentWasGiven(given)]


def withdraw(consent: ConsentTerms, at: datetime) -> tuple[ConsentTerms, list[ConsentWasWithdrawn]]:
    """GDPR Art. 7(3): a consent is withdrawn once, from ``at`` on."""
    if consent.withdrawn_at is not None:
        raise InvalidTransition("the consent is already withdrawn")
    return ConsentTerms(consent.given_at, consent.expires_on, at), [ConsentWasWithdrawn(at)]


# --- information pack --------------------------------------------------------------------

INFO_PACK_FALLBACKS = ("en", "de")


def info_pack_language(preferred: str, available: set[str]) -> str:
    """The pack in the person's language, else its base language, else English, else German."""
    tag = preferred.lower()
    for candidate in (tag, tag.split("-")[0], *INFO_PACK_FALLBACKS):
        if candidate in available:
            return candidate
    raise RegistrationError("no information pack is available")
