"""CloudEvents 1.0 in Kafka binary mode: ``ce_*`` headers, the event data as the value."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from chassis.outbox import PublishableEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class InvalidEvent(ValueError):
    """A Kafka record that is not a CloudEvent we can read."""


def binary_headers(*, event_id: str, event_type: str, source: str, subject: str, time: datetime) -> Headers:
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time.isoformat().replace("+00:00", "Z").encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def encode_data(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def as_record(
    event: PublishableEvent, *, source: str, offset: int, partition: int = 0, time: datetime | None = None
) -> ConsumerRecord[bytes, bytes]:
    """The record a consumer would fetch for ``event`` as its publisher sends it (key, ``ce_*`` headers, data): for
    feeding a consumer's batch handling without a broker (tests, ``bench/handlers.py``)."""
    from aiokafka.structs import ConsumerRecord

    key = event.partition_key().encode()
    value = encode_data(event.model_dump(mode="json"))
    headers = binary_headers(
        event_id=str(uuid.uuid4()),
        event_type=event.event_type,
        source=source,
        subject=event.subject(),
        time=time or datetime.now(UTC),
    )
    return ConsumerRecord(event.topic, partition, offset, 0, 0, key, value, None, len(key), len(value), headers)


@dataclass(frozen=True)
class ReceivedEvent:
    """An event as a consumer sees it, with where it came from."""

    id: str
    type: str
    source: str
    subject: str
    time: str
    data: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    headers: Headers = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode()
        return None


def parse_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> ReceivedEvent:
    found = {k: v.decode() for k, v in headers if v is not None}
    missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_specversion") if h not in found]
    if missing:
        raise InvalidEvent(f"not a binary-mode CloudEvent, missing headers {missing}")
    if found["ce_specversion"] != SPEC_VERSION:
        raise InvalidEvent(f"unsupported CloudEvents version {found['ce_specversion']}")
    try:
        data = json.loads(value) if value else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"event data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("event data must be a JSON object")
    return ReceivedEvent(
        id=found["ce_id"],
        type=found["ce_type"],
        source=found["ce_source"],
        subject=found.get("ce_subject", ""),
        time=found.get("ce_time", ""),
        data=data,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        headers=list(headers),
    )
