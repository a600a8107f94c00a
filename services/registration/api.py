"""HTTP routes of the registration service: parse, ask the domain, persist, add events to the outbox.

Who may do what (issue 12), from the identity the gateway forwards signed (the plain ``X-Role``, ``X-Team`` and
``X-Actor`` headers the identity middleware rewrote from the token); the table is ``domain.EVERYONE`` and
``domain.OWN_CASES``:

- registrars register (with the duplicate check), list, read and correct the person record (Meldedaten) and
  record and withdraw consents taken at the desk, for anyone; they do not read needs assessments (health,
  counselling, notes) or the access log (which partners read the contact data);
- caseworkers read and change a person's record, needs, consents and access log only while the person's case
  is open in their team (without a team: assigned to them), as the referral service's case events told this
  service (``handlers``); the persons list shows them those persons only;
- privacy officers read everything of anyone (to answer a data subject, Art. 15) and, with admins alone, erase
  (Art. 17) and record a move away, each with a ``reason`` that the access log keeps;
- admins do everything.

A role that never may do something gets 403. A person out of the caller's reach is answered 404, exactly like an
id that does not exist: the caller learns nothing of them. No ``X-Role`` header at all means no identity was
forwarded: development and tests calling the service directly (production refuses such calls before they get
here), which reach everything, as in the referral service.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Table, bindparam, false, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import audit as access
from chassis import clock
from chassis.clock import as_utc, now
from chassis.deps import ActorDep, CallerDep, UnitOfWorkDep
from chassis.errors import Problem
from chassis.identity import Identity, require_service
from chassis.schemas import Page
from chassis.uow import UnitOfWork
from contracts import registration as events
from contracts.vocabulary import PartnerCategory, ResidenceStatusGroup
from services.registration import blocks, domain, infopacks
from services.registration.models import AccessLog, CaseTeam, Consent, Household, NeedsAssessment, Person, as_dict
from services.registration.schemas import (
    ConsentCreate,
    ConsentRead,
    Erasure,
    InfoPackRef,
    MoveAway,
    NeedsAssessmentCreate,
    NeedsAssessmentRead,
    PersonContact,
    PersonExport,
    PersonFields,
    PersonLookup,
    PersonRead,
    PersonSummary,
    PersonUpdate,
    Reason,
    RegisteredPerson,
    RegistrationCreate,
    RegistrationRead,
)

router = APIRouter(prefix="/api/v1", tags=["registration"])
#: For other services, each with its own signed identity; the gateway forwards only /api/v1/, so no client
#: reaches these, and they are not part of the public API's document.
internal_router = APIRouter(prefix="/api/internal", tags=["internal"], include_in_schema=False)
persons_table = cast(Table, Person.__table__)

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


def allowed(act: domain.Act) -> Any:
    """A route dependency: the caller's scope for ``act``, or 403 when none of their roles may do it."""

    def scope(caller: CallerDep) -> PersonScope:
        reach = domain.reach(caller.roles, act)
        purpose = access.purpose_of(caller.roles_header)
        if reach is domain.Reach.EVERYONE:
            return PersonScope(everyone=True, purpose=purpose)
        if reach is domain.Reach.NOBODY:
            # The gateway's role policy never lets such a caller through; this is the second line.
            may = sorted(r for r, acts in {**domain.EVERYONE, **domain.OWN_CASES}.items() if act in acts)
            raise Problem(403, f"This needs one of the roles {', '.join(may)}.", kind="forbidden")
        team = caller.team
        actor = caller.actor or ""
        subject = actor.removeprefix("user:") if actor.startswith("user:") else None
        return PersonScope(team=team, caseworker_id=None if team else subject or None, purpose=purpose)

    return Depends(scope)


def etag(person: Person) -> str:
    return f'"{person.version}"'


# --- mapping between rows, read models and events -----------------------------------------


def block_index(request: Request) -> blocks.BlockIndex:
    settings = request.app.state.runtime.settings
    return blocks.load_file(settings.blocks_file, tuple(settings.districts))


def profile(person: Person, today: date, index: blocks.BlockIndex) -> dict[str, Any]:
    """The event's view of a person: the address only as its district and coarse block (Baublock)."""
    assert person.birth_date is not None
    return {
        "person_id": person.id,
        "household_id": person.household_id,
        "age_band": domain.age_band(person.birth_date, today),
        "gender": person.gender,
        "nationality": person.nationality,
        "languages": person.languages,
        "preferred_language": person.preferred_language,
        "residence_status_group": person.residence_status_group,
        "district": person.district,
        "block_id": blocks.block_of(index, person.street, person.house_number, person.district),
        "registered_on": person.registration_date,
        "arrived_on": person.arrival_date,
    }


ADDRESS_FIELDS = ("street", "house_number", "postal_code", "city", "district")


