"""Typed settings per service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``REGISTRATION_DATABASE_URL``...). Settings that describe the platform rather
than one service (the broker, the environment, telemetry) are read without a
prefix, so one ``KAFKA_BOOTSTRAP_SERVERS`` points every process at real Kafka.

Without ``ENVIRONMENT`` a process runs as production: development (plain identity headers, the published
development secrets, demo data) has to be asked for by name, as ``make run`` does.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections import Counter
from typing import ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chassis import identity
from chassis.http import tls_context

#: Placeholder secrets that may only ever be used in development.
DEVELOPMENT_SECRET = "development-only-this-is-not-a-secret"  # noqa: S105 - a marker, refused in production
#: Outside development every secret setting has at least this many bytes and looks random.
MIN_SECRET_BYTES = 32
MIN_SECRET_BITS = 128
HOW_TO_MAKE_A_SECRET = "make one with `openssl rand -base64 32` (deploy/README.md, section 3)"  # noqa: S105
HOW_TO_MAKE_A_KEY = "an Ed25519 key pair as deploy/README.md, section 3, shows (base64 of the raw 32-byte keys)"


#: The embedded broker's cluster ids begin with this (chassis.embedded_broker): one process per service there.
EMBEDDED_CLUSTER_PREFIX = "embedded-"


def _unprefixed(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    # A refused setting names itself; its error must not repeat the input (every setting, secrets included),
    # since a process that refuses to start prints the error to its log.
    model_config = SettingsConfigDict(extra="ignore", env_file=None, populate_by_name=True, hide_input_in_errors=True)

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
    #: The connections a process may hold: the pool, and how many more under load (unset: as many as the pool). Once
    #: opened they stay open (chassis.service: closing an overflow connection cost more than its statements). Every
    #: pod's pool plus overflow, times the pods, must stay under PostgreSQL's max_connections: the manifests set
    #: both, and tests/deploy adds them up.
    database_pool_size: int = 10
    database_max_overflow: int | None = None
    #: Run the migrations when the process starts (development, tests, one process per service). In production
    #: the release's migration Job runs them once (the manifests set false): a pod then waits for the schema to
    #: reach its head, at most MIGRATION_WAIT_SECONDS (less than the startup probe allows), and exits if it does not.
    migrate_at_start: bool = Field(True, validation_alias=_unprefixed("MIGRATE_AT_START"))
    migration_wait_seconds: float = Field(150.0, validation_alias=_unprefixed("MIGRATION_WAIT_SECONDS"))

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_unprefixed("KAFKA_BOOTSTRAP_SERVERS"))
    #: How the clients talk to the broker: PLAINTEXT (the embedded broker of ``make run`` and the tests), SSL (TLS,
    #: with a client certificate when KAFKA_SSL_CERTFILE is set: the manifests, Strimzi's ``tls`` KafkaUsers) or
    #: SASL_SSL (TLS with a SCRAM user and password). With ENVIRONMENT=production a plaintext connection to a broker
    #: not on this machine is refused unless KAFKA_ALLOW_PLAINTEXT=true says it is meant.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_unprefixed("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_allow_plaintext: bool = Field(False, validation_alias=_unprefixed("KAFKA_ALLOW_PLAINTEXT"))
    #: The CA that signed the brokers' certificates (PEM; Strimzi's ``<cluster>-cluster-ca-cert``, key ca.crt);
    #: unset: the system's trust store. The brokers' host names are verified either way.
    kafka_ssl_cafile: str | None = Field(None, validation_alias=_unprefixed("KAFKA_SSL_CAFILE"))
    #: This process's client certificate and its key (PEM; Strimzi's KafkaUser Secret, keys user.crt, user.key).
    kafka_ssl_certfile: str | None = Field(None, validation_alias=_unprefixed("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: str | None = Field(None, validation_alias=_unprefixed("KAFKA_SSL_KEYFILE"))
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        "SCRAM-SHA-512", validation_alias=_unprefixed("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_unprefixed("KAFKA_SASL_USERNAME"))
    #: Not a secret this platform makes (Strimzi's User Operator does): exempt from the strength check below.
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=_unprefixed("KAFKA_SASL_PASSWORD"))
    #: Apache Kafka supports the idempotent producer; the embedded Tansu broker does not.
    kafka_idempotent_producer: bool = Field(False, validation_alias=_unprefixed("KAFKA_IDEMPOTENT_PRODUCER"))
    kafka_topic_partitions: int = Field(3, validation_alias=_unprefixed("KAFKA_TOPIC_PARTITIONS"))
    kafka_topic_replicas: int = Field(1, validation_alias=_unprefixed("KAFKA_TOPIC_REPLICAS"))
    kafka_consumer_max_retries: int = 3
    #: At most this many fetched records of a partition are handled in one transaction (PostgreSQL; a savepoint
    #: each); 1 handles every record in a transaction of its own, as on SQLite. As many as a fetch holds (the
    #: consumer's getmany takes 500): a transaction's statements are few but each round trip is dear (~170 us of
    #: the consumer's CPU through SQLAlchemy here), so 500 against 100 cut the CPU per replayed event by a quarter
    #: to a third (bench.handlers); a transaction starts small anyway (the consumer's slow start).
    kafka_consumer_batch_size: int = Field(500, ge=1)
    #: Defaults to the service name; one group per service, however many replicas.
    kafka_consumer_group: str | None = None
    #: A dead consumer's partitions move on after this (``group`` assignment). The embedded broker holds a joining
    #: member for half of it, rounded up to whole seconds (measured: 10 s -> 5 s, 6 s -> 3 s, 4 s -> 2 s), which is
    #: why a consumer does not join there (``kafka_consumer_assignment``). Apache Kafka refuses less than its
    #: group.min.session.timeout.ms (6 s by default): the manifests set 10 s.
    kafka_session_timeout_ms: int = Field(4_000, validation_alias=_unprefixed("KAFKA_SESSION_TIMEOUT_MS"))
    #: How a consumer gets its partitions. ``group``: it joins its group, which shares the partitions among the
    #: replicas (Apache Kafka, the manifests). ``manual``: it takes every partition of its topics itself and commits
    #: its offsets to the group without joining it, for a service that runs as one process (``make run``): no join
    #: to wait for (the embedded broker holds each JoinGroup 2 s), but two processes of one group would both read
    #: everything, so ENVIRONMENT=production refuses it. ``auto`` (the default): ``manual`` against the embedded
    #: broker (its cluster id says so) outside production, else ``group``.
    kafka_consumer_assignment: Literal["auto", "group", "manual"] = Field(
        "auto", validation_alias=_unprefixed("KAFKA_CONSUMER_ASSIGNMENT")
    )
    #: Where a new consumer group starts: "earliest" replays history (a new service catches up);
    #: tests use "latest" so that each sees only its own events on the shared broker.
    kafka_consumer_offset_reset: Literal["earliest", "latest"] = "earliest"
    kafka_heartbeat_interval_ms: int = Field(1_000, validation_alias=_unprefixed("KAFKA_HEARTBEAT_INTERVAL_MS"))
    #: How often the outbox relay and the consumer ask the broker whether it still holds what it acknowledged
    #: (its cluster id, the topics, their end offsets); a broker that lost them is given them again.
    kafka_broker_check_seconds: float = Field(3.0, validation_alias=_unprefixed("KAFKA_BROKER_CHECK_SECONDS"))
    #: How long a consumer's fetch may wait for new records. Apache Kafka answers as soon as a record arrives;
    #: the embedded Tansu broker looks for new records only about every half of this wait, so it bounds an event's
    #: way to its consumers (aiokafka's default of 500 ms made commit -> consumer p50 140 ms, p99 260 ms; 100 ms:
    #: 37 / 63 ms). Each empty fetch costs the idle broker about a millisecond of CPU: at 100 ms, the platform's
    #: consumers kept it 8 % busy doing nothing. 200 ms halves that for p50 28 / p90 84 ms (100 ms: 23 / 43 ms)
    #: from a record's acknowledgement to its consumer (measured alone, issue 16).
    kafka_fetch_max_wait_ms: int = 200

    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 500
    #: After a commit wakes the relay it waits this long, to publish concurrent commits together.
    outbox_linger_seconds: float = 0.005
    #: How long published outbox rows are kept, to publish them again when a broker lost them; none: as long as
    #: the database (the embedded broker keeps nothing across a restart). The manifests set 168 (Apache Kafka).
    outbox_retention_hours: float | None = Field(None, validation_alias=_unprefixed("OUTBOX_RETENTION_HOURS"))

    #: A CA the platform's outbound HTTPS clients trust beside the public ones (PEM, one or more certificates): the
    #: city's own CA, when it issued the certificate of its Keycloak (the gateway's discovery, keys and token
    #: exchange) or of a partner's webhook receiver. Named like KAFKA_SSL_CAFILE; unset: the public CAs only.
    http_ssl_cafile: str | None = Field(None, validation_alias=_unprefixed("HTTP_SSL_CAFILE"))

    otel_exporter: Literal["none", "console", "otlp"] = Field("none", validation_alias=_unprefixed("OTEL_EXPORTER"))
    log_level: str = Field("INFO", validation_alias=_unprefixed("LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=_unprefixed("LOG_JSON"))

    #: The public key the gateway signs callers' identities with (base64 of the raw 32-byte Ed25519 key). The same
    #: for every service, hence unprefixed: ``INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY``. During a rotation it holds the
    #: new key and the old one, comma-separated: a token signed with either is accepted.
    internal_identity_gateway_public_key: str | None = Field(
        None, validation_alias=_unprefixed("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY")
    )
    #: This process's own Ed25519 private key (base64 of the raw 32 bytes), for a process that signs identities:
    #: ``GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY``, ``REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY``. Prefixed, so that
    #: processes started from one shell (``make run``) never share one.
    internal_identity_signing_key: SecretStr | None = None
    #: Seals the responses kept for ``Idempotency-Key`` retries (``REGISTRATION_IDEMPOTENCY_SECRET``...): each
    #: service its own, as each keeps them in its own database.
    idempotency_secret: SecretStr | None = None
    max_request_bytes: int = 64 * 1024
    #: Refuse /api/ calls that do not carry the gateway's signed identity. Defaults to on in
    #: production; development and tests may call a service directly with plain headers.
    require_internal_identity: bool | None = None

    @property
    def identity_required(self) -> bool:
        if self.require_internal_identity is not None:
            return self.require_internal_identity
        return self.environment == "production"

    #: What this process cannot run without outside development (in development, defaults stand in).
    NEEDED_OUTSIDE_DEVELOPMENT: ClassVar[tuple[str, ...]] = (
        "internal_identity_gateway_public_key",
        "idempotency_secret",
    )
    #: The identity keys, with the process whose published development key pair stands in for them in
    #: development (and is refused elsewhere); ``None`` names this process itself.
    IDENTITY_KEYS: ClassVar[dict[str, str | None]] = {
        "internal_identity_gateway_public_key": identity.GATEWAY,
        "internal_identity_signing_key": None,
    }
    #: Other settings that hold an Ed25519 key (base64 of the raw 32 bytes), checked like the identity keys.
    OTHER_ED25519_KEYS: ClassVar[tuple[str, ...]] = ()
    #: The key settings that may hold several keys, comma-separated, the current one first: the public keys a
    #: process verifies with, so that a key pair can be rotated without an outage (deploy/README.md, section 12).
    #: A signing key is always one.
    KEY_LISTS: ClassVar[frozenset[str]] = frozenset({"internal_identity_gateway_public_key"})
    #: Secret settings made by someone else, in their own format (not checked for strength here).
    NOT_OURS: ClassVar[frozenset[str]] = frozenset({"kafka_sasl_password"})

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from (for messages, and to check the manifests set it)."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    def identity_signing_key(self) -> Ed25519PrivateKey:
        """This process's own key; in development, unset, the published development key of its name."""
        if self.internal_identity_signing_key is not None:
            return identity.private_key(self.internal_identity_signing_key.get_secret_value())
        if self.environment != "development":
            raise RuntimeError(f"{self.env_name('internal_identity_signing_key')} is not set")
        return identity.development_key(self.service_name)

    def trusted_service_keys(self) -> dict[str, str | None]:
        """The other services this one serves on its internal routes: name -> the setting of its public key."""
        return {}

    def identity_trusted_keys(self) -> dict[str, list[Ed25519PublicKey]]:
        """Issuer -> its public keys (the current one first; during a rotation the previous ones after it): the
        gateway, and the services of :meth:`trusted_service_keys`."""
        wanted = {identity.GATEWAY: self.internal_identity_gateway_public_key, **self.trusted_service_keys()}
        keys: dict[str, list[Ed25519PublicKey]] = {}
        for issuer, value in wanted.items():
            if value is not None:
                keys[issuer] = identity.public_keys(value)
            elif self.environment == "development":
                keys[issuer] = [identity.development_key(issuer).public_key()]
            else:
                raise RuntimeError(f"no public key for {issuer}")  # the validator refuses this earlier
        return keys

    def idempotency_key(self) -> str:
        if self.idempotency_secret is not None:
            return self.idempotency_secret.get_secret_value()
        return DEVELOPMENT_SECRET  # development only: the validator refuses an unset one elsewhere

    @model_validator(mode="after")
    def _refuse_demo_data_in_production(self) -> ServiceSettings:
        if self.demo_data and self.environment == "production":
            raise ValueError(
                "DEMO_DATA=true is refused with ENVIRONMENT=production: demo accounts and made-up figures "
                "must not reach a production system; unset DEMO_DATA, or set ENVIRONMENT=development"
            )
        return self

    def manual_assignment(self, cluster_id: str | None) -> bool:
        """Whether the consumer takes its partitions itself (see ``kafka_consumer_assignment``), given the id of the
        cluster its broker belongs to."""
        if self.kafka_consumer_assignment != "auto":
            return self.kafka_consumer_assignment == "manual"
        return self.environment != "production" and (cluster_id or "").startswith(EMBEDDED_CLUSTER_PREFIX)

    @model_validator(mode="after")
    def _refuse_manual_assignment_in_production(self) -> ServiceSettings:
        if self.kafka_consumer_assignment == "manual" and self.environment == "production":
            raise ValueError(
                "KAFKA_CONSUMER_ASSIGNMENT=manual is refused with ENVIRONMENT=production: every replica would read "
                "every partition; set KAFKA_CONSUMER_ASSIGNMENT=group (the manifests do)"
            )
        return self

    @model_validator(mode="after")
    def _check_kafka_security(self) -> ServiceSettings:
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("set both KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE (a client certificate and its key)")
        if self.kafka_security_protocol == "SASL_SSL" and (
            self.kafka_sasl_username is None or self.kafka_sasl_password is None
        ):
            raise ValueError("KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if (
            self.environment == "production"
            and self.kafka_security_protocol == "PLAINTEXT"
            and not self.kafka_allow_plaintext
        ):
            remote = [host for host in bootstrap_hosts(self.kafka_bootstrap_servers) if not is_local_host(host)]
            if remote:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL=PLAINTEXT to {', '.join(remote)} is refused with ENVIRONMENT=production: "
                    "events would cross the network unencrypted and unauthenticated; set KAFKA_SECURITY_PROTOCOL=SSL "
                    "(deploy/README.md, section 4), or KAFKA_ALLOW_PLAINTEXT=true if that network is trusted"
                )
        return self

    def http_verify(self) -> ssl.SSLContext:
        """``verify=`` for every httpx client this process builds (and PyJWT's key fetch): see HTTP_SSL_CAFILE."""
        return tls_context(self.http_ssl_cafile)

    @model_validator(mode="after")
    def _check_http_cafile(self) -> ServiceSettings:
        if not self.http_ssl_cafile:
            self.http_ssl_cafile = None  # set but empty: the public CAs only, as unset
            return self
        try:
            tls_context(self.http_ssl_cafile)
        except (OSError, ssl.SSLError) as exc:
            # Refused at start, not at the first sign-in: a mounted ConfigMap with the wrong key is found at once.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ValueError(
                f"HTTP_SSL_CAFILE={self.http_ssl_cafile} is not a readable file of PEM certificates ({reason}); "
                "mount the city's CA certificate there (deploy/README.md, section 14) or unset it"
            ) from None
        return self

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> ServiceSettings:
        for field in (*self.IDENTITY_KEYS, *self.OTHER_ED25519_KEYS):
            value = getattr(self, field)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if text is None or text == DEVELOPMENT_SECRET:  # unset, or a marker refused below outside development
                continue
            parts = identity.key_values(text)
            several = field in self.KEY_LISTS
            if not parts or (len(parts) > 1 and not several):
                how = "must hold exactly one key (a process signs with one)" if parts else "holds no key"
                raise ValueError(f"{self.env_name(field)} {how}; {HOW_TO_MAKE_A_KEY}")
            for number, part in enumerate(parts, 1):
                which = f" (key {number} of {len(parts)})" if len(parts) > 1 else ""
                try:
                    raw = identity.raw_key(part)
                except ValueError as exc:
                    raise ValueError(f"{self.env_name(field)}{which} {exc}; {HOW_TO_MAKE_A_KEY}") from None
                if field not in self.IDENTITY_KEYS:
                    continue
                development = identity.development_key(self.IDENTITY_KEYS[field] or self.service_name)
                if self.environment != "development" and raw in (
                    development.private_bytes_raw(),
                    development.public_key().public_bytes_raw(),
                ):
                    raise ValueError(
                        f"{self.env_name(field)}{which} is a published development key; make a key pair of your own "
                        f"before running with ENVIRONMENT={self.environment}: {HOW_TO_MAKE_A_KEY}"
                    )
        if self.environment == "development":
            return self
        for field in self.NEEDED_OUTSIDE_DEVELOPMENT:
            if getattr(self, field) is None:
                how = HOW_TO_MAKE_A_KEY if field in self.IDENTITY_KEYS else HOW_TO_MAKE_A_SECRET
                raise ValueError(
                    f"set {self.env_name(field)} before running with ENVIRONMENT={self.environment}: {how}"
                )
        for field in type(self).model_fields:
            value = getattr(self, field)
            if not isinstance(value, SecretStr) or field in self.NOT_OURS:
                continue
            if value.get_secret_value() == DEVELOPMENT_SECRET:
                raise ValueError(
                    f"{self.env_name(field)} still has its development default; set it (e.g. from a Kubernetes "
                    f"Secret) before running with ENVIRONMENT={self.environment}: {HOW_TO_MAKE_A_SECRET}"
                )
            weakness = secret_weakness(value.get_secret_value())
            if weakness:
                raise ValueError(f"{self.env_name(field)} {weakness}; make a strong one: {HOW_TO_MAKE_A_SECRET}")
        return self


