"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, MetaData, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.util import await_

#: Stable constraint names, so that migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: How long a SQLite writer waits for the database (the busy timeout, and our own writer lock).
SQLITE_LOCK_TIMEOUT_SECONDS = 30


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs and pick the async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    url = async_url(url)
    kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One writer at a time: wait for the lock instead of failing at once.
        kwargs["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT_SECONDS}
    else:
        # No pool_pre_ping: with asyncpg it costs three round trips (BEGIN, a query, ROLLBACK) on every checkout,
        # a third of a registration's. A connection the server closed (restart, failover, idle timeout) is
        # noticed without a round trip instead (_refuse_closed_connection); a half-open one fails its first
        # query, and the pool then replaces all its connections.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size if max_overflow is None else max_overflow)
    # A database error's message names the statement's parameters (names, birth dates) unless hidden; errors are
    # logged, and logs must hold no personal data.
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _serialise_sqlite_writers(engine)
    else:
        event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_TIMEOUT_SECONDS * 1000}")
    cursor.close()


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection that the server has closed is replaced (the pool connects anew) before it is used."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the database server closed this connection")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    """Let one transaction of this engine write at a time, the others waiting their turn in order.

    SQLite has one writer; a second connection that tries to write gets SQLITE_BUSY and its busy handler
    sleeps and retries (1, 2, 5 ... 100 ms). Under concurrent writes most of a request's time went to those
    sleeps, unfairly shared (p99 over a second). Here a connection takes an asyncio lock before the first
    write of its transaction (pysqlite begins the transaction right then) and gives it back when the
    transaction ends, so the next writer starts as soon as the lock is free. Reads stay concurrent (WAL).
    Writers of other processes still meet SQLite's own lock and busy timeout.
    """
    lock = asyncio.Lock()
    holding = "sqlite_writer_lock"

    async def take_turn() -> None:
        async with asyncio.timeout(SQLITE_LOCK_TIMEOUT_SECONDS):
            await lock.acquire()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_write(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip()[:6].upper() not in _WRITES or conn.info.get(holding):
            return  # a read, or this transaction writes already (a write through a CTE only meets SQLite's lock)
        try:
            await_(take_turn())
        except TimeoutError as exc:
            raise OperationalError(statement, None, Exception("database is locked")) from exc
        conn.info[holding] = True

    def release(info: dict[str, Any] | None) -> None:
        if info is not None and info.pop(holding, False):
            lock.release()

    def info_of(dbapi_connection: Any) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = dbapi_connection.info
        except (AttributeError, NotImplementedError):  # the dialect's own first connection, outside the pool
            return None
        return info

    # Given back once the transaction has ended in SQLite (not before: the next writer would find it still
    # locked and sleep in the busy handler), so around the dialect's commit and rollback ...
    dialect = engine.sync_engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            release(info_of(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            release(info_of(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    # ... and when a connection leaves our hands in any other way.
    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        release(record.info)

    @event.listens_for(engine.sync_engine, "invalidate")
    def _invalidated(_dbapi_connection: Any, record: Any, _exc: Any) -> None:
        release(record.info)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


M = TypeVar("M")


async def page_of_rows(
    session: AsyncSession,
    model: type[M],
    filters: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
    page: int,
    page_size: int,
) -> tuple[list[M], int]:
    """One page (counted from 1) of ``model``'s rows that pass every filter, in ``order_by`` order, and how
    many rows pass them in all: what every paged list of the services reads."""
    total = await session.scalar(select(func.count()).select_from(model).where(*filters)) or 0
    rows = await session.scalars(
        select(model).where(*filters).order_by(*order_by).offset((page - 1) * page_size).limit(page_size)
    )
    return list(rows.all()), total
