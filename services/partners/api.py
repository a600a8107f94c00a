"""HTTP routes of the partners service: the public directory, a partner's own settings, key checks.

Every read of keys, webhooks and deliveries, and every write to them, is the partner's own
business: ``X-Partner-Id`` (set by the gateway from a verified sign-in or API key) must name that
partner. The directory entry and its services are kept by the partner itself or by an admin
(``X-Role`` names ``admin``); only an admin adds a partner or changes its category. The gateway's
role policy checks the role first; these are the object-level checks behind it.
``/internal/...`` is not routed by the gateway.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from chassis import audit as access
from chassis.deps import ActorDep, CallerDep, RuntimeDep, partner_of
from chassis.deps import UnitOfWorkDep as UowDep
from chassis.errors import Problem
from chassis.schemas import Page
from chassis.uow import UnitOfWork
from contracts import partners as events
from contracts.vocabulary import PartnerCategory, ServiceType
from services.partners import delivery, domain
from services.partners.models import (
    ApiKey,
    ErasedPerson,
    MeetingOffer,
    Partner,
    PartnerService,
    WebhookDelivery,
    WebhookSubscription,
)
from services.partners.runtime import partners_of
from services.partners.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    CapacityUpdate,
    ContactPoint,
    DeliveryRead,
    District,
    KeyVerified,
    KeyVerify,
    Location,
    MeetingOfferCreate,
    MeetingOfferRead,
    MeetingOfferUpdate,
    PartnerCreate,
    PartnerRead,
    PartnerUpdate,
    SecretRotated,
    ServiceOffer,
    ServiceRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
)

router = APIRouter(prefix="/api/v1/partners", tags=["partners"])
internal_router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)
#: A person's access log and export (GDPR Art. 15), for the gateway's own merge of them (see the end of this module).
persons_router = APIRouter(prefix="/api/v1/persons", tags=["persons"], include_in_schema=False)

aware = delivery.aware
PartnerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
ObjectId = Annotated[str, Path(min_length=1, max_length=40)]


def now_of(runtime: Any) -> datetime:
    moment: datetime = runtime.clock()
    return moment


async def own_partner(partner_id: PartnerId, caller: CallerDep) -> str:
    """Object-level check: a partner acts only on itself. Checked before existence, so ids cannot be probed."""
    if partner_of(caller) != partner_id:
        raise Problem(403, "A partner may only act on its own entry.", kind="forbidden")
    return partner_id


OwnPartner = Annotated[str, Depends(own_partner)]


async def admin_only(caller: CallerDep) -> None:
    # 401, not require_role's 403: without any role the caller is unknown here (a partner's API key has none).
    if not caller.roles:
        raise Problem(401, "This call needs the caller's identity (X-Role).", kind="unauthenticated")
    if not caller.has_any("admin"):
        raise Problem(403, "Only an admin adds partner organisations.", kind="forbidden")


async def keeper(partner_id: PartnerId, caller: CallerDep) -> str:
    """Object-level check for the directory entry and its services: an admin keeps every entry, a partner
    only its own (checked before existence, so ids cannot be probed)."""
    if caller.has_any("admin"):
        return partner_id
    return await own_partner(partner_id, caller)


EntryKeeper = Annotated[str, Depends(keeper)]


async def load_partner(uow: UnitOfWork, partner_id: str) -> Partner:
    partner = await uow.session.get(Partner, partner_id)
    if partner is None:
        raise Problem(404, f"No partner with id {partner_id}.", kind="not-found")
    return partner


async def active_services(uow: UnitOfWork, partner_ids: list[str]) -> dict[str, list[PartnerService]]:
    rows = (
        await uow.session.scalars(
            select(PartnerService)
            .where(PartnerService.partner_id.in_(partner_ids), PartnerService.active.is_(True))
            .order_by(PartnerService.service_type)
        )
    ).all()
    found: dict[str, list[PartnerService]] = {}
    for row in rows:
        found.setdefault(row.partner_id, []).append(row)
    return found


def service_read(s: PartnerService) -> ServiceRead:
    return ServiceRead(
        service_type=ServiceType(s.service_type),
        name=s.name,
        description=s.description,
        eligibility=s.eligibility,
        languages=s.languages,
        response_days=s.response_days,
        free_places=s.free_places,
        updated_at=aware(s.updated_at),
    )


def partner_read(p: Partner, services: list[PartnerService]) -> PartnerRead:
    return PartnerRead(
        partner_id=p.id,
        name=p.name,
        alternate_name=p.alternate_name,
        category=PartnerCategory(p.category),
        description=p.description,
        website=p.website,
        languages=p.languages,
        locations=[Location(**loc) for loc in p.locations],
        contacts=[ContactPoint(**c) for c in p.contacts],
        services=[service_read(s) for s in services],
        version=p.version,
        updated_at=aware(p.updated_at),
    )


#: A language filter: a tag such as ``uk`` or ``uk-UA`` (anything else is a 422 Problem, not an empty list).
LANGUAGE_FILTER = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"


# --- the public directory (no personal data, no authentication) -----------------------------


@router.get("", response_model=Page[PartnerRead])
async def list_partners(
    uow: UowDep,
    service_type: ServiceType | None = None,
    category: PartnerCategory | None = None,
    language: str | None = Query(None, max_length=35, pattern=LANGUAGE_FILTER),
    district: District | None = None,
    page: int = Query(1, ge=1, le=10_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[PartnerRead]:
    partners = (await uow.session.scalars(select(Partner).order_by(Partner.id))).all()
    services = await active_services(uow, [p.id for p in partners])
    # The directory is small (dozens of organisations): JSON filters in Python work on SQLite and PostgreSQL alike.
    matching = [
        p
        for p in partners
        if (category is None or p.category == category.value)
        and (service_type is None or any(s.service_type == service_type.value for s in services.get(p.id, [])))
        and (language is None or domain.speaks(p.languages, language))
        and (district is None or any(loc.get("district") == district for loc in p.locations))
    ]
    window = matching[(page - 1) * page_size : page * page_size]
    return Page(
        items=[partner_read(p, services.get(p.id, [])) for p in window],
        total=len(matching),
        page=page,
        page_size=page_size,
    )


# --- meeting offers (Begegnung): public to read, kept by their partner or an admin ---------------


def meeting_offer_read(offer: MeetingOffer, partner_name: str) -> MeetingOfferRead:
    return MeetingOfferRead(
        offer_id=offer.id,
        partner_id=offer.partner_id,
        partner_name=partner_name,
        kind=domain.MeetingKind(offer.kind),
        title=offer.title,
        description=offer.description,
        languages=offer.languages,
        audience=domain.MeetingAudience(offer.audience),
        schedule=offer.schedule,
        place_name=offer.place_name,
        address=offer.address,
        district=offer.district,
        childcare=offer.childcare,
        free_of_charge=offer.free_of_charge,
        updated_at=aware(offer.updated_at),
    )


async def meeting_offers_of(uow: UnitOfWork, partner_id: str | None = None) -> list[MeetingOfferRead]:
    query = (
        select(MeetingOffer, Partner.name)
        .join(Partner, Partner.id == MeetingOffer.partner_id)
        .where(MeetingOffer.active.is_(True))
        .order_by(MeetingOffer.kind, MeetingOffer.title, MeetingOffer.id)
    )
    if partner_id is not None:
        query = query.where(MeetingOffer.partner_id == partner_id)
    return [meeting_offer_read(offer, name) for offer, name in (await uow.session.execute(query)).all()]


# Declared before ``/{partner_id}``: the public list is not a partner.
@router.get("/meeting-offers", response_model=Page[MeetingOfferRead])
async def list_meeting_offers(
    uow: UowDep,
    language: str | None = Query(None, min_length=2, max_length=35, pattern=LANGUAGE_FILTER),
    kind: domain.MeetingKind | None = None,
    audience: domain.MeetingAudience | None = None,
    district: District | None = None,
    childcare: bool | None = Query(None, description="true: only offers with childcare"),
    page: int = Query(1, ge=1, le=10_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[MeetingOfferRead]:
    """The meeting places and recurring offers of the city and its partners, for newcomers (no sign-in)."""
    offers = await meeting_offers_of(uow)
    matching = [
        o
        for o in offers
        if domain.meeting_offer_matches(
            o.languages,
            o.kind.value,
            o.audience.value,
            language=language,
            wanted_kind=kind.value if kind else None,
            wanted_audience=audience.value if audience else None,
        )
        and (district is None or o.district == district)
        and (childcare is None or o.childcare == childcare)
    ]
    window = matching[(page - 1) * page_size : page * page_size]
    return Page(items=window, total=len(matching), page=page, page_size=page_size)


@router.get("/{partner_id}/meeting-offers", response_model=list[MeetingOfferRead])
async def list_own_meeting_offers(partner_id: EntryKeeper, uow: UowDep) -> list[MeetingOfferRead]:
    await load_partner(uow, partner_id)
    return await meeting_offers_of(uow, partner_id)


@router.post("/{partner_id}/meeting-offers", status_code=201, response_model=MeetingOfferRead)
async def publish_meeting_offer(
    partner_id: EntryKeeper, body: MeetingOfferCreate, uow: UowDep, runtime: RuntimeDep
) -> MeetingOfferRead:
    partner = await load_partner(uow, partner_id)
    now = now_of(runtime)
    offer = MeetingOffer(
        id=str(uuid.uuid4()), partner_id=partner_id, **body.model_dump(mode="json"), active=True,
        created_at=now, updated_at=now,
    )  # fmt: skip
    uow.session.add(offer)
    await uow.commit()
    return meeting_offer_read(offer, partner.name)


async def load_meeting_offer(uow: UnitOfWork, partner_id: str, offer_id: str) -> MeetingOffer:
    """The partner's own offer: another partner's offer is "not found" under this partner (no probing)."""
    offer = await uow.session.get(MeetingOffer, offer_id)
    if offer is None or offer.partner_id != partner_id or not offer.active:
        raise Problem(404, f"No meeting offer {offer_id} of partner {partner_id}.", kind="not-found")
    return offer


@router.patch("/{partner_id}/meeting-offers/{offer_id}", response_model=MeetingOfferRead)
async def update_meeting_offer(
    partner_id: EntryKeeper, offer_id: ObjectId, body: MeetingOfferUpdate, uow: UowDep, runtime: RuntimeDep
) -> MeetingOfferRead:
    partner = await load_partner(uow, partner_id)
    offer = await load_meeting_offer(uow, partner_id, offer_id)
    changes = body.model_dump(exclude_unset=True, mode="json")
    for field, value in changes.items():
        if value is None and field in ("kind", "title", "languages", "audience", "place_name", "childcare",
                                       "free_of_charge"):  # fmt: skip
            raise Problem(422, f"{field} cannot be emptied with null.", kind="validation")
    changes = {field: value for field, value in changes.items() if getattr(offer, field) != value}
    if changes:
        for field, value in changes.items():
            setattr(offer, field, value)
        offer.updated_at = now_of(runtime)
        await uow.commit()
    return meeting_offer_read(offer, partner.name)


@router.delete("/{partner_id}/meeting-offers/{offer_id}", status_code=204)
async def withdraw_meeting_offer(
    partner_id: EntryKeeper, offer_id: ObjectId, uow: UowDep, runtime: RuntimeDep
) -> Response:
    await load_partner(uow, partner_id)
    offer = await load_meeting_offer(uow, partner_id, offer_id)
    offer.active = False
    offer.updated_at = now_of(runtime)
    await uow.commit()
    return Response(status_code=204)


def _hsds_id(*parts: str) -> str:
    # HSDS ids are UUIDs; derived from our ids they stay the same from one export to the next.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://integration.landsberg.de/partners/" + "/".join(parts)))


@router.get("/export/hsds")
async def export_hsds(uow: UowDep) -> dict[str, Any]:
    """The directory as Open Referral HSDS 3.0-shaped JSON: organizations with services, locations, contacts."""
    partners = (await uow.session.scalars(select(Partner).order_by(Partner.id))).all()
    services = await active_services(uow, [p.id for p in partners])
    organizations = []
    for p in partners:
        org_id = _hsds_id(p.id)
        organizations.append(
            {
                "id": org_id,
                "name": p.name,
                "alternate_name": p.alternate_name,
                "description": p.description,
                "website": p.website,
                "identifiers": [{"identifier_scheme": "landsberg-partner-id", "identifier": p.id}],
                "services": [
                    {
                        "id": _hsds_id(p.id, s.service_type),
                        "organization_id": org_id,
                        "name": s.name,
                        "description": s.description,
                        "status": "active",
                        "eligibility_description": s.eligibility,
                        "alert": None,
                        "languages": [
                            {"id": _hsds_id(p.id, s.service_type, "language", code), "code": code}
                            for code in s.languages
                        ],
                        "capacities": []
                        if s.free_places is None
                        else [
                            {
                                "id": _hsds_id(p.id, s.service_type, "capacity"),
                                "available": s.free_places,
                                "unit": {"name": "places"},
                                "updated": aware(s.updated_at).isoformat(),  # type: ignore[union-attr]
                            }
                        ],
                        "attributes": [
                            {"label": "service_type", "value": s.service_type},
                            {"label": "response_days", "value": str(s.response_days)},
                        ],
                    }
                    for s in services.get(p.id, [])
                ],
                "locations": [
                    {
                        "id": _hsds_id(p.id, "location", str(i)),
                        "location_type": "physical",
                        "name": loc.get("name"),
                        "addresses": [
                            {
                                "address_type": "physical",
                                "address_1": loc.get("address_1"),
                                "city": loc.get("city"),
                                "postal_code": loc.get("postal_code"),
                                "country": loc.get("country", "DE"),
                            }
                        ],
                        "schedules": [{"description": loc["opening_hours"]}] if loc.get("opening_hours") else [],
                    }
                    for i, loc in enumerate(p.locations)
                ],
                "contacts": [
                    {
                        "id": _hsds_id(p.id, "contact", str(i)),
                        "title": c.get("title"),
                        "department": c.get("department"),
                        "email": c.get("email"),
                        "phones": [{"number": c["phone"]}] if c.get("phone") else [],
                    }
                    for i, c in enumerate(p.contacts)
                ],
                "languages": [{"code": code} for code in p.languages],
                "attributes": [{"label": "category", "value": p.category}],
            }
        )
    return {"hsds_version": "3.0", "organizations": organizations}


@router.post("", status_code=201, response_model=PartnerRead, dependencies=[Depends(admin_only)])
async def register_partner(body: PartnerCreate, uow: UowDep, runtime: RuntimeDep) -> PartnerRead:
    """Add a partner organisation with its services; referral learns it from the events."""
    if await uow.session.get(Partner, body.partner_id) is not None:
        raise Problem(409, f"A partner with id {body.partner_id} exists already.", kind="partner-exists")
    now = now_of(runtime)
    partner = Partner(
        id=body.partner_id,
        name=body.name,
        alternate_name=body.alternate_name,
        category=body.category.value,
        description=body.description,
        website=body.website,
        languages=list(body.languages),
        locations=[loc.model_dump(mode="json") for loc in body.locations],
        contacts=[c.model_dump(mode="json") for c in body.contacts],
        version=1,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(partner)
    await uow.session.flush()  # the partner row first: the services refer to it
    services = [
        PartnerService(
            partner_id=partner.id, service_type=s.service_type.value, name=s.name, description=s.description,
            eligibility=s.eligibility, languages=list(s.languages), response_days=s.response_days,
            free_places=s.free_places, active=True, updated_at=now,
        )
        for s in body.services
    ]  # fmt: skip
    uow.session.add_all(services)
    await uow.publish(
        events.PartnerRegistered(
            partner_id=partner.id,
            name=partner.name,
            category=body.category,
            languages=partner.languages,
            service_types=[s.service_type for s in body.services],
        ),
        *(
            events.ServiceOffered(
                partner_id=partner.id,
                service_type=s.service_type,
                name=s.name,
                languages=list(s.languages),
                response_days=s.response_days,
                free_places=s.free_places,
            )
            for s in body.services
        ),
    )
    try:
        await uow.commit()
    except IntegrityError as exc:  # another request added the same id in the meantime
        raise Problem(409, f"A partner with id {body.partner_id} exists already.", kind="partner-exists") from exc
    return partner_read(partner, sorted(services, key=lambda s: s.service_type))


@router.get("/{partner_id}", response_model=PartnerRead)
async def read_partner(partner_id: PartnerId, uow: UowDep) -> PartnerRead:
    partner = await load_partner(uow, partner_id)
    return partner_read(partner, (await active_services(uow, [partner.id])).get(partner.id, []))


# --- a partner's own entry: profile, services, capacity -------------------------------------


@router.patch("/{partner_id}", response_model=PartnerRead)
async def update_partner(
    partner_id: EntryKeeper, body: PartnerUpdate, uow: UowDep, runtime: RuntimeDep, caller: CallerDep
) -> PartnerRead:
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "category" in changes and not caller.has_any("admin"):
        # Consents name a category of partner: a partner moving itself would change what they cover.
        raise Problem(403, "Only an admin changes a partner's category.", kind="forbidden")
    partner = await load_partner(uow, partner_id)
    for field, value in changes.items():
        if value is None and field in ("name", "category", "languages", "locations", "contacts"):
            raise Problem(422, f"{field} cannot be emptied with null.", kind="validation")
    # Only what differs is a change: the same entry sent again (a reference-data load) publishes nothing.
    changes = {field: value for field, value in changes.items() if getattr(partner, field) != value}
    for field, value in changes.items():
        setattr(partner, field, value)
    if changes:
        partner.version += 1
        partner.updated_at = now_of(runtime)
        await uow.publish(
            events.PartnerUpdated(
                partner_id=partner.id,
                name=partner.name,
                category=PartnerCategory(partner.category),
                languages=partner.languages,
                version=partner.version,
            )
        )
        await uow.commit()
    return partner_read(partner, (await active_services(uow, [partner.id])).get(partner.id, []))


@router.put("/{partner_id}/services/{service_type}", response_model=ServiceRead)
async def offer_service(
    partner_id: EntryKeeper, service_type: ServiceType, body: ServiceOffer, uow: UowDep, runtime: RuntimeDep
) -> ServiceRead:
    await load_partner(uow, partner_id)
    row = await uow.session.get(PartnerService, (partner_id, service_type.value))
    previous_places = row.free_places if row is not None and row.active else 0
    terms = (body.name, body.description, body.eligibility, list(body.languages), body.response_days, body.free_places)
    if row is not None and row.active and terms == (row.name, row.description, row.eligibility, row.languages,
                                                    row.response_days, row.free_places):  # fmt: skip
        return service_read(row)  # PUT is idempotent: the same offer again publishes nothing
    if row is None:
        row = PartnerService(partner_id=partner_id, service_type=service_type.value)
        uow.session.add(row)
    row.name, row.description, row.eligibility = body.name, body.description, body.eligibility
    row.languages, row.response_days, row.free_places = list(body.languages), body.response_days, body.free_places
    row.active = True
    row.updated_at = now_of(runtime)
    await uow.publish(
        events.ServiceOffered(
            partner_id=partner_id,
            service_type=service_type,
            name=row.name,
            languages=row.languages,
            response_days=row.response_days,
            free_places=row.free_places,
        )
    )
    if previous_places != row.free_places:
        # Referral routes on capacity events alone; tell it too.
        await uow.publish(
            events.PartnerCapacityChanged(partner_id=partner_id, service_type=service_type, free_places=row.free_places)
        )
    await uow.commit()
    return service_read(row)


@router.delete("/{partner_id}/services/{service_type}", status_code=204)
async def withdraw_service(
    partner_id: EntryKeeper, service_type: ServiceType, uow: UowDep, runtime: RuntimeDep
) -> Response:
    row = await uow.session.get(PartnerService, (partner_id, service_type.value))
    if row is None or not row.active:
        raise Problem(404, f"{partner_id} does not offer {service_type.value}.", kind="not-found")
    row.active = False
    row.updated_at = now_of(runtime)
    await uow.publish(events.ServiceWithdrawn(partner_id=partner_id, service_type=service_type))
    # Referral routes on capacity alone: "no free places" keeps it from sending people to a withdrawn service.
    await uow.publish(events.PartnerCapacityChanged(partner_id=partner_id, service_type=service_type, free_places=0))
    await uow.commit()
    return Response(status_code=204)


@router.put("/{partner_id}/services/{service_type}/capacity", response_model=ServiceRead)
async def update_capacity(
    partner_id: EntryKeeper, service_type: ServiceType, body: CapacityUpdate, uow: UowDep, runtime: RuntimeDep
) -> ServiceRead:
    row = await uow.session.get(PartnerService, (partner_id, service_type.value))
    if row is None or not row.active:
        raise Problem(404, f"{partner_id} does not offer {service_type.value}.", kind="not-found")
    if row.free_places != body.free_places:  # PUT is idempotent: the same value again publishes nothing
        row.free_places = body.free_places
        row.updated_at = now_of(runtime)
        await uow.publish(
            events.PartnerCapacityChanged(partner_id=partner_id, service_type=service_type, free_places=row.free_places)
        )
        await uow.commit()
    return service_read(row)


# --- API keys -------------------------------------------------------------------------------


def key_read(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": k.scopes,
        "created_at": aware(k.created_at),
        "expires_at": aware(k.expires_at),
        "revoked_at": aware(k.revoked_at),
        "last_used_at": aware(k.last_used_at),
    }


def settings_of(runtime: Any) -> Any:
    """The service's own settings (``PartnersSettings``, defined in app.py, which imports this module)."""
    return runtime.settings


