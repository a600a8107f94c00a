"""The partners service's use cases, shared by the HTTP routes and the demo seeding (issue 17).

Each takes the unit of work and the moment (and what else it needs: the pepper, the secret box), loads the rows,
asks :mod:`domain` what happens, stores the new state and publishes the facts as events in the same transaction
(cosmicpython's service layer). A missing or foreign object is a :class:`~chassis.errors.Problem`; a rule's
refusal is a :class:`domain.Refusal`, answered by :func:`problem_of` (the one place that maps them).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from chassis import audit as access
from chassis.clock import as_utc as aware
from chassis.cloudevents import ReceivedEvent
from chassis.db import page_of_rows
from chassis.errors import Problem
from chassis.schemas import Page
from chassis.uow import UnitOfWork
from contracts import partners as events
from contracts import referral as referral_events
from contracts.base import IntegrationEvent
from contracts.vocabulary import PartnerCategory, ServiceType
from services.partners import delivery, domain
from services.partners.delivery import SecretBox
from services.partners.models import (
    ApiKey,
    ErasedPerson,
    MeetingOffer,
    Partner,
    PartnerService,
    WebhookDelivery,
    WebhookSubscription,
)
from services.partners.schemas import (
    DELIVERABLE_EVENT_TYPES,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ContactPoint,
    DeliveryRead,
    KeyVerified,
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

# --- refusals and facts: the one place that maps them ---------------------------------------------------

#: A rule's refusal as the API answers it: status and Problem kind.
REFUSALS: dict[type[domain.Refusal], tuple[int, str]] = {
    domain.NotOffered: (404, "not-found"),
    domain.AdminOnly: (403, "forbidden"),
    domain.NotEmptied: (422, "validation"),
    domain.NotInFuture: (422, "validation"),
}


#: The code of a refusal's error at its field (``errors[].type``), for a form to word it in its own language.
FIELD_ERROR_TYPES: dict[type[domain.Refusal], str] = {domain.NotInFuture: "not-in-future"}


def problem_of(refusal: domain.Refusal) -> Problem:
    status, kind = REFUSALS[type(refusal)]
    if refusal.field is None:
        return Problem(status, str(refusal), kind=kind)
    error = {"location": ["body", refusal.field], "message": str(refusal), "type": FIELD_ERROR_TYPES[type(refusal)]}
    return Problem(status, str(refusal), kind=kind, errors=[error])


@contextlib.contextmanager
def answered() -> Iterator[None]:
    """Within it, a rule's refusal becomes the Problem the API answers with."""
    try:
        yield
    except domain.Refusal as refusal:
        raise problem_of(refusal) from refusal


def event_of(fact: domain.Fact) -> IntegrationEvent:
    """The event that tells a fact of the directory."""
    match fact:
        case domain.PartnerJoined(entry=entry, service_types=types):
            return events.PartnerRegistered(
                partner_id=entry.partner_id,
                name=entry.name,
                category=PartnerCategory(entry.category),
                languages=list(entry.languages),
                service_types=[ServiceType(t) for t in types],
            )
        case domain.EntryChanged(entry=entry):
            return events.PartnerUpdated(
                partner_id=entry.partner_id,
                name=entry.name,
                category=PartnerCategory(entry.category),
                languages=list(entry.languages),
                version=entry.version,
            )
        case domain.ServiceOffered(service=service):
            return events.ServiceOffered(
                partner_id=service.partner_id,
                service_type=ServiceType(service.service_type),
                name=service.terms.name,
                languages=list(service.terms.languages),
                response_days=service.terms.response_days,
                free_places=service.terms.free_places,
            )
        case domain.ServiceWithdrawn(partner_id=partner_id, service_type=service_type):
            return events.ServiceWithdrawn(partner_id=partner_id, service_type=ServiceType(service_type))
        case domain.CapacityChanged(partner_id=partner_id, service_type=service_type, free_places=places):
            return events.PartnerCapacityChanged(
                partner_id=partner_id, service_type=ServiceType(service_type), free_places=places
            )


