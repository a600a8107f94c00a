"""Every event type and topic of the platform."""

from __future__ import annotations

from contracts import courses, partners, referral, registration
from contracts.base import IntegrationEvent

EVENT_MODELS: dict[str, type[IntegrationEvent]] = {
    model.event_type: model for model in [*registration.EVENTS, *referral.EVENTS, *courses.EVENTS, *partners.EVENTS]
}

TOPICS: dict[str, list[str]] = {}
for _model in EVENT_MODELS.values():
    TOPICS.setdefault(_model.topic, []).append(_model.event_type)


def model_for(event_type: str) -> type[IntegrationEvent]:
    return EVENT_MODELS[event_type]