def pepper(runtime: Any) -> bytes:
    value: bytes = settings_of(runtime).api_key_pepper.get_secret_value().encode()
    return value


@router.post("/{partner_id}/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(partner_id: OwnPartner, body: ApiKeyCreate, uow: UowDep, runtime: RuntimeDep) -> ApiKeyCreated:
    await load_partner(uow, partner_id)
    now = now_of(runtime)
    if body.expires_at is not None and body.expires_at <= now:
        raise Problem(422, "expires_at must lie in the future.", kind="validation")
    issued = domain.issue_api_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        partner_id=partner_id,
        name=body.name,
        prefix=issued.prefix,
        key_hash=domain.hash_api_key(issued.key, pepper(runtime)),
        scopes=[s.value for s in body.scopes],
        created_at=now,
        expires_at=body.expires_at,
    )
    uow.session.add(row)
    await uow.commit()
    return ApiKeyCreated(**key_read(row), key=issued.key)


@router.get("/{partner_id}/api-keys", response_model=list[ApiKeyRead])
async def list_api_keys(partner_id: OwnPartner, uow: UowDep) -> list[ApiKeyRead]:
    rows = (
        await uow.session.scalars(select(ApiKey).where(ApiKey.partner_id == partner_id).order_by(ApiKey.created_at))
    ).all()
    return [ApiKeyRead(**key_read(k)) for k in rows]