async def publish(uow: UnitOfWork, facts: Iterable[domain.Fact]) -> None:
    told = [event_of(fact) for fact in facts]
    if told:
        await uow.publish(*told)


# --- rows as the domain sees them, and back ---------------------------------------------------------------


def entry_of(partner: Partner) -> domain.Entry:
    return domain.Entry(
        partner_id=partner.id,
        name=partner.name,
        category=partner.category,
        languages=tuple(partner.languages),
        version=partner.version,
    )


def terms_of(offer: ServiceOffer | PartnerService) -> domain.ServiceTerms:
    """The terms of an offer, as a request states them or as a stored service row holds them (same fields)."""
    return domain.ServiceTerms(
        name=offer.name,
        description=offer.description,
        eligibility=offer.eligibility,
        languages=tuple(offer.languages),
        response_days=offer.response_days,
        free_places=offer.free_places,
    )


def service_of(row: PartnerService | None) -> domain.Service | None:
    if row is None:
        return None
    return domain.Service(
        partner_id=row.partner_id, service_type=row.service_type, terms=terms_of(row), active=row.active
    )


def store_service(row: PartnerService, service: domain.Service, now: datetime) -> None:
    terms = service.terms
    row.name, row.description, row.eligibility = terms.name, terms.description, terms.eligibility
    row.languages, row.response_days, row.free_places = list(terms.languages), terms.response_days, terms.free_places
    row.active = service.active
    row.updated_at = now


# --- reads ------------------------------------------------------------------------------------------------


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


def partner_read(p: Partner, services: Sequence[PartnerService]) -> PartnerRead:
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


async def entry_read(uow: UnitOfWork, partner: Partner) -> PartnerRead:
    return partner_read(partner, (await active_services(uow, [partner.id])).get(partner.id, []))


@dataclass(frozen=True)
class DirectoryFilter:
    """The public directory's filters; None does not restrict."""

    service_type: ServiceType | None = None
    category: PartnerCategory | None = None
    language: str | None = None
    district: str | None = None


async def list_partners(uow: UnitOfWork, wanted: DirectoryFilter, page: int, page_size: int) -> Page[PartnerRead]:
    partners = (await uow.session.scalars(select(Partner).order_by(Partner.id))).all()
    services = await active_services(uow, [p.id for p in partners])
    # The directory is small (dozens of organisations): JSON filters in Python work on SQLite and PostgreSQL alike.
    matching = [
        p
        for p in partners
        if (wanted.category is None or p.category == wanted.category.value)
        and (
            wanted.service_type is None
            or any(s.service_type == wanted.service_type.value for s in services.get(p.id, []))
        )
        and (wanted.language is None or domain.speaks(p.languages, wanted.language))
        and (wanted.district is None or any(loc.get("district") == wanted.district for loc in p.locations))
    ]
    window = matching[(page - 1) * page_size : page * page_size]
    return Page(
        items=[partner_read(p, services.get(p.id, [])) for p in window],
        total=len(matching),
        page=page,
        page_size=page_size,
    )


async def read_partner(uow: UnitOfWork, partner_id: str) -> PartnerRead:
    return await entry_read(uow, await load_partner(uow, partner_id))


# --- the directory: entries and their services --------------------------------------------------------------


async def add_partner(uow: UnitOfWork, now: datetime, body: PartnerCreate) -> tuple[Partner, list[PartnerService]]:
    """Store a new partner with its services and announce it (no commit: the caller's unit of work decides)."""
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
    offered = [
        domain.Service(partner_id=partner.id, service_type=s.service_type.value, terms=terms_of(s))
        for s in body.services
    ]
    rows = []
    for service in offered:
        row = PartnerService(partner_id=partner.id, service_type=service.service_type)
        store_service(row, service, now)
        rows.append(row)
    uow.session.add_all(rows)
    await publish(uow, domain.join(entry_of(partner), offered))
    return partner, rows


