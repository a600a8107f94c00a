"""Dead letters kept in the service's own database, for admins to see, replay or discard.

A record whose handler keeps failing with the infrastructure healthy (a bad payload, a broken rule) is a
dead letter (:mod:`chassis.consumer`). The broker's ``<topic>.dlq`` is not a record of them: the embedded
broker forgets everything when it stops. So the consumer also writes each one here, in the database that
holds the effects the handler failed to make, with what is needed to run the handler again: the record's
headers, key and value. Events carry no personal data by design (pseudonymous ids and coarse attributes,
see ``contracts``), so neither does a dead letter's payload. The error is kept as its class and a short
message; a database error keeps its class and SQLSTATE only (its text can hold a statement's parameters).

One row per event and consumer group: an event dead-lettered again (replayed from the topic, failing again)
updates its row (attempts add up, the last failure and error are the newest). Status: ``open`` until an
admin replays it with success (``replayed``) or gives it up with a reason (``discarded``); who did and when
are kept.

Admins reach the rows through :data:`router` (``/api/v1/admin/dead-letters``, not in the public OpenAPI; the
gateway merges all services' lists). ``/metrics`` (:mod:`chassis.metrics`) shows ``dead_letters_open`` by
source topic (from this table: the same for every replica) and ``dead_letters_total``, the records this
process dead-lettered since it started (a counter: alert on its ``increase``).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import system_clock
from chassis.errors import Problem

if TYPE_CHECKING:
    from chassis.consumer import EventConsumer

TABLE_NAME = "dead_letters"
STATUSES = ("open", "replayed", "discarded")
Status = Literal["open", "replayed", "discarded"]
MAX_MESSAGE = 500
MAX_REASON = 500


def define_dead_letter_table(metadata: MetaData) -> Table:
    """The dead letters; each service's own migration creates it (a frozen copy of this shape)."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", String(36), primary_key=True),
        # ce_id; a record that is no CloudEvent at all is named by where it was ("record:<topic>:<p>:<offset>").
        Column("event_id", String(200), nullable=False),
        Column("event_type", String(200), nullable=True),
        Column("source_topic", String(200), nullable=False),
        Column("source_partition", Integer, nullable=False),
        Column("source_offset", BigInteger, nullable=False),
        Column("consumer_group", String(200), nullable=False),
        # What it takes to run the handler again: the record as it came (headers as text pairs).
        Column("record_key", Text, nullable=True),
        Column("headers", JSON, nullable=False),
        Column("payload", Text, nullable=True),
        Column("error_class", String(200), nullable=False),
        Column("error_message", String(MAX_MESSAGE), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("first_failed_at", DateTime(timezone=True), nullable=False),
        Column("last_failed_at", DateTime(timezone=True), nullable=False),
        Column("status", String(20), nullable=False, index=True),
        Column("resolved_by", String(300), nullable=True),
        Column("resolved_at", DateTime(timezone=True), nullable=True),
        Column("discard_reason", String(MAX_REASON), nullable=True),
        UniqueConstraint("event_id", "consumer_group"),
    )


def describe(error: BaseException) -> tuple[str, str]:
    """An error as (class, message) fit to keep and show: short, and without data from the database.

    A database error's text holds the statement and may hold its parameters; a validation error's text
    holds the input. Events carry no personal data, but a dead letter is shown to people: keep what names
    the fault (the field and what is wrong with it; the SQLSTATE), not the values.
    """
    name = type(error).__name__
    if isinstance(error, sa_exc.StatementError):
        orig = error.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        message = type(orig).__name__ if orig is not None else name
        return name, f"{message} (SQLSTATE {code})" if code else message
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        return name, "; ".join(parts)[:MAX_MESSAGE]
    return name, str(error)[:MAX_MESSAGE]


@dataclass(frozen=True)
class Failure:
    """A record that failed for good, as the consumer saw it."""

    event_id: str
    event_type: str | None
    topic: str
    partition: int
    offset: int
    consumer_group: str
    key: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    value: bytes | None
    error: BaseException
    attempts: int


def _text(value: bytes | None) -> str | None:
    # An event's data is JSON text; bytes that are not UTF-8 never parse as an event (nor replay) anyway.
    return None if value is None else value.decode("utf-8", errors="replace")


