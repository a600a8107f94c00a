"""Transactional outbox and its relay.

A state change and the events it causes are written in one transaction
(:meth:`Outbox.add`). The :class:`OutboxRelay` publishes pending rows in id
order, which keeps the order per key, marks them published, and backs off
while the broker is away. The committing unit of work wakes the relay, so an
event does not wait for the next poll.

The outbox is the record, the broker the transport: published rows are kept
(``OUTBOX_RETENTION_HOURS``; by default as long as the database), and the relay
notes, per topic partition, an offset the broker acknowledged for them.
When the broker no longer holds that (another cluster id, a topic gone, an end
offset not beyond what it acknowledged, an acknowledgement below an earlier one:
the embedded broker forgets everything when it stops), the relay publishes
every kept row of the topics it lost again, in id order; consumers' inboxes
make the repetition harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from time import monotonic
from typing import Any, ClassVar, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert, Update

from chassis import cloudevents
from chassis.clock import as_utc, system_clock
from chassis.deadletters import define_dead_letter_table
from chassis.kafka import BrokerWatch, ensure_topics, new_producer, stop_client
from chassis.settings import ServiceSettings
from chassis.telemetry import kafka_instrumented

log = logging.getLogger(__name__)

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class PublishableEvent(Protocol):
    """What the outbox needs of an event model (``contracts`` events satisfy it)."""

    event_type: ClassVar[str]
    topic: ClassVar[str]

    def partition_key(self) -> str: ...

    def subject(self) -> str: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table
    #: Per topic partition, the lowest offset of the broker's latest acknowledgements there, and its cluster id.
    high_water: Table
    #: Records whose handler kept failing, for admins to replay or discard (:mod:`chassis.deadletters`).
    dead_letters: Table


def define_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add the ``outbox``, ``inbox``, high-water and dead-letter tables to a service's own metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("partition_key", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("data", Text, nullable=False),
        Column("traceparent", String(64), nullable=True),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )
    high_water = Table(
        "outbox_high_water",
        metadata,
        Column("topic", String(200), primary_key=True),
        Column("kafka_partition", Integer, primary_key=True, autoincrement=False),
        Column("acknowledged_offset", BigInteger, nullable=False),
        Column("cluster_id", String(200), nullable=True),
    )
    return MessagingTables(
        outbox=outbox, inbox=inbox, high_water=high_water, dead_letters=define_dead_letter_table(metadata)
    )


utcnow = system_clock  # the outbox and inbox stamp rows with the system's time


class Outbox:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def add(self, session: AsyncSession, event: PublishableEvent) -> str:
        return (await self.add_all(session, [event]))[0]

    async def add_all(self, session: AsyncSession, events: Sequence[PublishableEvent]) -> list[str]:
        """Add the events in one statement; returns their ids."""
        rows = self.rows(events)
        await self.insert(session, rows)
        return [row["event_id"] for row in rows]

    async def insert(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows made by :meth:`rows` (perhaps of several calls) in one statement."""
        if rows:
            await session.execute(insert_into(self.table), list(rows))
            session.info["outbox_dirty"] = True

    def rows(self, events: Sequence[PublishableEvent]) -> list[dict[str, Any]]:
        """The outbox rows of the events, stamped now and with the current trace, not yet inserted."""
        if not events:
            return []
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        at = utcnow()
        ids = [str(uuid.uuid4()) for _ in events]
        return [
            {
                "event_id": event_id,
                "topic": event.topic,
                "partition_key": event.partition_key(),
                "event_type": event.event_type,
                "subject": event.subject(),
                "occurred_at": at,
                "data": cloudevents.encode_data(event.model_dump(mode="json")).decode(),
                "traceparent": carrier.get("traceparent"),
            }
            for event_id, event in zip(ids, events, strict=True)
        ]


_inserts: dict[Table, Insert] = {}


def insert_into(table: Table) -> Insert:
    """One insert statement per table (an outbox, a service's own), built once: its values come as parameters."""
    statement = _inserts.get(table)
    if statement is None:
        statement = _inserts[table] = table.insert()
    return statement


#: Rows for tables, in order: what :func:`writes_at_once` inserts.
Writes = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]
#: A statement and its parameters.
Bound = tuple[Any, Mapping[str, Any]]
_at_once: dict[tuple[Any, ...], Select[Any]] = {}


