"""Idempotent consumer runner with bounded retries and a dead-letter queue.

For each record: the handler's effect and the handled ``ce_id`` (inbox) are
committed in one database transaction; offsets are committed per batch, after
the database. A record whose handler keeps failing goes to ``<topic>.dlq``
with the error in its headers, so that the partition keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from sqlalchemy import Table, select

from chassis.cloudevents import InvalidEvent, ReceivedEvent, parse_record
from chassis.kafka import dlq_topic, ensure_topics, new_producer, retry_until_ready
from chassis.outbox import utcnow
from chassis.settings import ServiceSettings
from chassis.uow import UnitOfWork

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

#: A handler does its effect in the unit of work's session and may publish events through it.
Handler = Callable[[UnitOfWork, ReceivedEvent], Awaitable[None]]


class EventConsumer:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        unit_of_work: Callable[[], UnitOfWork],
        inbox: Table,
        group_id: str,
        handlers: Mapping[str, Handler],
        topics: list[str],
        retry_delay: float = 0.05,
    ) -> None:
        self.settings = settings
        self.unit_of_work = unit_of_work
        self.inbox = inbox
        self.group_id = group_id
        self.handlers = dict(handlers)
        self.topics = topics
        self.retry_delay = retry_delay
        self.handled_total = 0
        self.dead_lettered_total = 0
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[Any] | None = None
        self._in_batch = False
        #: Set once partitions are assigned and their start positions fixed.
        self.assigned = asyncio.Event()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        await retry_until_ready(
            lambda: ensure_topics(self.settings, self.topics), what="consumer topics", stop=self._stopping
        )
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.kafka_consumer_offset_reset,
            max_poll_interval_ms=300_000,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            # The embedded broker holds every fetch for the full wait: the default 500 ms was most of an
            # event's latency from commit to a consumer's effect.
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )
        self._consumer = consumer  # from here on, _close stops it, even while it is still joining
        try:
            await retry_until_ready(consumer.start, what="consumer", stop=self._stopping)
            await self._fix_start(consumer)
            self.assigned.set()
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if not batches:
                    continue
                self._in_batch = True
                try:
                    for partition, records in batches.items():
                        for record in records:
                            await self._process(record)
                        await self._commit(consumer, {partition: records[-1].offset + 1})
                        if self._stopping.is_set():
                            break
                finally:
                    self._in_batch = False
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            # cancelled by our own stop() between batches: a normal end
        finally:
            await self._close()

    async def stop(self) -> None:
        """Stop consuming; the batch in hand finishes and its offsets are committed.

        Between batches (waiting for records, or still joining the group) there is nothing to
        finish, so the loop is cancelled at once instead of waiting for the broker to answer.
        """
        self._stopping.set()
        if not self._in_batch and self._task is not None:
            self._task.cancel()

    async def _fix_start(self, consumer: AIOKafkaConsumer) -> None:
        """Resolve and commit where a new group starts, before anyone waits on ``assigned``.

        Without the commit, a group that rebalanced before its first batch (a missed heartbeat
        on a busy machine) would resolve "latest" again and skip what was published meanwhile.
        """
        start: dict[TopicPartition, int] = {}
        for partition in consumer.assignment():
            position = await consumer.position(partition)
            if await consumer.committed(partition) is None:
                start[partition] = position
        if start:
            await self._commit(consumer, start)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await asyncio.wait_for(consumer.commit(offsets), 10)
        except (TimeoutError, KafkaError) as exc:
            # Records are redelivered; the inbox makes that harmless.
            log.warning("offset commit failed (%s); records will be redelivered", exc)

    async def _close(self) -> None:
        for client in (self._consumer, self._dlq_producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), 10)
                except Exception:
                    log.warning("kafka client did not stop cleanly", exc_info=True)

    async def _process(self, record: ConsumerRecord[Any, Any]) -> None:
        try:
            event = parse_record(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=list(record.headers),
            )
        except InvalidEvent as exc:
            await self._dead_letter(record, exc, attempts=0)
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            return  # an event type this service does not care about
        parent = propagate.extract({"traceparent": event.header("traceparent") or ""})
        attempts = 0
        while True:
            attempts += 1
            with tracer.start_as_current_span(f"handle {event.type}", context=parent, kind=trace.SpanKind.CONSUMER):
                try:
                    await self._handle_once(handler, event)
                    return
                except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                    if attempts > self.settings.kafka_consumer_max_retries:
                        log.error("event %s failed %d times; dead-lettering", event.id, attempts)
                        await self._dead_letter(record, exc, attempts=attempts)
                        return
                    log.warning("event %s failed (%s); retry %d", event.id, exc, attempts)
            await asyncio.sleep(self.retry_delay * 2 ** (attempts - 1))

    async def _handle_once(self, handler: Handler, event: ReceivedEvent) -> None:
        async with self.unit_of_work() as uow:
            session = uow.session
            seen = await session.scalar(select(self.inbox.c.event_id).where(self.inbox.c.event_id == event.id))
            if seen is not None:
                return  # a redelivery: the effect is already there
            await handler(uow, event)
            await session.execute(
                self.inbox.insert().values(event_id=event.id, event_type=event.type, handled_at=utcnow())
            )
            await uow.commit()  # the effect, the events it caused and the inbox row together
        self.handled_total += 1

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], error: Exception, *, attempts: int) -> None:
        if self._dlq_producer is None:
            producer = new_producer(self.settings, client_id=f"{self.group_id}-dlq")
            await retry_until_ready(producer.start, what="dlq producer")
            self._dlq_producer = producer
        headers = [
            *record.headers,
            ("dlq_error", f"{type(error).__name__}: {error}"[:1000].encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
        ]
        await self._dlq_producer.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        self.dead_lettered_total += 1


async def replay_dead_letters(
    settings: ServiceSettings, topic: str, *, max_records: int = 10_000, timeout_s: float = 5.0
) -> int:
    """Send what sits in ``<topic>.dlq`` back to ``topic`` (after the cause is fixed).

    The replayed record keeps its CloudEvents headers (and so its ``ce_id``):
    consumers that already handled it skip it, the others handle it now.
    """
    consumer = AIOKafkaConsumer(
        dlq_topic(topic),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"dlq-replay-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    producer = new_producer(settings, client_id=f"dlq-replay-{topic}")
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        while replayed < max_records:
            batches = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=500)
            if not batches:
                break
            for partition, records in batches.items():
                for record in records:
                    headers = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
                    await producer.send_and_wait(topic, value=record.value, key=record.key, headers=headers)
                    replayed += 1
                await consumer.commit({partition: records[-1].offset + 1})
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed
