"""deploy/README.md, section 7: the restore runbook's Cluster, checked against the rendered prod Cluster it restores,
as far as this machine can (no CloudNativePG or object storage here): the same PostgreSQL image, the database label
the NetworkPolicies select (so the service reaches the restored Cluster), the origin's archive as the source and a
new archive path for the new timeline (Barman refuses a non-empty one)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.test_network_paths import TCP, allowed, model
from tests.k8s import ROOT, by_name, of_kind, render


def runbook_cluster() -> dict[str, Any]:
    guide = (ROOT / "deploy" / "README.md").read_text()
    section = guide[guide.index("## 7. Backups and restore") : guide.index("## 8. Scaling")]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    cluster: dict[str, Any]
    (cluster,) = [b for b in blocks if b.get("kind") == "Cluster" and "recovery" in b["spec"].get("bootstrap", {})]
    return cluster


def archive_name(cluster: dict[str, Any]) -> str:
    (archiver,) = [p for p in cluster["spec"].get("plugins", []) if p.get("isWALArchiver")]
    return str(archiver["parameters"].get("serverName", cluster["metadata"]["name"]))


def test_the_restored_cluster_matches_its_origin_and_archives_elsewhere() -> None:
    objects = render("prod")
    restored = runbook_cluster()
    (source,) = restored["spec"]["externalClusters"]
    assert restored["spec"]["bootstrap"]["recovery"]["source"] == source["name"]
    origin = by_name(objects, "Cluster", source["plugin"]["parameters"]["serverName"])
    assert restored["metadata"]["namespace"] == origin["metadata"]["namespace"]
    assert restored["spec"]["imageName"] == origin["spec"]["imageName"], "a restore needs the origin's PostgreSQL"
    assert restored["spec"]["inheritedMetadata"] == origin["spec"]["inheritedMetadata"]
    assert restored["spec"]["postgresql"] == origin["spec"]["postgresql"]
    assert source["plugin"]["parameters"]["serverName"] == archive_name(origin)
    assert archive_name(restored) != archive_name(origin), "Barman refuses to archive into the origin's path"
    stores = {
        o["metadata"]["name"]
        for o in of_kind(objects, "ObjectStore")
        if o["metadata"]["namespace"] == origin["metadata"]["namespace"]
    }
    assert source["plugin"]["parameters"]["barmanObjectName"] in stores
    recovery = restored["spec"]["bootstrap"]["recovery"]
    assert (recovery["database"], recovery["owner"]) == tuple(origin["spec"]["bootstrap"]["initdb"].values())


def test_the_service_reaches_the_restored_cluster_without_new_policies() -> None:
    cluster = model("prod")
    restored = runbook_cluster()
    service = restored["spec"]["inheritedMetadata"]["labels"]["landsberg.de/database"]
    labels = {"cnpg.io/cluster": restored["metadata"]["name"], "cnpg.io/podRole": "instance"}
    cluster.pod(
        restored["metadata"]["name"],
        restored["metadata"]["namespace"],
        labels | restored["spec"]["inheritedMetadata"]["labels"],
        (TCP, 5432),
    )
    assert allowed(cluster, service, restored["metadata"]["name"], TCP, 5432)
    assert allowed(cluster, f"{service}-migrate", restored["metadata"]["name"], TCP, 5432)
    assert not allowed(cluster, "referral", restored["metadata"]["name"], TCP, 5432)


def test_the_restored_cluster_is_valid_for_the_pinned_cloudnative_pg() -> None:
    import jsonschema

    from tests.deploy.test_crds import schemas

    restored = runbook_cluster()
    _, schema = schemas()[f"{restored['apiVersion']} {restored['kind']}"]
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(restored)]
    assert not errors, errors
