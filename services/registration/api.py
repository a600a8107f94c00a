"""HTTP routes of the registration service: parse, call the use case (``workflow``), shape the answer.

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

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse

from chassis import audit as access
from chassis.clock import as_utc
from chassis.deps import ActorDep, CallerDep, ClockDep, RuntimeDep, UnitOfWorkDep
from chassis.errors import Problem
from chassis.identity import Identity, require_service
from chassis.schemas import Page
from contracts.vocabulary import PartnerCategory, ResidenceStatusGroup
from services.registration import domain, infopacks, workflow
from services.registration.models import Consent, NeedsAssessment, Person
from services.registration.runtime import registration_of
from services.registration.schemas import (
    PARTICIPANT_LIST_LIMIT,
    ConsentCreate,
    ConsentRead,
    ContactName,
    ContactNamesAsked,
    Erasure,
    InfoPackRef,
    MoveAway,
    NeedsAssessmentCreate,
    NeedsAssessmentRead,
    ParticipantName,
    PassHolder,
    PersonContact,
    PersonExport,
    PersonLookup,
    PersonRead,
    PersonSummary,
    PersonUpdate,
    Reason,
    RegisteredPerson,
    RegistrationCreate,
    RegistrationRead,
)
from services.registration.workflow import ADDRESS_FIELDS, PersonScope, etag

router = APIRouter(prefix="/api/v1", tags=["registration"])
#: For other services, each with its own signed identity; the gateway forwards only /api/v1/, so no client
#: reaches these, and they are not part of the public API's document.
internal_router = APIRouter(prefix="/api/internal", tags=["internal"], include_in_schema=False)


async def get_workflow(runtime: RuntimeDep, uow: UnitOfWorkDep, clock: ClockDep, actor: ActorDep) -> workflow.Workflow:
    own = registration_of(runtime)
    return workflow.Workflow(uow=uow, now=clock(), actor=actor, districts=own.districts, block_index=own.block_index)


WorkflowDep = Annotated[workflow.Workflow, Depends(get_workflow)]


def allowed(act: domain.Act) -> Any:
    """A route dependency: the caller's scope for ``act``, or 403 when none of their roles may do it."""

    async def scope(caller: CallerDep) -> PersonScope:
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


# --- shaping the answers ---------------------------------------------------------------------


def person_read(person: Person, today: date) -> PersonRead:
    assert person.birth_date is not None
    fields = {k: getattr(person, k) for k in PersonRead.model_fields if hasattr(person, k)}
    return PersonRead.model_validate(
        fields
        | {
            "person_id": person.id,
            "age_band": domain.age_band(person.birth_date, today),
            "address": {k: getattr(person, k) for k in ADDRESS_FIELDS},
            "created_at": as_utc(person.created_at),
            "updated_at": as_utc(person.updated_at),
        }
    )


def info_pack_ref(preferred_language: str) -> InfoPackRef:
    lang = domain.info_pack_language(preferred_language, set(infopacks.load_packs()))
    return InfoPackRef(lang=lang, url=f"/api/v1/info-packs/{lang}")


def needs_read(row: NeedsAssessment) -> NeedsAssessmentRead:
    return NeedsAssessmentRead.model_validate(
        {
            **{k: getattr(row, k) for k in NeedsAssessmentRead.model_fields if k != "assessed_at"},
            "assessed_at": as_utc(row.assessed_at),
        }
    )


def consent_read(row: Consent, at: datetime) -> ConsentRead:
    terms = workflow.terms_of(row)
    return ConsentRead(
        consent_id=row.id,
        person_id=row.person_id,
        partner_id=row.partner_id,
        partner_category=PartnerCategory(row.partner_category) if row.partner_category else None,
        purpose=row.purpose,
        given_at=terms.given_at,
        expires_on=row.expires_on,
        withdrawn_at=terms.withdrawn_at,
        in_force=domain.consent_in_force(terms, at),
    )


# --- registration (Anmeldung) ---------------------------------------------------------------