@router.delete("/{partner_id}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(partner_id: OwnPartner, key_id: ObjectId, uow: UowDep, runtime: RuntimeDep) -> Response:
    row = await uow.session.get(ApiKey, key_id)
    if row is None or row.partner_id != partner_id:
        raise Problem(404, f"No API key {key_id}.", kind="not-found")
    if row.revoked_at is None:  # revoking twice keeps the first time
        row.revoked_at = now_of(runtime)
        await uow.commit()
    return Response(status_code=204)


@internal_router.post("/api-keys/verify", response_model=KeyVerified)
async def verify_api_key(body: KeyVerify, uow: UowDep, runtime: RuntimeDep) -> KeyVerified:
    """For the gateway: which partner a key belongs to and what it may do; 401 for anything else.

    Every refusal reads the same to the caller, so the answer does not tell a guesser which part was right.
    """
    refused = Problem(401, "The API key is not valid.", kind="invalid-api-key", headers={"WWW-Authenticate": "ApiKey"})
    prefix = domain.api_key_prefix(body.key)
    if prefix is None:
        raise refused
    row = await uow.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or not domain.api_key_matches(body.key, pepper(runtime), row.key_hash):
        raise refused
    now = now_of(runtime)
    if domain.key_refusal(revoked_at=aware(row.revoked_at), expires_at=aware(row.expires_at), now=now):
        raise refused
    row.last_used_at = now
    await uow.commit()
    return KeyVerified(partner_id=row.partner_id, key_id=row.id, scopes=row.scopes, expires_at=aware(row.expires_at))


# --- webhooks -------------------------------------------------------------------------------


def webhook_read(s: WebhookSubscription) -> dict[str, Any]:
    return {
        "webhook_id": s.id,
        "url": s.url,
        "event_types": s.event_types,
        "description": s.description,
        "created_at": aware(s.created_at),
        "previous_secret_valid_until": aware(s.previous_secret_valid_until),
    }


async def load_webhook(uow: UnitOfWork, partner_id: str, webhook_id: str) -> WebhookSubscription:
    row = await uow.session.get(WebhookSubscription, webhook_id)
    if row is None or row.partner_id != partner_id or not row.active:
        raise Problem(404, f"No webhook {webhook_id}.", kind="not-found")
    return row


@router.post("/{partner_id}/webhooks", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    partner_id: OwnPartner, body: WebhookCreate, uow: UowDep, runtime: RuntimeDep
) -> WebhookCreated:
    await load_partner(uow, partner_id)
    try:
        await delivery.check_url(body.url, allow_private=settings_of(runtime).webhook_allow_private_addresses)
    except domain.UnsafeWebhookUrl as exc:
        raise Problem(422, f"This URL cannot receive webhooks: {exc}.", kind="unsafe-webhook-url") from exc
    secret = domain.new_webhook_secret()
    row = WebhookSubscription(
        id=str(uuid.uuid4()),
        partner_id=partner_id,
        url=body.url,
        description=body.description,
        event_types=list(body.event_types),
        secret_encrypted=partners_of(runtime).secret_box.seal(secret),
        active=True,
        created_at=now_of(runtime),
    )
    uow.session.add(row)
    await uow.commit()
    return WebhookCreated(**webhook_read(row), secret=secret)


@router.get("/{partner_id}/webhooks", response_model=list[WebhookRead])
async def list_webhooks(partner_id: OwnPartner, uow: UowDep) -> list[WebhookRead]:
    rows = (
        await uow.session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.partner_id == partner_id, WebhookSubscription.active.is_(True))
            .order_by(WebhookSubscription.created_at)
        )
    ).all()
    return [WebhookRead(**webhook_read(s)) for s in rows]


