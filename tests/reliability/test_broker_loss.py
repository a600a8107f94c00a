"""A broker that forgets must not make us forget (the chassis on the real embedded broker, killed and started empty).

A producing side (outbox and relay, on SQLite and PostgreSQL) publishes events of many keys; two consuming sides
(their own SQLite databases and inboxes) count each event's effect. One consumer runs throughout; the other is
stopped before the second wave, so that the broker holds events nobody has read when it is killed (SIGKILL) and
started again, empty, on the same port within a second. The relay keeps its producer across the restart, so its
next records are acknowledged by the new broker for topics it no longer has. Afterwards every event has had its
effect exactly once on both sides, and the relay said that it published again what the broker lost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, String, Table, func, select

from chassis.cloudevents import ReceivedEvent
from chassis.consumer import EventConsumer
from chassis.db import make_engine, make_session_factory, new_metadata
from chassis.embedded_broker import EmbeddedBroker
from chassis.outbox import Outbox, OutboxRelay, define_messaging_tables
from chassis.settings import ServiceSettings
from chassis.uow import UnitOfWork

metadata = new_metadata()
messaging = define_messaging_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # not the event id: a repeated effect would show
    Column("event_id", String(64), nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
)
EVENT_TYPE = "de.landsberg.integration.test.step_taken.v1"
KEYS = 12


@dataclass
class StepTaken:
    """A publishable event (what the outbox needs of a ``contracts`` event)."""

    topic: ClassVar[str] = ""
    event_type: ClassVar[str] = EVENT_TYPE
    person_id: str
    seq: int

    def partition_key(self) -> str:
        return self.person_id

    def subject(self) -> str:
        return self.person_id

    def model_dump(self, *, mode: str = "json") -> dict[str, Any]:
        return {"person_id": self.person_id, "seq": self.seq}


def settings(database_url: str, bootstrap: str, **overrides: Any) -> ServiceSettings:
    return ServiceSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        environment="development",  # the chassis alone: no identity keys needed
        outbox_poll_seconds=0.2,
        kafka_broker_check_seconds=1.0,
        **overrides,
    )


@dataclass
class Side:
    """One service's database: the producing side's outbox, or a consuming side's inbox and effects."""

    database_url: str
    engine: Any = None
    sessions: Any = None
    handled_out_of_order: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)

    async def open(self) -> Side:
        self.engine = make_engine(self.database_url)
        self.sessions = make_session_factory(self.engine)
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return self

    def unit_of_work(self, wake: Callable[[], None] = lambda: None) -> UnitOfWork:
        return UnitOfWork(self.sessions, Outbox(messaging.outbox), wake)

    async def handle(self, uow: UnitOfWork, event: ReceivedEvent) -> None:
        person, seq = event.data["person_id"], event.data["seq"]
        if seq != self.last_seq.get(person, 0) + 1:
            self.handled_out_of_order += 1
        self.last_seq[person] = max(seq, self.last_seq.get(person, 0))
        await uow.session.execute(effects.insert().values(event_id=event.id, person_id=person, seq=seq))

    async def effect_count(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(effects)) or 0)

    async def effects_per_step(self) -> dict[tuple[str, int], int]:
        async with self.sessions() as session:
            rows = (await session.execute(select(effects.c.person_id, effects.c.seq))).all()
        counted: dict[tuple[str, int], int] = {}
        for person, seq in rows:
            counted[(person, seq)] = counted.get((person, seq), 0) + 1
        return counted


def consumer_for(side: Side, config: ServiceSettings, topic: str, group: str) -> EventConsumer:
    return EventConsumer(
        settings=config,
        unit_of_work=side.unit_of_work,
        inbox=messaging.inbox,
        group_id=group,
        handlers={EVENT_TYPE: side.handle},
        topics=[topic],
        retry_delay=0.01,
    )


async def until(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.05)


