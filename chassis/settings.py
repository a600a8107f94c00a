"""Typed settings per service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``REGISTRATION_DATABASE_URL``...). Settings that describe the platform rather
than one service (the broker, the environment, telemetry) are read without a
prefix, so one ``KAFKA_BOOTSTRAP_SERVERS`` points every process at real Kafka.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Placeholder secrets that may only ever be used in development.
DEVELOPMENT_SECRET = "development-only-this-is-not-a-secret"  # noqa: S105 - a marker, refused in production


def _unprefixed(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None, populate_by_name=True)

    service_name: str = "service"
    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=_unprefixed("ENVIRONMENT")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/service.db"
    database_pool_size: int = 10

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_unprefixed("KAFKA_BOOTSTRAP_SERVERS"))
    #: Apache Kafka supports the idempotent producer; the embedded Tansu broker does not.
    kafka_idempotent_producer: bool = Field(False, validation_alias=_unprefixed("KAFKA_IDEMPOTENT_PRODUCER"))
    kafka_topic_partitions: int = Field(3, validation_alias=_unprefixed("KAFKA_TOPIC_PARTITIONS"))
    kafka_topic_replicas: int = Field(1, validation_alias=_unprefixed("KAFKA_TOPIC_REPLICAS"))
    kafka_consumer_max_retries: int = 3
    #: Defaults to the service name; one group per service, however many replicas.
    kafka_consumer_group: str | None = None
    #: A dead consumer's partitions move on after this. The embedded broker holds a joining member for half of
    #: it, rounded up to whole seconds (measured: 10 s -> 5 s, 6 s -> 3 s, 4 s -> 2 s), so 4 s lets a restarted
    #: consumer resume within 3 s. Apache Kafka refuses less than its group.min.session.timeout.ms (6 s by
    #: default): the manifests set 10 s.
    kafka_session_timeout_ms: int = Field(4_000, validation_alias=_unprefixed("KAFKA_SESSION_TIMEOUT_MS"))
    #: Where a new consumer group starts: "earliest" replays history (a new service catches up);
    #: tests use "latest" so that each sees only its own events on the shared broker.
    kafka_consumer_offset_reset: Literal["earliest", "latest"] = "earliest"
    kafka_heartbeat_interval_ms: int = Field(1_000, validation_alias=_unprefixed("KAFKA_HEARTBEAT_INTERVAL_MS"))
    #: How often the outbox relay and the consumer ask the broker whether it still holds what it acknowledged
    #: (its cluster id, the topics, their end offsets); a broker that lost them is given them again.
    kafka_broker_check_seconds: float = Field(3.0, validation_alias=_unprefixed("KAFKA_BROKER_CHECK_SECONDS"))
    #: How long a consumer's fetch may wait for new records. Apache Kafka answers as soon as a record arrives;
    #: the embedded Tansu broker waits this long every time, so it bounds an event's way to its consumers
    #: (aiokafka's default of 500 ms made commit -> consumer p50 140 ms, p99 260 ms; 100 ms: 37 / 63 ms).
    kafka_fetch_max_wait_ms: int = 100

    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 500
    #: After a commit wakes the relay it waits this long, to publish concurrent commits together.
    outbox_linger_seconds: float = 0.005
    #: How long published outbox rows are kept, to publish them again when a broker lost them; none: as long as
    #: the database (the embedded broker keeps nothing across a restart). The manifests set 168 (Apache Kafka).
    outbox_retention_hours: float | None = Field(None, validation_alias=_unprefixed("OUTBOX_RETENTION_HOURS"))

    otel_exporter: Literal["none", "console", "otlp"] = Field("none", validation_alias=_unprefixed("OTEL_EXPORTER"))
    log_level: str = Field("INFO", validation_alias=_unprefixed("LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=_unprefixed("LOG_JSON"))

    #: Shared with the gateway to sign the caller identity it forwards.
    internal_token_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET), validation_alias=_unprefixed("INTERNAL_TOKEN_SECRET")
    )
    max_request_bytes: int = 64 * 1024
    #: Refuse /api/ calls that do not carry the gateway's signed identity. Defaults to on in
    #: production; development and tests may call a service directly with plain headers.
    require_internal_identity: bool | None = None

    @property
    def identity_required(self) -> bool:
        if self.require_internal_identity is not None:
            return self.require_internal_identity
        return self.environment == "production"

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> ServiceSettings:
        if self.environment != "development":
            for name, value in self.model_dump().items():
                if isinstance(value, SecretStr) and value.get_secret_value() == DEVELOPMENT_SECRET:
                    raise ValueError(
                        f"{name} still has its development default; set it (e.g. from a Kubernetes "
                        f"Secret) before running with ENVIRONMENT={self.environment}"
                    )
        return self