def person_read(person: Person) -> PersonRead:
    assert person.birth_date is not None
    fields = {k: getattr(person, k) for k in PersonRead.model_fields if hasattr(person, k)}
    return PersonRead.model_validate(
        fields
        | {
            "person_id": person.id,
            "age_band": domain.age_band(person.birth_date, clock.today()),
            "address": {k: getattr(person, k) for k in ADDRESS_FIELDS},
            "created_at": as_utc(person.created_at),
            "updated_at": as_utc(person.updated_at),
        }
    )


def info_pack_ref(preferred_language: str) -> InfoPackRef:
    lang = domain.info_pack_language(preferred_language, set(infopacks.load_packs()))
    return InfoPackRef(lang=lang, url=f"/api/v1/info-packs/{lang}")


# --- helpers -------------------------------------------------------------------------------


async def load_person(
    session: AsyncSession,
    person_id: str,
    scope: PersonScope | None = None,
    *,
    for_update: bool = False,
    erased_too: bool = False,
) -> Person:
    """The person, if the caller's ``scope`` reaches them (404 otherwise, as for an unknown id; checked before
    "erased", so that the 410 tells nothing either)."""
    # The scope first: a caller out of reach takes no row lock either.
    reached = scope is None or await scope.admits(session, person_id)
    query = select(Person).where(Person.id == person_id)
    if for_update:
        query = query.with_for_update()
    person = await session.scalar(query) if reached else None
    if person is None:
        raise Problem(404, f"No person with id {person_id}.", kind="not-found")
    if person.status == domain.PersonStatus.ERASED and not erased_too:
        raise Problem(410, "This person's data has been erased (GDPR Art. 17).", kind="erased")
    return person


def staff_account(actor: str) -> str | None:
    """Who acted, for an event (the case's timeline names them): the gateway's signed caller, none without one."""
    return None if actor == "unauthenticated" else actor


def audit(uow: UnitOfWork, actor: str, action: str, *person_ids: str, reason: str | None = None) -> None:
    """Log the act on these persons' data; ``reason`` is the access log's purpose (the ground of an erasure, or
    what the caller's role reads for: ``PersonScope.purpose``)."""
    at = now()
    uow.session.add_all(AccessLog(person_id=p, actor=actor, action=action, at=at, purpose=reason) for p in person_ids)


def check_district(request: Request, district: str) -> None:
    districts = request.app.state.runtime.settings.districts
    if district not in districts:
        raise Problem(
            422,
            f"'{district}' is not a district (Ortsteil) of this city.",
            kind="validation",
            title="Invalid request",
            errors=[{"location": ["body", "address", "district"], "message": "unknown district", "type": "district"}],
            districts=districts,
        )


def transition(action: Any, status: str) -> domain.PersonStatus:
    try:
        result: domain.PersonStatus = action(domain.PersonStatus(status))
        return result
    except domain.InvalidTransition as exc:
        raise Problem(409, str(exc), kind="invalid-transition") from exc


def new_person(
    fields: PersonFields, *, household_id: str, registration_date: date, address: Any, at: datetime
) -> Person:
    return Person(
        id=str(uuid.uuid4()),
        household_id=household_id,
        status=domain.PersonStatus.REGISTERED.value,
        version=1,
        duplicate_key=domain.duplicate_key(fields.given_names, fields.family_name, fields.birth_date),
        given_names=fields.given_names,
        family_name=fields.family_name,
        birth_date=fields.birth_date,
        gender=fields.gender.value,
        nationality=fields.nationality,
        languages=fields.languages,
        preferred_language=fields.preferred_language,
        residence_status_group=fields.residence_status_group.value,
        arrival_date=fields.arrival_date,
        registration_date=registration_date,
        street=address.street,
        house_number=address.house_number,
        postal_code=address.postal_code,
        city=address.city,
        district=address.district,
        phone=fields.phone,
        email=fields.email,
        created_at=at,
        updated_at=at,
    )


# --- registration (Anmeldung) ---------------------------------------------------------------

#: Built once: statements that only take parameters skip the per-request construction and coercion.
POSSIBLE_DUPLICATES = select(persons_table.c.id, persons_table.c.registration_date, persons_table.c.status).where(
    persons_table.c.duplicate_key.in_(bindparam("keys", expanding=True)),
    persons_table.c.status != domain.PersonStatus.ERASED.value,
)
NEW_HOUSEHOLD = insert(cast(Table, Household.__table__))
NEW_PERSONS = insert(persons_table)
ACCESS_LOG = insert(cast(Table, AccessLog.__table__))