async def test_a_broker_killed_and_started_empty_loses_nothing(database_url: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    topic = f"test.steps-{uuid.uuid4().hex[:8]}.v1"
    producer_side = await Side(database_url).open()
    steady = await Side(f"sqlite+aiosqlite:///{tmp_path / 'steady.db'}").open()
    restarted = await Side(f"sqlite+aiosqlite:///{tmp_path / 'restarted.db'}").open()
    config = settings(database_url, broker.bootstrap_servers)
    relay = OutboxRelay(
        settings=config,
        session_factory=producer_side.sessions,
        table=messaging.outbox,
        high_water=messaging.high_water,
        source="/tests/steps",
        topics=[topic],
        lock_key=4242,
    )
    # The defaults of the consumer (session timeout, heartbeat): a restarted consumer must resume within 3 s.
    steady_consumer = consumer_for(steady, config, topic, "steady")
    late_consumer = consumer_for(restarted, config, topic, "late")
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(steady_consumer.run())]
    late_task = asyncio.create_task(late_consumer.run())
    seq = dict.fromkeys(range(KEYS), 0)
    step = type("StepTakenHere", (StepTaken,), {"topic": topic})  # the outbox reads the topic from the class

    async def publish_wave(per_key: int) -> None:
        for _ in range(per_key):
            for key in range(KEYS):
                seq[key] += 1
                async with producer_side.unit_of_work(relay.wake) as uow:
                    await uow.publish(step(f"person-{key}", seq[key]))
                    await uow.commit()

    def published() -> int:  # read at the time of each check
        return sum(seq.values())

    try:
        await asyncio.wait_for(asyncio.gather(steady_consumer.assigned.wait(), late_consumer.assigned.wait()), 30)
        await publish_wave(3)
        await until(lambda: both_at(steady, restarted, published()), 30, "the first wave")

        # The late consumer stops (and leaves its group); what follows is published but not read by it.
        await late_consumer.stop()
        await asyncio.wait_for(late_task, 20)
        await publish_wave(3)
        await until(lambda: at(steady, published()), 30, "the second wave on the steady side")
        assert await relay.count_backlog() == 0

        broker.kill()
        broker.start()  # same port, empty, another cluster id; the relay still holds its producer
        await publish_wave(2)

        late_consumer = consumer_for(restarted, config, topic, "late")
        started = time.monotonic()
        late_task = asyncio.create_task(late_consumer.run())
        await asyncio.wait_for(late_consumer.assigned.wait(), 30)
        resumed_after = time.monotonic() - started
        await until(lambda: both_at(steady, restarted, published()), 60, "every event on both sides")
    finally:
        await late_consumer.stop()
        await steady_consumer.stop()
        await relay.stop()
        for task in [*tasks, late_task]:
            task.cancel()
        await asyncio.gather(*tasks, late_task, return_exceptions=True)
        broker.stop()

    for side in (steady, restarted):
        per_step = await side.effects_per_step()
        expected = {(f"person-{key}", n) for key in range(KEYS) for n in range(1, seq[key] + 1)}
        lost = len(expected - set(per_step))
        duplicated = sum(times - 1 for times in per_step.values())
        print(
            f"\n{side.database_url.rsplit('/', 1)[-1]}: published {published()}, effects {sum(per_step.values())}, "
            f"lost {lost}, duplicated {duplicated}, handled out of order {side.handled_out_of_order}; "
            f"relay: broker losses {relay.broker_losses_total}, republished {relay.republished_total}"
        )
        assert lost == 0 and duplicated == 0
        # The relay asks the broker before it sends on a new connection, so nothing overtakes the lost events.
        assert side.handled_out_of_order == 0
    assert relay.broker_losses_total >= 1 and relay.republished_total >= 6 * KEYS, "the relay published again"
    assert steady_consumer.broker_losses_total >= 1, "the running consumer noticed and joined afresh"
    assert resumed_after < 3, f"the restarted consumer resumed after {resumed_after:.1f}s"
    for side in (producer_side, steady, restarted):
        await side.engine.dispose()


async def at(side: Side, count: int) -> bool:
    return await side.effect_count() >= count


async def both_at(one: Side, other: Side, count: int) -> bool:
    return await at(one, count) and await at(other, count)
