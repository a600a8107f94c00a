"""Event handlers of the partners service: events that concern a partner become webhook deliveries.

An event concerns partner P when its data names P (``partner_id``: a referral addressed to P, a
change of P's own directory entry) or P runs it (``provider_id``: a course P provides). Each
subscription of P to that event type gets one delivery row, written in the consumer's unit of
work: together with the inbox row, a redelivered event writes nothing twice. A referral event published again
under a new ce_id (the same fact: :meth:`contracts.referral._ReferralEvent.fact_id`) is found by its fact and
delivered once too.

Erasure (registration's ``person_erased``): the deliveries about the person keep their log entry (which
event went to which webhook, when, with what result: the partner's record) and lose their payload and
the link to the person. One still under way (above all the referral's revocation, which the erasure
itself causes and the partner must get) is sent as it is and emptied once it is over
(:func:`services.partners.delivery.erase_when_over`); the erased person is remembered for that. The
stored answers to idempotent writes about those deliveries (a replay) go too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select, update

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from contracts import registration as registration_events
from services.partners import delivery, domain
from services.partners.models import ErasedPerson, WebhookDelivery, WebhookSubscription
from services.partners.schemas import DELIVERABLE_EVENT_TYPES

#: Registration's topic for ``person_erased`` alone (the other person events concern no partner).
CONSUMED_TOPICS = [
    referral_events.REFERRALS_TOPIC,
    partner_events.PARTNERS_TOPIC,
    course_events.COURSES_TOPIC,
    registration_events.PERSONS_TOPIC,
]


def new_delivery_id() -> str:
    # Standard Webhooks' own examples use "msg_" ids; unique and stable across retries.
    return "msg_" + uuid.uuid4().hex


#: Referral event types by name: their fact is the referral's change, not the CloudEvent that carries it.
REFERRAL_EVENTS: dict[str, type[referral_events._ReferralEvent]] = {
    model.event_type: model for model in referral_events.EVENTS if issubclass(model, referral_events._ReferralEvent)
}


def fact_of(event: ReceivedEvent) -> str:
    """The fact an event tells: a referral event's fact id, else its ce_id (one fact per CloudEvent)."""
    model = REFERRAL_EVENTS.get(event.type)
    return model.model_validate(event.data).fact_id() if model is not None else event.id


def make_handlers(clock: Callable[[], datetime], wake: Callable[[], None]) -> Mapping[str, Handler]:
    async def fan_out(uow: UnitOfWork, event: ReceivedEvent) -> None:
        partner_id = domain.concerned_partner(event.data)
        if partner_id is None:
            return  # e.g. a referral to a category rather than a named partner
        subscriptions = (
            await uow.session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.partner_id == partner_id, WebhookSubscription.active.is_(True)
                )
            )
        ).all()
        fact_id = fact_of(event)
        delivered = set(
            await uow.session.scalars(
                select(WebhookDelivery.subscription_id).where(
                    WebhookDelivery.partner_id == partner_id, WebhookDelivery.fact_id == fact_id
                )
            )
        )
        body = domain.webhook_body(event_type=event.type, event_id=event.id, time=event.time, data=event.data)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        person_id = event.data.get("person_id")
        now = clock()
        created = 0
        for subscription in subscriptions:
            if event.type not in subscription.event_types or subscription.id in delivered:
                continue
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
            created += 1
        if created:
            wake()  # soon after the commit; the loop also polls, so a missed wake only costs one round

    async def person_erased(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.PersonErased.model_validate(event.data)
        session = uow.session
        if await session.get(ErasedPerson, model.person_id) is None:
            session.add(ErasedPerson(person_id=model.person_id, erased_at=model.erased_at))
        await session.flush()  # the tombstone first: a delivery finishing from now on finds it
        # Locked: a delivery finishing meanwhile waits for this transaction, then finds the tombstone
        # (delivery.erase_when_over), or is finished before, and then emptied here.
        ids = (
            await session.scalars(
                select(WebhookDelivery.id).where(WebhookDelivery.person_id == model.person_id).with_for_update()
            )
        ).all()
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.person_id == model.person_id,
                WebhookDelivery.status != domain.DeliveryStatus.PENDING.value,
            )
            .values(**delivery.erased_columns(clock()))
        )
        await uow.forget_stored_responses(model.person_id, *ids)

    return {
        **dict.fromkeys(sorted(DELIVERABLE_EVENT_TYPES), fan_out),
        registration_events.PersonErased.event_type: person_erased,
    }
