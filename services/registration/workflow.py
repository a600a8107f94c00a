"""The registration service's use cases, shared by its routes (``api``) and its event handlers (``handlers``).

Each use case takes a :class:`Workflow` (the unit of work, the moment, who acts and the city's reference data),
loads what it needs, asks :mod:`domain` what happens, stores the new state and turns the domain's facts into the
events it publishes, in one transaction (cosmicpython's service layer). A refusal is raised: a
:class:`~chassis.errors.Problem`, or a :class:`domain.RegistrationError` that :func:`use_case` maps to one, here
and nowhere else; a refused use case publishes nothing.

Who reaches which person is :class:`PersonScope` (made by the routes from the caller's roles); the access log
(GDPR Art. 5(2)) records every read of and change to a person's data.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, false, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from chassis import audit as access
from chassis.clock import as_utc
from chassis.db import page_of_rows
from chassis.deps import UNAUTHENTICATED
from chassis.errors import Problem
from chassis.uow import UnitOfWork
from contracts import registration as events
from contracts.calendar import local_day
from contracts.vocabulary import PartnerCategory, ResidenceStatusGroup
from services.registration import blocks, domain
from services.registration.models import AccessLog, CaseTeam, Consent, Household, NeedsAssessment, Person, as_dict
from services.registration.schemas import (
    Address,
    ConsentCreate,
    ContactNamesAsked,
    NeedsAssessmentCreate,
    PersonFields,
    PersonUpdate,
    RegistrationCreate,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

persons_table = cast(Table, Person.__table__)
ADDRESS_FIELDS = ("street", "house_number", "postal_code", "city", "district")
#: What an erasure leaves empty: everything but the tombstone's columns.
ERASED_COLUMNS = (
    "duplicate_key",
    "given_names",
    "family_name",
    "birth_date",
    "gender",
    "nationality",
    "languages",
    "preferred_language",
    "residence_status_group",
    "arrival_date",
    "phone",
    "email",
    *ADDRESS_FIELDS,
)


@dataclass
class Workflow:
    uow: UnitOfWork
    now: datetime
    #: Who acts, for the access log: the caller's ``kind:subject``, or "unauthenticated" without an identity.
    actor: str = UNAUTHENTICATED
    #: The city's districts (Ortsteile) an address must name.
    districts: Sequence[str] = ()
    #: The city's residential blocks: an address enters events only as its block.
    block_index: blocks.BlockIndex = field(default_factory=lambda: blocks.BlockIndex({}))

    @property
    def session(self) -> AsyncSession:
        return self.uow.session

    @property
    def today(self) -> date:
        """The city's day at :attr:`now` (ages, registration dates), in the city (``contracts.calendar``)."""
        return local_day(self.now)

    @property
    def recorded_by(self) -> str | None:
        """Who acted, for an event (the case's timeline names them): the gateway's signed caller, none without."""
        return None if self.actor == UNAUTHENTICATED else self.actor


def problem_of(exc: domain.RegistrationError) -> Problem:
    """The one place where a broken rule becomes an answer: a transition the record's state refuses is a
    conflict, any other rule a request that can be corrected."""
    if isinstance(exc, domain.InvalidTransition):
        return Problem(409, str(exc), kind="invalid-transition")
    return Problem(422, str(exc), kind="validation")