@router.post("/registrations", status_code=201, response_model=RegistrationRead)
async def register(
    body: RegistrationCreate,
    request: Request,
    response: Response,
    uow: UnitOfWorkDep,
    _: Annotated[PersonScope, allowed(domain.Act.REGISTER)],
    actor: ActorDep,
) -> RegistrationRead:
    """Register a newcomer (Anmeldung), and the family members who register with them."""
    check_district(request, body.address.district)
    registrants: list[PersonFields] = [body, *body.household_members]
    keys = {domain.duplicate_key(p.given_names, p.family_name, p.birth_date) for p in registrants}
    if len(keys) < len(registrants):
        raise Problem(422, "The same person is listed twice in this registration.", kind="validation")
    session = uow.session
    if not body.confirm_new_person:
        existing = (await session.execute(POSSIBLE_DUPLICATES, {"keys": list(keys)})).all()
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
    at = now()
    if body.household_id is not None:
        if await session.get(Household, body.household_id) is None:
            raise Problem(422, f"No household with id {body.household_id}.", kind="validation")
        household_id = body.household_id
    else:
        household_id = str(uuid.uuid4())
        await session.execute(NEW_HOUSEHOLD, {"id": household_id, "created_at": at})
    registration_date = body.registration_date or clock.today()
    persons = [
        new_person(p, household_id=household_id, registration_date=registration_date, address=body.address, at=at)
        for p in registrants
    ]
    # New rows that nothing reads back in this request: plain inserts, without the ORM's unit of work (its flush
    # was a fifth of a registration's CPU). The Person objects only feed the event and the answer.
    await session.execute(NEW_PERSONS, [as_dict(p) for p in persons])
    today = clock.today()
    by = staff_account(actor)
    index = block_index(request)
    await uow.publish(*(events.PersonRegistered(**profile(p, today, index), recorded_by=by) for p in persons))
    seen_at = now()
    await session.execute(
        ACCESS_LOG, [{"person_id": p.id, "actor": actor, "action": "register", "at": seen_at} for p in persons]
    )
    await uow.commit()
    registered = [
        RegisteredPerson(
            person_id=p.id, household_id=household_id, info_pack=info_pack_ref(p.preferred_language or "de")
        )
        for p in persons
    ]
    response.headers["Location"] = f"/api/v1/persons/{persons[0].id}"
    return RegistrationRead(**registered[0].model_dump(), household_members=registered[1:])


# --- persons ------------------------------------------------------------------------------


@router.get("/persons", response_model=Page[PersonRead])
async def list_persons(
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)],
    actor: ActorDep,
    district: str | None = Query(None, max_length=80),
    nationality: str | None = Query(None, min_length=2, max_length=2),
    residence_status_group: ResidenceStatusGroup | None = None,
    status: domain.PersonStatus = domain.PersonStatus.REGISTERED,
    household_id: str | None = Query(None, max_length=64),
    registered_from: date | None = None,
    registered_to: date | None = None,
    name: Annotated[
        str | None,
        Query(min_length=2, max_length=100, description="Every word in the given names or the family name"),
    ] = None,
    birth_date: date | None = None,
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[PersonRead]:
    """The persons the caller reaches (a caseworker: those of the team's open cases), filtered; the filters
    narrow the caller's reach, never widen it. ``name`` and ``birth_date`` are the caseworker's search."""
    if status is domain.PersonStatus.ERASED:
        raise Problem(422, "Erased persons have no data to list.", kind="validation")
    filters = [Person.status == status.value, scope.persons()]
    if district:
        filters.append(Person.district == district)
    if nationality:
        filters.append(Person.nationality == nationality.upper())
    if residence_status_group:
        filters.append(Person.residence_status_group == residence_status_group.value)
    if household_id:
        filters.append(Person.household_id == household_id)
    if registered_from:
        filters.append(Person.registration_date >= registered_from)
    if registered_to:
        filters.append(Person.registration_date <= registered_to)
    if name:
        full_name = func.lower(Person.given_names + " " + Person.family_name)
        filters.extend(full_name.contains(word, autoescape=True) for word in name.lower().split())
    if birth_date:
        filters.append(Person.birth_date == birth_date)
    session = uow.session
    total = await session.scalar(select(func.count()).select_from(Person).where(*filters)) or 0
    rows = (
        await session.scalars(
            select(Person)
            .where(*filters)
            .order_by(Person.registration_date.desc(), Person.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    ).all()
    audit(uow, actor, "list", *(p.id for p in rows), reason=scope.purpose)
    await uow.commit()
    return Page(items=[person_read(p) for p in rows], total=total, page=page, page_size=page_size)


@router.post("/persons/lookup", response_model=list[PersonSummary])
async def look_up_persons(
    body: PersonLookup,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)],
    actor: ActorDep,
) -> list[PersonSummary]:
    """Names, languages and age bands of several persons in one call (a caseworker's case list: one read for
    the page, not one per row). Only the persons the caller reaches are answered; an id out of reach, unknown
    or erased is left out without a word, as a 404 would tell nothing either. Each answered read is audited."""
    wanted = list(dict.fromkeys(body.person_ids))
    rows = (
        await uow.session.scalars(
            select(Person).where(
                Person.id.in_(wanted), Person.status != domain.PersonStatus.ERASED.value, scope.persons()
            )
        )
    ).all()
    found = {p.id: p for p in rows}
    today = clock.today()
    answered = [found[i] for i in wanted if i in found]
    audit(uow, actor, "lookup", *(p.id for p in answered), reason=scope.purpose)
    await uow.commit()
    return [
        PersonSummary(
            person_id=p.id, given_names=p.given_names or "", family_name=p.family_name or "",
            preferred_language=p.preferred_language or "", languages=p.languages or [],
            age_band=domain.age_band(p.birth_date, today), status=p.status,  # type: ignore[arg-type]
        )
        for p in answered
        if p.birth_date is not None
    ]  # fmt: skip


