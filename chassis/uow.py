"""Unit of work: one database transaction for a state change and the events it causes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable, Row, Table, select
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import instance_state

from chassis import deadletters
from chassis.outbox import Outbox, PublishableEvent, Writes, insert_into, writes_at_once

if TYPE_CHECKING:
    from chassis.cloudevents import ReceivedEvent
    from chassis.idempotency import IdempotencyStore


_Row = TypeVar("_Row")
# Cache keys of :meth:`UnitOfWork.load` and :meth:`get`.
_ABSENT, _ADDED, _LOADED = "chassis.absent", "chassis.added", "chassis.loaded"


class UnitOfWork:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        on_events_committed: Callable[[], None] = lambda: None,
        idempotency: IdempotencyStore | None = None,
        dead_letters: Table | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._on_events_committed = on_events_committed
        self._idempotency = idempotency
        self._dead_letters = dead_letters
        self._on_end: list[Callable[[], None]] = []
        self.session: AsyncSession
        #: The events a consumer handles in this unit of work, one savepoint each (:meth:`begin_batch`); empty
        #: otherwise. A handler may look up what all of them need in one query instead of one per event.
        self.batch: Sequence[ReceivedEvent] = ()
        #: What handlers remember across the events of a batch (e.g. rows loaded for all of them). Emptied when a
        #: savepoint is rolled back: nothing cached may outlive the writes it reflects.
        self.cache: dict[str, Any] = {}
        #: Outbox rows held back until the commit (in a batch: one insert for all its events, not one per publish).
        self._held_rows: list[dict[str, Any]] | None = None
        #: Rows of new records held for one insert per table at the commit (:meth:`insert_at_commit`), by table and
        #: key; and what was done to them, so that a savepoint's rollback undoes it (see :meth:`savepoint`).
        self._held_inserts: dict[Table, dict[Any, dict[str, Any]]] = {}
        #: (table, key, the row held under the key before): what undoes each holding, replacing or taking.
        self._held_journal: list[tuple[Table, Any, dict[str, Any] | None]] = []
        self._savepoints = True

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()  # a no-op after commit
        finally:
            await self.session.close()
            while self._on_end:
                self._on_end.pop()()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when this unit of work ends, committed or not (e.g. release a lock)."""
        self._on_end.append(callback)

    def begin_batch(self, events: Sequence[ReceivedEvent], *, savepoints: bool = True) -> None:
        """A consumer handles these events here, each in a :meth:`savepoint`: hold the outbox rows until the
        commit (one insert for the batch) and let handlers see the batch. Without ``savepoints`` a
        :meth:`savepoint` is none: the consumer rolls the whole transaction back when a handler fails."""
        self.batch = events
        self._held_rows = []
        self._savepoints = savepoints

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A savepoint (``begin_nested``); on failure its held events and the cache go with what it undid."""
        held = len(self._held_rows) if self._held_rows is not None else 0
        journal = len(self._held_journal)
        try:
            if self._savepoints:
                async with self.session.begin_nested():
                    yield
            else:
                yield
        except BaseException:
            if self._held_rows is not None:
                del self._held_rows[held:]
            self._undo_held_inserts(journal)
            self.cache.clear()
            raise

    def insert_at_commit(self, table: Table, key: Any, row: dict[str, Any]) -> None:
        """Insert ``row`` (a new record of ``table``, whose primary key is ``key``) at the commit, with the others
        held for the same table in one statement: for a batch's many new rows, no ORM object each (its making,
        tracking and flush were most of a simple handler's CPU). Until then only :meth:`held` and :meth:`take_held`
        see it, not a query: a handler that may meet the row again in the same unit of work asks them first."""
        rows = self._held_inserts.setdefault(table, {})
        self._held_journal.append((table, key, rows.get(key)))
        rows[key] = row  # a row held under this key already is replaced, in its place

    def held_rows(self, table: Table) -> list[tuple[Any, dict[str, Any]]]:
        """The rows held for insertion into ``table`` with their keys, in the order they were held (to read; change
        one by holding a changed copy under its key)."""
        return list(self._held_inserts.get(table, {}).items())

    def held(self, table: Table, key: Any) -> dict[str, Any] | None:
        """The row held for insertion into ``table`` with this key, if any (to read; see :meth:`take_held`)."""
        rows = self._held_inserts.get(table)
        return rows.get(key) if rows else None

    def take_held(self, table: Table, key: Any) -> dict[str, Any] | None:
        """The row held for insertion into ``table`` with this key, no longer held: the caller is to store it its own
        way (e.g. as an ORM row it then changes)."""
        rows = self._held_inserts.get(table)
        row = rows.pop(key, None) if rows else None
        if row is not None:
            self._held_journal.append((table, key, row))
        return row

    def _undo_held_inserts(self, mark: int) -> None:
        """Undo what was held, replaced or taken since ``mark`` (a rolled back savepoint), last first."""
        while len(self._held_journal) > mark:
            table, key, before = self._held_journal.pop()  # the row held under the key before, if any
            if before is None:
                self._held_inserts[table].pop(key, None)
            else:
                self._held_inserts[table][key] = before

    async def load(self, model: type[_Row], keys: Iterable[Any]) -> list[_Row]:
        """Load the rows of ``model`` (a single-column primary key) with these keys in one query, into the session:
        :meth:`get` then finds each of them, or knows it is not there, without a query of its own (a batch's
        handlers look up what all its events need at once, not one row per event)."""
        wanted = set(keys)
        if not wanted:
            return []
        mapper = sqlalchemy_inspect(model)
        (column,) = mapper.primary_key
        attribute = mapper.get_property_by_column(column).key
        rows = list((await self.session.scalars(select(model).where(column.in_(wanted)))).all())
        if _ADDED not in self.cache:
            self.cache[_ADDED] = {}
            if not self.session.info.get(_ADDED):  # once per session: rows added to it, by key (see get)
                self.session.info[_ADDED] = True
                sqlalchemy_event.listen(self.session.sync_session, "transient_to_pending", self._added)
        # Held for the unit of work: the session's identity map holds unchanged rows only weakly, so rows nobody
        # kept were gone again by the time a handler asked for them, and each such get was a query after all.
        self.cache.setdefault(_LOADED, []).extend(rows)
        absent: set[Any] = self.cache.setdefault(_ABSENT, {}).setdefault(model, set())
        absent |= wanted - {getattr(row, attribute) for row in rows}
        return rows

    def _added(self, _session: Any, row: Any) -> None:
        added = self.cache.get(_ADDED)
        # Only rows of the models load() found keys missing of: get() looks no others up here. A row added before
        # its model's load() is flushed by that load's query (autoflush) and found there.
        if added is not None and type(row) in self.cache.get(_ABSENT, {}):
            # The instance's state, not inspect(row): for a declarative class's instance that goes the way of the
            # class (its registered inspector), a tenth of the referral consumer's CPU.
            mapper = instance_state(row).mapper
            added[(mapper.class_, tuple(mapper.primary_key_from_instance(row)))] = row

    async def get(self, model: type[_Row], key: Any) -> _Row | None:
        """``session.get``, without a query for a key :meth:`load` found missing: then the row added since in
        this session, if any (pending rows are in no identity map)."""
        if key in self.cache.get(_ABSENT, {}).get(model, ()):
            found = self.cache[_ADDED].get((model, (key,)))
            if found is None:
                return None
            state = sqlalchemy_inspect(found)
            return None if state.deleted or state.detached or found in self.session.deleted else found
        # A row in the session already, as session.get would find it, without its trip through a greenlet (a
        # batch's lookups after UnitOfWork.load: a tenth of the referral consumer's CPU, a fifth of monitoring's).
        mapper = sqlalchemy_inspect(model)
        identity = mapper.identity_key_from_primary_key(list(key) if isinstance(key, tuple) else [key])
        known = self.session.identity_map.get(identity)
        if known is not None and isinstance(known, model) and not sqlalchemy_inspect(known).expired:
            return known
        return await self.session.get(model, key)

    async def publish(self, *events: PublishableEvent) -> None:
        """Record events in the outbox, in this transaction (one statement for all of them; in a batch, one at
        the commit for the whole batch)."""
        if self._held_rows is not None:
            self._held_rows += self._outbox.rows(events)  # stamped now, with the handler's trace
            return
        await self._outbox.add_all(self.session, events)

    async def forget_stored_responses(self, *subjects: str) -> int:
        """Erasure: delete, in this transaction, the stored answers to idempotent writes about these subjects
        (:meth:`chassis.idempotency.IdempotencyStore.forget`), and empty the dead letters that name them
        (:func:`chassis.deadletters.forget`); the number of answers deleted."""
        if self._dead_letters is not None:
            await deadletters.forget(self.session, self._dead_letters, subjects)
        if self._idempotency is None:  # no store, no stored answers (a unit of work outside a service's runtime)
            return 0
        return await self._idempotency.forget(await self.session.connection(), subjects)

    async def commit_inserts(
        self,
        writes: Writes,
        events: Sequence[PublishableEvent] = (),
        *,
        unless: tuple[Executable, Mapping[str, Any]] | None = None,
    ) -> list[Row[Any]]:
        """Insert the rows, publish the events and commit, unless the query ``unless`` (a check that refuses the
        writes) finds rows: then nothing is written, and they are returned. On PostgreSQL, when nothing has begun
        a transaction here, it is all one statement in autocommit, the check, the outbox rows and the idempotency
        key's mark (:meth:`commit`) with it: one round trip instead of a BEGIN, the check, one per insert, the mark
        and a COMMIT."""
        bind = self.session.bind
        begun = self._held_rows is not None or bool(self._held_inserts) or self.session.in_transaction()
        if begun or not isinstance(bind, AsyncEngine) or bind.dialect.name != "postgresql":
            if unless is not None and (refused := list((await self.session.execute(*unless)).all())):
                return refused
            for table, rows in writes:
                if rows:
                    await self.session.execute(insert_into(table), list(rows))
            await self.publish(*events)
            await self.commit()
            return []
        rows = self._outbox.rows(events)
        mark = self._idempotency.mark_statement() if self._idempotency is not None else None
        statement, params = writes_at_once([*writes, (self._outbox.table, rows)], mark, unless)
        async with bind.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            answer = await conn.execute(statement, params)
            refused = list(answer.all()) if unless is not None else []
        if rows and not refused:
            self._on_events_committed()
        return refused

    async def commit(self) -> None:
        for table, held in self._held_inserts.items():
            if held:
                await self.session.execute(insert_into(table), list(held.values()))
        self._held_inserts, self._held_journal = {}, []
        if self._held_rows:
            rows, self._held_rows = self._held_rows, []
            await self._outbox.insert(self.session, rows)
        dirty = self.session.info.pop("outbox_dirty", False)
        if self._idempotency is not None:
            # Serving a request with an Idempotency-Key: its key is marked done with the effect, so that a crash
            # before its answer is kept does not let a retry run it again (chassis.idempotency).
            await self._idempotency.mark_committed(await self.session.connection())
        await self.session.commit()
        if dirty:
            self._on_events_committed()  # wake the relay: no waiting for its next poll