async def register_partner(uow: UnitOfWork, now: datetime, body: PartnerCreate) -> PartnerRead:
    """Add a partner organisation with its services; referral learns it from the events."""
    exists = Problem(409, f"A partner with id {body.partner_id} exists already.", kind="partner-exists")
    if await uow.session.get(Partner, body.partner_id) is not None:
        raise exists
    partner, services = await add_partner(uow, now, body)
    try:
        await uow.commit()
    except IntegrityError as exc:  # another request added the same id in the meantime
        raise exists from exc
    return partner_read(partner, sorted(services, key=lambda s: s.service_type))


def check_category_change(body: PartnerUpdate, *, by_admin: bool) -> None:
    """Before anything is loaded: only an admin moves a partner to another category."""
    with answered():
        domain.entry_changes({}, body.model_dump(exclude_unset=True, include={"category"}), by_admin=by_admin)


async def update_partner(
    uow: UnitOfWork, now: datetime, partner_id: str, body: PartnerUpdate, *, by_admin: bool
) -> PartnerRead:
    check_category_change(body, by_admin=by_admin)
    partner = await load_partner(uow, partner_id)
    wanted = body.model_dump(exclude_unset=True, mode="json")
    with answered():
        changes = domain.entry_changes({f: getattr(partner, f) for f in wanted}, wanted, by_admin=by_admin)
    for field, value in changes.items():
        setattr(partner, field, value)
    entry, facts = domain.change_entry(entry_of(partner), bool(changes))
    if facts:
        partner.version = entry.version
        partner.updated_at = now
        await publish(uow, facts)
        await uow.commit()
    return await entry_read(uow, partner)


async def offer_service(
    uow: UnitOfWork, now: datetime, partner_id: str, service_type: ServiceType, body: ServiceOffer
) -> ServiceRead:
    await load_partner(uow, partner_id)
    row = await uow.session.get(PartnerService, (partner_id, service_type.value))
    service, facts = domain.offer(service_of(row), partner_id, service_type.value, terms_of(body))
    if not facts and row is not None:
        return service_read(row)  # PUT is idempotent: the same offer again publishes nothing
    if row is None:
        row = PartnerService(partner_id=partner_id, service_type=service_type.value)
        uow.session.add(row)
    store_service(row, service, now)
    await publish(uow, facts)
    await uow.commit()
    return service_read(row)


async def _service_row(uow: UnitOfWork, partner_id: str, service_type: ServiceType) -> PartnerService:
    row = await uow.session.get(PartnerService, (partner_id, service_type.value))
    if row is None:
        raise problem_of(domain.NotOffered(f"{partner_id} does not offer {service_type.value}."))
    return row


async def withdraw_service(uow: UnitOfWork, now: datetime, partner_id: str, service_type: ServiceType) -> None:
    row = await _service_row(uow, partner_id, service_type)
    with answered():
        service, facts = domain.withdraw(service_of(row), partner_id, service_type.value)
    store_service(row, service, now)
    await publish(uow, facts)
    await uow.commit()


async def update_capacity(
    uow: UnitOfWork, now: datetime, partner_id: str, service_type: ServiceType, free_places: int | None
) -> ServiceRead:
    row = await _service_row(uow, partner_id, service_type)
    with answered():
        service, facts = domain.change_capacity(service_of(row), partner_id, service_type.value, free_places)
    if facts:
        store_service(row, service, now)
        await publish(uow, facts)
        await uow.commit()
    return service_read(row)


# --- meeting offers (Begegnung) ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class MeetingFilter:
    """The public list's filters; None does not restrict."""

    language: str | None = None
    kind: domain.MeetingKind | None = None
    audience: domain.MeetingAudience | None = None
    district: str | None = None
    childcare: bool | None = None


