"""Rows held for one insert at the commit (``UnitOfWork.insert_at_commit``) keep a savepoint's promise: what a rolled
back savepoint held is not inserted, what it replaced or took is held as before; the rest goes in at the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from chassis.db import make_engine, make_session_factory
from chassis.outbox import Outbox, define_messaging_tables
from chassis.uow import UnitOfWork

metadata = MetaData()
things = Table("things", metadata, Column("id", String(20), primary_key=True), Column("size", Integer))
messaging = define_messaging_tables(metadata)


class Refused(Exception):
    pass


async def test_a_rolled_back_savepoint_gives_back_what_it_held_and_took(database_url: str) -> None:
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    factory = make_session_factory(engine)
    try:
        async with UnitOfWork(factory, Outbox(messaging.outbox)) as uow:
            uow.begin_batch([], savepoints=True)
            uow.insert_at_commit(things, "kept", {"id": "kept", "size": 1})
            uow.insert_at_commit(things, "taken", {"id": "taken", "size": 2})
            with pytest.raises(Refused):
                async with uow.savepoint():
                    uow.insert_at_commit(things, "undone", {"id": "undone", "size": 3})
                    uow.insert_at_commit(things, "kept", {"id": "kept", "size": 10})  # replaced in its place
                    assert uow.held_rows(things)[0] == ("kept", {"id": "kept", "size": 10})
                    assert uow.take_held(things, "taken") == {"id": "taken", "size": 2}
                    assert uow.held(things, "taken") is None
                    raise Refused
            assert uow.held(things, "undone") is None, "held in the rolled back savepoint"
            assert uow.held(things, "kept") == {"id": "kept", "size": 1}, "replaced in it: as it was"
            assert uow.held(things, "taken") == {"id": "taken", "size": 2}, "taken in it: held again"
            async with uow.savepoint():  # a savepoint that holds: its rows stay
                uow.insert_at_commit(things, "later", {"id": "later", "size": 4})
            await uow.commit()
        async with factory() as session:
            rows = dict((await session.execute(select(things.c.id, things.c.size))).all())
        assert rows == {"kept": 1, "taken": 2, "later": 4}
    finally:
        await engine.dispose()
