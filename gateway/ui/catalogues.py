"""What the newcomers' own pages say, in the information pack's eight languages: gettext message catalogues.

The English message ids are the source; ``locale/<lang>/LC_MESSAGES/public.po`` holds each language's
translations, read once with Babel's pofile reader (no compile step: a translator's edited ``.po`` is what
runs). ``locale/public.pot`` lists every message for a new language. Apart from German, the translations are
machine quality and need a native speaker's check (README). Names of languages come from Babel's CLDR data, so
a Ukrainian reader sees "арабська", not "ar". The staff pages' words (domain ``staff``, ``words``) are read
the same way.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "public"
#: The information pack's languages (``services/registration/infopacks``); ar and fa are written right to left.
LANGUAGES = ("de", "en", "ar", "fa", "ro", "ru", "tr", "uk")
RIGHT_TO_LEFT = frozenset({"ar", "fa"})


@cache
def entries(lang: str, domain: str = DOMAIN) -> dict[tuple[str | None, str], str]:
    """A language's translations in a domain by (context, message id); none for a language without a catalogue."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=domain)
    # A fuzzy entry is a translator's unfinished guess: the English id is shown until it is checked.
    return {(m.context, str(m.id)): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


def messages(lang: str) -> dict[str, str]:
    """A language's translations by message id; English (the ids themselves) and unknown languages have none."""
    return {message: text for (context, message), text in entries(lang).items() if context is None}


def template_entries(domain: str = DOMAIN) -> list[tuple[str | None, str]]:
    """Every message a domain's template (``<domain>.pot``) lists, as (context, message id)."""
    with (LOCALE_DIR / f"{domain}.pot").open("rb") as handle:
        return [(m.context, str(m.id)) for m in read_po(handle, domain=domain) if m.id]


def message_ids() -> list[str]:
    """Every message the template (``public.pot``) lists."""
    return [message for _, message in template_entries()]


class Words:
    """``_("Show")`` in a template: the message in the page's language, the English id where none is given."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.messages = messages(lang)

    def __call__(self, message: str, **values: Any) -> str:
        text = self.messages.get(message, message)
        return text.format(**values) if values else text


def direction(lang: str) -> str:
    return "rtl" if lang in RIGHT_TO_LEFT else "ltr"


@cache
def language_name(tag: str, lang: str) -> str:
    """ "uk" as the page's language names it (CLDR): "Ukrainisch", "الأوكرانية"; an unknown tag stays as it is."""
    base = tag.split("-")[0].lower()
    try:
        name = Locale.parse(lang).languages.get(base)
    except (ValueError, LookupError):
        name = None
    return str(name) if name else tag


def autonym(lang: str) -> str:
    """A language in its own words ("Українська"), as a language switch shows it."""
    name = language_name(lang, lang)
    return name[:1].upper() + name[1:]