async def list_meeting_offers(
    uow: UnitOfWork, wanted: MeetingFilter, page: int, page_size: int
) -> Page[MeetingOfferRead]:
    offers = await meeting_offers_of(uow)
    matching = [
        o
        for o in offers
        if domain.meeting_offer_matches(
            o.languages,
            o.kind.value,
            o.audience.value,
            language=wanted.language,
            wanted_kind=wanted.kind.value if wanted.kind else None,
            wanted_audience=wanted.audience.value if wanted.audience else None,
        )
        and (wanted.district is None or o.district == wanted.district)
        and (wanted.childcare is None or o.childcare == wanted.childcare)
    ]
    window = matching[(page - 1) * page_size : page * page_size]
    return Page(items=window, total=len(matching), page=page, page_size=page_size)


async def list_own_meeting_offers(uow: UnitOfWork, partner_id: str) -> list[MeetingOfferRead]:
    await load_partner(uow, partner_id)
    return await meeting_offers_of(uow, partner_id)


def new_meeting_offer(partner_id: str, body: MeetingOfferCreate | dict[str, Any], now: datetime) -> MeetingOffer:
    fields = body.model_dump(mode="json") if isinstance(body, MeetingOfferCreate) else body
    return MeetingOffer(
        id=str(uuid.uuid4()), partner_id=partner_id, **fields, active=True, created_at=now, updated_at=now
    )


async def publish_meeting_offer(
    uow: UnitOfWork, now: datetime, partner_id: str, body: MeetingOfferCreate
) -> MeetingOfferRead:
    partner = await load_partner(uow, partner_id)
    offer = new_meeting_offer(partner_id, body, now)
    uow.session.add(offer)
    await uow.commit()
    return meeting_offer_read(offer, partner.name)


#: The rows a partner owns and reaches by id under its own path.
Owned = TypeVar("Owned", ApiKey, WebhookSubscription, WebhookDelivery, MeetingOffer)


async def own_row(uow: UnitOfWork, model: type[Owned], row_id: str, partner_id: str, missing: str) -> Owned:
    """The partner's own row, else 404 ``missing``: another partner's row is "not found" under this partner (no
    probing), and so is a deleted one (rows with an ``active`` flag are deleted by clearing it)."""
    row = await uow.session.get(model, row_id)
    if row is None or row.partner_id != partner_id or not getattr(row, "active", True):
        raise Problem(404, missing, kind="not-found")
    return row


async def load_meeting_offer(uow: UnitOfWork, partner_id: str, offer_id: str) -> MeetingOffer:
    missing = f"No meeting offer {offer_id} of partner {partner_id}."
    return await own_row(uow, MeetingOffer, offer_id, partner_id, missing)


async def update_meeting_offer(
    uow: UnitOfWork, now: datetime, partner_id: str, offer_id: str, body: MeetingOfferUpdate
) -> MeetingOfferRead:
    partner = await load_partner(uow, partner_id)
    offer = await load_meeting_offer(uow, partner_id, offer_id)
    wanted = body.model_dump(exclude_unset=True, mode="json")
    with answered():
        changes = domain.meeting_offer_changes({f: getattr(offer, f) for f in wanted}, wanted)
    if changes:
        for field, value in changes.items():
            setattr(offer, field, value)
        offer.updated_at = now
        await uow.commit()
    return meeting_offer_read(offer, partner.name)


async def withdraw_meeting_offer(uow: UnitOfWork, now: datetime, partner_id: str, offer_id: str) -> None:
    await load_partner(uow, partner_id)
    offer = await load_meeting_offer(uow, partner_id, offer_id)
    offer.active = False
    offer.updated_at = now
    await uow.commit()


# --- the directory as Open Referral HSDS ------------------------------------------------------------------


def _hsds_id(*parts: str) -> str:
    # HSDS ids are UUIDs; derived from our ids they stay the same from one export to the next.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://integration.landsberg.de/partners/" + "/".join(parts)))


