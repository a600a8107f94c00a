"""The city's calendar: its time zone, and the day a moment falls on there.

The servers run on UTC; between midnight in the city and midnight UTC the two days differ. Every day the platform
decides by (a registration date, a consent's last day, an enrolment window, a due goal, a report's month) is the
city's, so every service, the web UI and the pure domain modules take it from here (every German city's zone).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

CITY_TIME = ZoneInfo("Europe/Berlin")


def local_day(moment: datetime) -> date:
    """The calendar day in the city at ``moment`` (a naive datetime is UTC, as SQLite hands it back)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(CITY_TIME).date()


def today() -> date:
    """The city's day now, by the system clock (services decide by their injected clock: ``local_day(now)``)."""
    return local_day(datetime.now(UTC))
