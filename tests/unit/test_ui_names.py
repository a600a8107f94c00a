"""Codes and dates as a caseworker reads them, in the page's language (gateway.ui.names)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.ui import names


@pytest.mark.parametrize(
    ("value", "lang", "shown"),
    [
        ("2026-12-07", "de", "07.12.2026"),
        ("2026-12-07", "en", "7 Dec 2026"),
        (date(2027, 1, 31), "de", "31.01.2027"),
        ("2026-12-07T23:30:00Z", "de", "08.12.2026"),  # past midnight in Landsberg: the next day there
        ("2026-12-07T23:30:00+00:00", "en", "8 Dec 2026"),
        (None, "de", ""),
        ("next week", "de", "next week"),  # not a date: left as it is
    ],
)
def test_a_day_is_written_in_the_pages_language(value: object, lang: str, shown: str) -> None:
    assert names.day(value, lang) == shown


def test_a_long_day_names_the_month() -> None:
    assert names.day("2026-12-07", "de", "long") == "7. Dezember 2026"
    assert names.day("2026-12-07", "en", "long") == "7 December 2026"


def test_a_moment_is_in_landsbergs_time() -> None:
    assert names.moment("2026-07-01T12:05:00Z", "de") == "01.07.2026, 14:05", "summer time: UTC+2"
    assert names.moment(datetime(2026, 12, 7, 13, 30, tzinfo=UTC), "en") == "7 Dec 2026, 14:30"
    assert names.moment("2026-12-07", "de") == "07.12.2026", "a plain date has no time"


def test_codes_as_names() -> None:
    assert (names.language_name("ar", "de"), names.language_name("ar", "en")) == ("Arabisch", "Arabic")
    assert (names.country_name("SY", "de"), names.country_name("SY", "en")) == ("Syrien", "Syria")