def writes_at_once(
    writes: Writes, also: Bound | None = None, unless: Bound | None = None
) -> tuple[Select[Any], dict[str, Any]]:
    """PostgreSQL: the inserts of ``writes`` (and the update ``also``) as one statement, each a data-modifying CTE,
    and the parameters to run it with. One statement is atomic on its own: in autocommit it is a whole transaction
    in one round trip (no BEGIN, one per insert, COMMIT). ``unless`` is a query (a check that refuses the writes,
    e.g. for duplicates): when it finds rows, nothing is written and the statement answers them (it answers nothing
    otherwise); all parts see the database as it was before the statement. Built once per shape (tables, columns,
    numbers of rows); the values come as parameters. The rows of one table have the same columns."""
    writes = [(table, rows) for table, rows in writes if rows]
    tables = tuple((table, tuple(rows[0]), len(rows)) for table, rows in writes)
    shape = (tables, also[0] if also is not None else None, unless[0] if unless is not None else None)
    statement = _at_once.get(shape)
    if statement is None:
        statement = _at_once[shape] = _statement_at_once(tables, shape[1], shape[2])
    params = {
        f"w{i}r{r}_{c}": v for i, (_, rows) in enumerate(writes) for r, row in enumerate(rows) for c, v in row.items()
    }
    for bound in (also, unless):
        if bound is not None:
            params.update(bound[1])
    return statement, params


def _statement_at_once(tables: tuple[tuple[Table, tuple[str, ...], int], ...], also: Any, unless: Any) -> Select[Any]:
    refusal = unless.cte("refusal") if unless is not None else None
    allowed = ~exists(select(literal_column("1")).select_from(refusal)) if refusal is not None else None
    ctes = []
    for i, (table, columns, count) in enumerate(tables):
        # A CTE per row: an insert of several rows' VALUES is compiled anew on every execution (SQLAlchemy does not
        # cache it), which cost more CPU than the round trips it saved.
        for r in range(count):
            values = [bindparam(f"w{i}r{r}_{c}", type_=table.c[c].type) for c in columns]
            if allowed is None:
                row = insert(table).values(dict(zip(columns, values, strict=True)))
            else:
                row = insert(table).from_select(columns, select(*values).where(allowed))
            ctes.append(row.cte(f"w{i}r{r}"))
    if also is not None:
        ctes.append((also if allowed is None else also.where(allowed)).cte("also"))
    answer = select(refusal) if refusal is not None else select(literal_column("1"))
    return answer.add_cte(*ctes)


