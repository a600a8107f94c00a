"""deploy/k8s: every network path the platform needs is allowed by the rendered NetworkPolicies, and no other.

A small model of a cluster: the pods of the rendered overlays (our processes with their templates' labels, and the
pods the operators and controllers make, with the labels they give them), each with an address in the pod network
and the ports it listens on, plus addresses outside the cluster. A path (source, destination, protocol, port) is
allowed when an egress rule of the source's policies and an ingress rule of the destination's let it through, as
Kubernetes defines them (a pod no policy of that direction selects is open in that direction; ipBlocks are also
matched against pod addresses, as some CNIs do, which is the stricter reading). Then, for every pair with one of
our processes, Keycloak or a database on either end, and every port the destination listens on: allowed exactly
when it is in the list of needed paths below.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.test_manifests import selects
from tests.k8s import NAMESPACE, by_name, of_kind, render

SERVICES = ["registration", "referral", "courses", "partners", "monitoring"]
EDGE_NAMESPACE = "envoy-gateway-system"
EDGE_LABELS = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/component": "proxy",
    "gateway.envoyproxy.io/owning-gateway-name": "landsberg",
    "gateway.envoyproxy.io/owning-gateway-namespace": NAMESPACE,
}
TCP, UDP = "TCP", "UDP"


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: outside the cluster
    address: str
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass
class Cluster:
    policies: list[dict[str, Any]]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    _next: int = 1

    def pod(self, name: str, namespace: str, labels: dict[str, str], *ports: tuple[str, int]) -> None:
        address = f"10.244.{self._next // 250}.{self._next % 250 + 2}"
        self._next += 1
        self.endpoints[name] = Endpoint(name, namespace, address, tuple(sorted(labels.items())), ports)

    def outside(self, name: str, address: str, *ports: tuple[str, int]) -> None:
        self.endpoints[name] = Endpoint(name, None, address, (), ports)


def namespace_labels(namespace: str | None) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace} if namespace else {}


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.label_map)


def port_matches(rule: dict[str, Any], proto: str, port: int) -> bool:
    if not rule.get("ports"):
        return True
    for p in rule["ports"]:
        if p.get("protocol", TCP) != proto:
            continue
        if "port" not in p:
            return True
        assert isinstance(p["port"], int), f"named ports are not modelled: {p}"
        if p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def direction_allows(
    policies: list[dict[str, Any]], pod: Endpoint, other: Endpoint, proto: str, port: int, direction: str
) -> bool:
    """Whether ``pod``'s policies of ``direction`` ("Ingress"/"Egress") let ``other`` through on the port."""
    if pod.namespace is None:
        return True  # outside the cluster: no NetworkPolicy of ours
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], pod.label_map)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            if not port_matches(rule, proto, port):
                continue
            if not rule.get(peers) or any(
                peer_matches(peer, policy["metadata"]["namespace"], other) for peer in rule[peers]
            ):
                return True
    return False


def allowed(cluster: Cluster, source: str, destination: str, proto: str, port: int) -> bool:
    src, dst = cluster.endpoints[source], cluster.endpoints[destination]
    return direction_allows(cluster.policies, src, dst, proto, port, "Egress") and direction_allows(
        cluster.policies, dst, src, proto, port, "Ingress"
    )


