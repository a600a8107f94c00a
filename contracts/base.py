"""The base of every integration event's data."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

EVENT_TYPE_PREFIX = "de.landsberg.integration"


def event_type(service: str, name: str, version: int = 1) -> str:
    """``de.landsberg.integration.<service>.<event>.v<N>``."""
    return f"{EVENT_TYPE_PREFIX}.{service}.{name}.v{version}"


def topic(service: str, aggregate: str, version: int = 1) -> str:
    """``<service>.<aggregate>.v<N>``, keyed by the aggregate id."""
    return f"{service}.{aggregate}.v{version}"


class IntegrationEvent(BaseModel):
    """Data of a CloudEvent. Never names, birth dates, addresses or contact data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    #: The field holding the aggregate id: the Kafka key and the CloudEvents subject.
    key_field: ClassVar[str]

    def partition_key(self) -> str:
        return str(getattr(self, self.key_field))

    def subject(self) -> str:
        return self.partition_key()
