"""Event handlers of the registration service: one function per consumed event type.

Registration is where personal data enters the platform; from the others it learns one thing only: which
team works a person's case (the referral service's case events), because a caseworker may reach a person's
data only while the person's case is open in the caseworker's team (``workflow.PersonScope``). The events
are keyed by case, so a case's events arrive in order; each handler is idempotent all the same (an event
delivered twice writes the same row).
"""

from __future__ import annotations

from collections.abc import Mapping

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import Handler
from chassis.uow import UnitOfWork
from contracts import referral as referral_events
from services.registration import workflow

CONSUMED_TOPICS: list[str] = [referral_events.CASES_TOPIC]


async def case_opened(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = referral_events.CaseOpened.model_validate(event.data)
    await workflow.case_opened(uow, model.case_id, model.person_id, model.household_id)


async def case_assigned(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = referral_events.CaseAssigned.model_validate(event.data)
    await workflow.case_assigned(uow, model.case_id, model.person_id, model.team, model.caseworker_id)


async def case_closed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = referral_events.CaseClosed.model_validate(event.data)
    await workflow.case_closed(uow, model.case_id, model.person_id)


async def case_reopened(uow: UnitOfWork, event: ReceivedEvent) -> None:
    model = referral_events.CaseReopened.model_validate(event.data)
    await workflow.case_reopened(uow, model.case_id, model.person_id, model.team, model.caseworker_id)


def make_handlers() -> Mapping[str, Handler]:
    return {
        referral_events.CaseOpened.event_type: case_opened,
        referral_events.CaseAssigned.event_type: case_assigned,
        referral_events.CaseClosed.event_type: case_closed,
        referral_events.CaseReopened.event_type: case_reopened,
    }