def _hsds_service(p: Partner, org_id: str, s: PartnerService) -> dict[str, Any]:
    updated = aware(s.updated_at)
    return {
        "id": _hsds_id(p.id, s.service_type),
        "organization_id": org_id,
        "name": s.name,
        "description": s.description,
        "status": "active",
        "eligibility_description": s.eligibility,
        "alert": None,
        "languages": [{"id": _hsds_id(p.id, s.service_type, "language", code), "code": code} for code in s.languages],
        "capacities": []
        if s.free_places is None
        else [
            {
                "id": _hsds_id(p.id, s.service_type, "capacity"),
                "available": s.free_places,
                "unit": {"name": "places"},
                "updated": updated.isoformat() if updated else None,
            }
        ],
        "attributes": [
            {"label": "service_type", "value": s.service_type},
            {"label": "response_days", "value": str(s.response_days)},
        ],
    }


def _hsds_location(p: Partner, i: int, loc: dict[str, Any]) -> dict[str, Any]:
    return {
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


def _hsds_contact(p: Partner, i: int, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _hsds_id(p.id, "contact", str(i)),
        "title": c.get("title"),
        "department": c.get("department"),
        "email": c.get("email"),
        "phones": [{"number": c["phone"]}] if c.get("phone") else [],
    }


async def export_hsds(uow: UnitOfWork) -> dict[str, Any]:
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
                "services": [_hsds_service(p, org_id, s) for s in services.get(p.id, [])],
                "locations": [_hsds_location(p, i, loc) for i, loc in enumerate(p.locations)],
                "contacts": [_hsds_contact(p, i, c) for i, c in enumerate(p.contacts)],
                "languages": [{"code": code} for code in p.languages],
                "attributes": [{"label": "category", "value": p.category}],
            }
        )
    return {"hsds_version": "3.0", "organizations": organizations}


# --- API keys ---------------------------------------------------------------------------------------------


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


async def create_api_key(
    uow: UnitOfWork, now: datetime, partner_id: str, body: ApiKeyCreate, pepper: bytes
) -> ApiKeyCreated:
    await load_partner(uow, partner_id)
    with answered():
        domain.check_expiry(body.expires_at, now)
    issued = domain.issue_api_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        partner_id=partner_id,
        name=body.name,
        prefix=issued.prefix,
        key_hash=domain.hash_api_key(issued.key, pepper),
        scopes=[s.value for s in body.scopes],
        created_at=now,
        expires_at=body.expires_at,
    )
    uow.session.add(row)
    await uow.commit()
    return ApiKeyCreated(**key_read(row), key=issued.key)


async def list_api_keys(uow: UnitOfWork, partner_id: str) -> list[ApiKeyRead]:
    rows = (
        await uow.session.scalars(select(ApiKey).where(ApiKey.partner_id == partner_id).order_by(ApiKey.created_at))
    ).all()
    return [ApiKeyRead(**key_read(k)) for k in rows]


async def revoke_api_key(uow: UnitOfWork, now: datetime, partner_id: str, key_id: str) -> None:
    row = await own_row(uow, ApiKey, key_id, partner_id, f"No API key {key_id}.")
    if row.revoked_at is None:  # revoking twice keeps the first time
        row.revoked_at = now
        await uow.commit()


async def verify_api_key(uow: UnitOfWork, now: datetime, key: str, pepper: bytes) -> KeyVerified:
    """For the gateway: which partner a key belongs to and what it may do; 401 for anything else.

    Every refusal reads the same to the caller, so the answer does not tell a guesser which part was right.
    """
    refused = Problem(401, "The API key is not valid.", kind="invalid-api-key", headers={"WWW-Authenticate": "ApiKey"})
    prefix = domain.api_key_prefix(key)
    if prefix is None:
        raise refused
    row = await uow.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or not domain.api_key_matches(key, pepper, row.key_hash):
        raise refused
    if domain.key_refusal(revoked_at=aware(row.revoked_at), expires_at=aware(row.expires_at), now=now):
        raise refused
    row.last_used_at = now
    await uow.commit()
    return KeyVerified(partner_id=row.partner_id, key_id=row.id, scopes=row.scopes, expires_at=aware(row.expires_at))


