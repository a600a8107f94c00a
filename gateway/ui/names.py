"""Codes as names in the page's language: countries (ISO 3166-1) and languages (ISO 639, BCP 47 tags), from
pycountry's data and its translations, so that a caseworker reads "Syrien" and "Arabisch", not "SY" and "ar"."""

from __future__ import annotations

import gettext
from functools import cache

import pycountry


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
