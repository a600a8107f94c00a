"""Idempotent consumer runner with bounded retries and a dead-letter queue.

For each record: the handler's effect and the handled ``ce_id`` (inbox) are
committed in one database transaction; offsets are committed per batch, after
the database. A record whose handler keeps failing is a dead letter, so that the
partition keeps flowing: kept in the service's database (:mod:`chassis.deadletters`:
the durable record, which admins see, replay through :meth:`EventConsumer.replay`
or discard) and sent to ``<topic>.dlq`` with the error in its headers (for tools
that watch the topics; the embedded broker forgets it when it stops).

A failure of the infrastructure is not the event's fault: while the database is
unreachable (or a failure is of a kind that passes: lost connection, pool
timeout, serialisation failure, deadlock) the record is retried with capped
back-off for as long as that lasts, the partitions paused and the group
membership kept by polling. Only a failure that recurs with the database
answering counts towards the bounded retries before the dead-letter queue.

A broker that lost what it held (the embedded one forgets everything when it
stops) is noticed every few seconds (another cluster id, a topic gone) and at
once when an offset commit fails. The consumer then leaves, makes its topics
again and joins afresh from the earliest offsets the group has not committed,
so that it reads what the producing services publish again from their outboxes;
the inbox skips what it has handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from time import monotonic
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from sqlalchemy import Table, select, text
from sqlalchemy import exc as sa_exc

from chassis import deadletters
from chassis.cloudevents import InvalidEvent, ReceivedEvent, parse_record
from chassis.kafka import (
    BrokerWatch,
    client_options,
    dlq_topic,
    ensure_topics,
    leave_group_on_stop,
    new_producer,
    retry_until_ready,
    stop_client,
)
from chassis.outbox import utcnow
from chassis.settings import ServiceSettings
from chassis.uow import UnitOfWork

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

#: A handler does its effect in the unit of work's session and may publish events through it.
Handler = Callable[[UnitOfWork, ReceivedEvent], Awaitable[None]]

#: SQLSTATE classes and codes that name a passing condition, not a bad event: connection exceptions (08),
#: insufficient resources (53), operator intervention such as a shutdown or a terminated session (57),
#: serialisation failure and deadlock (40001, 40P01), lock not available (55P03).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: The longest pause between two tries while the infrastructure is away.
MAX_INFRASTRUCTURE_BACKOFF_SECONDS = 5.0
#: How long an offset commit may take; aiokafka retries one for a topic the broker lost for ever.
COMMIT_TIMEOUT_SECONDS = 5.0
#: Within a fetched batch, offsets are committed at least this often (and after the first records handled), so that
#: a restarted consumer working through a backlog shows its progress at once and a crash repeats little.
COMMIT_EVERY_SECONDS = 0.5
#: The pauses before consuming starts again after an error it did not expect: doubled from the first to the last.
FAILURE_FIRST_DELAY_SECONDS = 0.5
FAILURE_MAX_DELAY_SECONDS = 10.0
#: For the batch's transaction only (see _handle_batch).
CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in (exc, getattr(exc, "orig", None), getattr(getattr(exc, "orig", None), "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """A failure of the kind that passes by itself (infrastructure), judged by its type alone."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
        return True
    if isinstance(exc, (sa_exc.TimeoutError, TimeoutError, OSError, KafkaError)):
        return True
    code = _sqlstate(exc)
    return code is not None and (code[:2] in TRANSIENT_SQLSTATE_CLASSES or code in TRANSIENT_SQLSTATES)


def _unsampled_parent(traceparent: str) -> trace.SpanContext | None:
    """The publisher's span context from a W3C ``traceparent`` of version 00 whose trace is not sampled; None for
    anything else (then the propagators read it). Read here, not by ``propagate.extract`` (the configured
    propagators, a regular expression, a context each): that was a tenth of a simple handler's CPU in a replay."""
    parts = traceparent.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[3] != "00":
        return None
    try:
        trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(0))