async def record(session: AsyncSession, table: Table, failure: Failure) -> str:
    """Add the dead letter, or count another failure of one already kept (open again); its id."""
    now = system_clock()
    error_class, message = describe(failure.error)
    found = (
        await session.execute(
            select(table.c.id, table.c.attempts).where(
                table.c.event_id == failure.event_id, table.c.consumer_group == failure.consumer_group
            )
        )
    ).first()
    where = {
        "event_type": failure.event_type,
        "source_topic": failure.topic,
        "source_partition": failure.partition,
        "source_offset": failure.offset,
        "record_key": _text(failure.key),
        "headers": [[name, _text(value)] for name, value in failure.headers],
        "payload": _text(failure.value),
        "error_class": error_class,
        "error_message": message,
        "last_failed_at": now,
        "status": "open",
    }
    if found is not None:
        await session.execute(
            update(table)
            .where(table.c.id == found.id)
            .values(
                **where,
                attempts=found.attempts + failure.attempts,
                resolved_by=None,
                resolved_at=None,
                discard_reason=None,
            )
        )
        return str(found.id)
    letter_id = str(uuid.uuid4())
    await session.execute(
        table.insert().values(
            id=letter_id,
            event_id=failure.event_id,
            consumer_group=failure.consumer_group,
            attempts=failure.attempts,
            first_failed_at=now,
            **where,
        )
    )
    return letter_id


async def failed_again(session: AsyncSession, table: Table, letter_id: str, error: BaseException) -> None:
    """A replay failed: the letter stays open with the new error."""
    error_class, message = describe(error)
    await session.execute(
        update(table)
        .where(table.c.id == letter_id)
        .values(
            error_class=error_class,
            error_message=message,
            attempts=table.c.attempts + 1,
            last_failed_at=system_clock(),
        )
    )


async def resolve(
    session: AsyncSession, table: Table, letter_id: str, status: Status, by: str, reason: str | None = None
) -> bool:
    """Mark an open letter replayed or discarded; False when it is not open (any more)."""
    done = await session.execute(
        update(table)
        .where(table.c.id == letter_id, table.c.status == "open")
        .values(status=status, resolved_by=by[:300], resolved_at=system_clock(), discard_reason=reason)
    )
    return bool(getattr(done, "rowcount", 0))


#: Searched for as text: a short subject would match unrelated letters (as in :mod:`chassis.idempotency`).
MIN_SUBJECT_LENGTH = 8
ERASED_BY = "erasure"
ERASED_REASON = "The person was erased (GDPR Art. 17); the event's data is gone."


async def forget(session: AsyncSession, table: Table, subjects: Sequence[str]) -> int:
    """Erasure: in the caller's transaction, empty every dead letter that names one of ``subjects`` (in its
    payload, key or error) and give it up if open. The row stays, without data, so that the count of what
    failed still adds up. The number emptied."""
    wanted = sorted({s for s in subjects if len(s) >= MIN_SUBJECT_LENGTH})
    if not wanted:
        return 0

    def like(column: Any, subject: str) -> Any:
        escaped = subject.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(f"%{escaped}%", escape="\\")

    named = [
        like(column, subject)
        for subject in wanted
        for column in (table.c.payload, table.c.record_key, table.c.error_message)
    ]
    rows = (await session.execute(select(table.c.id, table.c.status, table.c.error_message).where(or_(*named)))).all()
    now = system_clock()
    for row in rows:
        message = str(row.error_message)
        for subject in wanted:
            message = message.replace(subject, "[erased]")
        values: dict[str, Any] = {"payload": None, "record_key": None, "headers": [], "error_message": message}
        if row.status == "open":
            values |= {
                "status": "discarded",
                "resolved_by": ERASED_BY,
                "resolved_at": now,
                "discard_reason": ERASED_REASON,
            }
        await session.execute(update(table).where(table.c.id == row.id).values(**values))
    return len(rows)


async def open_by_topic(session: AsyncSession, table: Table) -> dict[str, int]:
    rows = await session.execute(
        select(table.c.source_topic, func.count()).where(table.c.status == "open").group_by(table.c.source_topic)
    )
    return {str(topic): int(count) for topic, count in rows.all()}


# --- the admins' routes ------------------------------------------------------------------------------


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    event_id: str
    event_type: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    consumer_group: str
    payload: Any = Field(description="The event's data (JSON), or its text when it is not JSON")
    error_class: str
    error_message: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: Status
    resolved_by: str | None
    resolved_at: datetime | None
    discard_reason: str | None


