"""A registration's writes on SQLite and PostgreSQL: on PostgreSQL they are one statement in autocommit
(``UnitOfWork.commit_inserts``), which must stay all-or-nothing, carry the outbox rows and mark the request's
Idempotency-Key as done with the effect, as the transaction did."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from chassis import idempotency
from chassis import identity as internal
from services.registration.models import AccessLog, Household, Person
from services.registration.workflow import ACCESS_LOG_TABLE, HOUSEHOLDS, persons_table
from tests.conftest import newcomer, person_registered, signed_by_gateway


def registrar() -> dict[str, str]:
    """Signed now: a signed identity expires (chassis.identity.TTL_SECONDS)."""
    return signed_by_gateway(internal.Identity("registrar", frozenset({"registrar"})), "registration")


def person_row(person_id: str, household_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": person_id,
        "household_id": household_id,
        "status": "registered",
        "version": 1,
        "duplicate_key": f"key {person_id}",
        "given_names": "Test",
        "family_name": "Person",
        "birth_date": date(1990, 1, 1),
        "languages": ["ar"],
        "registration_date": at.date(),
        "created_at": at,
        "updated_at": at,
    }


async def counts(registration: httpx.AsyncClient, household_id: str, person_id: str) -> tuple[int, int, int, int]:
    runtime = registration.app.state.runtime  # type: ignore[attr-defined]
    outbox = runtime.tables.outbox
    async with runtime.session_factory() as session:
        return (
            int(await session.scalar(select(func.count()).where(Household.id == household_id)) or 0),
            int(await session.scalar(select(func.count()).where(Person.id == person_id)) or 0),
            int(await session.scalar(select(func.count()).where(AccessLog.person_id == person_id)) or 0),
            int(await session.scalar(select(func.count()).where(outbox.c.partition_key == person_id)) or 0),
        )


async def test_the_writes_of_a_registration_are_all_or_nothing(registration: httpx.AsyncClient) -> None:
    runtime = registration.app.state.runtime  # type: ignore[attr-defined]
    at = datetime.now(UTC)
    household, person = str(uuid.uuid4()), str(uuid.uuid4())
    access = [{"person_id": person, "actor": "user:test", "action": "register", "at": at}]
    # The person's household is not written: the person's row fails its foreign key, after the household's and
    # with the access log and the event in the same unit of work. None of them may stay.
    async with runtime.unit_of_work() as uow:
        with pytest.raises(IntegrityError):
            await uow.commit_inserts(
                [
                    (HOUSEHOLDS, [{"id": household, "created_at": at}]),
                    (persons_table, [person_row(person, str(uuid.uuid4()), at)]),
                    (ACCESS_LOG_TABLE, access),
                ],
                [person_registered(person, household_id=household)],
            )
    assert await counts(registration, household, person) == (0, 0, 0, 0)

    async with runtime.unit_of_work() as uow:
        await uow.commit_inserts(
            [
                (HOUSEHOLDS, [{"id": household, "created_at": at}]),
                (persons_table, [person_row(person, household, at)]),
                (ACCESS_LOG_TABLE, access),
            ],
            [person_registered(person, household_id=household)],
        )
    assert await counts(registration, household, person) == (1, 1, 1, 1)


async def test_a_registration_whose_answer_was_lost_after_its_commit_never_runs_again(
    registration: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The effect's own statement (PostgreSQL) or transaction (SQLite) marks the key done: when keeping the answer
    fails, as a process ending there would, a retry is told to wait and does not register the person twice."""
    store = registration.app.state.runtime.idempotency  # type: ignore[attr-defined]
    assert isinstance(store, idempotency.IdempotencyStore)
    body = newcomer()
    key = {"Idempotency-Key": str(uuid.uuid4())}

    async def dies_before_keeping(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the process ended here")

    with monkeypatch.context() as patch:
        patch.setattr(store, "finish", dies_before_keeping)
        first = await registration.post("/api/v1/registrations", headers=registrar() | key, json=body)
    assert first.status_code == 201, first.text
    async with store.engine.connect() as conn:
        (row,) = (await conn.execute(select(idempotency.TABLE))).all()
    assert row.status == idempotency.EFFECT_COMMITTED

    again = await registration.post("/api/v1/registrations", headers=registrar() | key, json=body)
    assert again.status_code == 409 and again.json()["type"].endswith("/idempotency-request-in-flight"), again.text
    async with registration.app.state.runtime.session_factory() as session:  # type: ignore[attr-defined]
        persons = (await session.scalars(select(Person.id).where(Person.given_names == body["given_names"]))).all()
    assert persons == [first.json()["person_id"]]


async def test_a_possible_duplicate_is_refused_with_nothing_written(registration: httpx.AsyncClient) -> None:
    """The duplicate check is part of the writes' statement on PostgreSQL: a refusal must leave no household, person,
    access log entry or event behind, and name the person already there."""
    runtime = registration.app.state.runtime  # type: ignore[attr-defined]
    body = newcomer()
    first = await registration.post("/api/v1/registrations", headers=registrar(), json=body)
    assert first.status_code == 201, first.text

    async def written() -> tuple[int, ...]:
        async with runtime.session_factory() as session:
            return tuple(
                [
                    int(await session.scalar(select(func.count()).select_from(table)) or 0)
                    for table in (HOUSEHOLDS, persons_table, ACCESS_LOG_TABLE, runtime.tables.outbox)
                ]
            )

    before = await written()
    again = await registration.post("/api/v1/registrations", headers=registrar(), json=body | {"household_members": []})
    assert again.status_code == 409, again.text
    assert [p["person_id"] for p in again.json()["existing_persons"]] == [first.json()["person_id"]]
    assert await written() == before
    confirmed = await registration.post(
        "/api/v1/registrations", headers=registrar(), json=body | {"confirm_new_person": True}
    )
    assert confirmed.status_code == 201, confirmed.text
    assert await written() == (before[0] + 1, before[1] + 1, before[2] + 1, before[3] + 1)
