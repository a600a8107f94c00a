"""The city's day: between midnight in Landsberg and midnight UTC the servers' day (UTC) is the day before."""

from __future__ import annotations

from datetime import UTC, date, datetime

from chassis import clock
from services.monitoring import periods


def test_the_citys_day_begins_at_midnight_in_the_city_not_at_midnight_utc() -> None:
    assert clock.local_day(datetime(2026, 12, 7, 22, 59, tzinfo=UTC)) == date(2026, 12, 7)
    assert clock.local_day(datetime(2026, 12, 7, 23, 0, tzinfo=UTC)) == date(2026, 12, 8)  # CET, UTC+1
    assert clock.local_day(datetime(2026, 7, 7, 22, 0, tzinfo=UTC)) == date(2026, 7, 8)  # CEST, UTC+2
    assert clock.local_day(datetime(2026, 7, 7, 21, 59)) == date(2026, 7, 7)  # naive: UTC, as SQLite hands it back


def test_today_follows_the_clock_in_the_citys_time() -> None:
    assert clock.today(lambda: datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2027, 1, 1)
    token = clock.current.set(lambda: datetime(2026, 12, 7, 23, 5, tzinfo=UTC))
    try:
        assert clock.today() == date(2026, 12, 8)
    finally:
        clock.current.reset(token)


def test_the_pure_monitoring_domain_names_the_same_time_zone() -> None:
    assert periods.LOCAL_TIME == clock.CITY_TIME
