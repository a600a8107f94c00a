"""Time for services: an injectable clock and a periodic job runner."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

#: The city's time zone (every German city's). Its days (today, a completion date, a due goal) are the people's: the
#: servers run on UTC, and between midnight in the city and midnight UTC the two days differ. The pure domain modules,
#: which import no chassis, name it again (``services.monitoring.periods``); a test holds them equal.
CITY_TIME = ZoneInfo("Europe/Berlin")

#: Tests inject their own; services never call ``datetime.now`` for decisions.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


#: The clock of the request in hand, for what cannot take it as a parameter: a body's validators ("a birth date
#: not in the future") run before any handler. Set by the chassis per request (:func:`chassis.service.use_clock`).
current: contextvars.ContextVar[Clock] = contextvars.ContextVar("clock", default=system_clock)


def now() -> datetime:
    """The request's "now" (:data:`current`): for helpers a request reaches that take no clock parameter."""
    return current.get()()


def local_day(moment: datetime) -> date:
    """The calendar day in the city at ``moment`` (a naive datetime is UTC, as SQLite hands it back)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(CITY_TIME).date()


def today(clock: Clock | None = None) -> date:
    """The city's day now by ``clock`` (the request's, by default): what ``date.today()`` would say in the city,
    but movable."""
    return local_day((clock or current.get())())


def as_utc(moment: datetime | None) -> datetime | None:
    """As an aware UTC datetime: SQLite hands back naive ones, clients may send any offset."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


async def run_every(seconds: float, job: Callable[[], Awaitable[Any]], what: str) -> None:
    """Run ``job`` every ``seconds`` until cancelled; a failing round is logged, the next one runs."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("%s failed; trying again next round", what)
