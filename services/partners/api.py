"""HTTP routes of the partners service: the public directory, a partner's own settings, key checks.

Every read of keys, webhooks and deliveries, and every write to them, is the partner's own
business: ``X-Partner-Id`` (set by the gateway from a verified sign-in or API key) must name that
partner. The directory entry and its services are kept by the partner itself or by an admin
(``X-Role`` names ``admin``); only an admin adds a partner or changes its category. The gateway's
role policy checks the role first; these are the object-level checks behind it.
``/internal/...`` is not routed by the gateway.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from chassis import audit as access
from chassis.deps import ActorDep, CallerDep, ClockDep, PartnerDep, RuntimeDep, partner_of
from chassis.deps import UnitOfWorkDep as UowDep
from chassis.errors import Problem
from chassis.schemas import Page
from contracts.vocabulary import PartnerCategory, ServiceType
from services.partners import domain, workflow
from services.partners.runtime import PartnersRuntime, partners_of
from services.partners.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    CapacityUpdate,
    DeliveryRead,
    District,
    KeyVerified,
    KeyVerify,
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

PartnerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
ObjectId = Annotated[str, Path(min_length=1, max_length=40)]


async def get_partners_runtime(runtime: RuntimeDep) -> PartnersRuntime:
    return partners_of(runtime)


#: What the partners service adds to the runtime: the secret box, the deliverer, its settings' secrets.
PartnersDep = Annotated[PartnersRuntime, Depends(get_partners_runtime)]


async def own_partner(partner_id: PartnerId, calling: PartnerDep) -> str:
    """Object-level check: a partner acts only on itself. Checked before existence, so ids cannot be probed."""
    if calling != partner_id:
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
    return await own_partner(partner_id, partner_of(caller))


EntryKeeper = Annotated[str, Depends(keeper)]

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
    wanted = workflow.DirectoryFilter(service_type, category, language, district)
    return await workflow.list_partners(uow, wanted, page, page_size)


# --- meeting offers (Begegnung): public to read, kept by their partner or an admin ---------------


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
    wanted = workflow.MeetingFilter(language, kind, audience, district, childcare)
    return await workflow.list_meeting_offers(uow, wanted, page, page_size)


@router.get("/{partner_id}/meeting-offers", response_model=list[MeetingOfferRead])
async def list_own_meeting_offers(partner_id: EntryKeeper, uow: UowDep) -> list[MeetingOfferRead]:
    return await workflow.list_own_meeting_offers(uow, partner_id)


@router.post("/{partner_id}/meeting-offers", status_code=201, response_model=MeetingOfferRead)
async def publish_meeting_offer(
    partner_id: EntryKeeper, body: MeetingOfferCreate, uow: UowDep, clock: ClockDep
) -> MeetingOfferRead:
    return await workflow.publish_meeting_offer(uow, clock(), partner_id, body)


@router.patch("/{partner_id}/meeting-offers/{offer_id}", response_model=MeetingOfferRead)
async def update_meeting_offer(
    partner_id: EntryKeeper, offer_id: ObjectId, body: MeetingOfferUpdate, uow: UowDep, clock: ClockDep
) -> MeetingOfferRead:
    return await workflow.update_meeting_offer(uow, clock(), partner_id, offer_id, body)


@router.delete("/{partner_id}/meeting-offers/{offer_id}", status_code=204)
async def withdraw_meeting_offer(partner_id: EntryKeeper, offer_id: ObjectId, uow: UowDep, clock: ClockDep) -> Response:
    await workflow.withdraw_meeting_offer(uow, clock(), partner_id, offer_id)
    return Response(status_code=204)


@router.get("/export/hsds")
async def export_hsds(uow: UowDep) -> dict[str, Any]:
    """The directory as Open Referral HSDS 3.0-shaped JSON: organizations with services, locations, contacts."""
    return await workflow.export_hsds(uow)


@router.post("", status_code=201, response_model=PartnerRead, dependencies=[Depends(admin_only)])
async def register_partner(body: PartnerCreate, uow: UowDep, clock: ClockDep) -> PartnerRead:
    """Add a partner organisation with its services; referral learns it from the events."""
    return await workflow.register_partner(uow, clock(), body)


@router.get("/{partner_id}", response_model=PartnerRead)
async def read_partner(partner_id: PartnerId, uow: UowDep) -> PartnerRead:
    return await workflow.read_partner(uow, partner_id)


# --- a partner's own entry: profile, services, capacity -------------------------------------


@router.patch("/{partner_id}", response_model=PartnerRead)
async def update_partner(
    partner_id: EntryKeeper, body: PartnerUpdate, uow: UowDep, clock: ClockDep, caller: CallerDep
) -> PartnerRead:
    return await workflow.update_partner(uow, clock(), partner_id, body, by_admin=caller.has_any("admin"))


@router.put("/{partner_id}/services/{service_type}", response_model=ServiceRead)
async def offer_service(
    partner_id: EntryKeeper, service_type: ServiceType, body: ServiceOffer, uow: UowDep, clock: ClockDep
) -> ServiceRead:
    return await workflow.offer_service(uow, clock(), partner_id, service_type, body)


@router.delete("/{partner_id}/services/{service_type}", status_code=204)
async def withdraw_service(
    partner_id: EntryKeeper, service_type: ServiceType, uow: UowDep, clock: ClockDep
) -> Response:
    await workflow.withdraw_service(uow, clock(), partner_id, service_type)
    return Response(status_code=204)


@router.put("/{partner_id}/services/{service_type}/capacity", response_model=ServiceRead)
async def update_capacity(
    partner_id: EntryKeeper, service_type: ServiceType, body: CapacityUpdate, uow: UowDep, clock: ClockDep
) -> ServiceRead:
    return await workflow.update_capacity(uow, clock(), partner_id, service_type, body.free_places)


# --- API keys -------------------------------------------------------------------------------


@router.post("/{partner_id}/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(
    partner_id: OwnPartner, body: ApiKeyCreate, uow: UowDep, clock: ClockDep, partners: PartnersDep
) -> ApiKeyCreated:
    return await workflow.create_api_key(uow, clock(), partner_id, body, partners.api_key_pepper)


@router.get("/{partner_id}/api-keys", response_model=list[ApiKeyRead])
async def list_api_keys(partner_id: OwnPartner, uow: UowDep) -> list[ApiKeyRead]:
    return await workflow.list_api_keys(uow, partner_id)


@router.delete("/{partner_id}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(partner_id: OwnPartner, key_id: ObjectId, uow: UowDep, clock: ClockDep) -> Response:
    await workflow.revoke_api_key(uow, clock(), partner_id, key_id)
    return Response(status_code=204)


@internal_router.post("/api-keys/verify", response_model=KeyVerified)
async def verify_api_key(body: KeyVerify, uow: UowDep, clock: ClockDep, partners: PartnersDep) -> KeyVerified:
    """For the gateway: which partner a key belongs to and what it may do; 401 for anything else."""
    return await workflow.verify_api_key(uow, clock(), body.key, partners.api_key_pepper)


# --- webhooks -------------------------------------------------------------------------------


@router.post("/{partner_id}/webhooks", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    partner_id: OwnPartner, body: WebhookCreate, uow: UowDep, clock: ClockDep, partners: PartnersDep
) -> WebhookCreated:
    return await workflow.create_webhook(
        uow, clock(), partner_id, body, partners.secret_box, allow_private=partners.webhook_allow_private_addresses
    )


@router.get("/{partner_id}/webhooks", response_model=list[WebhookRead])
async def list_webhooks(partner_id: OwnPartner, uow: UowDep) -> list[WebhookRead]:
    return await workflow.list_webhooks(uow, partner_id)


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
    wanted = workflow.DeliveryFilter(status, webhook_id, event_id)
    return await workflow.list_deliveries(uow, partner_id, wanted, page, page_size)


@router.post("/{partner_id}/webhooks/deliveries/{delivery_id}/replay", response_model=DeliveryRead)
async def replay_delivery(
    partner_id: OwnPartner, delivery_id: ObjectId, uow: UowDep, clock: ClockDep, partners: PartnersDep
) -> DeliveryRead:
    return await workflow.replay_delivery(uow, clock(), partner_id, delivery_id, partners.deliverer.wake)


@router.post("/{partner_id}/webhooks/{webhook_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    partner_id: OwnPartner, webhook_id: ObjectId, uow: UowDep, clock: ClockDep, partners: PartnersDep
) -> SecretRotated:
    """A new secret now; the old one keeps signing alongside for the grace period (two signatures)."""
    return await workflow.rotate_secret(
        uow, clock(), partner_id, webhook_id, partners.secret_box, partners.webhook_secret_grace
    )


@router.delete("/{partner_id}/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(partner_id: OwnPartner, webhook_id: ObjectId, uow: UowDep, clock: ClockDep) -> Response:
    await workflow.delete_webhook(uow, clock(), partner_id, webhook_id)
    return Response(status_code=204)


# --- a person's access log and export (GDPR Art. 15), for the gateway -----------------------------------------
# This service holds no personal data but the webhook deliveries of events about a person (a pseudonymous id and
# the facts the event carries), and no route of it answers them (the delivery log shows no payload). Under
# /api/v1/persons/, which the gateway forwards to registration: only the gateway's own merge of the log and the
# export calls these, with the caller's signed identity, after registration answered that the caller reaches the
# person. This service knows no caseworker's team, so both are the privacy officers' and the admins'.


async def data_protection_only(caller: CallerDep) -> None:
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
async def person_export(person_id: str, uow: UowDep, caller: CallerDep, actor: ActorDep) -> access.ServiceExport:
    """The webhook deliveries of events about the person (with what they carried), and whether erasure reached
    this service; and its access log."""
    return await workflow.person_export(uow, person_id, actor, caller.roles_header)
