"""deploy/k8s: every operator object (Strimzi, CloudNativePG and its Barman Cloud plugin, Keycloak, the Gateway API
and Envoy Gateway) validates against the CRDs of the pinned operator versions (tests/deploy/crds/*.json, each
naming its source and version; made by tests/deploy/crds/extract.py).

The CRDs' OpenAPI schemas are read as JSON Schema, strictly, as the API server does with ``kubectl apply``'s
default strict field validation: a field the schema does not know is an error (unless the schema keeps unknown
fields), ``x-kubernetes-int-or-string`` is an integer or a string, ``nullable`` allows null. CEL rules
(``x-kubernetes-validations``) are not evaluated here.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.test_manifests import CRD_KINDS
from tests.k8s import render

CRDS = Path(__file__).parent / "crds"
#: The Keycloak operator's CRDs of the pinned 26.4.0 are not at hand here; 26.0.0's are (same v2alpha1 API).
KEYCLOAK_NOTE = "Keycloak objects are checked against the 26.0.0 CRDs, the newest stored here (the pin is 26.4.0)"


def strict(schema: Any) -> Any:
    """A CRD's structural schema as a strict JSON Schema."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [*out.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    return out


@functools.cache
def schemas() -> dict[str, tuple[str, Any]]:
    """``group/version Kind`` -> (which CRD file, the strict schema)."""
    found: dict[str, tuple[str, Any]] = {}
    for file in sorted(CRDS.glob("*.json")):
        data = json.loads(file.read_text())
        assert data["source"].startswith("https://") and data["version"], file.name
        for key, schema in data["schemas"].items():
            # Every object has these at its root, whether its CRD's schema names them or not.
            root = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
            schema = {**schema, "properties": {**root, **schema.get("properties", {})}}
            found[key] = (f"{data['name']} {data['version']}", strict(schema))
    return found


def test_the_crd_files_name_their_source_and_cover_every_operator_kind() -> None:
    missing = {f"{api} {kind}" for api, kind in CRD_KINDS} - set(schemas())
    assert not missing, f"no CRD schema for {sorted(missing)}"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_operator_object_validates_against_its_pinned_crd(overlay: str) -> None:
    errors: list[str] = []
    counted: dict[str, int] = {}
    objects = [o for o in render(overlay) if (o["apiVersion"], o["kind"]) in CRD_KINDS]
    for o in objects:
        source, schema = schemas()[f"{o['apiVersion']} {o['kind']}"]
        counted[source] = counted.get(source, 0) + 1
        for error in jsonschema.Draft7Validator(schema).iter_errors(o):
            where = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{o['kind']}/{o['metadata']['name']} ({source}): {error.message} at {where}")
    print(f"\n{overlay}: {len(objects)} operator objects valid against the pinned CRDs: {counted}; {KEYCLOAK_NOTE}")
    assert not errors, "\n".join(errors)


def test_the_strict_reading_notices_an_unknown_field() -> None:
    """The check above can fail: a misspelt field of a Kafka node pool, and an int-or-string given a list."""
    _, pool = schemas()["kafka.strimzi.io/v1 KafkaNodePool"]
    wrong = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaNodePool",
        "metadata": {"name": "x"},
        "spec": {"replicas": 3, "roles": ["broker"], "storage": {"type": "ephemeral"}, "rack": {}},
    }
    assert any("rack" in e.message for e in jsonschema.Draft7Validator(pool).iter_errors(wrong))
    _, route = schemas()["gateway.networking.k8s.io/v1 HTTPRoute"]
    rules = [{"backendRefs": [{"name": "s", "port": 80}]}]
    good: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {"parentRefs": [{"name": "g"}], "rules": rules},
    }
    assert not list(jsonschema.Draft7Validator(route).iter_errors(good))
    good["spec"]["rules"][0]["backendRefs"][0]["port"] = "eighty"
    assert list(jsonschema.Draft7Validator(route).iter_errors(good))
