"""The staff pages' message catalogues (domain ``staff``): every key the template (``staff.pot``) lists is
translated in German and English, every placeholder survives translation, and every word a template or page
module asks for by key is there."""

from __future__ import annotations

import re
from string import Formatter

from gateway.ui import catalogues, words
from gateway.ui.kit import HERE

#: ``t.key`` or ``t["key"]`` in a template; ``words["key"]`` in a page module.
IN_TEMPLATES = re.compile(r"\bt(?:\.([a-z][a-z0-9_]*)(?![a-z0-9_(])|\[\"([a-z][a-z0-9_-]*)\"\])")
IN_MODULES = re.compile(r"\bwords\[\"([a-z][a-z0-9_-]*)\"\]")


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in Formatter().parse(text) if field}


def test_every_key_is_in_the_template_and_translated_in_every_language() -> None:
    template = catalogues.template_entries(words.DOMAIN)
    assert len(template) == len(set(template)), "a key is listed twice"
    assert len(template) > 1000
    for lang in words.LANGS:
        translated = catalogues.entries(lang, words.DOMAIN)
        assert set(translated) == set(template), (lang, sorted(set(template) ^ set(translated))[:20])
        for (context, key), text in translated.items():
            assert text.strip(), (lang, context, key)
    german, english = (catalogues.entries(lang, words.DOMAIN) for lang in ("de", "en"))
    for entry, text in german.items():
        assert placeholders(text) == placeholders(english[entry]), (entry, text, english[entry])


def test_the_tables_are_read_from_the_catalogues() -> None:
    assert words.WORDS["de"]["sign_in"] == "Anmelden" and words.WORDS["en"]["sign_in"] == "Sign in"
    assert words.CODES["de"]["registered"] == "angemeldet", "a code and a word of the same key are apart"
    assert words.WORDS["de"]["registered"] == "Die Person ist angemeldet."
    assert words.CODES["en"]["in_progress"] == "in progress"
    assert words.FIELD_ERRORS["de"]["missing"] == "Bitte ausfüllen."
    assert words.WORDS["de"]["ca_err_weeks"].format(most=52) == "Bitte 1 bis 52 Termine."


def test_every_word_the_pages_ask_for_by_key_is_there() -> None:
    asked: set[str] = set()
    for page in (HERE / "templates").glob("*.html"):
        if not page.name.startswith("public_"):  # the newcomers' pages speak through ``_()``
            asked |= {a or b for a, b in IN_TEMPLATES.findall(page.read_text(encoding="utf-8"))}
    for module in HERE.glob("*.py"):
        asked |= set(IN_MODULES.findall(module.read_text(encoding="utf-8")))
    assert len(asked) > 300
    assert asked <= set(words.WORDS["de"]), sorted(asked - set(words.WORDS["de"]))
