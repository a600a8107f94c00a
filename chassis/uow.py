"""Unit of work: one database transaction for a state change and the events it causes."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis import deadletters
from chassis.outbox import Outbox, PublishableEvent

if TYPE_CHECKING:
    from chassis.idempotency import IdempotencyStore


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

    async def publish(self, *events: PublishableEvent) -> None:
        """Record events in the outbox, in this transaction (one statement for all of them)."""
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

    async def commit(self) -> None:
        dirty = self.session.info.pop("outbox_dirty", False)
        if self._idempotency is not None:
            # Serving a request with an Idempotency-Key: its key is marked done with the effect, so that a crash
            # before its answer is kept does not let a retry run it again (chassis.idempotency).
            await self._idempotency.mark_committed(await self.session.connection())
        await self.session.commit()
        if dirty:
            self._on_events_committed()  # wake the relay: no waiting for its next poll