def estimated_entropy_bits(value: str) -> float:
    """The value's length times the Shannon entropy of its characters, with the Miller-Madow correction for a
    short sample (so that a random 32-character secret is not taken for a weak one): a floor against obvious
    mistakes (a repeated character, a short pattern), not a proof of randomness."""
    if not value:
        return 0.0
    counts = Counter(value)
    plug_in = -sum(n * math.log2(n / len(value)) for n in counts.values())
    return plug_in + (len(counts) - 1) / (2 * math.log(2))


def secret_weakness(value: str) -> str | None:
    """Why a secret is too weak, or None."""
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if estimated_entropy_bits(value) < MIN_SECRET_BITS:
        return f"does not look random (about {estimated_entropy_bits(value):.0f} bits, {MIN_SECRET_BITS} needed)"
    return None


def bootstrap_hosts(servers: str) -> list[str]:
    """The host names of a broker list (``host:port,host:port``; an IPv6 address in brackets)."""
    hosts = []
    for server in servers.split(","):
        server = server.strip()
        if not server:
            continue
        if server.startswith("["):
            hosts.append(server[1 : server.index("]")])
        else:
            hosts.append(server.rsplit(":", 1)[0] if server.count(":") == 1 else server)
    return hosts


def is_local_host(host: str) -> bool:
    """This machine: the loopback names and addresses (a plaintext broker here crosses no network)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