def model(overlay: str) -> Cluster:
    objects = render(overlay)
    cluster = Cluster(of_kind(objects, "NetworkPolicy"))
    for name in ["gateway", *SERVICES]:
        labels = by_name(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        cluster.pod(name, NAMESPACE, labels, (TCP, 8000))
    for job in of_kind(objects, "Job"):
        labels = job["spec"]["template"]["metadata"]["labels"]
        cluster.pod(labels["app.kubernetes.io/name"], NAMESPACE, labels)
    collector = by_name(objects, "Deployment", "otel-collector")["spec"]["template"]["metadata"]["labels"]
    cluster.pod("otel-collector", NAMESPACE, collector, (TCP, 4317), (TCP, 4318))
    kafka = by_name(objects, "Kafka", "landsberg")
    for pool in of_kind(objects, "KafkaNodePool"):  # Strimzi's labels on the node pools' pods
        labels = {
            "strimzi.io/cluster": "landsberg",
            "strimzi.io/kind": "Kafka",
            "strimzi.io/pool-name": pool["metadata"]["name"],
            "strimzi.io/name": "landsberg-kafka",
        }
        listeners = kafka["spec"]["kafka"]["listeners"] if "broker" in pool["spec"]["roles"] else []
        ports = [(TCP, listener["port"]) for listener in listeners]
        cluster.pod(f"kafka-{pool['metadata']['name']}", NAMESPACE, labels, *ports, (TCP, 9090), (TCP, 9091))
    for db in of_kind(objects, "Cluster"):  # CloudNativePG's labels on its instances
        name, namespace = db["metadata"]["name"], db["metadata"]["namespace"]
        labels = {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance", "role": "primary"}
        labels |= db["spec"].get("inheritedMetadata", {}).get("labels", {})
        cluster.pod(name, namespace, labels, (TCP, 5432), (TCP, 8000), (TCP, 9187))
    cluster.pod("edge", EDGE_NAMESPACE, EDGE_LABELS, (TCP, 10080), (TCP, 10443))
    cluster.pod(
        "keycloak",
        "keycloak",
        {"app": "keycloak", "app.kubernetes.io/instance": "keycloak"},
        (TCP, 8080),
        (TCP, 8443),
        (TCP, 9000),
        (TCP, 7800),
        (TCP, 57800),
    )
    cluster.pod("keycloak-realm-import", "keycloak", {"app": "keycloak-realm-import"})
    cluster.pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (UDP, 53), (TCP, 53))
    cluster.pod("tracing-backend", "observability", {"app.kubernetes.io/name": "tempo"}, (TCP, 4317))
    cluster.pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
    cluster.pod("stranger", "default", {"app": "anything"}, (TCP, 8000))
    cluster.outside("internet", "93.184.216.34", (TCP, 443), (TCP, 80), (TCP, 9092), (TCP, 9093))
    cluster.outside("city-server", "10.20.30.40", (TCP, 443))
    cluster.outside("metadata-service", "169.254.169.254", (TCP, 80), (TCP, 443))
    return cluster


def needed(overlay: str, cluster: Cluster) -> set[tuple[str, str, str, int]]:
    """Every path the platform needs, and nothing else (DNS for everyone of ours)."""
    paths: set[tuple[str, str, str, int]] = {("edge", "gateway", TCP, 8000)}
    # The gateway reaches Keycloak at its public host sso.landsberg.de: through the edge (443 -> 10443).
    paths.add(("gateway", "edge", TCP, 10443))
    paths |= {("gateway", name, TCP, 8000) for name in SERVICES}
    paths |= {("referral", "registration", TCP, 8000), ("courses", "registration", TCP, 8000)}
    paths.add(("partners", "internet", TCP, 443))  # webhooks; not private addresses, not port 80
    processes = ["gateway", *SERVICES]
    paths |= {(name, "otel-collector", TCP, 4318) for name in processes}
    pools = [n for n, e in cluster.endpoints.items() if e.label_map.get("strimzi.io/kind") == "Kafka"]
    # The services reach the brokers on the TLS listener only (there is no plaintext one).
    brokers = [n for n in pools if (TCP, 9093) in cluster.endpoints[n].ports]
    assert brokers, "no broker pool"
    for name in SERVICES:
        paths |= {(name, pool, TCP, 9093) for pool in brokers}
        paths |= {(name, f"{name}-db", TCP, 5432), (f"{name}-migrate", f"{name}-db", TCP, 5432)}
    ours = [*processes, *(f"{name}-migrate" for name in SERVICES), "otel-collector"]
    paths |= {(name, "kube-dns", proto, 53) for name in ours for proto in (UDP, TCP)}
    if overlay == "prod":
        paths.add(("otel-collector", "tracing-backend", TCP, 4317))
        # Prometheus scrapes every process's /metrics (components/metrics), and nothing else of ours.
        paths |= {("prometheus", name, TCP, 8000) for name in processes}
    # Keycloak: the edge in, its database, its own cluster's caches; the realm import to the database.
    paths |= {("edge", "keycloak", TCP, 8080), ("keycloak", "keycloak-db", TCP, 5432)}
    paths |= {("keycloak", "keycloak", TCP, 7800), ("keycloak", "keycloak", TCP, 57800)}
    paths.add(("keycloak-realm-import", "keycloak-db", TCP, 5432))
    return paths


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_needed_path_is_allowed_and_no_other(overlay: str) -> None:
    cluster = model(overlay)
    paths = needed(overlay, cluster)
    for path in paths:
        assert path[0] in cluster.endpoints and path[1] in cluster.endpoints, path
    # Ours on either end; Keycloak's pods and every database as destinations (their operators' and replicas' own
    # paths, the operators' namespaces and the API server, are the operators' business and not modelled as needs).
    ours = {"gateway", *SERVICES, *(f"{n}-migrate" for n in SERVICES), "otel-collector"}
    guarded = ours | {"keycloak", "keycloak-realm-import"} | {n for n in cluster.endpoints if n.endswith("-db")}
    operators_own = {n for n, e in cluster.endpoints.items() if "cnpg.io/cluster" in e.label_map}
    checked = 0
    wrong = []
    for source in cluster.endpoints:
        for destination, dst in cluster.endpoints.items():
            if source not in ours and destination not in guarded:
                continue
            if source in operators_own and destination in operators_own:
                continue  # replication among PostgreSQL instances (CloudNativePG's cnpg-instances policy)
            for proto, port in dst.ports:
                checked += 1
                path = (source, destination, proto, port)
                if allowed(cluster, *path) != (path in paths):
                    wrong.append(
                        f"{source} -> {destination} {proto}/{port}: {'allowed' if path not in paths else 'denied'}"
                    )
    print(f"\n{overlay}: {checked} network paths checked, {len(paths)} needed and allowed, the others denied")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_model_notices_a_missing_and_a_surplus_path() -> None:
    """The check above can fail both ways: without the gateway's edge rule Keycloak is out of reach; a policy
    that opens registration to every pod lets a stranger in."""
    cluster = model("prod")
    assert allowed(cluster, "gateway", "edge", TCP, 10443)
    assert not allowed(cluster, "gateway", "keycloak", TCP, 8080), "the gateway goes through the public host"
    assert not allowed(cluster, "partners", "city-server", TCP, 443)
    assert not allowed(cluster, "stranger", "keycloak-db", TCP, 5432)
    gateway_policy = next(p for p in cluster.policies if p["metadata"]["name"] == "gateway")
    without_edge = {
        **gateway_policy,
        "spec": {
            **gateway_policy["spec"],
            "egress": [
                r for r in gateway_policy["spec"]["egress"] if all(p.get("port") != 10443 for p in r.get("ports", []))
            ],
        },
    }
    cluster.policies = [without_edge if p is gateway_policy else p for p in cluster.policies]
    assert not allowed(cluster, "gateway", "edge", TCP, 10443)
    cluster.policies.append(
        {
            "metadata": {"name": "open", "namespace": NAMESPACE},
            "spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]},
        }
    )
    assert direction_allows(
        cluster.policies, cluster.endpoints["registration"], cluster.endpoints["stranger"], TCP, 8000, "Ingress"
    )