@router.get("/persons/{person_id}", response_model=PersonRead)
async def read_person(
    person_id: str,
    response: Response,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)],
    actor: ActorDep,
) -> PersonRead:
    person = await load_person(uow.session, person_id, scope)
    audit(uow, actor, "read", person.id, reason=scope.purpose)
    await uow.commit()
    response.headers["ETag"] = etag(person)
    return person_read(person)


@router.patch("/persons/{person_id}", response_model=PersonRead)
async def update_person(
    person_id: str,
    body: PersonUpdate,
    request: Request,
    response: Response,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.CHANGE_PERSON)],
    actor: ActorDep,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=100)] = None,
) -> PersonRead:
    """Change a person; send the ETag of what you read as If-Match, so no one's change is lost."""
    if if_match is None:
        raise Problem(428, "Send the ETag you read as If-Match.", kind="precondition-required")
    person = await load_person(uow.session, person_id, scope, for_update=True)
    if if_match.strip() not in (etag(person), f"W/{etag(person)}"):
        raise Problem(
            412, "The person changed since you read it; read it again.", kind="stale", current_etag=etag(person)
        )
    transition(lambda s: domain.ensure_changeable(s) or s, person.status)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("address") is not None:
        address = changes.pop("address")
        check_district(request, address["district"])
        for key, value in address.items():
            setattr(person, key, value)
    if changes.get("household_id") is not None and await uow.session.get(Household, changes["household_id"]) is None:
        raise Problem(422, f"No household with id {changes['household_id']}.", kind="validation")
    for key, value in changes.items():
        if value is None and key not in ("phone", "email"):
            raise Problem(422, f"{key} cannot be removed.", kind="validation")
        setattr(person, key, value.value if hasattr(value, "value") else value)
    assert person.birth_date is not None
    person.duplicate_key = domain.duplicate_key(person.given_names or "", person.family_name or "", person.birth_date)
    person.version += 1
    person.updated_at = now()
    index = block_index(request)
    await uow.publish(events.PersonUpdated(**profile(person, clock.today(), index), version=person.version,
                                           recorded_by=staff_account(actor)))  # fmt: skip
    audit(uow, actor, "update", person.id)
    await uow.commit()
    response.headers["ETag"] = etag(person)
    return person_read(person)


@router.post("/persons/{person_id}/move-away", response_model=PersonRead)
async def move_away(
    person_id: str,
    body: MoveAway,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.MOVE_AWAY)],
    actor: ActorDep,
) -> PersonRead:
    """Abmeldung: the person left the city (privacy officers and admins, with the reason, which the access log
    keeps)."""
    person = await load_person(uow.session, person_id, scope, for_update=True)
    person.status = transition(domain.move_away, person.status).value
    person.moved_away_on = body.moved_away_on
    person.version += 1
    person.updated_at = now()
    await uow.publish(
        events.PersonMovedAway(person_id=person.id, household_id=person.household_id, moved_away_on=body.moved_away_on,
                               recorded_by=staff_account(actor))
    )  # fmt: skip
    audit(uow, actor, "move_away", person.id, reason=body.reason)
    await uow.commit()
    return person_read(person)


