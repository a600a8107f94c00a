"""CloudEvents 1.0 in Kafka binary mode: ``ce_*`` headers, the event data as the value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
