"""The committed event schemas are current, and a breaking change to a model is caught."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from contracts import schemagen
from contracts.registration import PersonRegistered
from contracts.registry import EVENT_MODELS


def committed(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schemagen.schema_file(event_type).read_text())
    return loaded


def test_committed_schemas_and_asyncapi_are_current() -> None:
    assert schemagen.main(["--check"]) == 0, "run `make contracts` and commit the result"


def test_models_are_compatible_with_committed_schemas() -> None:
    assert schemagen.compatibility_report() == []


def test_every_event_type_has_a_committed_schema_and_an_asyncapi_channel() -> None:
    asyncapi = json.loads(schemagen.ASYNCAPI_FILE.read_text())
    addresses = {c["address"] for c in asyncapi["channels"].values()}
    for event_type, model in EVENT_MODELS.items():
        assert schemagen.schema_file(event_type).exists()
        assert model.topic in addresses and f"{model.topic}.dlq" in addresses


@pytest.fixture
def current() -> dict[str, Any]:
    return PersonRegistered.model_json_schema()


def test_removed_field_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    del new["properties"]["district"]
    assert schemagen.breaking_changes(current, new) == ["district: field removed"]


def test_retyped_field_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    new["properties"]["registered_on"] = {"type": "integer"}
    assert schemagen.breaking_changes(current, new) == ["registered_on: type changed"]


def test_new_required_field_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    new["properties"]["income_band"] = {"type": "string"}
    new["required"] = [*new["required"], "income_band"]
    assert schemagen.breaking_changes(current, new) == ["income_band: new required field"]


def test_removed_enum_value_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    new["$defs"]["Gender"]["enum"] = ["female", "male"]
    assert schemagen.breaking_changes(current, new) == ["gender: enum values removed ['diverse', 'unspecified']"]


def test_new_optional_field_and_new_enum_value_are_compatible(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    new["properties"]["school_year"] = {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    new["$defs"]["Gender"]["enum"] = [*new["$defs"]["Gender"]["enum"], "x"]
    assert schemagen.breaking_changes(current, new) == []