@router.delete("/persons/{person_id}", status_code=204)
async def erase_person(
    person_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.ERASE)],
    actor: ActorDep,
    body: Annotated[Erasure | None, Body()] = None,
    reason: Annotated[
        Reason | None,
        Query(
            description="The ground of the erasure, when the request has no body (the body is "
            "better: a query string may reach traces)"
        ),
    ] = None,
) -> Response:
    """Erasure (GDPR Art. 17): personal data, needs and consents are deleted; a tombstone stays. Privacy officers
    and admins only, naming the ground in ``reason`` (the body ``{"reason": ...}`` or the query), which the
    access log keeps."""
    ground = body.reason if body is not None else reason
    if ground is None:
        raise Problem(
            422, "Say why the data is erased: send {\"reason\": \"...\"} (or ?reason=...).", kind="validation",
            title="Invalid request",
            errors=[{"location": ["body", "reason"], "message": "the erasure needs a reason", "type": "missing"}],
        )  # fmt: skip
    session = uow.session
    person = await load_person(session, person_id, scope, for_update=True)
    person.status = transition(domain.erase, person.status).value
    for column in (
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
    ):
        setattr(person, column, None)
    at = now()
    person.erased_at = at
    person.updated_at = at
    person.version += 1
    for model in (NeedsAssessment, Consent):
        for row in (await session.scalars(select(model).where(model.person_id == person.id))).all():
            await session.delete(row)
    await uow.publish(events.PersonErased(person_id=person.id, erased_at=at))
    audit(uow, actor, "erase", person.id, reason=ground)
    # Stored answers to this person's writes (the registration, a change of address) would replay them for a day.
    await uow.forget_stored_responses(person.id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/persons/{person_id}/access-log", response_model=list[access.AccessLogEntry])
async def access_log(
    person_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_ACCESS_LOG)],
    actor: ActorDep,
) -> list[access.AccessLogEntry]:
    """Who read or changed this person's data, newest first (for the data subject's Art. 15 request); an erased
    person's log stays (accountability, Art. 5(2)). Through the gateway, the log of every service, merged: the
    gateway asks this service first, whose answer decides whether the caller reaches the person. Reading the log
    is logged too."""
    person = await load_person(uow.session, person_id, scope, erased_too=True)
    audit(uow, actor, "read_access_log", person.id, reason=scope.purpose)
    await uow.commit()
    return await access.entries_for(uow.session, "registration", person.id)


@router.get("/persons/{person_id}/export", response_model=PersonExport)
async def export(
    person_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.EXPORT)],
    actor: ActorDep,
) -> PersonExport:
    """Everything this service holds on the person (GDPR Art. 15): the record, the household, every needs
    assessment, every consent, and the access log. Privacy officers and admins. Through the gateway, with every
    other service's part (``GET /api/v1/persons/{id}/export`` there; this service answers first and decides
    whether the caller reaches the person). After erasure only the tombstone is left, and the log."""
    session = uow.session
    person = await load_person(session, person_id, scope, erased_too=True)
    audit(uow, actor, "export", person.id, reason=scope.purpose)
    await uow.commit()
    household = await session.get(Household, person.household_id)
    needs = (
        await session.scalars(
            select(NeedsAssessment).where(NeedsAssessment.person_id == person.id).order_by(NeedsAssessment.version)
        )
    ).all()
    consents = (
        await session.scalars(select(Consent).where(Consent.person_id == person.id).order_by(Consent.given_at))
    ).all()
    at = now()
    erased = person.status == domain.PersonStatus.ERASED
    return PersonExport(
        service="registration",
        person_id=person.id,
        status=person.status,
        person=None if erased else person_read(person),
        erased_at=as_utc(person.erased_at),
        moved_away_on=person.moved_away_on,
        household=None if household is None else {"household_id": household.id,
                                                  "created_at": as_utc(household.created_at)},
        needs_assessments=[needs_read(r) for r in needs],
        consents=[consent_read(r, at) for r in consents],
        access_log=await access.entries_for(session, "registration", person.id),
    )  # fmt: skip


# --- needs assessment ----------------------------------------------------------------------


def needs_read(row: NeedsAssessment) -> NeedsAssessmentRead:
    return NeedsAssessmentRead.model_validate(
        {
            **{k: getattr(row, k) for k in NeedsAssessmentRead.model_fields if k != "assessed_at"},
            "assessed_at": as_utc(row.assessed_at),
        }
    )


@router.post("/persons/{person_id}/needs-assessments", status_code=201, response_model=NeedsAssessmentRead)
async def assess_needs(
    person_id: str,
    body: NeedsAssessmentCreate,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_NEEDS)],
    actor: ActorDep,
) -> NeedsAssessmentRead:
    """Record a new version of the person's needs assessment."""
    session = uow.session
    person = await load_person(session, person_id, scope, for_update=True)
    transition(lambda s: domain.ensure_changeable(s) or s, person.status)
    assert person.birth_date is not None
    today = clock.today()
    band = domain.age_band(person.birth_date, today)
    categories = domain.need_categories(
        domain.NeedsFacts(
            german_level=body.german_level,
            schooling=body.schooling,
            employment_situation=body.employment_situation,
            foreign_qualification_to_recognise=body.recognise_foreign_qualification,
            childcare_needed=body.childcare_needed,
            housing_need=body.housing_need,
            counselling_need=body.counselling_need,
            health_need=body.health_need,
            adult=domain.age_on(person.birth_date, today) >= 18,
        )
    )
    version = (
        await session.scalar(select(func.max(NeedsAssessment.version)).where(NeedsAssessment.person_id == person.id))
        or 0
    ) + 1
    row = NeedsAssessment(
        person_id=person.id,
        version=version,
        need_categories=[c.value for c in categories],
        assessed_at=now(),
        **body.model_dump(mode="json"),
    )
    session.add(row)
    await uow.publish(
        events.NeedsAssessed(
            person_id=person.id,
            assessment_version=version,
            german_level=body.german_level,
            need_categories=categories,
            employment_situation=body.employment_situation,
            foreign_qualification_to_recognise=body.recognise_foreign_qualification,
            childcare_needed=body.childcare_needed,
            children_age_bands=[
                domain.age_band(date(today.year - age, today.month, 1), today) for age in body.children_ages
            ],
            age_band=band,
            gender=person.gender,
            residence_status_group=person.residence_status_group,
            preferred_language=person.preferred_language,
            recorded_by=staff_account(actor),
        )
    )
    audit(uow, actor, "assess_needs", person.id)
    await uow.commit()
    return needs_read(row)