def use_case(run: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """A use case whose domain refusals are answered as :func:`problem_of` says."""

    @functools.wraps(run)
    async def refusing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await run(*args, **kwargs)
        except domain.RegistrationError as exc:
            raise problem_of(exc) from exc

    return refusing


# --- who reaches which person -------------------------------------------------------------------


@dataclass(frozen=True)
class PersonScope:
    """The persons a caller may do one thing with: everyone, or those whose case is open in ``team`` (a
    caseworker without a team: assigned to ``caseworker_id``; with neither, nobody)."""

    everyone: bool = False
    team: str | None = None
    caseworker_id: str | None = None
    #: Why the caller reads (the access log's purpose), from their role.
    purpose: str | None = None

    def cases(self) -> ColumnElement[bool]:
        """The caller's open cases, as a condition on ``CaseTeam``."""
        if self.team is not None:
            return (CaseTeam.team == self.team) & CaseTeam.open.is_(True)
        if self.caseworker_id is not None:
            return (CaseTeam.caseworker_id == self.caseworker_id) & CaseTeam.open.is_(True)
        return false()

    def persons(self) -> ColumnElement[bool]:
        """The same rule as a condition on ``Person``."""
        if self.everyone:
            return true()
        # The case's person, or a member of the household whose case it is (one case per household).
        return Person.id.in_(select(CaseTeam.person_id).where(self.cases())) | Person.household_id.in_(
            select(CaseTeam.household_id).where(self.cases(), CaseTeam.household_id.is_not(None))
        )

    async def admits(self, session: AsyncSession, person_id: str) -> bool:
        if self.everyone:
            return True
        found = await session.scalar(select(Person.id).where(Person.id == person_id, self.persons()).limit(1))
        if found is not None:
            return True
        # A person whose row is gone (or not yet here) is reached by the case alone.
        found = await session.scalar(
            select(CaseTeam.case_id).where(CaseTeam.person_id == person_id, self.cases()).limit(1)
        )
        return found is not None


EVERYONE = PersonScope(everyone=True)


# --- loading, logging, events ---------------------------------------------------------------------


def etag(person: Person) -> str:
    return f'"{person.version}"'


def state_of(person: Person) -> domain.PersonState:
    return domain.PersonState(domain.PersonStatus(person.status), person.version)


async def load_person(
    w: Workflow,
    person_id: str,
    scope: PersonScope = EVERYONE,
    *,
    for_update: bool = False,
    erased_too: bool = False,
) -> Person:
    """The person, if the caller's ``scope`` reaches them (404 otherwise, as for an unknown id; checked before
    "erased", so that the 410 tells nothing either)."""
    # The scope first: a caller out of reach takes no row lock either.
    reached = await scope.admits(w.session, person_id)
    query = select(Person).where(Person.id == person_id)
    if for_update:
        query = query.with_for_update()
    person = await w.session.scalar(query) if reached else None
    if person is None:
        raise Problem(404, f"No person with id {person_id}.", kind="not-found")
    if person.status == domain.PersonStatus.ERASED and not erased_too:
        raise Problem(410, "This person's data has been erased (GDPR Art. 17).", kind="erased")
    return person


def audit(w: Workflow, action: str, *person_ids: str, reason: str | None = None, actor: str | None = None) -> None:
    """Log the act on these persons' data; ``reason`` is the access log's purpose (the ground of an erasure, or
    what the caller's role reads for: ``PersonScope.purpose``); ``actor`` another service's caller."""
    by = actor or w.actor
    w.session.add_all(AccessLog(person_id=p, actor=by, action=action, at=w.now, purpose=reason) for p in person_ids)


def check_district(w: Workflow, district: str) -> None:
    if district not in w.districts:
        raise Problem(
            422,
            f"'{district}' is not a district (Ortsteil) of this city.",
            kind="validation",
            title="Invalid request",
            errors=[{"location": ["body", "address", "district"], "message": "unknown district", "type": "district"}],
            districts=list(w.districts),
        )


def profile(w: Workflow, person: Mapping[str, Any]) -> dict[str, Any]:
    """The event's view of a person (a row's values): the address only as its district and coarse block."""
    return {
        "person_id": person["id"],
        "household_id": person["household_id"],
        "age_band": domain.age_band(person["birth_date"], w.today),
        "gender": person["gender"],
        "nationality": person["nationality"],
        "languages": person["languages"],
        "preferred_language": person["preferred_language"],
        "residence_status_group": person["residence_status_group"],
        "district": person["district"],
        "block_id": blocks.block_of(w.block_index, person["street"], person["house_number"], person["district"]),
        "registered_on": person["registration_date"],
        "arrived_on": person["arrival_date"],
    }


# --- registration (Anmeldung) ---------------------------------------------------------------


@functools.cache
def possible_duplicates(count: int) -> Select[Any]:
    """The persons not erased with one of ``count`` duplicate keys (parameters ``key0``, ``key1``...). Not an
    expanding IN: that renders the whole statement's SQL anew on every execution, and it is part of a
    registration's one statement."""
    return select(persons_table.c.id, persons_table.c.registration_date, persons_table.c.status).where(
        persons_table.c.duplicate_key.in_(
            [bindparam(f"key{i}", type_=persons_table.c.duplicate_key.type) for i in range(count)]
        ),
        persons_table.c.status != domain.PersonStatus.ERASED.value,
    )


#: Built once: statements that only take parameters skip the per-request construction and coercion.
HOUSEHOLDS = cast(Table, Household.__table__)
ACCESS_LOG_TABLE = cast(Table, AccessLog.__table__)
NEW_CONSENT = insert(cast(Table, Consent.__table__))
NEW_NEEDS_ASSESSMENT = insert(cast(Table, NeedsAssessment.__table__))
ACCESS_LOG = insert(ACCESS_LOG_TABLE)


def written(w: Workflow, action: str, persons: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The access log's rows for a write to these persons' data (:func:`audit` as values)."""
    return [{"person_id": p["id"], "actor": w.actor, "action": action, "at": w.now} for p in persons]


async def log_writes(w: Workflow, action: str, *person_ids: str) -> None:
    """:func:`audit` for a write use case, at once as a plain insert: its unit of work then has nothing for the ORM's
    flush to do (the flush of a row or two cost more CPU than the insert itself)."""
    await w.session.execute(ACCESS_LOG, written(w, action, [{"id": p} for p in person_ids]))


@dataclass(frozen=True)
class Registration:
    """Who was registered: the household and its new persons' rows (the newcomer first), as inserted."""

    household_id: str
    persons: list[dict[str, Any]]


def new_person(
    fields: PersonFields,
    *,
    fact: domain.Registered,
    state: domain.PersonState,
    household_id: str,
    registration_date: date,
    address: Address,
    at: datetime,
) -> dict[str, Any]:
    """A new person's row, as values: nothing reads it back in this unit of work (see :func:`register`)."""
    return {
        "id": str(uuid.uuid4()),
        "household_id": household_id,
        "status": state.status.value,
        "version": state.version,
        "duplicate_key": fact.duplicate_key,
        "given_names": fields.given_names,
        "family_name": fields.family_name,
        "birth_date": fields.birth_date,
        "gender": fields.gender.value,
        "nationality": fields.nationality,
        "languages": fields.languages,
        "preferred_language": fields.preferred_language,
        "residence_status_group": fields.residence_status_group.value,
        "arrival_date": fields.arrival_date,
        "registration_date": registration_date,
        "street": address.street,
        "house_number": address.house_number,
        "postal_code": address.postal_code,
        "city": address.city,
        "district": address.district,
        "phone": fields.phone,
        "email": fields.email,
        "moved_away_on": None,
        "erased_at": None,
        "created_at": at,
        "updated_at": at,
    }


@use_case
async def register(w: Workflow, body: RegistrationCreate) -> Registration:
    """Register a newcomer (Anmeldung), and the family members who register with them."""
    check_district(w, body.address.district)
    registrants: list[PersonFields] = [body, *body.household_members]
    state, facts = domain.register(
        [domain.duplicate_key(p.given_names, p.family_name, p.birth_date) for p in registrants]
    )
    session = w.session
    households: list[dict[str, Any]] = []
    if body.household_id is not None:
        if await session.get(Household, body.household_id) is None:
            raise Problem(422, f"No household with id {body.household_id}.", kind="validation")
        household_id = body.household_id
    else:
        household_id = str(uuid.uuid4())
        households.append({"id": household_id, "created_at": w.now})
    registration_date = body.registration_date or w.today
    persons = [
        new_person(
            p,
            fact=fact,
            state=state,
            household_id=household_id,
            registration_date=registration_date,
            address=body.address,
            at=w.now,
        )
        for p, fact in zip(registrants, facts, strict=True)
    ]
    # New rows that nothing reads back in this unit of work: plain inserts of values, without ORM objects and the
    # ORM's flush (a fifth of a registration's CPU once); on PostgreSQL one statement with the events and the access
    # log (most of a registration's CPU was its seven round trips).
    by = w.recorded_by
    # The duplicate check goes with the writes: on PostgreSQL the same statement, as it is read before them either way.
    keys = {f"key{i}": f.duplicate_key for i, f in enumerate(facts)}
    duplicates = None if body.confirm_new_person else (possible_duplicates(len(keys)), keys)
    existing = await w.uow.commit_inserts(
        [(HOUSEHOLDS, households), (persons_table, persons), (ACCESS_LOG_TABLE, written(w, "register", persons))],
        [events.PersonRegistered(**profile(w, p), recorded_by=by) for p in persons],
        unless=duplicates,
    )
    if existing:
        raise Problem(
            409,
            "A person with the same name and birth date is already registered. "
            "If this is a different person, repeat the request with confirm_new_person: true.",
            kind="possible-duplicate",
            title="Possible duplicate registration",
            existing_persons=[
                {"person_id": row.id, "registration_date": row.registration_date.isoformat(), "status": row.status}
                for row in existing
            ],
        )
    return Registration(household_id, persons)


# --- persons ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonQuery:
    """The persons list's filters: they narrow the caller's reach, never widen it."""

    status: domain.PersonStatus = domain.PersonStatus.REGISTERED
    district: str | None = None
    nationality: str | None = None
    residence_status_group: ResidenceStatusGroup | None = None
    household_id: str | None = None
    registered_from: date | None = None
    registered_to: date | None = None
    #: Every word in the given names or the family name.
    name: str | None = None
    birth_date: date | None = None
    page: int = 1
    page_size: int = 50


async def list_persons(w: Workflow, scope: PersonScope, query: PersonQuery) -> tuple[list[Person], int]:
    """A page of the persons the caller reaches (a caseworker: those of the team's open cases), and how many
    there are in all."""
    if query.status is domain.PersonStatus.ERASED:
        raise Problem(422, "Erased persons have no data to list.", kind="validation")
    filters = [Person.status == query.status.value, scope.persons()]
    if query.district:
        filters.append(Person.district == query.district)
    if query.nationality:
        filters.append(Person.nationality == query.nationality.upper())
    if query.residence_status_group:
        filters.append(Person.residence_status_group == query.residence_status_group.value)
    if query.household_id:
        filters.append(Person.household_id == query.household_id)
    if query.registered_from:
        filters.append(Person.registration_date >= query.registered_from)
    if query.registered_to:
        filters.append(Person.registration_date <= query.registered_to)
    if query.name:
        full_name = func.lower(Person.given_names + " " + Person.family_name)
        filters.extend(full_name.contains(word, autoescape=True) for word in query.name.lower().split())
    if query.birth_date:
        filters.append(Person.birth_date == query.birth_date)
    order = (Person.registration_date.desc(), Person.id)
    rows, total = await page_of_rows(w.session, Person, filters, order, query.page, query.page_size)
    audit(w, "list", *(p.id for p in rows), reason=scope.purpose)
    await w.uow.commit()
    return rows, total


async def look_up_persons(w: Workflow, scope: PersonScope, person_ids: list[str]) -> list[Person]:
    """Several persons in one read, in the order asked, each once; an id out of reach, unknown or erased is left
    out without a word (as a 404 would tell nothing either). Each answered read is logged."""
    wanted = list(dict.fromkeys(person_ids))
    rows = (
        await w.session.scalars(
            select(Person).where(
                Person.id.in_(wanted), Person.status != domain.PersonStatus.ERASED.value, scope.persons()
            )
        )
    ).all()
    found = {p.id: p for p in rows}
    answered = [found[i] for i in wanted if i in found]
    audit(w, "lookup", *(p.id for p in answered), reason=scope.purpose)
    await w.uow.commit()
    return answered


async def read_person(w: Workflow, scope: PersonScope, person_id: str) -> Person:
    person = await load_person(w, person_id, scope)
    audit(w, "read", person.id, reason=scope.purpose)
    await w.uow.commit()
    return person


@use_case
async def update_person(
    w: Workflow, scope: PersonScope, person_id: str, body: PersonUpdate, if_match: str | None
) -> Person:
    """Correct a person's record; ``if_match`` is the ETag the caller read, so no one's change is lost."""
    if if_match is None:
        raise Problem(428, "Send the ETag you read as If-Match.", kind="precondition-required")
    person = await load_person(w, person_id, scope, for_update=True)
    if if_match.strip() not in (etag(person), f"W/{etag(person)}"):
        raise Problem(
            412, "The person changed since you read it; read it again.", kind="stale", current_etag=etag(person)
        )
    state, facts = domain.change(state_of(person))
    changes = body.model_dump(exclude_unset=True)
    if changes.get("address") is not None:
        address = changes.pop("address")
        check_district(w, address["district"])
        for key, value in address.items():
            setattr(person, key, value)
    if changes.get("household_id") is not None and await w.session.get(Household, changes["household_id"]) is None:
        raise Problem(422, f"No household with id {changes['household_id']}.", kind="validation")
    for key, value in changes.items():
        if value is None and key not in ("phone", "email"):
            raise Problem(422, f"{key} cannot be removed.", kind="validation")
        setattr(person, key, value.value if hasattr(value, "value") else value)
    assert person.birth_date is not None
    person.duplicate_key = domain.duplicate_key(person.given_names or "", person.family_name or "", person.birth_date)
    person.version = state.version
    person.updated_at = w.now
    values = as_dict(person)
    for fact in facts:
        await w.uow.publish(events.PersonUpdated(**profile(w, values), version=fact.version, recorded_by=w.recorded_by))
    audit(w, "update", person.id)
    await w.uow.commit()
    return person


@use_case
async def move_away(w: Workflow, scope: PersonScope, person_id: str, on: date, reason: str) -> Person:
    """Abmeldung: the person left the city; ``reason`` goes into the access log."""
    person = await load_person(w, person_id, scope, for_update=True)
    state, facts = domain.move_away(state_of(person), on)
    person.status, person.version = state.status.value, state.version
    person.moved_away_on = on
    person.updated_at = w.now
    for fact in facts:
        await w.uow.publish(
            events.PersonMovedAway(
                person_id=person.id,
                household_id=person.household_id,
                moved_away_on=fact.on,
                recorded_by=w.recorded_by,
            )
        )
    audit(w, "move_away", person.id, reason=reason)
    await w.uow.commit()
    return person


@use_case
async def erase(w: Workflow, scope: PersonScope, person_id: str, reason: str) -> None:
    """Erasure (GDPR Art. 17): personal data, needs and consents are deleted; a tombstone stays; ``reason`` (the
    ground) goes into the access log."""
    session = w.session
    person = await load_person(w, person_id, scope, for_update=True)
    state, facts = domain.erase(state_of(person), w.now)
    person.status, person.version = state.status.value, state.version
    for column in ERASED_COLUMNS:
        setattr(person, column, None)
    person.erased_at = w.now
    person.updated_at = w.now
    for model in (NeedsAssessment, Consent):
        for row in (await session.scalars(select(model).where(model.person_id == person.id))).all():
            await session.delete(row)
    for fact in facts:
        await w.uow.publish(events.PersonErased(person_id=person.id, erased_at=fact.at))
    audit(w, "erase", person.id, reason=reason)
    # Stored answers to this person's writes (the registration, a change of address) would replay them for a day.
    await w.uow.forget_stored_responses(person.id)
    await w.uow.commit()


async def access_log(w: Workflow, scope: PersonScope, person_id: str) -> list[access.AccessLogEntry]:
    """Who read or changed this person's data, newest first; an erased person's log stays (Art. 5(2)). Reading
    the log is logged too."""
    person = await load_person(w, person_id, scope, erased_too=True)
    audit(w, "read_access_log", person.id, reason=scope.purpose)
    await w.uow.commit()
    return await access.entries_for(w.session, "registration", person.id)


@dataclass(frozen=True)
class Holdings:
    """Everything this service holds on a person (GDPR Art. 15)."""

    person: Person
    household: Household | None
    needs_assessments: list[NeedsAssessment]
    consents: list[Consent]
    access_log: list[access.AccessLogEntry]


async def export(w: Workflow, scope: PersonScope, person_id: str) -> Holdings:
    """Everything held on the person: after erasure the tombstone and the log."""
    session = w.session
    person = await load_person(w, person_id, scope, erased_too=True)
    audit(w, "export", person.id, reason=scope.purpose)
    await w.uow.commit()
    household = await session.get(Household, person.household_id)
    needs = (
        await session.scalars(
            select(NeedsAssessment).where(NeedsAssessment.person_id == person.id).order_by(NeedsAssessment.version)
        )
    ).all()
    consents = (
        await session.scalars(select(Consent).where(Consent.person_id == person.id).order_by(Consent.given_at))
    ).all()
    entries = await access.entries_for(session, "registration", person.id)
    return Holdings(person, household, list(needs), list(consents), entries)


# --- needs assessment ----------------------------------------------------------------------


@use_case
async def assess_needs(w: Workflow, scope: PersonScope, person_id: str, body: NeedsAssessmentCreate) -> NeedsAssessment:
    """Record a new version of the person's needs assessment."""
    session = w.session
    person = await load_person(w, person_id, scope, for_update=True)
    assert person.birth_date is not None  # only an erased person has none, and load_person answered 410
    latest = await session.scalar(
        select(func.max(NeedsAssessment.version)).where(NeedsAssessment.person_id == person.id)
    )
    fact = domain.assess_needs(
        state_of(person),
        domain.NeedsFacts(
            german_level=body.german_level,
            schooling=body.schooling,
            employment_situation=body.employment_situation,
            foreign_qualification_to_recognise=body.recognise_foreign_qualification,
            childcare_needed=body.childcare_needed,
            housing_need=body.housing_need,
            counselling_need=body.counselling_need,
            health_need=body.health_need,
        ),
        birth_date=person.birth_date,
        children_ages=body.children_ages,
        latest_version=latest or 0,
        today=w.today,
    )
    values = {
        "person_id": person.id,
        "version": fact.version,
        "need_categories": [c.value for c in fact.need_categories],
        "assessed_at": w.now,
        **body.model_dump(mode="json"),
    }
    # Inserted as values, like a registration's persons: nothing reads the row back in this unit of work.
    await session.execute(NEW_NEEDS_ASSESSMENT, values)
    row = NeedsAssessment(**values)
    await w.uow.publish(
        events.NeedsAssessed(
            person_id=person.id,
            assessment_version=fact.version,
            german_level=body.german_level,
            need_categories=list(fact.need_categories),
            employment_situation=body.employment_situation,
            foreign_qualification_to_recognise=body.recognise_foreign_qualification,
            childcare_needed=body.childcare_needed,
            children_age_bands=list(fact.children_age_bands),
            age_band=fact.age_band,
            gender=person.gender,
            residence_status_group=person.residence_status_group,
            preferred_language=person.preferred_language,
            recorded_by=w.recorded_by,
        )
    )
    await log_writes(w, "assess_needs", person.id)
    await w.uow.commit()
    return row


#: The records a person has many of, each read whole by the person's id.
_PersonsRecord = TypeVar("_PersonsRecord", NeedsAssessment, Consent)


async def read_persons_records(
    w: Workflow,
    scope: PersonScope,
    person_id: str,
    model: type[_PersonsRecord],
    order: ColumnElement[Any] | InstrumentedAttribute[Any],
    action: str,
) -> list[_PersonsRecord]:
    """All of one kind of the person's records, in ``order``; the read is logged as ``action`` for the scope's
    purpose."""
    person = await load_person(w, person_id, scope)
    rows = (await w.session.scalars(select(model).where(model.person_id == person.id).order_by(order))).all()
    audit(w, action, person.id, reason=scope.purpose)
    await w.uow.commit()
    return list(rows)


async def list_needs(w: Workflow, scope: PersonScope, person_id: str) -> list[NeedsAssessment]:
    """The person's needs assessments, newest first."""
    order = NeedsAssessment.version.desc()
    return await read_persons_records(w, scope, person_id, NeedsAssessment, order, "read_needs")


# --- consents ------------------------------------------------------------------------------


def terms_of(row: Consent) -> domain.ConsentTerms:
    given_at = as_utc(row.given_at)
    assert given_at is not None
    return domain.ConsentTerms(given_at, row.expires_on, as_utc(row.withdrawn_at))


def in_force(row: Consent, at: datetime) -> bool:
    return domain.consent_in_force(terms_of(row), at)


def names(consent: Consent, partner_id: str, partner_category: PartnerCategory | None) -> bool:
    """Whether the consent names this partner (or the category the referral service knows it by)."""
    return domain.consent_addresses(
        consent.partner_id,
        consent.partner_category,
        partner_id=partner_id,
        partner_category=partner_category.value if partner_category else None,
    )


@use_case
async def give_consent(w: Workflow, scope: PersonScope, person_id: str, body: ConsentCreate) -> Consent:
    """Record the person's consent to share data with a partner (or a category of partners) for a purpose."""
    person = await load_person(w, person_id, scope)
    terms, facts = domain.give_consent(
        state_of(person), given_at=as_utc(body.given_at), expires_on=body.expires_on, at=w.now
    )
    values = {
        "id": str(uuid.uuid4()),
        "person_id": person.id,
        "partner_id": body.partner_id,
        "partner_category": body.partner_category.value if body.partner_category else None,
        "purpose": body.purpose.value,
        "given_at": terms.given_at,
        "expires_on": terms.expires_on,
        "withdrawn_at": None,
    }
    await w.session.execute(NEW_CONSENT, values)  # as values: nothing reads it back in this unit of work
    row = Consent(**values)
    for fact in facts:
        await w.uow.publish(
            events.ConsentGiven(
                person_id=person.id,
                consent_id=row.id,
                partner_id=body.partner_id,
                partner_category=body.partner_category,
                purpose=body.purpose,
                given_at=fact.given_at,
                expires_on=body.expires_on,
                recorded_by=w.recorded_by,
            )
        )
    await log_writes(w, "give_consent", person.id)
    await w.uow.commit()
    return row


async def list_consents(w: Workflow, scope: PersonScope, person_id: str) -> list[Consent]:
    return await read_persons_records(w, scope, person_id, Consent, Consent.given_at, "read_consents")


@use_case
async def withdraw_consent(w: Workflow, scope: PersonScope, person_id: str, consent_id: str) -> Consent:
    """Withdraw a consent (GDPR Art. 7(3)); partners learn it by event and stop sharing."""
    person = await load_person(w, person_id, scope)
    row = await w.session.scalar(select(Consent).where(Consent.id == consent_id, Consent.person_id == person.id))
    if row is None:
        raise Problem(404, f"No consent {consent_id} for this person.", kind="not-found")
    terms, facts = domain.withdraw(terms_of(row), w.now)
    row.withdrawn_at = terms.withdrawn_at
    for fact in facts:
        await w.uow.publish(
            events.ConsentWithdrawn(
                person_id=person.id, consent_id=row.id, withdrawn_at=fact.at, recorded_by=w.recorded_by
            )
        )
    audit(w, "withdraw_consent", person.id)
    await w.uow.commit()
    return row


# --- other services' questions (each asks in its own signed name; ``via`` is that service's actor) ------------


async def contact_for_partner(
    w: Workflow,
    person_id: str,
    *,
    partner_id: str,
    partner_category: PartnerCategory | None,
    referral_id: str,
    consent_id: str,
    via: str,
) -> Person:
    """A person's contact data for a partner, only under the person's consent in force that names the partner
    (or its category); the read is logged as the partner's, via the referral service, for that referral."""
    person = await load_person(w, person_id)
    consent = await w.session.scalar(select(Consent).where(Consent.id == consent_id, Consent.person_id == person.id))
    if consent is None or not in_force(consent, w.now) or not names(consent, partner_id, partner_category):
        raise Problem(403, "No consent of this person for this partner is in force.", kind="consent-missing")
    audit(w, "read_contact", person.id, actor=f"partner:{partner_id} via {via} for referral {referral_id}")
    await w.uow.commit()
    return person


async def contact_names(w: Workflow, asked: ContactNamesAsked, *, via: str) -> list[tuple[str, Person]]:
    """The persons of a partner's referrals (with the referral each is named for), each only while the consent the
    referral was sent under is in force and names this partner (or its category); the others are left out."""
    person_ids = {each.person_id for each in asked.referrals}
    consent_ids = {each.consent_id for each in asked.referrals}
    persons = {
        row.id: row
        for row in (
            await w.session.scalars(
                select(Person).where(Person.id.in_(person_ids), Person.status != domain.PersonStatus.ERASED)
            )
        ).all()
    }
    consents = {row.id: row for row in (await w.session.scalars(select(Consent).where(Consent.id.in_(consent_ids))))}
    named: list[tuple[str, Person]] = []
    for each in asked.referrals:
        person, consent = persons.get(each.person_id), consents.get(each.consent_id)
        if (
            person is None
            or consent is None
            or consent.person_id != person.id
            or not in_force(consent, w.now)
            or not names(consent, asked.partner_id, each.partner_category)
        ):
            continue
        by = f"partner:{asked.partner_id} via {via} for referral {each.referral_id}"
        audit(w, "read_contact_name", person.id, actor=by)
        named.append((each.referral_id, person))
    await w.uow.commit()
    return named


async def pass_holder(w: Workflow, person_id: str, *, on_behalf_of: str, via: str) -> Person:
    """The person whose name an education pass carries; the read is the staff member's, through courses."""
    person = await load_person(w, person_id)
    audit(w, "read_pass_holder", person.id, actor=f"{on_behalf_of} via {via} for an education pass")
    await w.uow.commit()
    return person


async def participant_names(
    w: Workflow, person_ids: list[str], *, on_behalf_of: str, course_id: str, via: str
) -> list[Person]:
    """A course's participants, in one read, by id; an erased or unknown person is left out."""
    rows = (
        await w.session.scalars(
            select(Person).where(Person.id.in_(sorted(set(person_ids))), Person.status != domain.PersonStatus.ERASED)
        )
    ).all()
    by = f"{on_behalf_of} via {via} for a participant list"
    audit(w, "read_participant_name", *(row.id for row in rows), reason=f"course {course_id}", actor=by)
    await w.uow.commit()
    return sorted(rows, key=lambda r: r.id)


# --- who works a person's case (the referral service's case events) -----------------------------------------


async def case_team(uow: UnitOfWork, case_id: str, person_id: str) -> CaseTeam:
    """The case's row, made open on first sight: each event of a case writes the same row (idempotent)."""
    row = await uow.session.get(CaseTeam, case_id)
    if row is None:
        row = CaseTeam(case_id=case_id, person_id=person_id, open=True)
        uow.session.add(row)
    return row


async def case_opened(uow: UnitOfWork, case_id: str, person_id: str, household_id: str | None) -> None:
    row = await case_team(uow, case_id, person_id)
    row.household_id = household_id or None


async def case_assigned(
    uow: UnitOfWork, case_id: str, person_id: str, team: str | None, caseworker_id: str | None
) -> None:
    row = await case_team(uow, case_id, person_id)
    row.team, row.caseworker_id = team, caseworker_id


async def case_closed(uow: UnitOfWork, case_id: str, person_id: str) -> None:
    row = await case_team(uow, case_id, person_id)
    row.open = False


async def case_reopened(
    uow: UnitOfWork, case_id: str, person_id: str, team: str | None, caseworker_id: str | None
) -> None:
    row = await case_team(uow, case_id, person_id)
    row.open = True
    row.team, row.caseworker_id = team, caseworker_id