class DeadLetterList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[DeadLetterRead]
    open: int = Field(description="Dead letters not yet replayed or discarded")
    total: int = Field(description="Dead letters kept, whatever their status")


class Discard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Why the event is given up")


def _read(row: Any) -> DeadLetterRead:
    payload: Any = row.payload
    with contextlib.suppress(ValueError):  # not JSON: shown as the text it is
        payload = json.loads(row.payload) if row.payload is not None else None
    return DeadLetterRead(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        source_topic=row.source_topic,
        source_partition=row.source_partition,
        source_offset=row.source_offset,
        consumer_group=row.consumer_group,
        payload=payload,
        error_class=row.error_class,
        error_message=row.error_message,
        attempts=row.attempts,
        first_failed_at=row.first_failed_at,
        last_failed_at=row.last_failed_at,
        status=row.status,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        discard_reason=row.discard_reason,
    )


async def admin(
    x_role: Annotated[str | None, Header(alias="X-Role", max_length=200)] = None,
    x_actor: Annotated[str | None, Header(alias="X-Actor", max_length=200)] = None,
) -> str:
    """The admin who calls (from the identity the gateway signed); anyone else is refused here too."""
    if x_role is None or "admin" not in {role.strip() for role in x_role.split(",")}:
        raise Problem(403, "Only an admin sees and handles dead letters.", kind="forbidden")
    return x_actor or "admin"


Admin = Annotated[str, Depends(admin)]
router = APIRouter(prefix="/api/v1/admin/dead-letters", tags=["admin"], include_in_schema=False)


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


async def _get(request: Request, letter_id: str) -> Any:
    runtime = _runtime(request)
    table = runtime.tables.dead_letters
    async with runtime.session_factory() as session:
        row = (await session.execute(select(table).where(table.c.id == letter_id))).first()
    if row is None:
        raise Problem(404, "No such dead letter.", kind="not-found")
    return row


@router.get("", response_model=DeadLetterList)
async def list_dead_letters(
    request: Request,
    _: Admin,
    status: Annotated[Status | None, Query(description="Only dead letters in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeadLetterList:
    runtime = _runtime(request)
    table = runtime.tables.dead_letters
    query = select(table).order_by(table.c.last_failed_at.desc(), table.c.id).limit(limit)
    if status is not None:
        query = query.where(table.c.status == status)
    async with runtime.session_factory() as session:
        rows = (await session.execute(query)).all()
        counts = dict((await session.execute(select(table.c.status, func.count()).group_by(table.c.status))).all())
    return DeadLetterList(
        items=[_read(r) for r in rows], open=int(counts.get("open", 0)), total=int(sum(counts.values()))
    )


@router.get("/{letter_id}", response_model=DeadLetterRead)
async def one_dead_letter(request: Request, letter_id: str, _: Admin) -> DeadLetterRead:
    return _read(await _get(request, letter_id))


@router.post("/{letter_id}/replay", response_model=DeadLetterRead)
async def replay_dead_letter(request: Request, letter_id: str, by: Admin) -> DeadLetterRead:
    """Run the handler again through the inbox (an event already handled is not handled twice). Success marks
    the letter replayed; a failure keeps it open with the new error (the answer says which)."""
    row = await _get(request, letter_id)
    if row.status != "open":
        raise Problem(409, f"This dead letter is {row.status} already.", kind="dead-letter-closed")
    consumer: EventConsumer | None = _runtime(request).consumer
    if consumer is None:
        raise Problem(503, "This service does not consume events now.", kind="consumer-unavailable")
    try:
        await consumer.replay(row, by=by)
    except Exception as exc:  # the infrastructure's failure (chassis.consumer.EventConsumer.replay)
        raise Problem(
            503,
            "The service cannot replay now; try again shortly.",
            kind="upstream-unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    return _read(await _get(request, letter_id))


@router.post("/{letter_id}/discard", response_model=DeadLetterRead)
async def discard_dead_letter(request: Request, letter_id: str, body: Discard, by: Admin) -> DeadLetterRead:
    runtime = _runtime(request)
    async with runtime.session_factory() as session, session.begin():
        done = await resolve(session, runtime.tables.dead_letters, letter_id, "discarded", by, body.reason.strip())
    row = await _get(request, letter_id)
    if not done:
        raise Problem(409, f"This dead letter is {row.status} already.", kind="dead-letter-closed")
    return _read(row)
