"""Kafka plumbing: producers, topic creation, start-up that waits for the broker, what the broker holds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import types
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.group import LeaveGroupRequest

from chassis.settings import ServiceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext:
    """TLS to the brokers: their certificates checked against KAFKA_SSL_CAFILE (or the system's CAs) and their host
    names verified; this process's certificate shown when one is set.

    Made afresh for each client, so that a client made after Strimzi renewed the mounted certificate uses the new
    one (the long-lived ones pick it up at the next restart; deploy/README.md, "Rotating secrets").
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """What every aiokafka client of this process is given: where the brokers are and how to talk to them."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # the settings' validator requires it
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def check_client_options(settings: ServiceSettings) -> None:
    """Fail at start-up, naming the setting, when the certificate files cannot be read (rather than retrying a
    broker that is not the problem)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    try:
        ssl_context(settings)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            f"the Kafka TLS files (KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE) cannot be used: {exc}"
        ) from exc


def new_producer(settings: ServiceSettings, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        # Tansu rejects InitProducerId: the idempotent producer is only for Apache Kafka.
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


async def retry_until_ready(
    start: Callable[[], Awaitable[T]],
    *,
    what: str,
    stop: asyncio.Event | None = None,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> T:
    """Call ``start`` until it succeeds; aiokafka's ``start()`` does not retry on its own."""
    delay = first_delay
    while True:
        try:
            return await start()
        except (KafkaError, OSError) as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("%s: broker not reachable (%s), retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str], *, with_dlq: bool = True) -> None:
    """Create the topics (and their dead-letter twins) that do not exist yet."""
    names = sorted({t for topic in topics for t in ((topic, dlq_topic(topic)) if with_dlq else (topic,))})
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=settings.kafka_topic_partitions,
                replication_factor=settings.kafka_topic_replicas,
            )
            for name in names
            if name not in existing
        ]
        if missing:
            response: Any = None
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
                response = await admin.create_topics(missing)
            # The broker answers per topic. With ACLs (the manifests) a service may not create topics: the Topic
            # Operator makes them from their KafkaTopics, and a refusal here only means it has not yet.
            refused = {
                topic: for_code(code).__name__
                for topic, code, *_ in getattr(response, "topic_errors", [])
                if code not in (0, TopicAlreadyExistsError.errno)
            }
            if refused:
                log.warning("topics not created %s; they must be made by whoever owns them (a KafkaTopic)", refused)
            log.info("created topics %s", [t.name for t in missing if t.name not in refused])
    finally:
        await admin.close()


async def stop_client(stop: Callable[[], Awaitable[object]], timeout_s: float, *, what: str = "kafka client") -> None:
    """Stop an aiokafka client (``stop`` is its ``stop`` or ``close``), whatever state the broker left it in.

    A client whose broker went away may fail to stop in any way; it is dropped anyway, with a warning. One way is a
    ``CancelledError`` that is not ours: aiokafka's fetcher (0.14) cancels its fetch tasks and awaits them, and one in
    its retry pause after a failed fetch (as while a broker is away) raises that out of ``stop()``. Unhandled, it
    ended a consumer's task without a word (the fault suite's broker restart, 1 run in 5). A cancellation of the
    calling task itself still goes on.
    """
    try:
        await asyncio.wait_for(stop(), timeout_s)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s stopped with a task of its own cancelled; dropped", what)
    except Exception:
        log.warning("%s did not stop cleanly; dropped", what, exc_info=True)


async def broker_reachable(settings: ServiceSettings, timeout_s: float = 2.0) -> bool:
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await stop_client(admin.close, timeout_s, what="broker check")


@dataclass(frozen=True)
class BrokerState:
    """What a broker says it holds: its cluster id and its topics with their partition counts."""

    cluster_id: str | None
    partitions: dict[str, int]


class BrokerWatch:
    """Asks a broker what it holds, over connections of its own (opened on first use, kept until ``close``).

    It never names a topic in a metadata request: the embedded broker would create a topic it is asked about.
    """

    def __init__(self, settings: ServiceSettings, *, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def state(self) -> BrokerState:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                **client_options(self.settings),
                client_id=self.client_id,
                request_timeout_ms=10_000,
            )
            try:
                await admin.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            self._admin = admin
        cluster = await self._admin.describe_cluster()
        topics = await self._admin.describe_topics()  # all of them: no topic named
        return BrokerState(
            cluster_id=cluster.get("cluster_id"),
            partitions={t["topic"]: len(t["partitions"]) for t in topics if not t["error_code"]},
        )

    async def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offsets of partitions that exist (ask ``state`` first: a missing one would be waited for)."""
        wanted = [TopicPartition(topic, partition) for topic, partition in partitions]
        if not wanted:
            return {}
        if self._offsets is None:
            # A consumer outside any group: the one public way of aiokafka to list offsets.
            consumer = AIOKafkaConsumer(
                **client_options(self.settings),
                client_id=self.client_id,
                request_timeout_ms=10_000,
                enable_auto_commit=False,
            )
            try:
                await consumer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self._offsets = consumer
        ends = await asyncio.wait_for(self._offsets.end_offsets(wanted), 10)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        offsets, self._offsets = self._offsets, None
        if admin is not None:
            await stop_client(admin.close, 5, what="broker watch")
        if offsets is not None:
            await stop_client(offsets.stop, 5, what="broker watch")


def leave_group_on_stop(consumer: AIOKafkaConsumer) -> None:
    """Make a started consumer leave its group when it stops, whatever the group's generation.

    aiokafka leaves a group only from generation 1 on; the embedded broker numbers a group's first generation
    0, so a member it never left stayed in the group until its session timed out, and a restarted consumer
    waited for that and a second join: 18 s instead of 5 s with a 10 s session (measured). Leaving takes one
    request; aiokafka's own close path sends it (``_maybe_leave_group``), with the generation check relaxed.
    """
    coordinator: Any = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return  # no group (assigned partitions): nothing to leave

    async def maybe_leave_group(self: Any) -> None:
        if self.generation >= 0 and self.member_id:
            try:
                await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
            except KafkaError as exc:
                log.info("leaving group %s failed (%s); the broker drops the member later", self.group_id, exc)
        self.reset_generation()

    coordinator._maybe_leave_group = types.MethodType(maybe_leave_group, coordinator)