@router.post("/registrations", status_code=201, response_model=RegistrationRead)
async def register(
    body: RegistrationCreate,
    response: Response,
    w: WorkflowDep,
    _: Annotated[PersonScope, allowed(domain.Act.REGISTER)],
) -> RegistrationRead:
    """Register a newcomer (Anmeldung), and the family members who register with them."""
    done = await workflow.register(w, body)
    first, *members = (
        RegisteredPerson(
            person_id=p["id"], household_id=done.household_id, info_pack=info_pack_ref(p["preferred_language"])
        )
        for p in done.persons
    )
    response.headers["Location"] = f"/api/v1/persons/{first.person_id}"
    return RegistrationRead(
        person_id=first.person_id, household_id=first.household_id, info_pack=first.info_pack, household_members=members
    )


# --- persons ------------------------------------------------------------------------------


@router.get("/persons", response_model=Page[PersonRead])
async def list_persons(
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)],
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
    query = workflow.PersonQuery(
        status=status,
        district=district,
        nationality=nationality,
        residence_status_group=residence_status_group,
        household_id=household_id,
        registered_from=registered_from,
        registered_to=registered_to,
        name=name,
        birth_date=birth_date,
        page=page,
        page_size=page_size,
    )
    rows, total = await workflow.list_persons(w, scope, query)
    return Page(items=[person_read(p, w.today) for p in rows], total=total, page=page, page_size=page_size)


@router.post("/persons/lookup", response_model=list[PersonSummary])
async def look_up_persons(
    body: PersonLookup, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)]
) -> list[PersonSummary]:
    """Names, languages and age bands of several persons in one call (a caseworker's case list: one read for
    the page, not one per row). Only the persons the caller reaches are answered; an id out of reach, unknown
    or erased is left out without a word, as a 404 would tell nothing either. Each answered read is audited."""
    answered = await workflow.look_up_persons(w, scope, body.person_ids)
    return [
        PersonSummary(
            person_id=p.id,
            given_names=p.given_names or "",
            family_name=p.family_name or "",
            preferred_language=p.preferred_language or "",
            languages=p.languages or [],
            age_band=domain.age_band(p.birth_date, w.today),
            status=domain.PersonStatus(p.status),
        )
        for p in answered
        if p.birth_date is not None
    ]


@router.get("/persons/{person_id}", response_model=PersonRead)
async def read_person(
    person_id: str, response: Response, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.READ_PERSON)]
) -> PersonRead:
    person = await workflow.read_person(w, scope, person_id)
    response.headers["ETag"] = etag(person)
    return person_read(person, w.today)


@router.patch("/persons/{person_id}", response_model=PersonRead)
async def update_person(
    person_id: str,
    body: PersonUpdate,
    response: Response,
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.CHANGE_PERSON)],
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=100)] = None,
) -> PersonRead:
    """Change a person; send the ETag of what you read as If-Match, so no one's change is lost."""
    person = await workflow.update_person(w, scope, person_id, body, if_match)
    response.headers["ETag"] = etag(person)
    return person_read(person, w.today)


@router.post("/persons/{person_id}/move-away", response_model=PersonRead)
async def move_away(
    person_id: str, body: MoveAway, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.MOVE_AWAY)]
) -> PersonRead:
    """Abmeldung: the person left the city (privacy officers and admins, with the reason, which the access log
    keeps)."""
    person = await workflow.move_away(w, scope, person_id, body.moved_away_on, body.reason)
    return person_read(person, w.today)


@router.delete("/persons/{person_id}", status_code=204)
async def erase_person(
    person_id: str,
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.ERASE)],
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
            422,
            'Say why the data is erased: send {"reason": "..."} (or ?reason=...).',
            kind="validation",
            title="Invalid request",
            errors=[{"location": ["body", "reason"], "message": "the erasure needs a reason", "type": "missing"}],
        )
    await workflow.erase(w, scope, person_id, ground)
    return Response(status_code=204)