class _Stopping(Exception):
    """The consumer was asked to stop while it waited for the infrastructure."""


class _UndoBatch(Exception):
    """A handler failed in a batch run without savepoints: the whole transaction is to be rolled back."""

    def __init__(self, index: int, failure: Exception) -> None:
        super().__init__(index)
        self.index = index  # of the event in the batch whose handler failed
        self.failure = failure


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
        dead_letters: Table | None = None,
    ) -> None:
        self.settings = settings
        self.unit_of_work = unit_of_work
        self.inbox = inbox
        self.group_id = group_id
        self.handlers = dict(handlers)
        self.topics = topics
        self.retry_delay = retry_delay
        #: Whether fetched records are handled in batches (PostgreSQL, see _handle_batch); None until first asked.
        self._batching: bool | None = None
        self.handled_total = 0
        self.dead_lettered_total = 0
        #: Where dead letters are kept (:mod:`chassis.deadletters`); without it, only in ``<topic>.dlq``.
        self.dead_letters = dead_letters
        #: Records dead-lettered by this process, by the topic they came from (the ``dead_letters_total`` metric).
        self.dead_lettered_by_topic: Counter[str] = Counter()
        #: Events handled (effect committed) by this process, by topic; and per partition, the next offset to
        #: handle, against which the broker's end offset gives the lag (the ``consumer_*`` metrics).
        self.handled_by_topic: Counter[str] = Counter()
        self._next_offsets: dict[TopicPartition, int] = {}
        #: Handler failures put down to the infrastructure (retried, never dead-lettered).
        self.infrastructure_failures_total = 0
        #: Since when (loop time) the consumer has been waiting for the infrastructure; None while it flows.
        self.waiting_since: float | None = None
        self.waiting_reason: str | None = None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[Any] | None = None
        self._in_batch = False
        #: Set once partitions are assigned and their start positions fixed.
        self.assigned = asyncio.Event()
        #: How often the broker was found to have lost the topics or the group's offsets (the consumer rejoined).
        self.broker_losses_total = 0
        #: How often consuming failed with an error it does not expect and started again.
        self.failures_total = 0
        self._watch: BrokerWatch | None = None
        self._cluster_id: str | None = None
        self._next_check = 0.0
        #: Partitions per topic as the broker last said (``_prepare``), and whether this consumer takes them itself
        #: instead of joining its group (``KAFKA_CONSUMER_ASSIGNMENT``; decided once the broker's cluster id is known).
        self._partitions: dict[str, int] = {}
        #: When offsets are committed next in the middle of a fetched batch (0: after the first records handled).
        self._next_commit = 0.0
        #: How many records the next transaction handles at most: from 2, doubled up to KAFKA_CONSUMER_BATCH_SIZE.
        self._batch_size = min(2, settings.kafka_consumer_batch_size)
        self.manual_assignment = False
        #: Whether spans are exported (then every event's handling has one; see _handling).
        self._spans_exported = settings.otel_exporter != "none"

    async def run(self) -> None:
        self._task = asyncio.current_task()
        reset = self.settings.kafka_consumer_offset_reset
        from_beginning = False
        delay = FAILURE_FIRST_DELAY_SECONDS
        try:
            while not self._stopping.is_set():
                known = self._cluster_id
                await retry_until_ready(self._prepare, what="consumer topics", stop=self._stopping)
                lost: str | None
                if known and self._cluster_id and self._cluster_id != known:
                    lost = "another cluster id"  # found on starting again after a failure (below)
                else:
                    self.manual_assignment = self.settings.manual_assignment(self._cluster_id)
                    consumer = self._new_consumer(reset)
                    self._consumer = consumer  # from here on, _close stops it, even while it is still joining
                    try:
                        await retry_until_ready(consumer.start, what="consumer", stop=self._stopping)
                        if self.manual_assignment:
                            consumer.assign(self._all_partitions())
                        else:
                            leave_group_on_stop(consumer)  # so that a restarted consumer is not held up by this one
                        await self._fix_start(consumer, from_beginning=from_beginning)
                        self.assigned.set()
                        lost = await self._consume(consumer)
                    except Exception as exc:
                        # Any error not handled below (one of aiokafka's that is not the broker's absence, say) would
                        # end the task without a word, and the service would consume nothing until it restarts.
                        # Start afresh from the committed offsets; the inbox skips what was handled.
                        log.exception("consumer %s failed (%s); starting again in %.1fs", self.group_id, exc, delay)
                        self.failures_total += 1
                        await self._close()
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, FAILURE_MAX_DELAY_SECONDS)
                        continue
                    finally:
                        await self._close()
                if lost is None:
                    break
                delay = FAILURE_FIRST_DELAY_SECONDS
                self.broker_losses_total += 1
                log.warning("consumer %s: the broker lost what it held (%s); joining afresh", self.group_id, lost)
                # The group's offsets went with it, and what the group holds now may be commits of this consumer's
                # last moments, of offsets in the lost log: read the topics from their start (the inbox skips what
                # was handled).
                reset, from_beginning = "earliest", True
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            # cancelled by our own stop() between batches: a normal end
        finally:
            await self._close()
            if self._watch is not None:
                await self._watch.close()

    async def _prepare(self) -> None:
        """Make the topics if they are missing and note which cluster the broker is."""
        await ensure_topics(self.settings, self.topics)
        if self._watch is None:
            self._watch = BrokerWatch(self.settings, client_id=f"{self.group_id}-check")
        try:
            state = await self._watch.state()
            self._cluster_id, self._partitions = state.cluster_id, state.partitions
        except BaseException:
            await self._watch.close()
            self._watch = None
            raise
        self._next_check = monotonic() + self.settings.kafka_broker_check_seconds

    def _all_partitions(self) -> list[TopicPartition]:
        """Every partition of the consumed topics, as the broker last said (a topic it did not name: one)."""
        return [TopicPartition(t, p) for t in self.topics for p in range(self._partitions.get(t) or 1)]

    def _new_consumer(self, reset: Literal["earliest", "latest"]) -> AIOKafkaConsumer:
        # Manually assigned: no subscription, so no JoinGroup; the group id still names where offsets are committed.
        return AIOKafkaConsumer(
            *(() if self.manual_assignment else self.topics),
            **client_options(self.settings),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=reset,
            max_poll_interval_ms=300_000,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            # The embedded broker holds every fetch for the full wait: the default 500 ms was most of an
            # event's latency from commit to a consumer's effect.
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )

    async def _consume(self, consumer: AIOKafkaConsumer) -> str | None:
        """Consume until asked to stop (returns None) or until the broker lost what it held (returns why)."""
        while not self._stopping.is_set():
            if monotonic() >= self._next_check:
                lost = await self._broker_lost()
                if lost is not None:
                    return lost
                if self.manual_assignment:
                    await self._assign_new_partitions(consumer)
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batches:
                continue
            self._in_batch = True
            # The next offsets handled and not yet committed, of every partition of the fetch: one commit request
            # for them all (at the end, or when COMMIT_EVERY_SECONDS passed), not one per partition.
            done: dict[TopicPartition, int] = {}
            try:
                for partition, records in batches.items():
                    async for offset in self._process_records(records):
                        done[partition] = offset + 1
                        if monotonic() >= self._next_commit:
                            await self._commit(consumer, done)
                            done = {}
                    if self._stopping.is_set():
                        break
            except _Stopping:
                pass  # what was not handled comes again to whoever consumes next
            finally:
                try:
                    if done:
                        await self._commit(consumer, done)
                finally:
                    self._in_batch = False
        return None

    async def _broker_lost(self) -> str | None:
        """Whether the broker lost the topics or the offsets this consumer works with, and how; None if not."""
        self._next_check = monotonic() + self.settings.kafka_broker_check_seconds
        if self._watch is None:
            self._watch = BrokerWatch(self.settings, client_id=f"{self.group_id}-check")
        try:
            state = await self._watch.state()
            if self._cluster_id and state.cluster_id and state.cluster_id != self._cluster_id:
                return "another cluster id"
            gone = [topic for topic in self.topics if topic not in state.partitions]
            if gone:
                return f"topic gone: {', '.join(gone)}"
            self._partitions = state.partitions
            # No comparison of positions with end offsets: the embedded broker's end offset can lie below records
            # it holds (chassis.outbox). A position beyond a partition's end is reset by aiokafka itself.
        except (TimeoutError, KafkaError, OSError) as exc:
            # The broker away is not a loss: the consumer waits for it; the check runs again on the next round.
            log.info("consumer %s: broker check failed (%s)", self.group_id, exc)
            await self._watch.close()
            self._watch = None
        return None

    async def _assign_new_partitions(self, consumer: AIOKafkaConsumer) -> None:
        """Manually assigned: take partitions the broker added to the topics since (a group would rebalance).

        Called between batches, whose offsets are committed: assigning afresh resumes the others from their
        commits, and a new partition starts as a new group would (``_fix_start``)."""
        wanted = set(self._all_partitions())
        if wanted <= consumer.assignment():
            return
        log.info("consumer %s: new partitions %s", self.group_id, sorted(map(str, wanted - consumer.assignment())))
        consumer.assign(sorted(wanted | consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)))
        await self._fix_start(consumer)

    async def stop(self) -> None:
        """Stop consuming; the batch in hand finishes and its offsets are committed.

        Between batches (waiting for records, or still joining the group) there is nothing to
        finish, so the loop is cancelled at once instead of waiting for the broker to answer.
        """
        self._stopping.set()
        if not self._in_batch and self._task is not None:
            self._task.cancel()

    async def _fix_start(self, consumer: AIOKafkaConsumer, *, from_beginning: bool = False) -> None:
        """Resolve and commit where a new group starts, before anyone waits on ``assigned``.

        Without the commit, a group that rebalanced before its first batch (a missed heartbeat
        on a busy machine) would resolve "latest" again and skip what was published meanwhile.
        ``from_beginning`` starts every assigned partition at its beginning, whatever was committed.
        """
        start: dict[TopicPartition, int] = {}
        if from_beginning and consumer.assignment():
            await consumer.seek_to_beginning(*consumer.assignment())
        for partition in consumer.assignment():
            position = await consumer.position(partition)
            self._next_offsets[partition] = position
            if from_beginning or await consumer.committed(partition) is None:
                start[partition] = position
        if start:
            await self._commit(consumer, start)

    def lag_by_topic(self) -> dict[str, int]:
        """Records on the broker this consumer has not handled, by topic: the end offsets the last fetches saw
        (aiokafka keeps them) less the next offsets to handle, over the partitions assigned to it."""
        consumer, lag = self._consumer, Counter[str]()
        for partition in consumer.assignment() if consumer is not None else ():
            end, done = consumer.highwater(partition), self._next_offsets.get(partition)  # type: ignore[union-attr]
            if end is not None and done is not None:
                lag[partition.topic] += max(0, end - done)
        return dict(lag)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        self._next_offsets.update(offsets)
        self._next_commit = monotonic() + COMMIT_EVERY_SECONDS
        try:
            await asyncio.wait_for(consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
        except (TimeoutError, KafkaError) as exc:
            # Records are redelivered; the inbox makes that harmless. A broker that lost the topic fails every
            # commit: check it at once.
            log.warning("offset commit failed (%s); records will be redelivered", type(exc).__name__)
            self._next_check = 0.0

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._dlq_producer = self._dlq_producer, None
        for client in (consumer, producer):
            if client is not None:
                await stop_client(client.stop, 10, what=f"consumer {self.group_id}'s client")

    async def _process_records(self, records: list[ConsumerRecord[Any, Any]]) -> AsyncIterator[int]:
        """Handle a partition's fetched records in order, yielding the offset of each one done.

        Runs of records go through :meth:`_handle_batch` (one transaction each); the record a run stops at (its
        handler failed, or it is not a valid event) goes the per-record way of :meth:`_process`, with its retries,
        waits for the infrastructure and dead letter, before the next run: a record never overtakes an earlier one.
        """
        index = 0
        while index < len(records):
            batch = records[index : index + self._batch_size]
            settled, failed = await self._handle_batch(batch)
            # Slow start: a consumer that just started (a backlog waiting) commits its first few records at once
            # instead of after a full batch (seconds for the referral service's handlers).
            self._batch_size = min(self._batch_size * 2, self.settings.kafka_consumer_batch_size)
            for record in batch[:settled]:
                yield record.offset
            index += settled
            if settled < len(batch):  # not the end of a whole batch: where the batch stopped
                await self._process(records[index], failed)
                yield records[index].offset
                index += 1

    async def _handle_batch(
        self, records: list[ConsumerRecord[Any, Any]], *, savepoints: bool = False
    ) -> tuple[int, Exception | None]:
        """Handle the leading records in one transaction; returns how many of them are settled (handled, seen before
        or of no interest), their effects and inbox rows committed together, and how the next one's handler failed
        (None if it was not tried).

        One inbox query for all of them and one insert. First without savepoints (a savepoint and its release cost
        two round trips and a flush per event, more than half of a simple handler's time); when a handler fails,
        all is undone and the events before it run again, each handler in a savepoint (``savepoints``), so that a
        failing one is undone alone and the batch stops before it (it is then handled on its own, the failure
        counted as its first try). On SQLite, or with a batch size of 1,
        nothing is batched (returns 0, None): one writer at a time anyway, and a handler's in-process lock would be held
        across the batch (``services/courses/workflow.py``'s seat lock).

        A fetch of one record (the usual one at a low rate) goes this way too: the handlers' batch paths (rows
        loaded up front, outbox rows inserted once at the commit) cost the referral consumer about a third less CPU
        per event than :meth:`_handle_once` (measured, issue 16).
        """
        if self.settings.kafka_consumer_batch_size < 2 or self._batching is False:
            return 0, None
        events: list[ReceivedEvent] = []
        for record in records:
            try:
                event = parse_record(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value,
                    headers=list(record.headers),
                )
            except InvalidEvent:
                break  # the dead letter is written by _process
            events.append(event)
        if not events:
            return 0, None
        # Only the events this service handles need the inbox and a transaction: a fetch of none such (another
        # service's events on a shared topic, a frequent case) is settled without a round trip to the database.
        wanted = [event for event in events if event.type in self.handlers]
        if not wanted:
            return len(events), None
        inbox = self.inbox
        rows: list[dict[str, Any]] = []
        topics: list[str] = []
        settled = 0
        failed: Exception | None = None
        try:
            async with self.unit_of_work() as uow:
                session = uow.session
                if self._batching is None:
                    self._batching = session.get_bind().dialect.name == "postgresql"
                if not self._batching:
                    return 0, None
                # The batch's lookups by a list of keys (the inbox, the handlers' loads) are prepared statements:
                # after five runs PostgreSQL keeps a generic plan, made while the tables were small or unanalysed (a
                # new or rebuilt service replaying), which scans the table comparing each row with every key, so
                # the database's CPU per event grew with the backlog (0.5 ms at 20,000 events, 8 times more).
                # Planned for their keys each time, the lists are hashed or the index used.
                await session.execute(CUSTOM_PLANS)
                ids = [event.id for event in wanted]
                seen = set(await session.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids))))
                uow.begin_batch([event for event in wanted if event.id not in seen], savepoints=savepoints)
                for event in events:
                    handler = self.handlers.get(event.type)
                    if handler is not None and event.id not in seen:
                        with self._handling(event):
                            try:
                                if savepoints:
                                    async with uow.savepoint():
                                        await handler(uow, event)
                                else:  # a failure undoes the whole transaction, and the unit of work goes with it
                                    await handler(uow, event)
                            except Exception as exc:  # undone (all, or to its savepoint); _process sorts it out
                                if not savepoints:
                                    raise _UndoBatch(settled, exc) from exc
                                failed = exc
                                break
                        seen.add(event.id)  # the same event twice in a batch: one effect
                        rows.append({"event_id": event.id, "event_type": event.type, "handled_at": utcnow()})
                        topics.append(event.topic)
                    settled += 1
                if rows:
                    await session.execute(inbox.insert(), rows)
                await uow.commit()
        except _UndoBatch as undo:
            # Rolled back, nothing committed: the events before the failed one again, each in a savepoint; the
            # failure counts as the failed event's first try (as it would have in a savepoint).
            if undo.index == 0:
                return 0, undo.failure
            done, failed = await self._handle_batch(records[: undo.index], savepoints=True)
            return (done, undo.failure) if done == undo.index and failed is None else (done, failed)
        except Exception as exc:  # noqa: BLE001 - e.g. the database went away: nothing committed, _process waits for it
            # Only the type: a database error's text can hold the statement's parameters (personal data).
            log.info("batch of %d events not committed (%s); one by one", len(events), type(exc).__name__)
            return 0, None
        self.handled_total += len(rows)
        self.handled_by_topic.update(topics)
        if rows:
            self._flowing()
        return settled, failed

    async def _process(self, record: ConsumerRecord[Any, Any], failed: Exception | None = None) -> None:
        """Handle one record in a transaction of its own; ``failed`` is how its try in a batch failed (a first
        attempt, counted as one)."""
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
            await self._dead_letter(record, exc, attempts=0, event=None)
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            return  # an event type this service does not care about
        attempts = 0  # failures with the infrastructure answering: the event's own
        backoff = self.retry_delay
        while True:
            if failed is not None:
                failure, failed = failed, None
            else:
                with self._handling(event):
                    try:
                        await self._handle_once(handler, event)
                        self._flowing()
                        return
                    except Exception as exc:  # noqa: BLE001 - sorted below: infrastructure, or the event's own failure
                        failure = exc
            if is_transient(failure) or not await self._database_answers():
                # Only the type: a database error's text can hold the statement's parameters (personal data).
                self.infrastructure_failures_total += 1
                log.warning("event %s waits for the infrastructure (%s)", event.id, type(failure).__name__)
                await self._wait_for_infrastructure(type(failure).__name__, backoff)
                backoff = min(backoff * 2, MAX_INFRASTRUCTURE_BACKOFF_SECONDS)
                continue
            attempts += 1
            if attempts > self.settings.kafka_consumer_max_retries:
                log.error("event %s failed %d times; dead-lettering", event.id, attempts)
                await self._dead_letter(record, failure, attempts=attempts, event=event)
                return
            log.warning("event %s failed (%s); retry %d", event.id, type(failure).__name__, attempts)
            await asyncio.sleep(self.retry_delay * 2 ** (attempts - 1))

    def _handling(self, event: ReceivedEvent) -> AbstractContextManager[Any]:
        """The span of handling the event, a child of the publisher's (its ``traceparent``).

        A span nobody records (no exporter, and the publisher's trace not sampled: the usual case) is not made: the
        publisher's span context stands in, so that logs and the events the handler publishes carry the same trace
        id as they would have. Making the span was about a sixth of a simple handler's CPU in a replay."""
        traceparent = event.header("traceparent") or ""
        if not self._spans_exported:
            publisher = _unsampled_parent(traceparent)
            if publisher is not None:
                return trace.use_span(trace.NonRecordingSpan(publisher))
        parent = propagate.extract({"traceparent": traceparent})
        return tracer.start_as_current_span(f"handle {event.type}", context=parent, kind=trace.SpanKind.CONSUMER)

    async def _database_answers(self) -> bool:
        """Whether the database takes a query now: a failure while it does not is not the event's."""
        try:
            async with self.unit_of_work() as uow:
                await asyncio.wait_for(uow.session.execute(text("SELECT 1")), 5)
            return True
        except Exception:  # noqa: BLE001 - any failure to answer means it does not
            return False

    def _flowing(self) -> None:
        if self.waiting_since is not None:
            waited = asyncio.get_running_loop().time() - self.waiting_since
            log.info("infrastructure back after %.1fs; consuming again", waited)
        self.waiting_since = None
        self.waiting_reason = None

    async def _wait_for_infrastructure(self, reason: str, seconds: float) -> None:
        """Back off with the partitions paused, polling all the while so that the group keeps this member.

        A record that a poll returns anyway (a partition assigned meanwhile) is given back by a seek.
        """
        loop = asyncio.get_running_loop()
        if self.waiting_since is None:
            self.waiting_since = loop.time()
        self.waiting_reason = reason
        consumer = self._consumer
        if consumer is None:
            await asyncio.sleep(seconds)
            return
        paused = consumer.assignment()
        consumer.pause(*paused)
        try:
            deadline = loop.time() + seconds
            while (left := deadline - loop.time()) > 0:
                if self._stopping.is_set():
                    raise _Stopping
                polled = await consumer.getmany(timeout_ms=max(1, int(min(left, 0.5) * 1000)))
                for partition, records in polled.items():
                    consumer.seek(partition, records[0].offset)
        finally:
            consumer.resume(*(p for p in paused if p in consumer.assignment()))

    async def _handle_once(
        self, handler: Handler, event: ReceivedEvent, then: Callable[[UnitOfWork], Awaitable[None]] | None = None
    ) -> None:
        """Handle the event unless the inbox has it; ``then`` runs in the same transaction either way."""
        async with self.unit_of_work() as uow:
            session = uow.session
            seen = await session.scalar(select(self.inbox.c.event_id).where(self.inbox.c.event_id == event.id))
            if seen is not None:  # a redelivery: the effect is already there
                if then is not None:
                    await then(uow)
                    await uow.commit()
                return
            await handler(uow, event)
            await session.execute(
                self.inbox.insert().values(event_id=event.id, event_type=event.type, handled_at=utcnow())
            )
            if then is not None:
                await then(uow)
            await uow.commit()  # the effect, the events it caused and the inbox row together
        self.handled_total += 1
        self.handled_by_topic[event.topic] += 1

    async def replay(self, letter: Any, *, by: str) -> bool:
        """Run the handler again for a kept dead letter (a row of :attr:`dead_letters`), through the inbox.

        Success marks the letter replayed in the transaction of the effect (an event handled meanwhile, e.g.
        replayed from ``<topic>.dlq``, is not handled twice; the letter is then marked replayed all the same).
        A failure keeps it open with the new error. True when it was replayed. A failure of the infrastructure
        (the database away) is raised, the letter left as it was.
        """
        table = self.dead_letters
        if table is None:
            raise RuntimeError("this consumer keeps no dead letters")
        letter_id = str(letter.id)
        try:
            event = parse_record(
                topic=letter.source_topic,
                partition=letter.source_partition,
                offset=letter.source_offset,
                key=None if letter.record_key is None else str(letter.record_key).encode(),
                value=None if letter.payload is None else str(letter.payload).encode(),
                headers=[(str(k), str(v).encode()) for k, v in letter.headers or [] if v is not None],
            )
        except InvalidEvent as exc:
            failure: Exception = exc
        else:
            handler = self.handlers.get(event.type)

            async def mark(uow: UnitOfWork) -> None:
                await deadletters.resolve(uow.session, table, letter_id, "replayed", by)

            if handler is None:
                failure = LookupError(f"this service handles no event of type {event.type}")
            else:
                try:
                    await self._handle_once(handler, event, then=mark)
                    log.info("dead letter %s (event %s) replayed by %s", letter_id, event.id, by)
                    return True
                except Exception as exc:  # noqa: BLE001 - kept as the letter's new error
                    failure = exc
        if is_transient(failure) or not await self._database_answers():
            raise failure  # the infrastructure's failure, not the event's: the letter stays as it was
        log.warning("dead letter %s failed again on replay (%s)", letter_id, type(failure).__name__)
        async with self.unit_of_work() as uow:
            await deadletters.failed_again(uow.session, table, letter_id, failure)
            await uow.commit()
        return False

    async def _keep_dead_letter(
        self, record: ConsumerRecord[Any, Any], error: Exception, *, attempts: int, event: ReceivedEvent | None
    ) -> None:
        """Write the dead letter to the database, waiting for it while it is away: it is the durable record."""
        assert self.dead_letters is not None
        found = {k: v for k, v in record.headers}
        ce_id, ce_type = found.get("ce_id"), found.get("ce_type")
        failure = deadletters.Failure(
            event_id=event.id
            if event
            else (
                ce_id.decode(errors="replace") if ce_id else f"record:{record.topic}:{record.partition}:{record.offset}"
            ),
            event_type=event.type if event else (ce_type.decode(errors="replace") if ce_type else None),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=self.group_id,
            key=record.key,
            headers=list(record.headers),
            value=record.value,
            error=error,
            attempts=attempts,
        )
        backoff = self.retry_delay
        while True:
            try:
                async with self.unit_of_work() as uow:
                    await deadletters.record(uow.session, self.dead_letters, failure)
                    await uow.commit()
                return
            except Exception as exc:  # noqa: BLE001 - the database away: wait for it, the record is not lost
                log.warning("dead letter for %s waits for the database (%s)", failure.event_id, type(exc).__name__)
                await self._wait_for_infrastructure(type(exc).__name__, backoff)
                backoff = min(backoff * 2, MAX_INFRASTRUCTURE_BACKOFF_SECONDS)

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], error: Exception, *, attempts: int, event: ReceivedEvent | None
    ) -> None:
        if self.dead_letters is not None:
            await self._keep_dead_letter(record, error, attempts=attempts, event=event)
        self.dead_lettered_total += 1
        self.dead_lettered_by_topic[record.topic] += 1
        try:
            await self._send_to_dlq_topic(record, error, attempts=attempts)
        except (TimeoutError, KafkaError, OSError) as exc:
            if self.dead_letters is None:
                raise  # the topic is the only record: the record must not be passed over
            # The database holds it; the topic is a copy for those who watch the topics.
            log.warning("dead letter of %s not copied to %s (%s)", record.topic, dlq_topic(record.topic), exc)

    async def _send_to_dlq_topic(self, record: ConsumerRecord[Any, Any], error: Exception, *, attempts: int) -> None:
        if self._dlq_producer is None:
            producer = new_producer(self.settings, client_id=f"{self.group_id}-dlq")
            await retry_until_ready(producer.start, what="dlq producer")
            self._dlq_producer = producer
        error_class, message = deadletters.describe(error)
        headers = [
            *record.headers,
            ("dlq_error", f"{error_class}: {message}"[:1000].encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
        ]
        await self._dlq_producer.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )


async def replay_dead_letters(
    settings: ServiceSettings, topic: str, *, max_records: int = 10_000, timeout_s: float = 5.0
) -> int:
    """Send what sits in ``<topic>.dlq`` back to ``topic`` (after the cause is fixed).

    The replayed record keeps its CloudEvents headers (and so its ``ce_id``):
    consumers that already handled it skip it, the others handle it now.
    """
    consumer = AIOKafkaConsumer(
        dlq_topic(topic),
        **client_options(settings),
        group_id=f"dlq-replay-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    producer = new_producer(settings, client_id=f"dlq-replay-{topic}")
    await consumer.start()
    leave_group_on_stop(consumer)
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
