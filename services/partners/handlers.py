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

from collections.abc import Callable, Mapping
from datetime import datetime

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from contracts import registration as registration_events
from services.partners import workflow
from services.partners.schemas import DELIVERABLE_EVENT_TYPES

#: Registration's topic for ``person_erased`` alone (the other person events concern no partner).
CONSUMED_TOPICS = [
    referral_events.REFERRALS_TOPIC,
    partner_events.PARTNERS_TOPIC,
    course_events.COURSES_TOPIC,
    registration_events.PERSONS_TOPIC,
]


def make_handlers(clock: Callable[[], datetime], wake: Callable[[], None]) -> Mapping[str, Handler]:
    async def fan_out(uow: UnitOfWork, event: ReceivedEvent) -> None:
        if await workflow.fan_out(uow, clock(), event):
            # Once the rows are committed (the loop sleeps until a delivery is due: it does not poll for new ones).
            uow.on_end(wake)

    async def person_erased(uow: UnitOfWork, event: ReceivedEvent) -> None:
        model = registration_events.PersonErased.model_validate(event.data)
        await workflow.erase_person(uow, clock, model.person_id, model.erased_at)

    return {
        **dict.fromkeys(sorted(DELIVERABLE_EVENT_TYPES), fan_out),
        registration_events.PersonErased.event_type: person_erased,
    }