# --- webhooks ---------------------------------------------------------------------------------------------


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
    return await own_row(uow, WebhookSubscription, webhook_id, partner_id, f"No webhook {webhook_id}.")


async def create_webhook(
    uow: UnitOfWork, now: datetime, partner_id: str, body: WebhookCreate, box: SecretBox, *, allow_private: bool
) -> WebhookCreated:
    await load_partner(uow, partner_id)
    try:
        await delivery.check_url(body.url, allow_private=allow_private)
    except domain.UnsafeWebhookUrl as exc:
        raise Problem(422, f"This URL cannot receive webhooks: {exc}.", kind="unsafe-webhook-url") from exc
    secret = domain.new_webhook_secret()
    row = WebhookSubscription(
        id=str(uuid.uuid4()),
        partner_id=partner_id,
        url=body.url,
        description=body.description,
        event_types=list(body.event_types),
        secret_encrypted=box.seal(secret),
        active=True,
        created_at=now,
    )
    uow.session.add(row)
    await uow.commit()
    return WebhookCreated(**webhook_read(row), secret=secret)


async def list_webhooks(uow: UnitOfWork, partner_id: str) -> list[WebhookRead]:
    rows = (
        await uow.session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.partner_id == partner_id, WebhookSubscription.active.is_(True))
            .order_by(WebhookSubscription.created_at)
        )
    ).all()
    return [WebhookRead(**webhook_read(s)) for s in rows]


@dataclass(frozen=True)
class DeliveryFilter:
    status: domain.DeliveryStatus | None = None
    webhook_id: str | None = None
    event_id: str | None = None


async def list_deliveries(
    uow: UnitOfWork, partner_id: str, wanted: DeliveryFilter, page: int, page_size: int
) -> Page[DeliveryRead]:
    filters = [WebhookDelivery.partner_id == partner_id]
    if wanted.status:
        filters.append(WebhookDelivery.status == wanted.status.value)
    if wanted.webhook_id:
        filters.append(WebhookDelivery.subscription_id == wanted.webhook_id)
    if wanted.event_id:
        filters.append(WebhookDelivery.event_id == wanted.event_id)
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id)
    rows, total = await page_of_rows(uow.session, WebhookDelivery, filters, order, page, page_size)
    return Page(
        items=[DeliveryRead(**delivery.delivery_fields(d)) for d in rows], total=total, page=page, page_size=page_size
    )


async def replay_delivery(
    uow: UnitOfWork, now: datetime, partner_id: str, delivery_id: str, wake: Callable[[], None]
) -> DeliveryRead:
    row = await own_row(uow, WebhookDelivery, delivery_id, partner_id, f"No delivery {delivery_id}.")
    if row.status == domain.DeliveryStatus.PENDING.value:
        raise Problem(409, "This delivery is still being attempted.", kind="delivery-pending")
    if row.erased_at is not None:
        raise Problem(410, "The person this event was about has been erased (GDPR Art. 17).", kind="erased")
    subscription = await uow.session.get(WebhookSubscription, row.subscription_id)
    if subscription is None or not subscription.active:
        raise Problem(409, "The webhook of this delivery was deleted.", kind="webhook-deleted")
    delivery.replay(row, now)
    await uow.commit()
    wake()
    return DeliveryRead(**delivery.delivery_fields(row))


