"""Event handlers of the partners service: events that concern a partner become webhook deliveries.

An event concerns partner P when its data names P (``partner_id``: a referral addressed to P, a
change of P's own directory entry) or P runs it (``provider_id``: a course P provides). Each
subscription of P to that event type gets one delivery row, written in the consumer's unit of
work: together with the inbox row, a redelivered event writes nothing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from services.partners import domain
from services.partners.models import WebhookDelivery, WebhookSubscription
from services.partners.schemas import DELIVERABLE_EVENT_TYPES

CONSUMED_TOPICS = [referral_events.REFERRALS_TOPIC, partner_events.PARTNERS_TOPIC, course_events.COURSES_TOPIC]


def new_delivery_id() -> str:
    # Standard Webhooks' own examples use "msg_" ids; unique and stable across retries.
    return "msg_" + uuid.uuid4().hex


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
        body = domain.webhook_body(event_type=event.type, event_id=event.id, time=event.time, data=event.data)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        now = clock()
        created = 0
        for subscription in subscriptions:
            if event.type not in subscription.event_types:
                continue
            uow.session.add(
                WebhookDelivery(
                    id=new_delivery_id(),
                    subscription_id=subscription.id,
                    partner_id=partner_id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=payload,
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

    return dict.fromkeys(sorted(DELIVERABLE_EVENT_TYPES), fan_out)
