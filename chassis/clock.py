"""Time for services: an injectable clock and a periodic job runner."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

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