async def rotate_secret(
    uow: UnitOfWork, now: datetime, partner_id: str, webhook_id: str, box: SecretBox, grace: timedelta
) -> SecretRotated:
    """A new secret now; the old one keeps signing alongside for the grace period (two signatures)."""
    row = await load_webhook(uow, partner_id, webhook_id)
    secret = domain.new_webhook_secret()
    valid_until = now + grace
    row.previous_secret_encrypted = row.secret_encrypted
    row.previous_secret_valid_until = valid_until
    row.secret_encrypted = box.seal(secret)
    await uow.commit()
    return SecretRotated(webhook_id=row.id, secret=secret, previous_secret_valid_until=valid_until)


async def delete_webhook(uow: UnitOfWork, now: datetime, partner_id: str, webhook_id: str) -> None:
    row = await load_webhook(uow, partner_id, webhook_id)
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


# --- events that concern a partner become webhook deliveries (services/partners/handlers.py) ---------------

#: Referral event types by name: their fact is the referral's change, not the CloudEvent that carries it.
REFERRAL_EVENTS: dict[str, type[referral_events._ReferralEvent]] = {
    model.event_type: model for model in referral_events.EVENTS if issubclass(model, referral_events._ReferralEvent)
}


def fact_of(event: ReceivedEvent) -> str:
    """The fact an event tells: a referral event's fact id, else its ce_id (one fact per CloudEvent)."""
    model = REFERRAL_EVENTS.get(event.type)
    return model.model_validate(event.data).fact_id() if model is not None else event.id


def new_delivery_id() -> str:
    # Standard Webhooks' own examples use "msg_" ids; unique and stable across retries.
    return "msg_" + uuid.uuid4().hex


@dataclass
class Recipients:
    """For the events of a consumer's batch, loaded at once: the concerned partners' active webhooks and which of them
    got a delivery of each event's fact already (two queries per batch, not two per event)."""

    session: object
    #: Event id -> the fact it tells, for the events whose partner is concerned.
    facts: dict[str, str]
    webhooks: dict[str, list[WebhookSubscription]]
    #: (webhook, fact) pairs with a delivery, those this batch adds included.
    delivered: set[tuple[str, str]]


async def recipients(uow: UnitOfWork, event: ReceivedEvent) -> Recipients:
    """The batch's :class:`Recipients` (kept in the unit of work's cache, which a rolled-back savepoint empties)."""
    known = uow.cache.get("partners.recipients")
    if isinstance(known, Recipients) and known.session is uow.session and event.id in known.facts:
        return known
    events = uow.batch if any(e.id == event.id for e in uow.batch) else [event]
    partners: dict[str, str] = {}  # event id -> partner
    facts: dict[str, str] = {}
    for each in events:
        partner_id = domain.concerned_partner(each.data)
        if partner_id is None or (each.id != event.id and each.type not in DELIVERABLE_EVENT_TYPES):
            continue
        try:
            facts[each.id] = fact_of(each)
        except ValueError:  # a malformed event fails in its own handler, not in those of the others in its batch
            if each.id == event.id:
                raise
            continue
        partners[each.id] = partner_id
    webhooks: dict[str, list[WebhookSubscription]] = {}
    if partners:
        found = await uow.session.scalars(
            select(WebhookSubscription).where(
                WebhookSubscription.partner_id.in_(set(partners.values())), WebhookSubscription.active.is_(True)
            )
        )
        for subscription in found:
            webhooks.setdefault(subscription.partner_id, []).append(subscription)
    delivered: set[tuple[str, str]] = set()
    if webhooks:
        rows = await uow.session.execute(
            select(WebhookDelivery.subscription_id, WebhookDelivery.fact_id).where(
                WebhookDelivery.subscription_id.in_([s.id for subs in webhooks.values() for s in subs]),
                WebhookDelivery.fact_id.in_(set(facts.values())),
            )
        )
        delivered = {(str(subscription_id), str(fact_id)) for subscription_id, fact_id in rows.all()}
    uow.cache["partners.recipients"] = found_now = Recipients(uow.session, facts, webhooks, delivered)
    return found_now


