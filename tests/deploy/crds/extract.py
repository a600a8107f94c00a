"""Make a CRD test data file: the openAPIV3Schema of the kinds the manifests use, from an operator's released CRD
files, without descriptions (they are most of the size and validate nothing).

    python tests/deploy/crds/extract.py OUT.json NAME VERSION SOURCE_URL crd.yaml [crd.yaml ...]

Helm template lines (``{{ ... }}``) in a chart's CRD file are dropped. Each file names its source and version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

#: (group, version, kind) the manifests use; the test (test_crds.py) fails for a kind of ours missing here.
KINDS = {
    ("kafka.strimzi.io", "v1", "Kafka"),
    ("kafka.strimzi.io", "v1", "KafkaNodePool"),
    ("kafka.strimzi.io", "v1", "KafkaTopic"),
    ("kafka.strimzi.io", "v1", "KafkaUser"),
    ("postgresql.cnpg.io", "v1", "Cluster"),
    ("postgresql.cnpg.io", "v1", "ScheduledBackup"),
    ("barmancloud.cnpg.io", "v1", "ObjectStore"),
    ("k8s.keycloak.org", "v2alpha1", "Keycloak"),
    ("k8s.keycloak.org", "v2alpha1", "KeycloakRealmImport"),
    ("gateway.networking.k8s.io", "v1", "Gateway"),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
    ("gateway.networking.k8s.io", "v1beta1", "ReferenceGrant"),
    ("gateway.envoyproxy.io", "v1alpha1", "SecurityPolicy"),
    ("monitoring.coreos.com", "v1", "PodMonitor"),
    ("monitoring.coreos.com", "v1", "PrometheusRule"),
}


def without_descriptions(node: Any) -> Any:
    """The schema without its ``description`` annotations (a property named "description" stays)."""
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: without_descriptions(sub) for name, sub in value.items()}
        else:
            out[key] = without_descriptions(value)
    return out


def main(out: str, name: str, version: str, source: str, *files: str) -> None:
    schemas = {}
    for file in files:
        text = "\n".join(line for line in Path(file).read_text().splitlines() if not line.strip().startswith("{{"))
        for doc in yaml.safe_load_all(text):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for served in doc["spec"]["versions"]:
                if (group, served["name"], kind) in KINDS and served.get("served"):
                    schema = without_descriptions(served["schema"]["openAPIV3Schema"])
                    schemas[f"{group}/{served['name']} {kind}"] = schema
    data = {"name": name, "version": version, "source": source, "schemas": schemas}
    Path(out).write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
