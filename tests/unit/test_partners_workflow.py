"""The partners service's use cases (services/partners/workflow.py) on the in-memory unit of work: what each
decides and publishes. A refusal publishes nothing and stores nothing. The HTTP edges, PostgreSQL and the broker
are proved by tests/service/test_partners_api.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chassis.clock import as_utc
from chassis.cloudevents import ReceivedEvent
from chassis.errors import Problem
from chassis.memory import InMemoryUnitOfWork
from contracts import partners as events
from contracts import referral as referral_events
from contracts.vocabulary import ConsentPurpose, PartnerCategory, ServiceType
from services.partners import directory, domain, workflow
from services.partners.delivery import SecretBox
from services.partners.models import Base, WebhookDelivery
from services.partners.schemas import (
    ApiKeyCreate,
    MeetingOfferCreate,
    MeetingOfferUpdate,
    PartnerCreate,
    PartnerUpdate,
    ServiceOffer,
    WebhookCreate,
)
from services.referral import directory as referral_directory

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
PEPPER = b"pepper"
BOX = SecretBox("a test key")
COURSE = ServiceType.INTEGRATION_COURSE
CHILDCARE = ServiceType.COURSE_WITH_CHILDCARE
REFERRAL_SENT = "de.landsberg.integration.referral.referral_sent.v1"


def new_partner(partner_id: str = "kolping", **changes: Any) -> PartnerCreate:
    body: dict[str, Any] = {
        "partner_id": partner_id,
        "name": "Kolping-Bildungswerk",
        "category": "adult_education",
        "languages": ["de", "en"],
        "services": [{"service_type": COURSE.value, "name": "Integrationskurs", "languages": ["de"], "free_places": 8}],
    }
    return PartnerCreate.model_validate(body | changes)


def offer(**changes: Any) -> ServiceOffer:
    return ServiceOffer.model_validate({"name": "Integrationskurs", "languages": ["de"], "free_places": 8} | changes)


@pytest.fixture
async def uow() -> AsyncIterator[InMemoryUnitOfWork]:
    unit = await InMemoryUnitOfWork.create(Base.metadata)
    yield unit
    await unit.close()


@pytest.fixture
async def kolping(uow: InMemoryUnitOfWork) -> InMemoryUnitOfWork:
    """Kolping in the directory, its registration's events already counted."""
    async with uow:
        await workflow.register_partner(uow, NOW, new_partner())
    uow.published.clear()
    return uow


async def refused(uow: InMemoryUnitOfWork, status: int, kind: str, call: Any) -> Problem:
    """``call(uow)`` is refused with this Problem, and nothing is published or committed."""
    published, commits = list(uow.published), uow.commits
    with pytest.raises(Problem) as caught:
        async with uow:
            await call(uow)
    assert (caught.value.status, caught.value.kind) == (status, kind)
    assert uow.published == published and uow.commits == commits
    return caught.value


# --- the directory ------------------------------------------------------------------------------------------


async def test_a_new_partner_is_announced_with_each_of_its_services(uow: InMemoryUnitOfWork) -> None:
    async with uow:
        read = await workflow.register_partner(uow, NOW, new_partner())
    assert read.version == 1 and [s.service_type for s in read.services] == [COURSE]
    assert uow.published == [
        events.PartnerRegistered(
            partner_id="kolping",
            name="Kolping-Bildungswerk",
            category=PartnerCategory.ADULT_EDUCATION,
            languages=["de", "en"],
            service_types=[COURSE],
        ),
        events.ServiceOffered(
            partner_id="kolping",
            service_type=COURSE,
            name="Integrationskurs",
            languages=["de"],
            response_days=5,
            free_places=8,
        ),
    ]
    async with uow:
        assert (await workflow.read_partner(uow, "kolping")).services[0].free_places == 8


async def test_a_partner_id_is_registered_once(kolping: InMemoryUnitOfWork) -> None:
    await refused(kolping, 409, "partner-exists", lambda u: workflow.register_partner(u, NOW, new_partner()))


