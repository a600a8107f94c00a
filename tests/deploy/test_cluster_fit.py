"""deploy/k8s: what the platform needs from a real cluster fits it: PostgreSQL's connections, Kafka's placement on the
nodes, and the opt-in components (zones, PodMonitors) render onto the prod overlay."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chassis.settings import ServiceSettings
from tests.k8s import K8S, by_name, env_names, kubectl, of_kind, our_workloads, render, settings_class

OVERLAYS = ["dev", "prod"]
#: PostgreSQL's superuser_reserved_connections (its default; the Clusters do not change it).
RESERVED_FOR_SUPERUSERS = 3
#: What CloudNativePG itself opens to each instance (the instance manager, the metrics exporter, a backup, a
#: `kubectl cnpg psql` of an operator) and a replica's connections: kept free, not measured.
OPERATOR_HEADROOM = 10


def database_budget(objects: tuple[dict[str, Any], ...]) -> dict[str, tuple[int, int, str]]:
    """Per PostgreSQL Cluster: (the most connections its clients can open at once, its max_connections, how)."""
    clusters = {c["metadata"]["name"]: c for c in of_kind(objects, "Cluster")}
    budget: dict[str, tuple[int, int, str]] = {}

    def limit(cluster: str) -> int:
        parameters = clusters[cluster]["spec"].get("postgresql", {}).get("parameters", {})
        assert "max_connections" in parameters, f"{cluster}: max_connections is not set, so the sum cannot be checked"
        return int(parameters["max_connections"])

    for workload in our_workloads(objects):
        if workload.name == "gateway":
            continue
        cls = settings_class(workload.app)

        def setting(field: str, cls: type[ServiceSettings] = cls, env: dict[str, Any] = workload.env) -> Any:
            for name in env_names(cls, field):
                if name in env and env[name].value is not None:
                    return env[name].value
            return cls.model_fields[field].get_default()

        pool = int(setting("database_pool_size"))
        overflow = setting("database_max_overflow")
        per_pod = pool + (pool if overflow is None else int(overflow))
        hpa = by_name(objects, "HorizontalPodAutoscaler", workload.name)
        deployment = by_name(objects, "Deployment", workload.name)
        surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        assert isinstance(surge, int), f"{workload.name}: maxSurge as a number, so that the sum is exact"
        pods = hpa["spec"]["maxReplicas"] + surge
        cluster = env_of_database(workload.env, workload.name)
        migrating = sum(
            1
            for job in of_kind(objects, "Job")
            if any(
                (e.get("valueFrom", {}).get("secretKeyRef") or {}).get("name") == f"{cluster}-app"
                for c in job["spec"]["template"]["spec"]["containers"]
                for e in c.get("env", [])
            )
        )
        need = pods * per_pod + migrating + RESERVED_FOR_SUPERUSERS + OPERATOR_HEADROOM
        how = (
            f"{pods} pods x ({pool} + {per_pod - pool}) + {migrating} migration Job + {RESERVED_FOR_SUPERUSERS} "
            f"reserved + {OPERATOR_HEADROOM} for the operator"
        )
        budget[cluster] = (need, limit(cluster), how)
    for keycloak in of_kind(objects, "Keycloak"):
        db = keycloak["spec"]["db"]
        cluster = db["host"].removesuffix("-rw")
        assert "poolMaxSize" in db, "Keycloak's default pool (100 per instance) is not sized for its database"
        instances = keycloak["spec"]["instances"]
        need = instances * db["poolMaxSize"] + 1 + RESERVED_FOR_SUPERUSERS + OPERATOR_HEADROOM
        how = f"{instances} instances x {db['poolMaxSize']} + 1 realm import + reserved + operator"
        budget[cluster] = (need, limit(cluster), how)
    return budget


def env_of_database(env: dict[str, Any], name: str) -> str:
    (entry,) = [e for key, e in env.items() if key.endswith("DATABASE_URL")]
    assert entry.secret and entry.secret.endswith("-app"), f"{name}: DATABASE_URL from a CloudNativePG app Secret"
    return str(entry.secret).removesuffix("-app")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_connection_pools_fit_under_max_connections(overlay: str) -> None:
    budget = database_budget(render(overlay))
    assert set(budget) == {f"{n}-db" for n in ("registration", "referral", "courses", "partners", "monitoring")} | {
        "keycloak-db"
    }
    lines = [f"{db}: {need} of {limit} ({how})" for db, (need, limit, how) in sorted(budget.items())]
    print(f"\n{overlay}: connections at the most replicas\n  " + "\n  ".join(lines))
    too_many = [line for line, (need, limit, _) in zip(lines, budget.values(), strict=True) if need > limit]
    assert not too_many, "\n".join(too_many)


def test_the_budget_would_notice_the_old_pools() -> None:
    """The check above can fail: with the code's default pool (10 + 10) and PostgreSQL's default 100 it does."""
    objects = render("prod")
    edited = []
    for o in objects:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "referral-config":
            o = {**o, "data": {k: v for k, v in o["data"].items() if "DATABASE_" not in k}}
        edited.append(o)
    need, limit, how = database_budget(tuple(edited))["referral-db"]
    assert need > limit, how


# --- Kafka's placement ---------------------------------------------------------------------------------------------


def test_prod_kafka_needs_no_zone_labels_and_keeps_the_quorum_apart() -> None:
    objects = render("prod")
    kafka = by_name(objects, "Kafka", "landsberg")
    assert "rack" not in kafka["spec"]["kafka"], "rack awareness leaves brokers Pending on nodes without zone labels"
    controllers = [p for p in of_kind(objects, "KafkaNodePool") if "controller" in p["spec"]["roles"]]
    assert controllers
    for pool in controllers:
        anti = pool["spec"]["template"]["pod"]["affinity"]["podAntiAffinity"]
        own = {"strimzi.io/cluster": "landsberg", "strimzi.io/pool-name": pool["metadata"]["name"]}
        assert any(
            t["topologyKey"] == "kubernetes.io/hostname" and t["labelSelector"]["matchLabels"] == own
            for t in anti["requiredDuringSchedulingIgnoredDuringExecution"]
        ), f"KafkaNodePool {pool['metadata']['name']}: controllers may share a node"


def render_with_components(tmp_path: Path, *components: str) -> tuple[dict[str, Any], ...]:
    """The prod overlay with opt-in components, as a city's own overlay would add them (kustomize wants relative
    paths)."""
    base = os.path.relpath(K8S, tmp_path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{base}/overlays/prod"],
        "components": [f"{base}/components/{c}" for c in components],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run([kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_the_zones_component_turns_on_rack_awareness(tmp_path: Path) -> None:
    kafka = by_name(render_with_components(tmp_path, "kafka-zones"), "Kafka", "landsberg")
    assert kafka["spec"]["kafka"]["rack"] == {"topologyKey": "topology.kubernetes.io/zone"}


# --- CloudNativePG's monitoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_deprecated_enable_pod_monitor(overlay: str) -> None:
    for cluster in of_kind(render(overlay), "Cluster"):
        assert "enablePodMonitor" not in cluster["spec"].get("monitoring", {}), cluster["metadata"]["name"]


def test_the_podmonitor_component_scrapes_every_database(tmp_path: Path) -> None:
    objects = render_with_components(tmp_path, "cnpg-podmonitors")
    # (the prod overlay's own PodMonitors scrape the platform's processes: test_metrics_rules.py)
    monitors = [m for m in of_kind(objects, "PodMonitor") if m["metadata"]["name"] == "cnpg-instances"]
    namespaces = {c["metadata"]["namespace"] for c in of_kind(objects, "Cluster")}
    assert {m["metadata"]["namespace"] for m in monitors} == namespaces
    for monitor in monitors:
        assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics"}]
        assert {"key": "cnpg.io/cluster", "operator": "Exists"} in monitor["spec"]["selector"]["matchExpressions"]