class OutboxRelay:
    """Publishes outbox rows in order; one relay per service process."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        session_factory: async_sessionmaker[AsyncSession],
        table: Table,
        high_water: Table,
        source: str,
        topics: list[str],
        lock_key: int,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.table = table
        self.high_water = high_water
        self.source = source
        self.topics = topics
        self.lock_key = lock_key
        self.backlog = 0
        self.published_total = 0
        #: How often the broker was found to have lost what it had acknowledged, and how many rows went out again.
        self.broker_losses_total = 0
        self.republished_total = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._watch: BrokerWatch | None = None
        self._cluster_id: str | None = None
        #: (topic, partition) -> the lowest offset of the broker's latest acknowledgements there. Not the highest:
        #: the embedded broker's end offset is the last produce batch's first offset plus one (measured: 7
        #: records in batches of 4 and 3 end at 5), and the end must be beyond this one while nothing is lost.
        self._acknowledged: dict[tuple[str, int], int] = {}
        self._next_check = 0.0
        self._checked_connections: list[Any] = []
        hours = settings.outbox_retention_hours
        self._retention = timedelta(hours=hours) if hours is not None else None
        self._last_purge = utcnow()
        self._mark_sent_pg: Update | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._get_producer()  # checks the broker and creates the topics at start, before the first event
                if monotonic() >= self._next_check or self._reconnected():
                    await self.check_broker()
                published = await self.publish_pending()
                delay = 0.2
                if published >= self.settings.outbox_batch_size:
                    continue  # a full batch: there is more behind it
                await self._purge_old()
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("outbox relay: broker unavailable (%s); retrying in %.1fs", exc, delay)
                await self._drop_producer()
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except Exception:
                log.exception("outbox relay failed; retrying")
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            await self._sleep(self.settings.outbox_poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        if self._wake.is_set() and not self._stopping.is_set():
            # Woken by a commit: linger a moment so that the commits of concurrent requests go out
            # in one batch instead of one round trip (and one database update) each.
            await asyncio.sleep(self.settings.outbox_linger_seconds)
        self._wake.clear()

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Stop, after one last attempt to flush what is pending."""
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(self.publish_pending(), flush_timeout)
        except Exception as exc:  # noqa: BLE001 - rows stay in the outbox for the next start
            log.info("outbox relay: %s; unpublished rows stay for the next start", exc)
        await self._drop_producer()

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            # A new producer follows a start or a broker failure: first make sure the broker still has what it had.
            await self.check_broker(starting=True)
            await ensure_topics(self.settings, self.topics)
            producer = new_producer(self.settings, client_id=f"{self.source}-outbox")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client(producer.stop, 5, what="outbox relay's producer")
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.close()

    async def check_broker(self, *, starting: bool = False) -> dict[str, str]:
        """Compare what the broker holds with what it acknowledged; publish again the topics it lost.

        Returns the lost topics with the reason. ``starting`` also counts as lost a topic of this service that
        the broker does not have or holds empty while published rows of it are kept (rows published before
        the broker's acknowledgements were noted, or before a restart of both).
        """
        self._next_check = monotonic() + self.settings.kafka_broker_check_seconds
        if self._watch is None:
            self._watch = BrokerWatch(self.settings, client_id=f"{self.source}-outbox-check")
        state = await self._watch.state()
        async with self.session_factory() as session:
            marks = (await session.execute(select(self.high_water))).all()
            published_topics: set[str] = set()
            if starting:
                published_topics = set(
                    (
                        await session.scalars(
                            select(self.table.c.topic).where(self.table.c.published_at.is_not(None)).distinct()
                        )
                    ).all()
                )
        acknowledged = {(m.topic, m.kafka_partition): int(m.acknowledged_offset) for m in marks}
        lost: dict[str, str] = {}
        for mark in marks:
            if mark.cluster_id and state.cluster_id and mark.cluster_id != state.cluster_id:
                lost.setdefault(mark.topic, "another cluster id")
            elif mark.topic not in state.partitions:
                lost.setdefault(mark.topic, "topic gone")
            elif mark.kafka_partition >= state.partitions[mark.topic]:
                lost.setdefault(mark.topic, "partition gone")
        unmarked = [t for t in published_topics - {t for t, _ in acknowledged} if t not in lost]
        for topic in unmarked:
            if topic not in state.partitions:
                lost[topic] = "topic gone"
        ask = [key for key in acknowledged if key[0] not in lost]
        ask += [(t, p) for t in unmarked if t not in lost for p in range(state.partitions[t])]
        ends = await self._watch.end_offsets(ask)
        for key, end in ends.items():
            if key in acknowledged and end <= acknowledged[key]:
                lost.setdefault(key[0], "end offset not beyond an acknowledged one")
        for topic in unmarked:
            if topic not in lost and all(ends.get((topic, p), 0) == 0 for p in range(state.partitions[topic])):
                lost[topic] = "topic empty"
        self._cluster_id = state.cluster_id
        self._acknowledged = acknowledged
        self._checked_connections = self._connections() or []
        if lost:
            await self._republish(lost)
        return lost

    def _connections(self) -> list[Any] | None:
        """The producer's open broker connections (aiokafka's own map; None where it has none such)."""
        connections = getattr(getattr(self._producer, "client", None), "_conns", None)
        return list(connections.values()) if isinstance(connections, dict) else None

    def _reconnected(self) -> bool:
        """Whether the producer's connections changed since the last check: the broker may have restarted empty.

        A connection never outlives a broker's process, so while the producer keeps the connections it had at
        the check it talks to the broker that was checked, and nothing needs asking before a batch. A closed
        one is enough to ask (the next send would open a new one). Without aiokafka's map, ask every time.
        """
        connections = self._connections()
        if connections is None:
            return True
        checked = self._checked_connections
        return len(connections) != len(checked) or any(all(c is not k for k in checked) for c in connections)

    async def _republish(self, lost: dict[str, str]) -> None:
        """Make every kept row of the lost topics pending again: the relay publishes them in id order."""
        async with self.session_factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                # Wait for a batch another replica is sending, so that nothing it publishes overtakes the rows again.
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self.lock_key})
            count = await self._reset(session, sorted(lost))
        await self._after_loss(lost, count)

    async def _reset(self, session: AsyncSession, topics: list[str]) -> int:
        result: Any = await session.execute(
            update(self.table)
            .where(self.table.c.topic.in_(topics), self.table.c.published_at.is_not(None))
            .values(published_at=None)
        )
        await session.execute(delete(self.high_water).where(self.high_water.c.topic.in_(topics)))
        return int(result.rowcount or 0)

    async def _after_loss(self, lost: dict[str, str], count: int) -> None:
        self._acknowledged = {key: offset for key, offset in self._acknowledged.items() if key[0] not in lost}
        self.broker_losses_total += 1
        self.republished_total += count
        log.warning(
            "outbox relay: the broker lost what it had acknowledged (%s); publishing %d kept events again",
            ", ".join(f"{topic}: {reason}" for topic, reason in sorted(lost.items())),
            count,
        )
        # A topic made again may have other partitions than the producer knows: a new producer asks afresh.
        await self._drop_producer()
        await ensure_topics(self.settings, sorted(lost))
        self.wake()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        # Before any transaction: a new producer first checks the broker, which may make rows pending again
        # under the advisory lock that the transaction below takes as well.
        producer = await self._get_producer()
        async with self.session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin():
                    # One publisher per database at a time keeps the order per key across replicas;
                    # the lock lasts the transaction, so reading, sending and marking happen in it.
                    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": self.lock_key})
                    if not got:
                        return 0
                    rows = await self._pending(session)
                    sent_ids, acks, failure = await self._send(producer, rows)
                    await self._mark_sent(session, sent_ids)
                    lost, reset = await self._note_acks(session, acks)
            else:
                # SQLite has one writer and one relay per process: holding a transaction while the
                # broker answers would make every request's commit wait for the lock, so read,
                # send and mark in turn.
                async with session.begin():
                    rows = await self._pending(session)
                sent_ids, acks, failure = await self._send(producer, rows)
                async with session.begin():
                    await self._mark_sent(session, sent_ids)
                    lost, reset = await self._note_acks(session, acks)
        if lost:
            await self._after_loss(lost, reset)
        if failure is not None:
            raise failure
        if len(rows) < self.settings.outbox_batch_size:
            self.backlog = 0  # we took all there was; a full batch leaves the count to the next round
        return len(sent_ids)

    async def _pending(self, session: AsyncSession) -> list[Any]:
        rows = (
            await session.execute(
                select(self.table)
                .where(self.table.c.published_at.is_(None))
                .order_by(self.table.c.id)
                .limit(self.settings.outbox_batch_size)
            )
        ).all()
        self.backlog = len(rows)
        return list(rows)

    async def _send(
        self, producer: AIOKafkaProducer, rows: list[Any]
    ) -> tuple[list[int], list[tuple[str, int, int]], Exception | None]:
        """Send the rows, one key's after the other, different keys together; stop a key at its first failure.

        A later event of a key is only sent once the broker acknowledged the earlier one, so a retry can
        never overtake it: the order per key holds through outages. The rows go in rounds: the first
        pending row of every key, then (once those are acknowledged) the next of each, and so on; most
        keys have one row, so a batch is mostly one round, with no task per key. Returns the ids sent, the
        acknowledgements (topic, partition, offset) and the first failure.
        """
        if not rows:
            return [], [], None
        chains: dict[str, list[Any]] = {}
        for row in rows:
            chains.setdefault(row.partition_key, []).append(row)
        sent: list[int] = []
        acks: list[tuple[str, int, int]] = []
        failure: Exception | None = None
        waiting = list(chains.values())
        depth = 0
        while waiting:
            round_rows = [chain[depth] for chain in waiting]
            deliveries: list[asyncio.Future[Any] | Exception] = []
            for row in round_rows:
                try:
                    deliveries.append(await self._send_one(producer, row))
                except Exception as exc:  # noqa: BLE001 - the row stays pending and is retried
                    deliveries.append(exc)
            futures = [d for d in deliveries if not isinstance(d, Exception)]
            acknowledged = iter(await asyncio.gather(*futures, return_exceptions=True))
            still: list[list[Any]] = []
            for chain, row, delivery in zip(waiting, round_rows, deliveries, strict=True):
                outcome = delivery if isinstance(delivery, Exception) else next(acknowledged)
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome  # cancelled: not a broker failure
                    failure = failure or outcome
                    continue
                sent.append(row.id)
                acks.append((row.topic, outcome.partition, outcome.offset))
                if len(chain) > depth + 1:
                    still.append(chain)
            waiting = still
            depth += 1
        return sent, acks, failure

    async def _note_acks(self, session: AsyncSession, acks: list[tuple[str, int, int]]) -> tuple[dict[str, str], int]:
        """Note what the broker acknowledged, in the transaction that marks the rows sent.

        An acknowledgement not beyond an earlier one means that the broker started the partition afresh: it
        lost the topic, whose kept rows are made pending again here. Returns the lost topics and that count.
        """
        if not acks:
            return {}, 0
        lowest: dict[tuple[str, int], int] = {}
        for topic, partition, offset in acks:
            lowest[(topic, partition)] = min(offset, lowest.get((topic, partition), offset))
        went_back = sorted({key[0] for key, low in lowest.items() if low <= self._acknowledged.get(key, -1)})
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert(self.high_water) if dialect == "postgresql" else sqlite.insert(self.high_water)
        current, new = self.high_water.c.acknowledged_offset, insert.excluded.acknowledged_offset
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[self.high_water.c.topic, self.high_water.c.kafka_partition],
                set_={
                    "acknowledged_offset": case((new > current, new), else_=current),
                    "cluster_id": insert.excluded.cluster_id,
                },
            ),
            [
                {"topic": t, "kafka_partition": p, "acknowledged_offset": offset, "cluster_id": self._cluster_id}
                for (t, p), offset in lowest.items()
            ],
        )
        for key, offset in lowest.items():
            self._acknowledged[key] = max(offset, self._acknowledged.get(key, -1))
        if not went_back:
            return {}, 0
        reset = await self._reset(session, went_back)
        return dict.fromkeys(went_back, "acknowledged offset below an earlier one"), reset

    async def _mark_sent(self, session: AsyncSession, sent_ids: list[int]) -> None:
        if not sent_ids:
            return
        if session.get_bind().dialect.name == "postgresql":
            # One statement whatever the count: an IN list would be a new prepared statement for every count.
            if self._mark_sent_pg is None:
                self._mark_sent_pg = (
                    update(self.table)
                    .where(self.table.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger()))))
                    .values(published_at=bindparam("at"))
                )
            await session.execute(self._mark_sent_pg, {"ids": sent_ids, "at": utcnow()})
        else:
            await session.execute(update(self.table).where(self.table.c.id.in_(sent_ids)).values(published_at=utcnow()))
        self.published_total += len(sent_ids)

    async def _send_one(self, producer: AIOKafkaProducer, row: Any) -> asyncio.Future[Any]:
        headers = cloudevents.binary_headers(
            event_id=row.event_id,
            event_type=row.event_type,
            source=self.source,
            subject=row.subject,
            time=as_utc(row.occurred_at) or utcnow(),
        )
        token = None
        if row.traceparent:
            # Continue the trace of the request that wrote the event.
            token = otel_context.attach(propagate.extract({"traceparent": row.traceparent}))
        try:
            if not kafka_instrumented():
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                headers.extend((k, v.encode()) for k, v in carrier.items())
            delivery: asyncio.Future[Any] = await producer.send(
                row.topic,
                value=row.data.encode(),
                key=row.partition_key.encode(),
                headers=headers,
            )
            return delivery
        finally:
            if token is not None:
                otel_context.detach(token)

    async def count_backlog(self) -> int:
        async with self.session_factory() as session:
            self.backlog = int(
                await session.scalar(
                    select(func.count()).select_from(self.table).where(self.table.c.published_at.is_(None))
                )
                or 0
            )
        return self.backlog

    async def _purge_old(self) -> None:
        now = utcnow()
        if self._retention is None or now - self._last_purge < timedelta(minutes=10):
            return
        self._last_purge = now
        async with self.session_factory() as session, session.begin():
            await session.execute(delete(self.table).where(self.table.c.published_at < now - self._retention))
