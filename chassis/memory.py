"""A unit of work held in memory, for the use cases' tests (``workflow.py`` of each service).

:class:`InMemoryUnitOfWork` subclasses the real :class:`~chassis.uow.UnitOfWork`, so a use case runs its own code
unchanged: the same ORM queries, ``load``/``get``, savepoints and commits, on a private SQLite database that lives in
memory (no file, no server), and the events it publishes land in lists instead of an outbox, a relay and a broker.
Why not hand-written repositories over dicts: the workflows use the ORM session as their repository (it is a unit of
work with an identity map already); a second, fake query layer per service would double the query code and could
agree with the tests while the real one does not. The real-database tests (``tests/service``) prove the persistence
on PostgreSQL and SQLite files; these prove what a use case decides and publishes, in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from chassis.outbox import Outbox, PublishableEvent, define_messaging_tables
from chassis.uow import UnitOfWork


class InMemoryUnitOfWork(UnitOfWork):
    """The real unit of work on an in-memory database; what it publishes is kept in :attr:`published`.

    ``async with uow:`` may be entered again and again (a session each time, as a request or a batch would);
    the rows stay, since the database is one connection held for the object's life. :attr:`published` holds
    the events of committed units of work only: a unit of work that is left without ``commit`` publishes nothing,
    as with the outbox.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        tables = define_messaging_tables(MetaData())
        super().__init__(async_sessionmaker(engine, expire_on_commit=False), Outbox(tables.outbox))
        self.engine = engine
        #: Events committed, in the order they were published.
        self.published: list[PublishableEvent] = []
        #: How many times a unit of work committed.
        self.commits = 0
        self._pending: list[PublishableEvent] = []

    @classmethod
    async def create(cls, metadata: MetaData | Sequence[MetaData]) -> InMemoryUnitOfWork:
        """A unit of work over a new in-memory database holding ``metadata``'s tables (a service's models)."""
        engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        event.listen(engine.sync_engine, "connect", _foreign_keys)
        async with engine.begin() as connection:
            for each in [metadata] if isinstance(metadata, MetaData) else metadata:
                await connection.run_sync(each.create_all)
        return cls(engine)

    async def __aenter__(self) -> InMemoryUnitOfWork:
        await super().__aenter__()
        self._pending = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pending = []
        await super().__aexit__(exc_type, exc, tb)

    async def publish(self, *events: PublishableEvent) -> None:
        self._pending.extend(events)

    async def commit(self) -> None:
        await self.session.commit()
        self.published += self._pending
        self._pending = []
        self.commits += 1

    def types(self) -> list[str]:
        """The committed events' types, in order (what a test most often asserts)."""
        return [event.event_type for event in self.published]

    async def close(self) -> None:
        await self.engine.dispose()


def _foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # as on a service's own SQLite database (chassis.db)
    cursor.close()
