"""What the staff web UI says, in German (the default) and English, and the codes' labels.

The words live in gettext message catalogues, ``locale/<lang>/LC_MESSAGES/staff.po`` (template ``locale/staff.pot``),
read as the newcomers' pages' are (``catalogues``: no compile step). The message ids are the keys the pages and
templates look up (``t.sign_in``); a code's label carries the context ``code``, a validation message (a Pydantic
error type, or a service's own error code) the context ``field_error``, a shipped routing rule's explanation (by its
id) the context ``rule``, a refusal's sentence (by its Problem type) the context ``problem``. Every key is in every
language (tests/unit/test_staff_catalogues.py).
"""

from __future__ import annotations

from gateway.ui.catalogues import entries

DOMAIN = "staff"
#: The staff pages' languages.
LANGS = ("de", "en")


def _table(context: str | None) -> dict[str, dict[str, str]]:
    return {lang: {key: text for (ctx, key), text in entries(lang, DOMAIN).items() if ctx == context} for lang in LANGS}


#: The pages' words by key.
WORDS = _table(None)
#: Labels for the API's codes; a code without a label is shown as it is.
CODES = _table("code")
#: Validation messages (Pydantic error types) in the UI's languages.
FIELD_ERRORS = _table("field_error")
#: What the shipped routing rules (version 0 of the rule set) are for, by rule id: the case page's "why proposed".
RULES = _table("rule")
#: What a refusal means, by its Problem type ("other" for a type without a sentence of its own).
PROBLEMS = _table("problem")
