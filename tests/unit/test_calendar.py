"""The city's day: between midnight in Landsberg and midnight UTC the servers' day (UTC) is the day before."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from contracts import calendar
from services.monitoring import periods


def test_the_citys_day_begins_at_midnight_in_the_city_not_at_midnight_utc() -> None:
    assert calendar.local_day(datetime(2026, 12, 7, 22, 59, tzinfo=UTC)) == date(2026, 12, 7)
    assert calendar.local_day(datetime(2026, 12, 7, 23, 0, tzinfo=UTC)) == date(2026, 12, 8)  # CET, UTC+1
    assert calendar.local_day(datetime(2026, 7, 7, 22, 0, tzinfo=UTC)) == date(2026, 7, 8)  # CEST, UTC+2
    assert calendar.local_day(datetime(2026, 7, 7, 21, 59)) == date(2026, 7, 7)  # naive: UTC, as SQLite hands it back


def test_today_is_the_citys_day_now() -> None:
    before = calendar.local_day(datetime.now(UTC))
    today = calendar.today()
    assert today - before in (timedelta(0), timedelta(days=1))  # midnight in the city may fall between the two


def test_the_monitoring_periods_count_the_citys_days() -> None:
    assert periods.local_day is calendar.local_day