async def fan_out(uow: UnitOfWork, now: datetime, event: ReceivedEvent) -> int:
    """One delivery per subscription of the concerned partner to this event type, once per fact; how many."""
    partner_id = domain.concerned_partner(event.data)
    if partner_id is None:
        return 0  # e.g. a referral to a category rather than a named partner
    known = await recipients(uow, event)
    fact_id = known.facts[event.id]
    wanted = [
        s
        for s in known.webhooks.get(partner_id, [])
        if event.type in s.event_types and (s.id, fact_id) not in known.delivered
    ]
    if not wanted:
        return 0
    body = domain.webhook_body(event_type=event.type, event_id=event.id, time=event.time, data=event.data)
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    person_id = event.data.get("person_id")
    for subscription in wanted:
        known.delivered.add((subscription.id, fact_id))
        uow.session.add(
            WebhookDelivery(
                id=new_delivery_id(),
                subscription_id=subscription.id,
                partner_id=partner_id,
                event_id=event.id,
                fact_id=fact_id,
                event_type=event.type,
                payload=payload,
                person_id=person_id if isinstance(person_id, str) else None,
                status=domain.DeliveryStatus.PENDING.value,
                attempts=0,
                replays=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
    return len(wanted)


async def erase_person(uow: UnitOfWork, clock: Callable[[], datetime], person_id: str, erased_at: datetime) -> None:
    """Registration erased a person: the finished deliveries about them lose payload and person now, those under
    way once they are over (the tombstone); the stored answers to idempotent writes about them go too."""
    session = uow.session
    if await session.get(ErasedPerson, person_id) is None:
        session.add(ErasedPerson(person_id=person_id, erased_at=erased_at))
    await session.flush()  # the tombstone first: a delivery finishing from now on finds it
    # Locked: a delivery finishing meanwhile waits for this transaction, then finds the tombstone
    # (delivery.erase_when_over), or is finished before, and then emptied here.
    ids = (
        await session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.person_id == person_id).with_for_update()
        )
    ).all()
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.person_id == person_id,
            WebhookDelivery.status != domain.DeliveryStatus.PENDING.value,
        )
        .values(**delivery.erased_columns(clock()))  # the moment after the lock was got
    )
    await uow.forget_stored_responses(person_id, *ids)


# --- a person's export (GDPR Art. 15), for the gateway ---------------------------------------------------


async def person_export(uow: UnitOfWork, person_id: str, actor: str, roles_header: str | None) -> access.ServiceExport:
    """The webhook deliveries of events about the person (with what they carried), and whether erasure reached
    this service; and its access log."""
    session = uow.session
    await access.audit_read(session, actor, "export", [person_id], access.purpose_of(roles_header))
    await uow.commit()
    deliveries = select(WebhookDelivery).where(WebhookDelivery.person_id == person_id)
    return access.ServiceExport(
        service="partners",
        person_id=person_id,
        data={
            "webhook_deliveries": await access.rows_of(session, deliveries.order_by(WebhookDelivery.created_at)),
            "erasure": await access.rows_of(session, select(ErasedPerson).where(ErasedPerson.person_id == person_id)),
        },
        access_log=await access.entries_for(session, "partners", person_id),
    )


# --- the demo directory -----------------------------------------------------------------------------------


async def seed_directory(
    uow: UnitOfWork, now: datetime, partners: Iterable[PartnerCreate], meeting_offers: Iterable[dict[str, Any]]
) -> bool:
    """Partners (with their services) and meeting offers into an empty directory, each partner announced like any
    new one; False when the directory held partners already (nothing done)."""
    if await uow.session.scalar(select(func.count()).select_from(Partner)):
        return False
    for partner in partners:
        await add_partner(uow, now, partner)
    await uow.session.flush()
    for offer in meeting_offers:
        fields = {k: v for k, v in offer.items() if k != "partner_id"}
        uow.session.add(new_meeting_offer(offer["partner_id"], fields, now))
    await uow.commit()
    return True