async def test_an_entry_change_bumps_the_version_and_is_announced(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        read = await workflow.update_partner(
            kolping, NOW, "kolping", PartnerUpdate(name="Kolping Landsberg", description="neu"), by_admin=False
        )
    assert (read.name, read.description, read.version) == ("Kolping Landsberg", "neu", 2)
    assert kolping.published == [
        events.PartnerUpdated(
            partner_id="kolping",
            name="Kolping Landsberg",
            category=PartnerCategory.ADULT_EDUCATION,
            languages=["de", "en"],
            version=2,
        )
    ]


async def test_the_same_entry_again_changes_nothing(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        read = await workflow.update_partner(
            kolping, NOW, "kolping", PartnerUpdate(name="Kolping-Bildungswerk"), by_admin=True
        )
    assert read.version == 1 and kolping.published == []


async def test_only_an_admin_moves_a_partner_to_another_category(kolping: InMemoryUnitOfWork) -> None:
    change = PartnerUpdate(category=PartnerCategory.CHARITY)
    # Before existence: a partner cannot probe ids with it.
    await refused(
        kolping, 403, "forbidden", lambda u: workflow.update_partner(u, NOW, "nobody", change, by_admin=False)
    )
    await refused(
        kolping, 403, "forbidden", lambda u: workflow.update_partner(u, NOW, "kolping", change, by_admin=False)
    )
    async with kolping:
        read = await workflow.update_partner(kolping, NOW, "kolping", change, by_admin=True)
    assert read.category is PartnerCategory.CHARITY and kolping.types() == [events.PartnerUpdated.event_type]


async def test_a_required_field_is_not_emptied(kolping: InMemoryUnitOfWork) -> None:
    emptied = PartnerUpdate.model_validate({"name": None})
    await refused(
        kolping, 422, "validation", lambda u: workflow.update_partner(u, NOW, "kolping", emptied, by_admin=True)
    )
    await refused(
        kolping, 404, "not-found", lambda u: workflow.update_partner(u, NOW, "nobody", emptied, by_admin=True)
    )


async def test_a_new_service_is_offered_and_its_places_told(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        read = await workflow.offer_service(kolping, NOW, "kolping", CHILDCARE, offer(free_places=3))
    assert read.free_places == 3
    assert kolping.types() == [events.ServiceOffered.event_type, events.PartnerCapacityChanged.event_type]
    assert kolping.published[1] == events.PartnerCapacityChanged(
        partner_id="kolping", service_type=CHILDCARE, free_places=3
    )


async def test_the_same_offer_again_publishes_nothing(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        await workflow.offer_service(kolping, NOW, "kolping", COURSE, offer())
    assert kolping.published == [] and kolping.commits == 1


async def test_new_terms_with_the_same_places_tell_no_capacity(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        await workflow.offer_service(kolping, NOW, "kolping", COURSE, offer(response_days=3))
    assert kolping.types() == [events.ServiceOffered.event_type]


async def test_an_unknown_partner_offers_nothing(uow: InMemoryUnitOfWork) -> None:
    await refused(uow, 404, "not-found", lambda u: workflow.offer_service(u, NOW, "nobody", COURSE, offer()))


async def test_a_withdrawn_service_has_no_places_and_can_be_offered_again(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        await workflow.withdraw_service(kolping, NOW, "kolping", COURSE)
    assert kolping.published == [
        events.ServiceWithdrawn(partner_id="kolping", service_type=COURSE),
        events.PartnerCapacityChanged(partner_id="kolping", service_type=COURSE, free_places=0),
    ]
    async with kolping:
        assert (await workflow.read_partner(kolping, "kolping")).services == []
    kolping.published.clear()
    await refused(kolping, 404, "not-found", lambda u: workflow.withdraw_service(u, NOW, "kolping", COURSE))
    await refused(kolping, 404, "not-found", lambda u: workflow.update_capacity(u, NOW, "kolping", COURSE, 4))
    async with kolping:  # offered again: the same terms are news after a withdrawal, its places too (from 0)
        await workflow.offer_service(kolping, NOW, "kolping", COURSE, offer())
    assert kolping.types() == [events.ServiceOffered.event_type, events.PartnerCapacityChanged.event_type]


async def test_capacity_changes_are_told_once(kolping: InMemoryUnitOfWork) -> None:
    later = NOW + timedelta(hours=1)
    async with kolping:
        read = await workflow.update_capacity(kolping, later, "kolping", COURSE, 2)
    assert read.free_places == 2 and read.updated_at == later
    assert kolping.published == [
        events.PartnerCapacityChanged(partner_id="kolping", service_type=COURSE, free_places=2)
    ]
    async with kolping:
        await workflow.update_capacity(kolping, later, "kolping", COURSE, 2)
    assert len(kolping.published) == 1
    await refused(kolping, 404, "not-found", lambda u: workflow.update_capacity(u, NOW, "kolping", CHILDCARE, 1))


async def test_the_directory_filters_and_the_hsds_export(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        await workflow.register_partner(kolping, NOW, new_partner("caritas", category="charity", languages=["ar"]))
        courses = await workflow.list_partners(kolping, workflow.DirectoryFilter(service_type=COURSE), 1, 50)
        arabic = await workflow.list_partners(kolping, workflow.DirectoryFilter(language="ar-SY"), 1, 50)
        paged = await workflow.list_partners(kolping, workflow.DirectoryFilter(), 2, 1)
        hsds = await workflow.export_hsds(kolping)
    assert [p.partner_id for p in courses.items] == ["caritas", "kolping"]
    assert [p.partner_id for p in arabic.items] == ["caritas"]
    assert (paged.total, [p.partner_id for p in paged.items]) == (2, ["kolping"])
    organisations = {o["identifiers"][0]["identifier"]: o for o in hsds["organizations"]}
    assert organisations["kolping"]["services"][0]["capacities"][0]["available"] == 8


async def test_the_demo_directory_is_seeded_once_and_announced(uow: InMemoryUnitOfWork) -> None:
    partners = directory.LANDSBERG_DIRECTORY
    async with uow:
        assert await workflow.seed_directory(uow, NOW, partners, directory.LANDSBERG_MEETING_OFFERS)
    registered = [e for e in uow.published if isinstance(e, events.PartnerRegistered)]
    offered = [e for e in uow.published if isinstance(e, events.ServiceOffered)]
    assert {e.partner_id for e in registered} == {p.partner_id for p in partners}
    assert len(offered) == sum(len(p.services) for p in partners)
    async with uow:
        assert not await workflow.seed_directory(uow, NOW, partners, directory.LANDSBERG_MEETING_OFFERS)
        offers = await workflow.list_meeting_offers(uow, workflow.MeetingFilter(), 1, 200)
    assert offers.total == len(directory.LANDSBERG_MEETING_OFFERS) and uow.commits == 1


async def test_referral_starts_with_what_the_seeded_directory_announces(uow: InMemoryUnitOfWork) -> None:
    """One source: referral's start-up offers (services/referral/directory.py) are exactly what the partners
    service's seeding tells it in ``service_offered`` events, so the events change nothing when they arrive."""
    async with uow:
        await workflow.seed_directory(uow, NOW, directory.LANDSBERG_DIRECTORY, [])
    categories = {e.partner_id: e.category.value for e in uow.published if isinstance(e, events.PartnerRegistered)}
    told = [
        {
            "partner_id": e.partner_id,
            "partner_name": e.name,
            "partner_category": categories[e.partner_id],
            "service_type": e.service_type.value,
            "free_places": e.free_places,
            "languages": e.languages,
            "response_days": e.response_days,
        }
        for e in uow.published
        if isinstance(e, events.ServiceOffered)
    ]
    assert told == referral_directory.LANDSBERG_PARTNER_OFFERS


# --- meeting offers -----------------------------------------------------------------------------------------


async def test_a_meeting_offer_is_kept_by_its_partner(kolping: InMemoryUnitOfWork) -> None:
    body = MeetingOfferCreate.model_validate(
        {"kind": "language_cafe", "title": "Sprachcafé", "languages": ["de", "uk"], "place_name": "Kolpinghaus"}
    )
    async with kolping:
        created = await workflow.publish_meeting_offer(kolping, NOW, "kolping", body)
    assert created.partner_name == "Kolping-Bildungswerk"
    async with kolping:
        changed = await workflow.update_meeting_offer(
            kolping, NOW, "kolping", created.offer_id, MeetingOfferUpdate(childcare=True)
        )
        found = await workflow.list_meeting_offers(kolping, workflow.MeetingFilter(language="uk", childcare=True), 1, 9)
    assert changed.childcare and [o.offer_id for o in found.items] == [created.offer_id]
    emptied = MeetingOfferUpdate.model_validate({"title": None})
    await refused(
        kolping,
        422,
        "validation",
        lambda u: workflow.update_meeting_offer(u, NOW, "kolping", created.offer_id, emptied),
    )
    async with kolping:
        await workflow.register_partner(kolping, NOW, new_partner("caritas"))
    kolping.published.clear()
    await refused(  # another partner's offer is not found under it
        kolping, 404, "not-found", lambda u: workflow.withdraw_meeting_offer(u, NOW, "caritas", created.offer_id)
    )
    async with kolping:
        await workflow.withdraw_meeting_offer(kolping, NOW, "kolping", created.offer_id)
        assert await workflow.list_own_meeting_offers(kolping, "kolping") == []
    assert kolping.published == []  # meeting offers are no events


# --- API keys -----------------------------------------------------------------------------------------------


async def test_an_api_key_verifies_until_it_is_revoked(kolping: InMemoryUnitOfWork) -> None:
    async with kolping:
        created = await workflow.create_api_key(
            kolping, NOW, "kolping", ApiKeyCreate.model_validate({"name": "CRM", "scopes": ["referrals:read"]}), PEPPER
        )
        verified = await workflow.verify_api_key(kolping, NOW, created.key, PEPPER)
    assert (verified.partner_id, verified.scopes) == ("kolping", ["referrals:read"])
    async with kolping:
        keys = await workflow.list_api_keys(kolping, "kolping")
    assert [k.key_id for k in keys] == [created.key_id] and keys[0].last_used_at == NOW
    await refused(kolping, 401, "invalid-api-key", lambda u: workflow.verify_api_key(u, NOW, created.key, b"other"))
    await refused(kolping, 401, "invalid-api-key", lambda u: workflow.verify_api_key(u, NOW, "lip_nonsense", PEPPER))
    async with kolping:
        await workflow.revoke_api_key(kolping, NOW, "kolping", created.key_id)
    await refused(kolping, 401, "invalid-api-key", lambda u: workflow.verify_api_key(u, NOW, created.key, PEPPER))
    await refused(kolping, 404, "not-found", lambda u: workflow.revoke_api_key(u, NOW, "caritas", created.key_id))


async def test_an_api_key_expires_in_the_future(kolping: InMemoryUnitOfWork) -> None:
    past = ApiKeyCreate.model_validate({"name": "CRM", "scopes": ["referrals:read"], "expires_at": NOW.isoformat()})
    problem = await refused(
        kolping, 422, "validation", lambda u: workflow.create_api_key(u, NOW, "kolping", past, PEPPER)
    )
    # Located at the field, with a code: the portal points at its date field without guessing.
    assert [(e["location"], e["type"]) for e in problem.extensions["errors"]] == [
        (["body", "expires_at"], "not-in-future")
    ]


# --- webhooks -----------------------------------------------------------------------------------------------


def hook(url: str = "https://93.184.215.14/hook") -> WebhookCreate:
    return WebhookCreate.model_validate({"url": url, "event_types": [REFERRAL_SENT]})


async def test_a_webhook_to_a_private_address_is_refused(kolping: InMemoryUnitOfWork) -> None:
    await refused(
        kolping,
        422,
        "unsafe-webhook-url",
        lambda u: workflow.create_webhook(u, NOW, "kolping", hook("https://127.0.0.1/x"), BOX, allow_private=False),
    )


async def test_a_webhook_rotates_its_secret_and_is_deleted_with_its_pending_deliveries(
    kolping: InMemoryUnitOfWork,
) -> None:
    async with kolping:
        created = await workflow.create_webhook(kolping, NOW, "kolping", hook(), BOX, allow_private=False)
    assert created.secret.startswith(domain.WEBHOOK_SECRET_PREFIX)
    async with kolping:
        rotated = await workflow.rotate_secret(kolping, NOW, "kolping", created.webhook_id, BOX, timedelta(hours=24))
        kolping.session.add(delivery_row(created.webhook_id, "d1", domain.DeliveryStatus.PENDING))
        kolping.session.add(delivery_row(created.webhook_id, "d2", domain.DeliveryStatus.FAILED))
        await kolping.commit()
    assert rotated.secret != created.secret and rotated.previous_secret_valid_until == NOW + timedelta(hours=24)
    await refused(kolping, 409, "delivery-pending", lambda u: workflow.replay_delivery(u, NOW, "kolping", "d1", wake))
    woken: list[bool] = []
    async with kolping:
        replayed = await workflow.replay_delivery(kolping, NOW, "kolping", "d2", lambda: woken.append(True))
    assert replayed.status == domain.DeliveryStatus.PENDING and woken == [True]
    async with kolping:
        await workflow.delete_webhook(kolping, NOW, "kolping", created.webhook_id)
        assert await workflow.list_webhooks(kolping, "kolping") == []
        cancelled = await workflow.list_deliveries(
            kolping, "kolping", workflow.DeliveryFilter(status=domain.DeliveryStatus.CANCELLED), 1, 50
        )
    assert {d.delivery_id for d in cancelled.items} == {"d1", "d2"}
    await refused(kolping, 409, "webhook-deleted", lambda u: workflow.replay_delivery(u, NOW, "kolping", "d1", wake))
    await refused(kolping, 404, "not-found", lambda u: workflow.replay_delivery(u, NOW, "caritas", "d1", wake))
    assert kolping.published == []


def wake() -> None:
    raise AssertionError("a refused replay wakes no deliverer")


def delivery_row(webhook_id: str, delivery_id: str, status: domain.DeliveryStatus) -> WebhookDelivery:
    return WebhookDelivery(
        id=delivery_id,
        subscription_id=webhook_id,
        partner_id="kolping",
        event_id="e-" + delivery_id,
        fact_id="e-" + delivery_id,
        event_type=REFERRAL_SENT,
        payload="{}",
        status=status.value,
        attempts=0,
        replays=0,
        created_at=NOW,
        next_attempt_at=NOW if status is domain.DeliveryStatus.PENDING else None,
    )


# --- the rules alone ----------------------------------------------------------------------------------------


def test_facts_become_their_events() -> None:
    terms = domain.ServiceTerms("Kurs", None, None, ("de",), 5, None)
    service, facts = domain.offer(None, "kolping", COURSE.value, terms)
    assert service.active and [type(workflow.event_of(f)) for f in facts] == [
        events.ServiceOffered,
        events.PartnerCapacityChanged,
    ]
    same, none = domain.change_capacity(service, "kolping", COURSE.value, None)
    assert same is service and none == []
    with pytest.raises(domain.NotOffered):
        domain.withdraw(None, "kolping", COURSE.value)


# --- events that concern a partner --------------------------------------------------------------------------


def received(model: Any, ce_id: str) -> ReceivedEvent:
    return ReceivedEvent(
        id=ce_id,
        type=model.event_type,
        source="/services/referral",
        subject=ce_id,
        time=NOW.isoformat(),
        data=model.model_dump(mode="json"),
        topic=model.topic,
        partition=0,
        offset=0,
    )


def referral_sent(partner_id: str = "kolping") -> referral_events.ReferralSent:
    return referral_events.ReferralSent(
        referral_id="r-1",
        case_id="c-1",
        person_id="p-1",
        service_type=COURSE,
        partner_id=partner_id,
        at=NOW,
        purpose=ConsentPurpose.REFERRAL,
        response_due_at=NOW + timedelta(days=5),
    )


async def test_an_event_becomes_one_delivery_per_fact_and_erasure_empties_it_once_over(
    kolping: InMemoryUnitOfWork,
) -> None:
    async with kolping:
        created = await workflow.create_webhook(kolping, NOW, "kolping", hook(), BOX, allow_private=False)
    async with kolping:
        assert await workflow.fan_out(kolping, NOW, received(referral_sent(), "ce-1")) == 1
        await kolping.commit()
    async with kolping:  # the same fact under a new ce_id, and an event about another partner: nothing
        assert await workflow.fan_out(kolping, NOW, received(referral_sent(), "ce-2")) == 0
        assert await workflow.fan_out(kolping, NOW, received(referral_sent("caritas"), "ce-3")) == 0
    async with kolping:
        await workflow.erase_person(kolping, lambda: NOW, "p-1", NOW)
        await kolping.commit()
    async with kolping:
        (row,) = (await kolping.session.scalars(select(WebhookDelivery))).all()
        assert (row.subscription_id, row.person_id, row.status) == (created.webhook_id, "p-1", "pending")
        assert row.payload  # under way: sent as it is, emptied once over
        row.status = domain.DeliveryStatus.DELIVERED.value
        await kolping.commit()
    async with kolping:
        await workflow.erase_person(kolping, lambda: NOW, "p-1", NOW)
        await kolping.commit()
    async with kolping:
        (row,) = (await kolping.session.scalars(select(WebhookDelivery))).all()
        assert (row.payload, row.person_id, as_utc(row.erased_at)) == ("", None, NOW)
    assert kolping.published == []