@router.get("/{partner_id}/webhooks/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    partner_id: OwnPartner,
    uow: UowDep,
    status: domain.DeliveryStatus | None = None,
    webhook_id: str | None = Query(None, max_length=40),
    event_id: str | None = Query(None, max_length=200),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=200),
) -> Page[DeliveryRead]:
    filters = [WebhookDelivery.partner_id == partner_id]
    if status:
        filters.append(WebhookDelivery.status == status.value)
    if webhook_id:
        filters.append(WebhookDelivery.subscription_id == webhook_id)
    if event_id:
        filters.append(WebhookDelivery.event_id == event_id)
    total = await uow.session.scalar(select(func.count()).select_from(WebhookDelivery).where(*filters)) or 0
    rows = (
        await uow.session.scalars(
            select(WebhookDelivery)
            .where(*filters)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    ).all()
    return Page(
        items=[DeliveryRead(**delivery.delivery_fields(d)) for d in rows], total=total, page=page, page_size=page_size
    )


@router.post("/{partner_id}/webhooks/deliveries/{delivery_id}/replay", response_model=DeliveryRead)
async def replay_delivery(
    partner_id: OwnPartner, delivery_id: ObjectId, uow: UowDep, runtime: RuntimeDep
) -> DeliveryRead:
    row = await uow.session.get(WebhookDelivery, delivery_id)
    if row is None or row.partner_id != partner_id:
        raise Problem(404, f"No delivery {delivery_id}.", kind="not-found")
    if row.status == domain.DeliveryStatus.PENDING.value:
        raise Problem(409, "This delivery is still being attempted.", kind="delivery-pending")
    if row.erased_at is not None:
        raise Problem(410, "The person this event was about has been erased (GDPR Art. 17).", kind="erased")
    subscription = await uow.session.get(WebhookSubscription, row.subscription_id)
    if subscription is None or not subscription.active:
        raise Problem(409, "The webhook of this delivery was deleted.", kind="webhook-deleted")
    delivery.replay(row, now_of(runtime))
    await uow.commit()
    partners_of(runtime).deliverer.wake()
    return DeliveryRead(**delivery.delivery_fields(row))


@router.post("/{partner_id}/webhooks/{webhook_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    partner_id: OwnPartner, webhook_id: ObjectId, uow: UowDep, runtime: RuntimeDep
) -> SecretRotated:
    """A new secret now; the old one keeps signing alongside for the grace period (two signatures)."""
    row = await load_webhook(uow, partner_id, webhook_id)
    box = partners_of(runtime).secret_box
    secret = domain.new_webhook_secret()
    valid_until = now_of(runtime) + settings_of(runtime).webhook_secret_grace
    row.previous_secret_encrypted = row.secret_encrypted
    row.previous_secret_valid_until = valid_until
    row.secret_encrypted = box.seal(secret)
    await uow.commit()
    return SecretRotated(webhook_id=row.id, secret=secret, previous_secret_valid_until=valid_until)


@router.delete("/{partner_id}/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(partner_id: OwnPartner, webhook_id: ObjectId, uow: UowDep, runtime: RuntimeDep) -> Response:
    row = await load_webhook(uow, partner_id, webhook_id)
    now = now_of(runtime)
    row.active = False
    row.deleted_at = now
    # Kept (not deleted) so the partner's delivery history stays readable; nothing more goes out.
    await uow.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == row.id,
            WebhookDelivery.status == domain.DeliveryStatus.PENDING.value,
        )
        .values(status=domain.DeliveryStatus.CANCELLED.value, next_attempt_at=None)
    )
    # Those about an erased person are over now: their payload goes (delivery.erase_when_over).
    await uow.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == row.id,
            WebhookDelivery.status == domain.DeliveryStatus.CANCELLED.value,
            WebhookDelivery.person_id.in_(select(ErasedPerson.person_id)),
        )
        .values(**delivery.erased_columns(now))
    )
    await uow.commit()
    return Response(status_code=204)