@router.get("/persons/{person_id}/needs-assessments", response_model=list[NeedsAssessmentRead])
async def list_needs(
    person_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_NEEDS)],
    actor: ActorDep,
) -> list[NeedsAssessmentRead]:
    person = await load_person(uow.session, person_id, scope)
    rows = (
        await uow.session.scalars(
            select(NeedsAssessment)
            .where(NeedsAssessment.person_id == person.id)
            .order_by(NeedsAssessment.version.desc())
        )
    ).all()
    audit(uow, actor, "read_needs", person.id, reason=scope.purpose)
    await uow.commit()
    return [needs_read(r) for r in rows]


# --- consents ------------------------------------------------------------------------------


def consent_read(row: Consent, at: datetime) -> ConsentRead:
    terms = domain.ConsentTerms(
        as_utc(row.given_at), row.expires_on, as_utc(row.withdrawn_at) if row.withdrawn_at else None
    )
    return ConsentRead(
        consent_id=row.id,
        person_id=row.person_id,
        partner_id=row.partner_id,
        partner_category=row.partner_category,
        purpose=row.purpose,
        given_at=terms.given_at,
        expires_on=row.expires_on,
        withdrawn_at=terms.withdrawn_at,
        in_force=domain.consent_in_force(terms, at),
    )  # type: ignore[arg-type]


@router.post("/persons/{person_id}/consents", status_code=201, response_model=ConsentRead)
async def give_consent(
    person_id: str,
    body: ConsentCreate,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_CONSENTS)],
    actor: ActorDep,
) -> ConsentRead:
    """Record the person's consent to share data with a partner (or a category of partners) for a purpose."""
    person = await load_person(uow.session, person_id, scope)
    transition(lambda s: domain.ensure_changeable(s) or s, person.status)
    at = now()
    given_at = as_utc(body.given_at) if body.given_at else at
    if given_at > at:
        raise Problem(422, "given_at lies in the future.", kind="validation")
    row = Consent(
        id=str(uuid.uuid4()),
        person_id=person.id,
        partner_id=body.partner_id,
        partner_category=body.partner_category.value if body.partner_category else None,
        purpose=body.purpose.value,
        given_at=given_at,
        expires_on=body.expires_on,
    )
    uow.session.add(row)
    await uow.publish(
        events.ConsentGiven(
            person_id=person.id,
            consent_id=row.id,
            partner_id=body.partner_id,
            partner_category=body.partner_category,
            purpose=body.purpose,
            given_at=given_at,
            expires_on=body.expires_on,
            recorded_by=staff_account(actor),
        )
    )
    audit(uow, actor, "give_consent", person.id)
    await uow.commit()
    return consent_read(row, at)


@router.get("/persons/{person_id}/consents", response_model=list[ConsentRead])
async def list_consents(
    person_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_CONSENTS)],
    actor: ActorDep,
) -> list[ConsentRead]:
    person = await load_person(uow.session, person_id, scope)
    rows = (
        await uow.session.scalars(select(Consent).where(Consent.person_id == person.id).order_by(Consent.given_at))
    ).all()
    audit(uow, actor, "read_consents", person.id, reason=scope.purpose)
    await uow.commit()
    at = now()
    return [consent_read(r, at) for r in rows]


