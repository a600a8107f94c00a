"""The consumer's span per event: with no exporter and a publisher's trace that is not sampled, no span is made and
the publisher's span context stands in (the same trace id in logs and in the events the handler publishes); with an
exporter, or a sampled trace, each event's handling has a span of its own, a child of the publisher's."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import propagate, trace
from sqlalchemy import MetaData

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import EventConsumer, _unsampled_parent
from chassis.outbox import define_messaging_tables
from chassis.settings import ServiceSettings

TRACE, SPAN = "8548be16bed541918241e996dd519002", "740a29c40fab43e8"


def consumer(**settings: Any) -> EventConsumer:
    return EventConsumer(
        settings=ServiceSettings(environment="development", **settings),
        unit_of_work=lambda: pytest.fail("no database here"),
        inbox=define_messaging_tables(MetaData()).inbox,
        group_id="test",
        handlers={},
        topics=[],
    )


def event(traceparent: str | None) -> ReceivedEvent:
    headers = [] if traceparent is None else [("traceparent", traceparent.encode())]
    return ReceivedEvent("e1", "t", "/s", "", "", {}, "topic", 0, 0, headers=headers)


@pytest.mark.parametrize("flags", ["00", "01"])
def test_a_traceparent_is_read_as_the_propagators_read_it_when_unsampled(flags: str) -> None:
    traceparent = f"00-{TRACE}-{SPAN}-{flags}"
    expected = trace.get_current_span(propagate.extract({"traceparent": traceparent})).get_span_context()
    assert _unsampled_parent(traceparent) == (expected if flags == "00" else None)


@pytest.mark.parametrize(
    "traceparent",
    ["", "garbage", f"01-{TRACE}-{SPAN}-00", f"00-{TRACE[:-1]}x-{SPAN}-00", f"00-{'0' * 32}-{SPAN}-00"],
)
def test_anything_else_is_left_to_the_propagators(traceparent: str) -> None:
    assert _unsampled_parent(traceparent) is None


def test_without_an_exporter_the_publishers_span_context_stands_in() -> None:
    with consumer()._handling(event(f"00-{TRACE}-{SPAN}-00")):
        current = trace.get_current_span()
        assert not current.is_recording()
        assert (current.get_span_context().trace_id, current.get_span_context().span_id) == (
            int(TRACE, 16),
            int(SPAN, 16),
        )


def test_with_an_exporter_the_handling_is_a_child_span(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []

    def start(name: str, **kwargs: Any) -> Any:
        started.append((name, trace.get_current_span(kwargs["context"]).get_span_context().trace_id))
        return trace.use_span(trace.INVALID_SPAN)

    monkeypatch.setattr("chassis.consumer.tracer.start_as_current_span", start)
    with consumer(otel_exporter="console")._handling(event(f"00-{TRACE}-{SPAN}-00")):
        pass
    with consumer()._handling(event(f"00-{TRACE}-{SPAN}-01")):  # sampled: recorded for whoever exports it
        pass
    assert started == [("handle t", int(TRACE, 16))] * 2
