"""The case page words what the referral service sends as codes (issue 17): why a referral waits, with the partners'
names, and why a shipped routing rule proposed it, from the staff catalogue; no English sentence of the service's
reaches the German page."""

from __future__ import annotations

import pytest

from gateway.ui.casework import rule_words, waiting
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


def test_a_shipped_rule_is_explained_from_the_catalogue_an_admins_rule_in_the_admins_words() -> None:
    for rule in directory.DEFAULT_RULES.rules:
        german = rule_words(0, rule.model_dump(mode="json"), "de")
        assert german not in (rule.id, rule.description), f"{rule.id}: no German explanation"
    adult = directory.DEFAULT_RULES.rules[4].model_dump(mode="json")
    assert rule_words(0, adult, "de") == "Erwachsene mit Deutsch unter B1: Integrations- oder Sprachkurs der VHS"
    assert rule_words(0, adult, "en") == adult["description"]
    own = adult | {"description": "Erwachsene unter B1: VHS (geprüft)"}
    assert rule_words(3, own, "de") == "Erwachsene unter B1: VHS (geprüft)"
