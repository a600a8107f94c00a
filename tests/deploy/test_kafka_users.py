"""deploy/k8s: Kafka's security. One TLS listener with client certificates and ACLs; one KafkaUser per service whose
ACLs are exactly what its code publishes and consumes (from each app's ServiceSpec and settings), its consumer group
and its dead-letter topics, nothing more; every service's client configured for it (platform-config, mounted
Secrets). The KafkaUsers are also validated against Strimzi's CRD (test_crds.py).

What the code needs of the broker, and so the ACLs (Kafka's rules: Read, Write imply Describe):

- a topic it publishes: Write (the outbox; with the idempotent producer, Kafka 3.0+ asks Write on a topic instead of
  the cluster's IdempotentWrite) and Describe; its ``.dlq`` twin: Describe (the outbox only looks that it exists);
- a topic it consumes: Read and Describe (fetch, commit, end offsets); its ``.dlq``: Write and Describe (dead
  letters are copied there);
- its consumer group: Read (join, commit, fetch offsets, leave); monitoring's rebuild groups by prefix;
- the broker's cluster id (the outbox's and consumer's check for a lost broker): Metadata, no ACL.

Topics are the Topic Operator's (KafkaTopics): no service may create, delete or alter one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from chassis.kafka import dlq_topic
from chassis.service import ServiceSpec
from services.monitoring.workflow import REBUILD_GROUP_INFIX
from tests.k8s import NAMESPACE, by_name, env_names, of_kind, our_workloads, render, settings_class

OVERLAYS = ["dev", "prod"]
SERVICES = ["registration", "referral", "courses", "partners", "monitoring"]
#: Consumer groups a service makes besides its own, by prefix: where in the code, and the prefix after the group.
EXTRA_GROUP_PREFIXES = {"monitoring": REBUILD_GROUP_INFIX}  # services/monitoring/workflow.py, rebuild()

Acls = dict[tuple[str, str, str], frozenset[str]]


def spec_of(service: str) -> ServiceSpec:
    """The service's ServiceSpec, as its app factory builds it (development settings: nothing is started)."""
    module = __import__(f"services.{service}.app", fromlist=["create_app"])
    cls = settings_class(f"services.{service}.app:create_app")
    app = module.create_app(cls(environment="development"))
    spec: ServiceSpec = app.state.spec
    return spec


def consumer_group(service: str, objects: tuple[dict[str, Any], ...]) -> str:
    """``<PREFIX>KAFKA_CONSUMER_GROUP`` as the manifests set it, else the service's name (chassis/service.py)."""
    workload = next(w for w in our_workloads(objects) if w.name == service)
    cls = settings_class(workload.app)
    for name in env_names(cls, "kafka_consumer_group"):
        entry = workload.env.get(name)
        if entry is not None and entry.value:
            return entry.value
    return service


def expected_acls(service: str, objects: tuple[dict[str, Any], ...]) -> Acls:
    spec = spec_of(service)
    acls: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for topic in spec.published_topics:
        acls[("topic", topic, "literal")] |= {"Write", "Describe"}
        acls[("topic", dlq_topic(topic), "literal")] |= {"Describe"}
    for topic in spec.consumed_topics:
        acls[("topic", topic, "literal")] |= {"Read", "Describe"}
        acls[("topic", dlq_topic(topic), "literal")] |= {"Write", "Describe"}
    if spec.consumed_topics:
        group = consumer_group(service, objects)
        acls[("group", group, "literal")] |= {"Read"}
        if service in EXTRA_GROUP_PREFIXES:
            acls[("group", f"{group}{EXTRA_GROUP_PREFIXES[service]}", "prefix")] |= {"Read"}
    return {key: frozenset(ops) for key, ops in acls.items()}


def granted_acls(user: dict[str, Any]) -> Acls:
    acls: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*", acl
        resource = acl["resource"]
        acls[(resource["type"], resource["name"], resource.get("patternType", "literal"))] |= set(acl["operations"])
    return {key: frozenset(ops) for key, ops in acls.items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_kafka_user_per_service_with_exactly_its_topics_and_group(overlay: str) -> None:
    objects = render(overlay)
    users = {u["metadata"]["name"]: u for u in of_kind(objects, "KafkaUser")}
    assert set(users) == {f"kafka-{s}" for s in SERVICES}, "one KafkaUser per service, none for anyone else"
    checked = 0
    for service in SERVICES:
        user = users[f"kafka-{service}"]
        assert user["metadata"]["namespace"] == NAMESPACE
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "landsberg"
        assert user["spec"]["authentication"] == {"type": "tls"}
        assert user["spec"]["authorization"]["type"] == "simple"
        granted, expected = granted_acls(user), expected_acls(service, objects)
        missing = {k: v - granted.get(k, frozenset()) for k, v in expected.items() if not v <= granted.get(k, set())}
        extra = {k: v - expected.get(k, frozenset()) for k, v in granted.items() if not v <= expected.get(k, set())}
        assert not missing, f"kafka-{service} lacks what its code needs: {missing}"
        assert not extra, f"kafka-{service} may do more than its code needs: {extra}"
        checked += sum(len(ops) for ops in expected.values())
    print(f"{overlay}: {len(users)} KafkaUsers, {checked} operations on topics and groups checked against the code")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_broker_speaks_tls_with_client_certificates_and_acls_only(overlay: str) -> None:
    objects = render(overlay)
    kafka = by_name(objects, "Kafka", "landsberg")["spec"]
    listeners = kafka["kafka"]["listeners"]
    assert listeners and all(
        listener["tls"] and listener.get("authentication", {}).get("type") == "tls" for listener in listeners
    ), "every listener TLS with client certificates: no plaintext, no anonymous client"
    assert kafka["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in kafka["entityOperator"], "the User Operator makes the KafkaUsers' certificates and ACLs"
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("platform-config"))
    data = config["data"]
    assert data["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert data["KAFKA_BOOTSTRAP_SERVERS"] in {
        f"landsberg-kafka-bootstrap:{listener['port']}" for listener in listeners
    }
    assert "KAFKA_ALLOW_PLAINTEXT" not in data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_mounts_its_own_certificate_where_its_settings_look(overlay: str) -> None:
    objects = render(overlay)
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("platform-config"))
    files = {name: config["data"][name] for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")}
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        if name not in SERVICES:
            continue
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounted: dict[str, tuple[str, str]] = {}  # path of a file -> (Secret, key)
        for mount in pod["containers"][0]["volumeMounts"]:
            secret = volumes[mount["name"]].get("secret")
            if secret is None:
                continue
            assert mount.get("readOnly") and "subPath" not in mount, f"{name}: {mount} (subPath never renews)"
            for item in secret["items"]:
                mounted[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
        assert mounted[files["KAFKA_SSL_CAFILE"]] == ("landsberg-cluster-ca-cert", "ca.crt"), name
        assert mounted[files["KAFKA_SSL_CERTFILE"]] == (f"kafka-{name}", "user.crt"), name
        assert mounted[files["KAFKA_SSL_KEYFILE"]] == (f"kafka-{name}", "user.key"), name
        # only its own user's Secret: no service can act as another (city-ca: a CA for HTTPS, tests/deploy/test_city_ca)
        assert {s for s, _ in mounted.values()} - {"city-ca"} == {"landsberg-cluster-ca-cert", f"kafka-{name}"}, name
    gateway = by_name(objects, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert not any(v.get("secret", {}).get("secretName", "").startswith("kafka-") for v in gateway["volumes"])