@router.get("/persons/{person_id}/access-log", response_model=list[access.AccessLogEntry])
async def access_log(
    person_id: str, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.READ_ACCESS_LOG)]
) -> list[access.AccessLogEntry]:
    """Who read or changed this person's data, newest first (for the data subject's Art. 15 request); an erased
    person's log stays (accountability, Art. 5(2)). Through the gateway, the log of every service, merged: the
    gateway asks this service first, whose answer decides whether the caller reaches the person. Reading the log
    is logged too."""
    return await workflow.access_log(w, scope, person_id)


@router.get("/persons/{person_id}/export", response_model=PersonExport)
async def export(
    person_id: str, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.EXPORT)]
) -> PersonExport:
    """Everything this service holds on the person (GDPR Art. 15): the record, the household, every needs
    assessment, every consent, and the access log. Privacy officers and admins. Through the gateway, with every
    other service's part (``GET /api/v1/persons/{id}/export`` there; this service answers first and decides
    whether the caller reaches the person). After erasure only the tombstone is left, and the log."""
    held = await workflow.export(w, scope, person_id)
    person, household = held.person, held.household
    erased = person.status == domain.PersonStatus.ERASED
    return PersonExport(
        service="registration",
        person_id=person.id,
        status=person.status,
        person=None if erased else person_read(person, w.today),
        erased_at=as_utc(person.erased_at),
        moved_away_on=person.moved_away_on,
        household=None
        if household is None
        else {"household_id": household.id, "created_at": as_utc(household.created_at)},
        needs_assessments=[needs_read(r) for r in held.needs_assessments],
        consents=[consent_read(r, w.now) for r in held.consents],
        access_log=held.access_log,
    )


# --- needs assessment ----------------------------------------------------------------------


@router.post("/persons/{person_id}/needs-assessments", status_code=201, response_model=NeedsAssessmentRead)
async def assess_needs(
    person_id: str,
    body: NeedsAssessmentCreate,
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_NEEDS)],
) -> NeedsAssessmentRead:
    """Record a new version of the person's needs assessment."""
    return needs_read(await workflow.assess_needs(w, scope, person_id, body))


@router.get("/persons/{person_id}/needs-assessments", response_model=list[NeedsAssessmentRead])
async def list_needs(
    person_id: str, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.READ_NEEDS)]
) -> list[NeedsAssessmentRead]:
    return [needs_read(r) for r in await workflow.list_needs(w, scope, person_id)]


# --- consents ------------------------------------------------------------------------------


@router.post("/persons/{person_id}/consents", status_code=201, response_model=ConsentRead)
async def give_consent(
    person_id: str,
    body: ConsentCreate,
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_CONSENTS)],
) -> ConsentRead:
    """Record the person's consent to share data with a partner (or a category of partners) for a purpose."""
    return consent_read(await workflow.give_consent(w, scope, person_id, body), w.now)


@router.get("/persons/{person_id}/consents", response_model=list[ConsentRead])
async def list_consents(
    person_id: str, w: WorkflowDep, scope: Annotated[PersonScope, allowed(domain.Act.READ_CONSENTS)]
) -> list[ConsentRead]:
    return [consent_read(r, w.now) for r in await workflow.list_consents(w, scope, person_id)]


@router.post("/persons/{person_id}/consents/{consent_id}/withdrawal", response_model=ConsentRead)
async def withdraw_consent(
    person_id: str,
    consent_id: str,
    w: WorkflowDep,
    scope: Annotated[PersonScope, allowed(domain.Act.RECORD_CONSENTS)],
) -> ConsentRead:
    """Withdraw a consent (GDPR Art. 7(3)); partners learn it by event and stop sharing."""
    return consent_read(await workflow.withdraw_consent(w, scope, person_id, consent_id), w.now)


# --- other services' questions ---------------------------------------------------------------