# --- a person's access log and export (GDPR Art. 15), for the gateway -----------------------------------------
# This service holds no personal data but the webhook deliveries of events about a person (a pseudonymous id and
# the facts the event carries), and no route of it answers them (the delivery log shows no payload). Under
# /api/v1/persons/, which the gateway forwards to registration: only the gateway's own merge of the log and the
# export calls these, with the caller's signed identity, after registration answered that the caller reaches the
# person. This service knows no caseworker's team, so both are the privacy officers' and the admins'.


def data_protection_only(caller: CallerDep) -> None:
    roles = caller.roles
    if roles is not None and not roles & access.DATA_PROTECTION_ROLES:
        raise Problem(403, "This needs the privacy officer's or the admin's role.", kind="forbidden")


@persons_router.get(
    "/{person_id}/access-log", response_model=list[access.AccessLogEntry], dependencies=[Depends(data_protection_only)]
)
async def person_access_log(person_id: str, uow: UowDep) -> list[access.AccessLogEntry]:
    return await access.entries_for(uow.session, "partners", person_id)


@persons_router.get(
    "/{person_id}/export", response_model=access.ServiceExport, dependencies=[Depends(data_protection_only)]
)
async def person_export(
    person_id: str,
    uow: UowDep,
    caller: CallerDep,
    actor: ActorDep,
) -> access.ServiceExport:
    """The webhook deliveries of events about the person (with what they carried), and whether erasure reached
    this service; and its access log."""
    session = uow.session
    await access.audit_read(session, actor, "export", [person_id], access.purpose_of(caller.roles_header))
    await uow.commit()
    deliveries = (
        await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.person_id == person_id).order_by(WebhookDelivery.created_at)
        )
    ).all()
    erased = (await session.scalars(select(ErasedPerson).where(ErasedPerson.person_id == person_id))).all()
    return access.ServiceExport(
        service="partners",
        person_id=person_id,
        data={
            "webhook_deliveries": [access.row_dict(d) for d in deliveries],
            "erasure": [access.row_dict(e) for e in erased],
        },
        access_log=await access.entries_for(session, "partners", person_id),
    )
