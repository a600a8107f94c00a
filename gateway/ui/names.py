"""Codes as names in the page's language: countries (ISO 3166-1) and languages (ISO 639, BCP 47 tags), from
pycountry's data and its translations, so that a caseworker reads "Syrien" and "Arabisch", not "SY" and "ar";
and dates and times as people write them (Babel's CLDR data): "07.12.2026, 14:30" in German, "7 Dec 2026, 14:30"
in English (British usage: day before month, 24 hours), in Landsberg's time."""

from __future__ import annotations

import gettext
from datetime import date, datetime
from functools import cache

import pycountry
from babel.dates import format_date, format_time

from contracts.calendar import CITY_TIME

#: The page's language -> the CLDR locale its dates are written in.
LOCALES = {"de": "de_DE", "en": "en_GB"}


@cache
def _translation(domain: str, lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()  # pycountry's names are English
    return gettext.translation(domain, pycountry.LOCALES_DIR, languages=[lang], fallback=True)


@cache
def language_name(tag: str | None, lang: str) -> str:
    """ "ar" -> "Arabisch" (de) or "Arabic" (en); "sr-Latn" names the language; an unknown code stays as it is."""
    if not tag:
        return ""
    base = tag.split("-")[0].lower()
    found = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
    if found is None:
        return tag
    name = _translation("iso639-3", lang).gettext(found.name)
    return name.split(";")[0].strip()  # "Paschtu; Afghanisch": the first name is enough


@cache
def country_name(code: str | None, lang: str) -> str:
    """ "SY" -> "Syrien" (de) or "Syria" (en): the common name where there is one; an unknown code stays."""
    if not code:
        return ""
    found = pycountry.countries.get(alpha_2=code.upper())
    if found is None:
        return code
    translation = _translation("iso3166-1", lang)
    common = getattr(found, "common_name", None)
    if common:
        translated = translation.gettext(common)
        if translated != common or lang == "en":
            return translated
    return translation.gettext(found.name)


def _parsed(value: object) -> date | datetime | None:
    """A date, a datetime, or the API's ISO text of either (a ``Z`` or an offset kept); None if it is none."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _local(moment: datetime) -> datetime:
    return moment.astimezone(CITY_TIME) if moment.tzinfo else moment


def day(value: object, lang: str, form: str = "medium") -> str:
    """ "2026-12-07" (or a moment) -> "07.12.2026" (de) / "7 Dec 2026" (en); ``form="long"``: "7. Dezember 2026".
    A moment is first put in Landsberg's time (23:30 UTC is the next day there). Text that is no date stays."""
    parsed = _parsed(value)
    if parsed is None:
        return "" if value is None else str(value)
    if isinstance(parsed, datetime):
        parsed = _local(parsed).date()
    return format_date(parsed, format=form, locale=LOCALES.get(lang, "de_DE"))


def moment(value: object, lang: str) -> str:
    """ "2026-12-07T13:30:00Z" -> "07.12.2026, 14:30" (de) / "7 Dec 2026, 14:30" (en), in Landsberg's time."""
    parsed = _parsed(value)
    if not isinstance(parsed, datetime):
        return day(value, lang)
    local = _local(parsed)
    locale = LOCALES.get(lang, "de_DE")
    return f"{format_date(local.date(), format='medium', locale=locale)}, {format_time(local, 'HH:mm', locale=locale)}"
