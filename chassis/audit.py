"""Who read a person's data, in one shape in every service (GDPR Art. 5(2) accountability, Art. 15).

Every service that answers a route with personal data of a person writes one row per person into its own
``access_log`` table (:func:`define_access_log_table`, created by the service's own migration from a frozen
copy of that shape), in the transaction of the read: who (the ``X-Actor`` the
gateway signed), what (an action such as ``read_case`` or ``export``), which person (the pseudonymous id) and
why (the purpose: the ground an erasure names, or what the caller's role reads for, :func:`purpose_of`).

Each service answers its rows for one person on ``GET /api/v1/persons/{id}/access-log`` (the gateway calls
it with the caller's signed identity and merges the services' answers, newest first) as
:class:`AccessLogEntry`. Registration keeps its own table of the same shape (it existed before this module).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc, system_clock
from chassis.db import new_metadata

TABLE_NAME = "access_log"
#: Longest answer of one service: a person's log of years stays readable; the oldest beyond it are not shown.
MAX_ENTRIES = 1000

#: Why a role reads a person's data, where the route itself names no ground.
PURPOSES = {
    "caseworker": "case work (integration counselling)",
    "privacy_officer": "data protection (a data subject's request)",
    "admin": "administration",
    "registrar": "registration at the residents' office",
    "course_admin": "course administration",
    "partner": "the referral sent to the partner",
}


def define_access_log_table(metadata: MetaData) -> Table:
    """The log's table, for a service's models (its migration creates it)."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("person_id", String(64), nullable=False, index=True),
        Column("actor", String(300), nullable=False),
        Column("action", String(40), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("purpose", String(500), nullable=True),
    )


#: The same table for the functions below: they work on any service's (and on registration's, which has the
#: same columns).
TABLE = define_access_log_table(new_metadata())


class AccessLogEntry(BaseModel):
    """One read of (or change to) one person's data."""

    at: datetime
    service: str = Field(description="The service that holds the data read")
    actor: str = Field(description="Who read: user:<name>, api_key:<id>, or a service on someone's behalf")
    action: str = Field(description="What was read or done, e.g. read_case, read_enrolments, export")
    person_id: str
    purpose: str | None = Field(None, description="Why: the ground an erasure names, or what the role reads for")


def purpose_of(roles: str | None) -> str | None:
    """Why the caller reads, from their ``X-Role`` header: the first role (in a fixed order) that names one."""
    if not roles:
        return None
    granted = {role.strip() for role in roles.split(",")}
    return next((PURPOSES[role] for role in PURPOSES if role in granted), None)


async def audit_read(
    session: AsyncSession, actor: str, action: str, person_ids: Iterable[str], purpose: str | None = None
) -> None:
    """Log, in the caller's transaction, that ``actor`` did ``action`` with these persons' data (once each)."""
    at = system_clock()
    rows: list[dict[str, Any]] = [
        {"person_id": p, "actor": actor[:300], "action": action, "at": at, "purpose": purpose}
        for p in dict.fromkeys(person_ids)
        if p
    ]
    if rows:
        await session.execute(insert(TABLE), rows)


async def entries_for(session: AsyncSession, service: str, person_id: str) -> list[AccessLogEntry]:
    """The person's entries in this service's log, newest first."""
    rows = (
        await session.execute(
            select(TABLE).where(TABLE.c.person_id == person_id).order_by(TABLE.c.id.desc()).limit(MAX_ENTRIES)
        )
    ).all()
    return [
        AccessLogEntry(
            at=as_utc(r.at), service=service, actor=r.actor, action=r.action, person_id=r.person_id, purpose=r.purpose
        )
        for r in rows
    ]


def roles_of(header: str | None) -> frozenset[str] | None:
    """The ``X-Role`` header as a set; None when no identity was forwarded (development and tests)."""
    if header is None:
        return None
    return frozenset(role.strip() for role in header.split(",") if role.strip())


#: Who reads everything a service holds on anyone, to answer a data subject (Art. 15): the access log and the
#: export routes of the services that do not know a caseworker's team.
DATA_PROTECTION_ROLES = frozenset({"privacy_officer", "admin"})


class ServiceExport(BaseModel):
    """What one service holds on a person (GDPR Art. 15), its part of the gateway's export: its rows about the
    person, table by table, and its access log for them."""

    service: str
    person_id: str
    data: dict[str, list[dict[str, Any]]] = Field(description="The service's records of the person, by kind")
    access_log: list[AccessLogEntry]


def row_dict(row: Any, *, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """An ORM row's columns as a dict (for an export: what is stored, as stored)."""
    left_out = set(leave_out)
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in left_out}


async def rows_of(session: AsyncSession, query: Any) -> list[dict[str, Any]]:
    """The ORM rows ``query`` selects, each as :func:`row_dict` (an export's list of them)."""
    return [row_dict(r) for r in (await session.scalars(query)).all()]
