"""The in-memory unit of work (chassis/memory.py) keeps the real one's promises: rows and events of a unit of work
count only once it commits; a refused step leaves nothing; the rows outlive the unit of work that wrote them."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError

from chassis.memory import InMemoryUnitOfWork
from chassis.uow import UnitOfWork

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))
parts = Table("parts", metadata, Column("id", Integer, primary_key=True), Column("thing_id", ForeignKey("things.id")))


class ThingMade(BaseModel):
    event_type: ClassVar[str] = "example.thing_made.v1"
    topic: ClassVar[str] = "example.things.v1"
    thing_id: int

    def partition_key(self) -> str:
        return str(self.thing_id)

    def subject(self) -> str:
        return str(self.thing_id)


async def make(uow: UnitOfWork, thing_id: int, *, commit: bool = True) -> None:
    await uow.session.execute(things.insert().values(id=thing_id, name="x"))
    await uow.publish(ThingMade(thing_id=thing_id))
    if commit:
        await uow.commit()


async def names(uow: InMemoryUnitOfWork) -> list[Any]:
    async with uow:
        return list((await uow.session.scalars(select(things.c.id))).all())


@pytest.fixture
async def uow() -> Any:
    unit = await InMemoryUnitOfWork.create(metadata)
    yield unit
    await unit.close()


async def test_committed_rows_and_events_stay(uow: InMemoryUnitOfWork) -> None:
    async with uow:
        await make(uow, 1)
    async with uow:
        await make(uow, 2)
    assert await names(uow) == [1, 2]
    assert uow.types() == ["example.thing_made.v1"] * 2
    assert [e.thing_id for e in uow.published] == [1, 2]  # type: ignore[attr-defined]
    assert uow.commits == 2


async def test_a_unit_left_without_commit_leaves_nothing(uow: InMemoryUnitOfWork) -> None:
    async with uow:
        await make(uow, 1, commit=False)
    assert await names(uow) == []
    assert uow.published == [] and uow.commits == 0


async def test_a_failed_step_publishes_nothing(uow: InMemoryUnitOfWork) -> None:
    with pytest.raises(IntegrityError):  # foreign keys are enforced, as on a service's SQLite database
        async with uow:
            await uow.publish(ThingMade(thing_id=9))
            await uow.session.execute(parts.insert().values(id=1, thing_id=9))
            await uow.commit()
    assert uow.published == []


async def test_it_is_the_real_interface(uow: InMemoryUnitOfWork) -> None:
    assert isinstance(uow, UnitOfWork)
    async with uow:
        await make(uow, 3, commit=False)
        async with uow.savepoint():  # the real savepoint: undone on failure, the unit of work goes on
            await uow.session.execute(things.insert().values(id=4, name="y"))
        with pytest.raises(IntegrityError):
            async with uow.savepoint():
                await uow.session.execute(things.insert().values(id=3, name="again"))
        await uow.commit()
    assert await names(uow) == [3, 4]