@router.post("/persons/{person_id}/consents/{consent_id}/withdrawal", response_model=ConsentRead)
async def withdraw_consent(
    person_id: str,
    consent_id: str,
    uow: UnitOfWorkDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_CONSENTS)],
    actor: ActorDep,
) -> ConsentRead:
    """Withdraw a consent (GDPR Art. 7(3)); partners learn it by event and stop sharing."""
    person = await load_person(uow.session, person_id, scope)
    row = await uow.session.scalar(select(Consent).where(Consent.id == consent_id, Consent.person_id == person.id))
    if row is None:
        raise Problem(404, f"No consent {consent_id} for this person.", kind="not-found")
    at = now()
    try:
        domain.withdraw(domain.ConsentTerms(as_utc(row.given_at), row.expires_on, row.withdrawn_at), at)
    except domain.InvalidTransition as exc:
        raise Problem(409, str(exc), kind="invalid-transition") from exc
    row.withdrawn_at = at
    await uow.publish(events.ConsentWithdrawn(person_id=person.id, consent_id=row.id, withdrawn_at=at,
                                              recorded_by=staff_account(actor)))  # fmt: skip
    audit(uow, actor, "withdraw_consent", person.id)
    await uow.commit()
    return consent_read(row, at)


@internal_router.get("/persons/{person_id}/contact", response_model=PersonContact)
async def contact_for_partner(
    person_id: str,
    uow: UnitOfWorkDep,
    caller: Annotated[Identity, require_service("referral")],
    partner_id: Annotated[str, Query(min_length=1, max_length=64)],
    referral_id: Annotated[str, Query(min_length=1, max_length=64)],
    consent_id: Annotated[str, Query(min_length=1, max_length=64)],
    partner_category: PartnerCategory | None = None,
) -> PersonContact:
    """A person's contact data for a partner the person referred to, asked for by the referral service alone.

    Registration owns the consents and checks for itself that the consent the referral was sent under is this
    person's, in force, and names this partner (or the partner's category, as the referral service knows it
    from the partner directory). Only the contact fields leave, and the read is logged as the partner's, via
    the referral service, for that referral.
    """
    person = await load_person(uow.session, person_id)
    consent = await uow.session.scalar(select(Consent).where(Consent.id == consent_id, Consent.person_id == person.id))
    at = now()
    if (
        consent is None
        or not domain.consent_in_force(
            domain.ConsentTerms(as_utc(consent.given_at), consent.expires_on, as_utc(consent.withdrawn_at)), at
        )
        or not domain.consent_addresses(
            consent.partner_id,
            consent.partner_category,
            partner_id=partner_id,
            partner_category=partner_category.value if partner_category else None,
        )
    ):
        raise Problem(403, "No consent of this person for this partner is in force.", kind="consent-missing")
    audit(uow, f"partner:{partner_id} via {caller.actor} for referral {referral_id}", "read_contact", person.id)
    await uow.commit()
    return PersonContact.model_validate(
        {k: getattr(person, k) for k in PersonContact.model_fields if k != "address"}
        | {"address": {k: getattr(person, k) for k in ADDRESS_FIELDS}}
    )


# --- names on a partner's referral list (issue 14) --------------------------------------------------------------
# The list of a partner's referrals names each person whose consent for that partner is in force, in one call for
# the page: the referral service asks in its own signed name, registration checks every consent itself (as for the
# contact data) and logs each read as the partner's, via referral, for that referral.

CONTACT_NAMES_LIMIT = 200


class ContactNameAsked(BaseModel):
    person_id: Annotated[str, Field(min_length=1, max_length=64)]
    referral_id: Annotated[str, Field(min_length=1, max_length=64)]
    consent_id: Annotated[str, Field(min_length=1, max_length=64)]
    partner_category: PartnerCategory | None = None


class ContactNamesAsked(BaseModel):
    partner_id: Annotated[str, Field(min_length=1, max_length=64)]
    referrals: Annotated[list[ContactNameAsked], Field(min_length=1, max_length=CONTACT_NAMES_LIMIT)]


class ContactName(BaseModel):
    """The registered name of a referred person, for the partner the consent names: nothing more."""

    referral_id: str
    person_id: str
    given_names: str
    family_name: str


@internal_router.post("/persons/contact-names", response_model=list[ContactName])
async def contact_names_for_partner(
    body: ContactNamesAsked, uow: UnitOfWorkDep, caller: Annotated[Identity, require_service("referral")]
) -> list[ContactName]:
    """The names of the persons of a partner's referrals, each only while the consent the referral was sent under
    is in force and names this partner (or its category); the others are left out, which the list shows."""
    person_ids = {asked.person_id for asked in body.referrals}
    consent_ids = {asked.consent_id for asked in body.referrals}
    persons = {
        row.id: row
        for row in (
            await uow.session.scalars(
                select(Person).where(Person.id.in_(person_ids), Person.status != domain.PersonStatus.ERASED)
            )
        ).all()
    }
    consents = {row.id: row for row in (await uow.session.scalars(select(Consent).where(Consent.id.in_(consent_ids))))}
    at = now()
    named: list[ContactName] = []
    for asked in body.referrals:
        person, consent = persons.get(asked.person_id), consents.get(asked.consent_id)
        if (
            person is None
            or consent is None
            or consent.person_id != person.id
            or not domain.consent_in_force(
                domain.ConsentTerms(as_utc(consent.given_at), consent.expires_on, as_utc(consent.withdrawn_at)), at
            )
            or not domain.consent_addresses(
                consent.partner_id,
                consent.partner_category,
                partner_id=body.partner_id,
                partner_category=asked.partner_category.value if asked.partner_category else None,
            )
        ):
            continue
        audit(uow, f"partner:{body.partner_id} via {caller.actor} for referral {asked.referral_id}",
              "read_contact_name", person.id)  # fmt: skip
        given, family = person.given_names or "", person.family_name or ""
        named.append(ContactName(referral_id=asked.referral_id, person_id=person.id, given_names=given,
                                 family_name=family))  # fmt: skip
    await uow.commit()
    return named