@internal_router.get("/persons/{person_id}/contact", response_model=PersonContact)
async def contact_for_partner(
    person_id: str,
    w: WorkflowDep,
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
    person = await workflow.contact_for_partner(
        w,
        person_id,
        partner_id=partner_id,
        partner_category=partner_category,
        referral_id=referral_id,
        consent_id=consent_id,
        via=caller.actor,
    )
    return PersonContact.model_validate(
        {k: getattr(person, k) for k in PersonContact.model_fields if k != "address"}
        | {"address": {k: getattr(person, k) for k in ADDRESS_FIELDS}}
    )


# The list of a partner's referrals names each person whose consent for that partner is in force, in one call for
# the page (issue 14): the referral service asks in its own signed name, registration checks every consent itself
# (as for the contact data) and logs each read as the partner's, via referral, for that referral.


@internal_router.post("/persons/contact-names", response_model=list[ContactName])
async def contact_names_for_partner(
    body: ContactNamesAsked, w: WorkflowDep, caller: Annotated[Identity, require_service("referral")]
) -> list[ContactName]:
    """The names of the persons of a partner's referrals, each only while the consent the referral was sent under
    is in force and names this partner (or its category); the others are left out, which the list shows."""
    return [
        ContactName(
            referral_id=referral_id,
            person_id=person.id,
            given_names=person.given_names or "",
            family_name=person.family_name or "",
        )
        for referral_id, person in await workflow.contact_names(w, body, via=caller.actor)
    ]


# The education pass's holder name, for the courses service (issue 12), kept apart from the staff routes: courses
# prints the registered name on an education pass instead of whatever a request says. It asks in its own signed
# name; the read is logged as the staff member's (``on_behalf_of``, the X-Actor courses verified), through courses.


@internal_router.get("/persons/{person_id}/pass-holder", response_model=PassHolder)
async def pass_holder(
    person_id: str,
    w: WorkflowDep,
    caller: Annotated[Identity, require_service("courses")],
    on_behalf_of: Annotated[str, Query(min_length=1, max_length=120)],
) -> PassHolder:
    """The registered name of a person, for the education pass the courses service issues; 410 once erased."""
    person = await workflow.pass_holder(w, person_id, on_behalf_of=on_behalf_of, via=caller.actor)
    return PassHolder(given_names=person.given_names or "", family_name=person.family_name or "")


# Participants' names, for the courses service's participant lists (issue 14), kept apart like the pass holder's:
# courses asks in its own signed name, once for a whole list, after it checked that the course is the course
# admin's provider's; the read is logged per person as the staff member's (``on_behalf_of``), through courses,
# with the course it was for.


@internal_router.get("/persons/participant-names", response_model=list[ParticipantName])
async def participant_names(
    w: WorkflowDep,
    caller: Annotated[Identity, require_service("courses")],
    person_id: Annotated[list[str], Query(min_length=1, max_length=PARTICIPANT_LIST_LIMIT)],
    on_behalf_of: Annotated[str, Query(min_length=1, max_length=120)],
    course_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> list[ParticipantName]:
    """The registered names of a course's participants, in one read; an erased or unknown person is left out."""
    rows = await workflow.participant_names(
        w, person_id, on_behalf_of=on_behalf_of, course_id=course_id, via=caller.actor
    )
    return [
        ParticipantName(person_id=row.id, given_names=row.given_names or "", family_name=row.family_name or "")
        for row in rows
    ]


# --- information packs ---------------------------------------------------------------------


@router.get("/info-packs", tags=["information"])
async def list_info_packs() -> list[dict[str, str]]:
    """The languages the information pack (Grundinformation) is available in."""
    return [
        {"lang": lang, "language_name": p["language_name"], "dir": p["dir"], "url": f"/api/v1/info-packs/{lang}"}
        for lang, p in infopacks.load_packs().items()
    ]


@router.get(
    "/info-packs/{lang}",
    tags=["information"],
    response_model=None,
    responses={
        200: {
            "description": "The pack as JSON, or as a page (format=html or Accept: text/html)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
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
