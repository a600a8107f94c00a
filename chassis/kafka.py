"""Kafka plumbing: producers, topic creation, start-up that waits for the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from chassis.settings import ServiceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def new_producer(settings: ServiceSettings, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
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
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000)
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
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


async def broker_reachable(settings: ServiceSettings, timeout_s: float = 2.0) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        # Closing a half-started client may fail in any way; it is dropped anyway.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), timeout_s)