# --- the education pass's holder name, for the courses service (issue 12) --------------------------------------
# Kept apart from the staff routes above: the courses service prints the registered name on an education pass
# instead of whatever a request says. It asks in its own signed name; the read is logged as the staff member's
# (``on_behalf_of``, the X-Actor courses verified), through courses.


class PassHolder(BaseModel):
    """The name on an education pass, as registered: nothing more."""

    given_names: str
    family_name: str


@internal_router.get("/persons/{person_id}/pass-holder", response_model=PassHolder)
async def pass_holder(
    person_id: str,
    uow: UnitOfWorkDep,
    caller: Annotated[Identity, require_service("courses")],
    on_behalf_of: Annotated[str, Query(min_length=1, max_length=120)],
) -> PassHolder:
    """The registered name of a person, for the education pass the courses service issues; 410 once erased."""
    person = await load_person(uow.session, person_id)
    audit(uow, f"{on_behalf_of} via {caller.actor} for an education pass", "read_pass_holder", person.id)
    await uow.commit()
    return PassHolder(given_names=person.given_names or "", family_name=person.family_name or "")


# --- participants' names, for the courses service's participant lists (issue 14) ------------------------------
# Kept apart like the pass holder's route: courses asks in its own signed name, once for a whole list, after it
# checked that the course is the course admin's provider's; the read is logged per person as the staff member's
# (``on_behalf_of``), through courses, with the course it was for.

PARTICIPANT_LIST_LIMIT = 500


class ParticipantName(BaseModel):
    """A participant's name as registered: nothing more."""

    person_id: str
    given_names: str
    family_name: str


@internal_router.get("/persons/participant-names", response_model=list[ParticipantName])
async def participant_names(
    uow: UnitOfWorkDep,
    caller: Annotated[Identity, require_service("courses")],
    person_id: Annotated[list[str], Query(min_length=1, max_length=PARTICIPANT_LIST_LIMIT)],
    on_behalf_of: Annotated[str, Query(min_length=1, max_length=120)],
    course_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> list[ParticipantName]:
    """The registered names of a course's participants, in one read; an erased or unknown person is left out."""
    wanted = sorted(set(person_id))
    rows = (
        await uow.session.scalars(
            select(Person).where(Person.id.in_(wanted), Person.status != domain.PersonStatus.ERASED)
        )
    ).all()
    audit(uow, f"{on_behalf_of} via {caller.actor} for a participant list", "read_participant_name",
          *(row.id for row in rows), reason=f"course {course_id}")  # fmt: skip
    await uow.commit()
    return [
        ParticipantName(person_id=row.id, given_names=row.given_names or "", family_name=row.family_name or "")
        for row in sorted(rows, key=lambda r: r.id)
    ]


# --- end of the education pass's block --------------------------------------------------------------------------


# --- information packs ---------------------------------------------------------------------


@router.get("/info-packs", tags=["information"])
async def list_info_packs() -> list[dict[str, str]]:
    """The languages the information pack (Grundinformation) is available in."""
    return [
        {"lang": lang, "language_name": p["language_name"], "dir": p["dir"], "url": f"/api/v1/info-packs/{lang}"}
        for lang, p in infopacks.load_packs().items()
    ]


@router.get(
    "/info-packs/{lang}", tags=["information"], response_model=None,
    responses={200: {"description": "The pack as JSON, or as a page (format=html or Accept: text/html)",
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def info_pack(
    lang: str, request: Request, format: Annotated[str | None, Query(pattern="^(json|html)$")] = None
) -> dict[str, Any] | HTMLResponse:
    """The information pack in one language, as JSON or (``?format=html`` or ``Accept: text/html``) as a page."""
    packs = infopacks.load_packs()
    pack = packs.get(lang.lower())
    if pack is None:
        raise Problem(404, f"No information pack in '{lang}'; available: {', '.join(packs)}.", kind="not-found")
    wants_html = format == "html" or (format is None and "text/html" in request.headers.get("accept", ""))
    if wants_html:
        return HTMLResponse(infopacks.render_html(pack), headers={"Content-Language": pack["lang"]})
    return pack
