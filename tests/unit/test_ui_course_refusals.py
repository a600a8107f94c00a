"""The staff pages say a course rule's refusal by its Problem type, in German or English; never the service's
English detail, and a type they do not know as a general sentence."""

from __future__ import annotations

from typing import Any

import pytest

from chassis.errors import PROBLEM_BASE
from gateway.ui.learning import refusal
from gateway.ui.words import WORDS
from services.courses.domain import RULES


def problem(kind: str, detail: str = "the service's own English", **values: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + kind,
        "title": "Not possible for this course",
        "status": 422,
        "detail": detail,
        **values,
    }


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_rule_the_courses_service_names_has_words_in_both_languages(lang: str) -> None:
    for kind in RULES:
        said = refusal(
            problem(
                kind,
                level="B1",
                target="A2",
                min_age=18,
                max_age=26,
                taken=3,
                field="title",
                status_now="cancelled",
                action="cancel",
            ),
            lang,
        )
        assert said and said != WORDS[lang]["rule_unknown"], (lang, kind)
        assert "the service's own English" not in said and "{" not in said, (lang, kind, said)


def test_a_rules_values_are_said_and_more_broken_rules_too() -> None:
    reached = problem("course-level-reached", level="B1", target="A2")
    assert refusal(reached, "de") == "Das Deutschniveau B1 erreicht schon das Kursziel A2."
    assert refusal(reached, "en") == "The German level B1 already reaches the course's target A2."
    both = {**reached, "also": [{"type": PROBLEM_BASE + "course-min-age", "min_age": 18}]}
    assert refusal(both, "de") == "Das Deutschniveau B1 erreicht schon das Kursziel A2. Der Kurs ist erst ab 18 Jahren."
    required = problem("course-field-required", field="title")
    assert refusal(required, "de") == "Diese Angabe (Titel) kann nicht entfernt werden."
    moved = problem("invalid-transition", status_now="cancelled", action="accept")
    assert refusal(moved, "de") == "Das ist bei diesem Stand (storniert) nicht möglich."


def test_an_unknown_type_or_a_missing_value_is_a_general_sentence_never_the_english_detail() -> None:
    assert refusal(problem("course-brand-new-rule", "the course wants a unicorn"), "de") == "Das ist so nicht möglich."
    assert refusal(problem("course-level-reached"), "en") == "This is not possible."  # its values are missing
    assert refusal({"detail": "no type at all"}, "de") == "Das ist so nicht möglich."
    assert refusal(None, "en") == "This is not possible."
    assert refusal(problem("not-found"), "de") == WORDS["de"]["not_found"]
