"""The chassis consumer on the real broker and real databases: duplicates have one effect,
a poison event goes to the dead-letter topic while later events on its partition still flow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import Column, Integer, String, Table, select

from chassis.cloudevents import ReceivedEvent, binary_headers
from chassis.consumer import EventConsumer, replay_dead_letters
from chassis.db import make_engine, make_session_factory, new_metadata
from chassis.embedded_broker import EmbeddedBroker
from chassis.kafka import dlq_topic
from chassis.outbox import Outbox, define_messaging_tables
from chassis.settings import ServiceSettings
from chassis.uow import UnitOfWork
from tests.conftest import FAST_GROUP_JOIN, consume, eventually

metadata = new_metadata()
messaging = define_messaging_tables(metadata)
effects = Table(
    "effects", metadata, Column("person_id", String(64), primary_key=True), Column("times", Integer, nullable=False)
)
EVENT_TYPE = "de.landsberg.integration.test.something_happened.v1"


class Harness:
    """A consumer whose handler counts effects per person and fails on demand."""

    def __init__(self, database_url: str, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.settings = ServiceSettings(
            database_url=database_url,
            kafka_bootstrap_servers=bootstrap,
            kafka_consumer_max_retries=2,
            environment="development",  # the default secret is allowed
            **FAST_GROUP_JOIN,
        )
        self.engine = make_engine(database_url)
        self.session_factory = make_session_factory(self.engine)
        self.calls: dict[str, int] = {}
        self.poisonous = True
        self.consumer = self.new_consumer()

    def new_consumer(self, kind: type[EventConsumer] = EventConsumer) -> EventConsumer:
        return kind(
            settings=self.settings,
            unit_of_work=lambda: UnitOfWork(self.session_factory, Outbox(messaging.outbox)),
            inbox=messaging.inbox,
            group_id=f"group-{self.topic}",
            handlers={EVENT_TYPE: self.handle},
            topics=[self.topic],
            retry_delay=0.01,
        )

    async def handle(self, uow: UnitOfWork, event: ReceivedEvent) -> None:
        session = uow.session
        person = event.data["person_id"]
        self.calls[person] = self.calls.get(person, 0) + 1
        row = (await session.execute(select(effects).where(effects.c.person_id == person))).first()
        if row is None:
            await session.execute(effects.insert().values(person_id=person, times=1))
        else:
            await session.execute(effects.update().where(effects.c.person_id == person).values(times=row.times + 1))
        if event.data.get("poison") and self.poisonous:
            raise ValueError("this event cannot be handled")  # rolled back with the effect

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """Its tables made and its consumer running for the block; then stopped and the engine let go."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        task = asyncio.create_task(self.consumer.run())
        try:
            yield task
        finally:
            await self.consumer.stop()
            await asyncio.wait_for(task, 20)
            await self.engine.dispose()

    async def times(self, person: str) -> int:
        async with self.session_factory() as session:
            value = await session.scalar(select(effects.c.times).where(effects.c.person_id == person))
            return int(value or 0)

    async def wait_for(self, person: str, times: int = 1, timeout_s: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self.times(person) < times:
            assert asyncio.get_running_loop().time() < deadline, f"{person} not handled in {timeout_s}s"
            await asyncio.sleep(0.05)


@pytest.fixture
async def harness(database_url: str, broker: Any) -> AsyncIterator[Harness]:
    h = Harness(database_url, broker.bootstrap_servers, f"test.things-{uuid.uuid4().hex[:8]}.v1")
    async with h.running():
        yield h


async def produce(bootstrap: str, topic: str, *, key: str, data: dict[str, Any], event_id: str | None = None) -> str:
    event_id = event_id or str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        headers = binary_headers(
            event_id=event_id, event_type=EVENT_TYPE, source="/tests", subject=key, time=datetime.now(UTC)
        )
        await producer.send_and_wait(topic, json.dumps(data).encode(), key=key.encode(), headers=headers)
    finally:
        await producer.stop()
    return event_id


async def test_the_same_event_delivered_twice_has_one_effect(harness: Harness, broker: Any) -> None:
    event_id = await produce(broker.bootstrap_servers, harness.topic, key="p1", data={"person_id": "p1"})
    await produce(broker.bootstrap_servers, harness.topic, key="p1", data={"person_id": "p1"}, event_id=event_id)
    marker = await produce(broker.bootstrap_servers, harness.topic, key="p1", data={"person_id": "p1-after"})
    await harness.wait_for("p1-after")  # everything before it on the partition has been handled
    assert await harness.times("p1") == 1
    assert harness.calls["p1"] == 1, "the redelivery must not reach the handler"
    assert marker != event_id


async def test_poison_event_goes_to_dlq_after_bounded_retries_and_the_partition_flows_on(
    harness: Harness, broker: Any
) -> None:
    poison = await produce(broker.bootstrap_servers, harness.topic, key="k", data={"person_id": "bad", "poison": True})
    await produce(broker.bootstrap_servers, harness.topic, key="k", data={"person_id": "good"})
    await harness.wait_for("good")
    assert harness.calls["bad"] == harness.settings.kafka_consumer_max_retries + 1
    assert await harness.times("bad") == 0, "a failed handler's effect is rolled back"

    dead = await consume(broker.bootstrap_servers, dlq_topic(harness.topic), until=lambda rs: len(rs) >= 1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["ce_id"] == poison
    assert headers["dlq_original_topic"] == harness.topic
    assert headers["dlq_original_offset"] == "0"
    assert headers["dlq_attempts"] == str(harness.settings.kafka_consumer_max_retries + 1)
    assert "ValueError: this event cannot be handled" in headers["dlq_error"]

    # Once the cause is fixed, the dead letter is replayed and handled exactly once.
    harness.poisonous = False
    assert await replay_dead_letters(harness.settings, harness.topic, timeout_s=2) == 1
    await harness.wait_for("bad")
    assert await harness.times("bad") == 1


async def test_a_record_that_is_no_cloudevent_is_dead_lettered_at_once(harness: Harness, broker: Any) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(harness.topic, b"not json, no headers", key=b"k")
    await producer.stop()
    await produce(broker.bootstrap_servers, harness.topic, key="k", data={"person_id": "after-garbage"})
    await harness.wait_for("after-garbage")
    dead = await consume(broker.bootstrap_servers, dlq_topic(harness.topic), until=lambda rs: len(rs) >= 1)
    assert [r.value for r in dead] == [b"not json, no headers"]
    assert "InvalidEvent" in dict(dead[0].headers)["dlq_error"].decode()


async def test_offsets_are_committed_so_a_restarted_consumer_does_not_handle_again(
    harness: Harness, broker: Any
) -> None:
    await produce(broker.bootstrap_servers, harness.topic, key="r", data={"person_id": "once"})
    await harness.wait_for("once")
    await harness.consumer.stop()
    await asyncio.sleep(1)  # the old run loop finishes and leaves the group
    harness.consumer = harness.new_consumer()
    restarted = asyncio.create_task(harness.consumer.run())
    await produce(broker.bootstrap_servers, harness.topic, key="r", data={"person_id": "second"})
    await harness.wait_for("second")
    assert harness.calls["once"] == 1
    await harness.consumer.stop()
    await asyncio.wait_for(restarted, 20)


async def test_against_the_embedded_broker_a_consumer_commits_to_its_group_without_joining_it(
    harness: Harness, broker: Any
) -> None:
    """Outside production the consumer takes every partition itself (the embedded broker holds a JoinGroup 2 s): the
    group gets its offsets all the same, so a restarted consumer goes on where it stopped."""
    await asyncio.wait_for(harness.consumer.assigned.wait(), 20)
    assert harness.consumer.manual_assignment
    consumer = harness.consumer._consumer
    assert consumer is not None and consumer.assignment() == {
        TopicPartition(harness.topic, p) for p in range(harness.settings.kafka_topic_partitions)
    }
    await produce(broker.bootstrap_servers, harness.topic, key="a", data={"person_id": "committed"})
    await harness.wait_for("committed")
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:

        async def group_has_it() -> bool:
            offsets = await admin.list_consumer_group_offsets(
                harness.consumer.group_id, partitions=list(consumer.assignment())
            )
            return bool(sum(max(0, o.offset) for o in offsets.values()) >= 1)

        await eventually(group_has_it, timeout_s=10)
    finally:
        await admin.close()


class FailsOnce(EventConsumer):
    """The real consumer, with aiokafka raising once from the consume loop, as it did while a broker came back empty
    (the fault suite's broker test: the monitoring consumer's task ended there and consumed nothing after)."""

    failed = False

    async def _consume(self, consumer: Any) -> str | None:
        if not self.failed:
            self.failed = True
            raise KafkaError("Unexpected error during data retrieval")
        return await super()._consume(consumer)


async def test_an_error_the_consumer_does_not_expect_does_not_end_it(
    database_url: str, broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(database_url, broker.bootstrap_servers, f"test.fails-once-{uuid.uuid4().hex[:8]}.v1")
    harness.consumer = harness.new_consumer(FailsOnce)
    async with harness.running() as task:
        await asyncio.wait_for(harness.consumer.assigned.wait(), 30)
        await produce(broker.bootstrap_servers, harness.topic, key="k", data={"person_id": "after-the-error"})
        await harness.wait_for("after-the-error")
        assert harness.consumer.failures_total == 1
        assert not task.done()
        assert "failed (KafkaError: Unexpected error during data retrieval); starting again in 0.5s" in caplog.text


async def test_a_consumer_that_failed_while_the_broker_forgot_reads_the_new_broker_from_its_start(
    database_url: str, tmp_path: Path
) -> None:
    """Starting again after an error, the consumer meets another cluster: the group's offsets are gone with the old
    broker, so it reads from the start (an event published there before it joined is handled) whatever
    ``KAFKA_CONSUMER_OFFSET_RESET`` says."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    topic = f"test.forgot-{uuid.uuid4().hex[:8]}.v1"

    class FailsAsTheBrokerForgets(EventConsumer):
        failed = False

        async def _consume(self, consumer: Any) -> str | None:
            if not self.failed:
                self.failed = True
                broker.kill()
                broker.start()  # same port, empty, another cluster id
                await produce(broker.bootstrap_servers, topic, key="k", data={"person_id": "on-the-new-broker"})
                raise KafkaError("Unexpected error during data retrieval")
            return await super()._consume(consumer)

    harness = Harness(database_url, broker.bootstrap_servers, topic)
    harness.settings = harness.settings.model_copy(update={"kafka_consumer_offset_reset": "latest"})
    harness.consumer = harness.new_consumer(FailsAsTheBrokerForgets)
    try:
        async with harness.running():
            await harness.wait_for("on-the-new-broker", timeout_s=60)
            assert (harness.consumer.failures_total, harness.consumer.broker_losses_total) == (1, 1)
    finally:
        broker.stop()  # whatever the consumer did: no broker outlives the test
