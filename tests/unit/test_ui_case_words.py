"""The case page words what the referral service sends as codes (issue 17): why a referral waits, with the partners'
names, and why a shipped routing rule proposed it, from the staff catalogue; no English sentence of the service's
reaches the German page."""

from __future__ import annotations

import pytest

from contracts.vocabulary import NeedCategory
from gateway.ui import words
from gateway.ui.casework import condition_words, rule_words, waiting
from services.referral import directory, domain

NAMES = {"vhs-landsberg": "Volkshochschule Landsberg", "vhs-kaufering": "VHS Kaufering"}


def test_a_referral_waiting_for_places_says_so_in_german_with_the_partners_names() -> None:
    blocked = {"code": "no-capacity", "partner_ids": ["vhs-kaufering", "vhs-landsberg"]}
    german = waiting(blocked, "de", NAMES)
    assert german == "Keine freien Plätze bei VHS Kaufering, Volkshochschule Landsberg."
    assert "capacity" not in german and "vhs-landsberg" not in german
    assert waiting(blocked, "en", NAMES) == "No free places at VHS Kaufering, Volkshochschule Landsberg."


@pytest.mark.parametrize("code", [w.value for w in domain.Waiting])
def test_every_reason_to_wait_has_a_german_sentence_not_the_services_english(code: str) -> None:
    blocked = domain.Blocked(domain.Waiting(code), ("vhs-landsberg",))
    german = waiting({"code": code, "partner_ids": list(blocked.partner_ids)}, "de", NAMES)
    assert german != waiting({"code": "a-code-the-page-does-not-know"}, "de", NAMES), "its own sentence"
    assert german != blocked.english("integration_course") and "{" not in german


def test_a_shipped_rule_is_explained_from_the_catalogue_an_admins_rule_by_its_parts_with_the_admins_note() -> None:
    for rule in directory.DEFAULT_RULES.rules:
        german, note = rule_words(0, rule.model_dump(mode="json"), "de")
        assert german not in (rule.id, rule.description) and note is None, f"{rule.id}: no German explanation"
    adult = directory.DEFAULT_RULES.rules[4].model_dump(mode="json")
    german = "Erwachsene mit Deutsch unter B1: Integrations- oder Sprachkurs der VHS"
    assert rule_words(0, adult, "de") == (german, None)
    assert rule_words(0, adult, "en") == (adult["description"], None)
    # A saved version: the parts in the catalogue's words; the admin's description kept, as a note.
    own = adult | {"description": "Erwachsene unter B1: VHS (geprüft)"}
    own["when"] = {"german_below": "B1", "need_any": ["language"]}
    assert rule_words(3, own, "de") == (
        "Deutsch unter Niveau: B1; Bedarf (einer von): Sprache → Integrationskurs",
        "Erwachsene unter B1: VHS (geprüft)",
    )
    # The shipped description an admin left as it was is the catalogue's sentence, not the service's English.
    assert rule_words(3, adult, "de")[1] == german
    assert rule_words(3, adult, "en")[1] == adult["description"]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_rules_conditions_name_need_categories_ages_and_languages_never_their_codes(lang: str) -> None:
    when = {
        "need_any": [c.value for c in NeedCategory],
        "age_band_in": ["27-44"],
        "language_any": ["ar"],
        "childcare_needed": True,
        "has_children": None,
    }
    worded = dict(condition_words(when, lang))
    assert len(worded) == 4, "a condition that is not set is left out"
    needs = worded[words.WORDS[lang]["admin_cond_need_any"]].split(", ")
    assert len(needs) == len(NeedCategory)
    assert needs == [words.WORDS[lang][f"staff_need_{c.value}"] for c in NeedCategory], "the catalogue's words"
    if lang == "de":  # (the English words are the codes' own)
        assert not set(needs) & {c.value for c in NeedCategory}, f"a need category's code reached the page: {needs}"
    years = "Jahre" if lang == "de" else "years"
    assert worded[words.WORDS[lang]["admin_cond_age_band_in"]] == f"27\N{EN DASH}44 {years}"
    assert worded[words.WORDS[lang]["admin_cond_language_any"]] == ("Arabisch" if lang == "de" else "Arabic")
