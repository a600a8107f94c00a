"""Typed settings per service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``REGISTRATION_DATABASE_URL``...). Settings that describe the platform rather
than one service (the broker, the environment, telemetry) are read without a
prefix, so one ``KAFKA_BOOTSTRAP_SERVERS`` points every process at real Kafka.

Without ``ENVIRONMENT`` a process runs as production: development (plain identity headers, the published
development secrets, demo data) has to be asked for by name, as ``make run`` does.
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
        "production", validation_alias=_unprefixed("ENVIRONMENT")
    )
    #: Demo accounts, rosters, directories, courses and figures, for trying the platform out; one switch
    #: for every process. Refused in production.
    demo_data: bool = Field(False, validation_alias=_unprefixed("DEMO_DATA"))
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
    #: A dead consumer's partitions move on after this; the embedded broker also holds a new
    #: member's join for about half of it, so tests use a short one.
    kafka_session_timeout_ms: int = 10_000
    #: Where a new consumer group starts: "earliest" replays history (a new service catches up);
    #: tests use "latest" so that each sees only its own events on the shared broker.
    kafka_consumer_offset_reset: Literal["earliest", "latest"] = "earliest"
    kafka_heartbeat_interval_ms: int = 3_000
    #: How long a consumer's fetch may wait for new records. Apache Kafka answers as soon as a record arrives;
    #: the embedded Tansu broker waits this long every time, so it bounds an event's way to its consumers
    #: (aiokafka's default of 500 ms made commit -> consumer p50 140 ms, p99 260 ms; 100 ms: 37 / 63 ms).
    kafka_fetch_max_wait_ms: int = 100

    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 500
    #: After a commit wakes the relay it waits this long, to publish concurrent commits together.
    outbox_linger_seconds: float = 0.005

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
    def _refuse_demo_data_in_production(self) -> ServiceSettings:
        if self.demo_data and self.environment == "production":
            raise ValueError(
                "DEMO_DATA=true is refused with ENVIRONMENT=production: demo accounts and made-up figures "
                "must not reach a production system; unset DEMO_DATA, or set ENVIRONMENT=development"
            )
        return self

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
