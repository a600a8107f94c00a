"""The newcomers' pages' message catalogues: every message the templates (and the newcomer's letter) and codes ask
for is in the template (``public.pot``) and translated in every language, and every placeholder survives
translation."""

from __future__ import annotations

import re
from string import Formatter

from contracts.vocabulary import PartnerCategory, ServiceType
from gateway.ui import catalogues
from gateway.ui.kit import HERE
from gateway.ui.public import LABELS, browser_lang
from services.courses.domain import CourseCategory
from services.partners.domain import MeetingAudience, MeetingKind

#: ``_("...")`` in a template (the message ids are English sentences, never with a double quote).
ASKED = re.compile(r'_\("([^"]+)"')


def test_every_code_the_pages_show_has_a_label() -> None:
    assert set(LABELS["kind"]) == {k.value for k in MeetingKind}
    assert set(LABELS["audience"]) == {a.value for a in MeetingAudience}
    assert set(LABELS["course"]) == {c.value for c in CourseCategory}
    assert set(LABELS["partner"]) == {c.value for c in PartnerCategory}
    assert set(LABELS["service"]) == {s.value for s in ServiceType}


def test_every_message_asked_for_is_in_the_template_and_translated_everywhere() -> None:
    template = set(catalogues.message_ids())
    asked = {text for group in LABELS.values() for text in group.values()}
    for page in [*(HERE / "templates").glob("public_*.html"), HERE / "templates" / "letter.html"]:
        asked |= set(ASKED.findall(page.read_text(encoding="utf-8")))
    public = (HERE / "public.py").read_text(encoding="utf-8")
    asked |= {"Not found.", "The page could not be loaded. Please try again in a moment."}
    assert all(message in public for message in ("Not found.", "The page could not be loaded."))
    assert asked <= template, sorted(asked - template)
    assert len(asked) > 60
    for lang in catalogues.LANGUAGES:
        if lang == "en":  # English is the message ids themselves
            continue
        translated = catalogues.messages(lang)
        assert set(translated) == template, (lang, sorted(template - set(translated)))
        for message, text in translated.items():
            wanted = {f for _, f, _, _ in Formatter().parse(message) if f}
            assert {f for _, f, _, _ in Formatter().parse(text) if f} == wanted, (lang, message, text)


def test_words_fall_back_to_english_and_name_languages_in_the_page_language() -> None:
    assert catalogues.Words("uk")("{n} offers", n=3) == "Пропозицій: 3"
    assert catalogues.Words("en")("{n} offers", n=3) == "3 offers"
    assert catalogues.Words("de")("a sentence nobody translated") == "a sentence nobody translated"
    assert catalogues.language_name("uk-UA", "de") == "Ukrainisch"
    assert catalogues.language_name("uk", "ar") == "الأوكرانية"
    assert catalogues.language_name("xx", "fa") == "xx"
    assert [catalogues.direction(lang) for lang in ("ar", "fa", "uk")] == ["rtl", "rtl", "ltr"]
    assert catalogues.autonym("uk") == "Українська"


def test_the_browsers_languages_choose_the_first_page_language() -> None:
    assert browser_lang("uk-UA,uk;q=0.9,en-US;q=0.8,en;q=0.7") == "uk"
    assert browser_lang("fr-FR, ar-SY;q=0.8, en;q=0.5") == "ar", "French is not spoken: the next one"
    assert browser_lang("en;q=0.3, fa;q=0.9") == "fa", "by weight, not by order"
    assert browser_lang("ku, fr;q=0.5") is None
    assert browser_lang("de;q=abc, tr;q=0") is None, "malformed and unwanted parts are skipped"
    assert browser_lang("") is None
