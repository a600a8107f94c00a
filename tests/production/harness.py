"""The production configuration on this machine: every process of ``deploy/k8s/overlays/prod``, started with what the
manifests give it and nothing else.

The overlay is rendered with the pinned kubectl. Each Deployment that runs our image (gateway and services) gets
exactly the environment of its container: its ``envFrom`` ConfigMaps and its ``env`` entries (values, ConfigMap
keys, Secret keys). Secrets are made from ``deploy/k8s/required-secrets.yaml`` by their ``format:`` (one fresh
PostgreSQL database and owner per ``postgres-app``). What cannot be the same here is one table, printed by the test:

- addresses: a Service of ours becomes the local port of its process, the Kafka bootstrap the embedded broker,
  the OpenTelemetry Collector a local OTLP sink, Keycloak the test OpenID provider (same paths, another origin);
  the edge's host (its HTTPRoute) is not rewritten at all: the test's HTTP client reaches it the way the edge
  would (TLS ends there, then plain http to the gateway), so GATEWAY_PUBLIC_URL and the realm's redirect URIs stay
  as they are;
- deviations: settings whose production value this machine cannot serve, each with its reason.

Before anything starts, every setting a process needs from the cluster (tests/k8s.py, ``cluster_settings``) must
come from the manifests, and every settings class must accept the environment built for it: a missing key fails by
the process's and the variable's name. Migrations run as the migration Jobs run them, then the processes start as
their containers' commands say, each logging to a file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from chassis.embedded_broker import EmbeddedBroker, free_port
from chassis.settings import ServiceSettings
from tests.k8s import (
    ROOT,
    EnvEntry,
    Workload,
    container_env,
    env_names,
    missing_settings,
    of_kind,
    our_workloads,
    required_secrets,
    settings_class,
)
from tests.oidc_provider import OpenIdProvider

OVERLAY = "prod"
#: Settings this machine cannot serve as the manifests say: variable -> (the manifests' value, the value here, why).
DEVIATIONS: dict[str, tuple[str, str, str]] = {
    "KAFKA_IDEMPOTENT_PRODUCER": (
        "true",
        "false",
        "the embedded broker (Tansu) refuses aiokafka's InitProducerId; correctness never depends on it "
        "(outbox and idempotent consumers, DESIGN.md section 3)",
    ),
    "KAFKA_SECURITY_PROTOCOL": (
        "ssl",
        "PLAINTEXT",
        "the embedded broker speaks plaintext only, so the services' certificates (mounted from Strimzi's Secrets, "
        "not made here) are not read; TLS with a client certificate is a real handshake in "
        "tests/unit/test_kafka_security.py, the KafkaUsers' ACLs are checked against the code in tests/deploy",
    ),
    "GATEWAY_TRUSTED_PROXIES": (
        '["10.244.0.0/16"]',
        '["127.0.0.1"]',
        "the ingress (the test's client, see Ingress) reaches the gateway from this machine, not from the pod network",
    ),
    "HTTP_SSL_CAFILE": (
        "/etc/landsberg/city-ca/ca.crt",
        "",
        "the city's CA is the city's own (the Secret city-ca, not made here) and the test's identity provider and "
        "webhook receiver speak plain http; trusting a private CA is a real TLS handshake in "
        "tests/service/test_city_ca.py",
    ),
    "PARTNERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": (
        "false",
        "true",
        "the partner's webhook receiver in this test listens on 127.0.0.1 over plain http, which production "
        "refuses (server-side request forgery); signing and delivery are the same",
    ),
}
#: Settings the manifests leave to their defaults and this machine sets: variable -> (value here, why).
ADDITIONS: dict[str, tuple[str, str]] = {
    "OTEL_METRIC_EXPORT_INTERVAL": (
        "1000",
        "metrics are exported over OTLP every 60 s in the cluster (the SDK's default); every second here, so that "
        "the test sees each process's export within seconds",
    ),
}
#: The image's own environment (Dockerfile): its virtual environment on PATH; here the repository is the package.
IMAGE_ENV = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "PYTHONPATH": str(ROOT)}
READY_SECONDS = 120.0
STOP_SECONDS = 25.0


@dataclass(frozen=True)
class Row:
    """One line of the printed table: what is not as in the cluster, and why."""

    what: str
    cluster: str
    here: str
    why: str


class Recorder:
    """A small HTTP server in a thread that answers 200 and keeps what it received: the OTLP sink and the
    partner's webhook receiver."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                recorder.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


#: The address the ingress names as the test's client (a documentation address, RFC 5737).
CLIENT_ADDRESS = "192.0.2.10"


class Ingress(httpx.AsyncBaseTransport):
    """What the cluster's ingress does for the test's client: https://<public host> ends here and goes on as plain
    http to the gateway, with the original Host, X-Forwarded-Proto and, as the edge (Envoy) sets it, X-Forwarded-For."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.URL(upstream)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # A new request to the gateway: the client keeps the original (its cookies belong to the public address).
        url = request.url.copy_with(scheme="http", host=self.upstream.host, port=self.upstream.port)
        headers = request.headers.copy()
        headers["x-forwarded-proto"] = "https"
        headers["x-forwarded-for"] = CLIENT_ADDRESS
        forwarded = httpx.Request(
            request.method, url, headers=headers, stream=request.stream, extensions=request.extensions
        )
        return await self.inner.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        log = self.log.open("ab")
        try:
            # The command is the container's, from our own manifests; the environment is exactly the one built.
            self.popen = subprocess.Popen(self.command, env=self.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return f"--- {self.name}: no log"
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} ({self.log}):\n" + "\n".join(text)


@dataclass
class Production:
    """The running production configuration, as the tests see it."""

    objects: tuple[dict[str, Any], ...]
    workloads: dict[str, Workload]
    processes: dict[str, Process]
    settings: dict[str, ServiceSettings]
    table: list[Row]
    public_url: str
    gateway_url: str
    provider: OpenIdProvider
    receiver: Recorder
    otlp: Recorder
    workdir: Path
    migrations: dict[str, Process] = field(default_factory=dict)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client that reaches the public address through the ingress, and anything else directly."""
        return httpx.AsyncClient(
            base_url=self.public_url, mounts={self.public_url: Ingress(self.gateway_url)}, timeout=30, **kwargs
        )

    def tails(self) -> str:
        return "\n".join(p.tail() for p in [*self.migrations.values(), *self.processes.values()])

    def table_text(self) -> str:
        return format_table(self.table)


def format_table(rows: list[Row]) -> str:
    lines = ["what differs from the cluster (tests/production/harness.py):"]
    lines += [f"  {r.what}: {r.cluster} -> {r.here or '(empty)'}\n      ({r.why})" for r in rows]
    return "\n".join(lines)


# --- secrets ---------------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class Databases:
    """One PostgreSQL database and owner per ``postgres-app`` Secret, as CloudNativePG makes them; dropped after."""

    admin_url: str
    made: list[tuple[str, str]] = field(default_factory=list)

    async def create(self, database: str, owner: str) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:10]
        name, user, password = f"prod_{database}_{suffix}", f"prod_{owner}_{suffix}", secrets.token_hex(24)
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
            self.made.append((name, user))
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
        finally:
            await admin.close()
        server = make_url(self.admin_url)
        host, port = server.host or "127.0.0.1", str(server.port or 5432)
        uri = f"postgresql://{user}:{password}@{host}:{port}/{name}"
        return {"uri": uri, "username": user, "password": password, "host": host, "port": port, "dbname": name}

    async def drop(self) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            for name, user in reversed(self.made):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        finally:
            await admin.close()


async def make_secrets(
    objects: tuple[dict[str, Any], ...], wanted: set[tuple[str, str]], databases: Databases, provider: OpenIdProvider
) -> dict[tuple[str, str], dict[str, str]]:
    """The Secrets the processes and their Jobs read, made by each entry's ``format:``."""
    entries = {(e["namespace"], e["name"]): e for e in required_secrets()}
    made: dict[tuple[str, str], dict[str, str]] = {}
    for ref in sorted(wanted):
        entry = entries.get(ref)
        assert entry is not None, f"Secret {ref[1]} (namespace {ref[0]}) is read but not in required-secrets.yaml"
        keys, form = entry["keys"], entry.get("format")
        if form == "random":
            made[ref] = {key: _b64(secrets.token_bytes(32)) for key in keys}
        elif form == "ed25519":
            assert set(keys) == {"private-key", "public-key"}, f"{ref[1]}: ed25519 has keys private-key, public-key"
            private = Ed25519PrivateKey.generate()
            made[ref] = {
                "private-key": _b64(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())),
                "public-key": _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
            }
        elif form == "postgres-app":
            cluster = next(
                (
                    c
                    for c in of_kind(objects, "Cluster")
                    if (c["metadata"]["namespace"], f"{c['metadata']['name']}-app") == ref
                ),
                None,
            )
            assert cluster is not None, f"{ref[1]}: no CloudNativePG Cluster {ref[1].removesuffix('-app')}"
            initdb = cluster["spec"]["bootstrap"]["initdb"]
            values = await databases.create(initdb["database"], initdb["owner"])
            assert set(keys) <= set(values), f"{ref[1]}: postgres-app has no keys {set(keys) - set(values)}"
            made[ref] = {key: values[key] for key in keys}
        elif form == "oidc-client":
            # The client it belongs to: the one the entry names, or else the realm's only confidential client.
            clients = [
                c
                for c in provider.realm["clients"]
                if not c.get("publicClient", False) and c["clientId"] == entry.get("client", c["clientId"])
            ]
            assert len(clients) == 1, f"{ref[1]}: which client of the realm? found {[c['clientId'] for c in clients]}"
            client = clients[0]
            secret = secrets.token_urlsafe(32)
            await asyncio.to_thread(  # Django's ORM is for threads, not for an event loop
                provider.add_client,
                client["clientId"],
                secret,
                redirect_uris=client.get("redirectUris", []),
                post_logout_redirect_uris=client.get("attributes", {}).get("post.logout.redirect.uris", "").split(),
                consent_required=bool(client.get("consentRequired", False)),
            )
            made[ref] = dict.fromkeys(keys, secret)
        else:
            raise AssertionError(f"Secret {ref[1]} has format {form!r}: the harness cannot make it for a process")
    return made


# --- addresses -------------------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


@dataclass
class Addresses:
    """In-cluster addresses and where they are on this machine."""

    #: (scheme, host, port) of an in-cluster URL -> local origin; host:port of a TCP address -> local host:port
    urls: dict[tuple[str, str, int], str] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    #: host names that mean the cluster (Services, their DNS names): any left in a value fails the run
    cluster_hosts: set[str] = field(default_factory=set)
    rows: list[Row] = field(default_factory=list)

    def service(self, namespace: str, name: str, port: int, scheme: str, local: str, why: str) -> None:
        for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"):
            self.urls[(scheme, host, port)] = local
        self.rows.append(Row(f"Service {name}", f"{scheme}://{name}" + ("" if port == 80 else f":{port}"), local, why))

    def rewrite(self, value: str) -> str:
        if value in self.hosts:
            return self.hosts[value]
        if "://" in value:
            local = self.urls.get(_origin(value))
            if local is not None:
                parts = urlsplit(value)
                return local + urlunsplit(("", "", parts.path, parts.query, parts.fragment))
        return value

    def still_in_cluster(self, value: str) -> str | None:
        if "://" in value:
            candidates = [_origin(value)[1]]
        elif re.fullmatch(r"[\w.-]+:\d+(,[\w.-]+:\d+)*", value):  # host:port, as a broker list
            candidates = [part.split(":")[0] for part in value.split(",")]
        else:
            return None
        for host in candidates:
            if host in self.cluster_hosts or host.endswith((".svc", ".svc.cluster.local")):
                return host
        return None


def cluster_addresses(
    objects: tuple[dict[str, Any], ...], ports: dict[str, int], broker: str, otlp: str, provider: OpenIdProvider
) -> Addresses:
    addresses = Addresses()
    ours = {(w.namespace, w.name) for w in our_workloads(objects)}
    for svc in of_kind(objects, "Service"):
        namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        addresses.cluster_hosts |= {name, f"{name}.{namespace}", f"{name}.{namespace}.svc"}
        for port in svc["spec"].get("ports", []):
            if (namespace, name) in ours:
                addresses.service(
                    namespace,
                    name,
                    port["port"],
                    "http",
                    f"http://127.0.0.1:{ports[name]}",
                    "its process on a free port of this machine",
                )
            elif name == "otel-collector" and port.get("name") == "otlp-http":
                addresses.service(
                    namespace, name, port["port"], "http", otlp, "a local OTLP/HTTP sink takes the traces"
                )
    for kafka in of_kind(objects, "Kafka"):
        for listener in kafka["spec"]["kafka"].get("listeners", []):
            bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap"
            addresses.cluster_hosts.add(bootstrap)
            if listener.get("type") == "internal":
                addresses.hosts[f"{bootstrap}:{listener['port']}"] = broker
                why = "the embedded broker (Tansu), one node"
                if listener.get("tls"):
                    why += ", plaintext (see KAFKA_SECURITY_PROTOCOL)"
                addresses.rows.append(
                    Row(f"Kafka {kafka['metadata']['name']}", f"{bootstrap}:{listener['port']}", broker, why)
                )
    for keycloak in of_kind(objects, "Keycloak"):
        hostname = keycloak["spec"]["hostname"]["hostname"]
        origin = hostname if "://" in hostname else f"https://{hostname}"
        addresses.urls[_origin(origin)] = provider.origin
        why = "the test OpenID provider: Keycloak's paths, the realm's client and mappers"
        addresses.rows.append(Row("Keycloak", origin, provider.origin, why))
    for route in of_kind(objects, "HTTPRoute"):
        backends = {ref["name"] for rule in route["spec"]["rules"] for ref in rule.get("backendRefs", [])}
        if backends != {"gateway"}:
            continue
        for host in route["spec"]["hostnames"]:
            why = "not rewritten: the test's client plays the edge (tests/production)"
            addresses.rows.append(
                Row(f"Edge HTTPRoute {route['metadata']['name']}", f"https://{host}", "the gateway's port", why)
            )
    return addresses


# --- the environment -------------------------------------------------------------------------------------------


def environment(
    workload_env: dict[str, EnvEntry], made: dict[tuple[str, str], dict[str, str]], namespace: str
) -> dict[str, str]:
    env = {}
    for name, entry in workload_env.items():
        if entry.secret is not None:
            assert entry.key is not None
            env[name] = made[(namespace, entry.secret)][entry.key]
        else:
            assert entry.value is not None
            env[name] = entry.value
    return env


@contextlib.contextmanager
def process_environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as the process will have it, for building its settings class here (pydantic-settings reads
    only the environment)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def command(container_command: list[str], host: str | None = None, port: int | None = None) -> list[str]:
    """The container's command on this machine: its Python for ``uvicorn``/``python``, and the chosen address."""
    program, *args = container_command
    args = list(args)
    for flag, value in (("--host", host), ("--port", port)):
        if value is not None and flag in args:
            args[args.index(flag) + 1] = str(value)
    runner = {"uvicorn": [sys.executable, "-m", "uvicorn"], "python": [sys.executable]}
    assert program in runner, f"the harness does not know how to run {program!r} here"
    return [*runner[program], *args]


def migration_job(objects: tuple[dict[str, Any], ...], workload: Workload) -> dict[str, Any] | None:
    """The Job that migrates the workload's database: the one that runs as the same service account."""
    deployment = next(d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] == workload.name)
    account = deployment["spec"]["template"]["spec"].get("serviceAccountName")
    jobs = [
        j
        for j in of_kind(objects, "Job")
        if j["metadata"]["namespace"] == workload.namespace
        and j["spec"]["template"]["spec"].get("serviceAccountName") == account
    ]
    assert len(jobs) <= 1, f"{workload.name}: several Jobs run as {account}"
    return jobs[0] if jobs else None


def local_environment(
    workload: Workload, made: dict[tuple[str, str], dict[str, str]], addresses: Addresses, port: int, table: list[Row]
) -> dict[str, str]:
    """The container's environment with the addresses of this machine, the chosen port and the deviations (each
    added to ``table`` once)."""
    env = {key: addresses.rewrite(value) for key, value in environment(workload.env, made, workload.namespace).items()}
    cls = settings_class(workload.app)
    for field_name, value in (("host", "127.0.0.1"), ("port", str(port))):
        for variable in env_names(cls, field_name):
            if variable in env:
                env[variable] = value
    for variable, (expected, here, why) in DEVIATIONS.items():
        if variable in env:
            assert env[variable].lower() == expected, (
                f"{workload.name}: the manifests now set {variable}={env[variable]}; update DEVIATIONS ({expected})"
            )
            env[variable] = here
            if not any(r.what == variable for r in table):
                table.append(Row(variable, expected, here, why))
    for variable, (here, why) in ADDITIONS.items():
        assert variable not in env, f"{workload.name}: the manifests now set {variable}; drop it from ADDITIONS"
        env[variable] = here
        if not any(r.what == variable for r in table):
            table.append(Row(variable, "(unset)", here, why))
    return env


def settings_problems(
    workload: Workload, env: dict[str, str], addresses: Addresses, settings: dict[str, ServiceSettings]
) -> list[str]:
    """What keeps the process from running as production with ``env``: an in-cluster address left unmapped, a
    settings class that refuses the environment (its validators name the variable), or not production. The settings
    built are put in ``settings``."""
    problems = []
    for variable, value in env.items():
        host = addresses.still_in_cluster(value)
        if host is not None:
            problems.append(f"{variable}={value} names {host}, an address the harness does not map")
    cls = settings_class(workload.app)
    with process_environment(env):
        try:
            built = cls()
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            return [*problems, f"{cls.__name__} refuses the environment the manifests give it: {reasons}"]
    settings[workload.name] = built
    if built.environment != "production" or not built.identity_required:
        problems.append(
            f"ENVIRONMENT is {built.environment!r}, identity required: {built.identity_required}; "
            "the production overlay must run production"
        )
    return problems


# --- starting and stopping ---------------------------------------------------------------------------------------


def all_up(ready: httpx.Response) -> bool:
    """Ready (the probe the manifests use), and what the body names up too: a service's broker, the gateway's
    upstreams. Readiness alone does not wait for them (chassis/health.py); the journey needs them."""
    if ready.status_code != 200:
        return False
    checks = ready.json().get("checks", {})
    return checks.get("broker", "ok") == "ok" and all(state == "ok" for state in checks.get("upstreams", {}).values())


async def wait_ready(processes: list[Process]) -> None:
    """Every process answers 200 on /readyz with everything it names up, polled with a deadline."""
    deadline = asyncio.get_running_loop().time() + READY_SECONDS
    pending = {p.name: p for p in processes}
    async with httpx.AsyncClient(timeout=3) as client:
        while pending:
            for name, process in list(pending.items()):
                assert process.popen is not None
                if process.popen.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.popen.returncode}:\n{process.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if all_up(await client.get(f"http://127.0.0.1:{process.port}/readyz")):
                        del pending[name]
            if pending and asyncio.get_running_loop().time() > deadline:
                tails = "\n".join(p.tail() for p in pending.values())
                raise AssertionError(f"not ready within {READY_SECONDS:.0f}s: {sorted(pending)}\n{tails}")
            if pending:
                await asyncio.sleep(0.2)


async def run_to_completion(processes: list[Process], cwd: Path) -> None:
    for process in processes:
        process.start(cwd)
    for process in processes:
        assert process.popen is not None
        code = await asyncio.to_thread(process.popen.wait, READY_SECONDS)
        assert code == 0, f"{process.name} failed ({code}):\n{process.tail()}"


def stop(processes: list[Process]) -> None:
    running = [p for p in processes if p.popen is not None and p.popen.poll() is None]
    for process in running:
        assert process.popen is not None
        process.popen.send_signal(signal.SIGTERM)  # graceful: Kubernetes stops a pod with SIGTERM
    for process in running:
        assert process.popen is not None
        try:
            process.popen.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()


# --- the whole of it ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def production(
    objects: tuple[dict[str, Any], ...], directory: Path, postgres: str, provider: OpenIdProvider
) -> Any:
    """Start the production configuration; yields :class:`Production`; stops and removes all of it after."""
    workloads = {w.name: w for w in our_workloads(objects)}
    assert "gateway" in workloads, "no gateway Deployment in the rendered overlay"
    # Fails by name before anything starts: a setting the cluster must give and the manifests do not.
    problems = [problem for w in workloads.values() for problem in missing_settings(w)]
    assert not problems, "the production configuration lacks settings:\n" + "\n".join(problems)

    logs, workdir = directory / "logs", directory / "workdir"
    logs.mkdir()
    workdir.mkdir()
    databases = Databases(postgres)
    broker = EmbeddedBroker(log_path=logs / "broker.log")
    otlp, receiver = Recorder(), Recorder()
    processes: dict[str, Process] = {}
    migrations: dict[str, Process] = {}
    try:
        broker.start()
        ports = {name: free_port() for name in workloads}
        addresses = cluster_addresses(objects, ports, broker.bootstrap_servers, otlp.url, provider)
        jobs = {name: migration_job(objects, w) for name, w in workloads.items()}
        job_envs = {name: container_env_of_job(objects, job) for name, job in jobs.items() if job is not None}
        wanted = {(w.namespace, e.secret) for w in workloads.values() for e in w.env.values() if e.secret}
        wanted |= {(workloads[n].namespace, e.secret) for n, env in job_envs.items() for e in env.values() if e.secret}
        made = await make_secrets(objects, wanted, databases, provider)

        table = list(addresses.rows)
        settings: dict[str, ServiceSettings] = {}
        problems = []
        for name, workload in workloads.items():
            env = local_environment(workload, made, addresses, ports[name], table)
            problems += [f"{name}: {problem}" for problem in settings_problems(workload, env, addresses, settings)]
            processes[name] = Process(
                name,
                command(workload.command, "127.0.0.1", ports[name]),
                env | IMAGE_ENV,
                logs / f"{name}.log",
                ports[name],
            )
            job = jobs[name]
            if job is not None:
                job_container = job["spec"]["template"]["spec"]["containers"][0]
                job_command = [*job_container.get("command", []), *job_container.get("args", [])]
                job_env = {
                    k: addresses.rewrite(v) for k, v in environment(job_envs[name], made, workload.namespace).items()
                }
                migrations[name] = Process(
                    job["metadata"]["name"], command(job_command), job_env | IMAGE_ENV, logs / f"{name}-migrate.log"
                )
        assert not problems, "the production configuration does not start as rendered:\n" + "\n".join(problems)
        image = ", ".join(f"{k}={v}" for k, v in IMAGE_ENV.items())
        table.append(
            Row(
                "the image's environment",
                "its virtual environment on PATH",
                image,
                "the repository is the installed package",
            )
        )

        await run_to_completion(list(migrations.values()), workdir)
        for process in processes.values():
            process.start(workdir)
        await wait_ready(list(processes.values()))
        public = next(r for r in table if r.what.startswith("Edge")).cluster
        yield Production(
            objects=objects,
            workloads=workloads,
            processes=processes,
            settings=settings,
            table=table,
            public_url=public,
            gateway_url=f"http://127.0.0.1:{ports['gateway']}",
            provider=provider,
            receiver=receiver,
            otlp=otlp,
            workdir=workdir,
            migrations=migrations,
        )
    finally:
        # The gateway first, then the services (as a rollout would drain them), then what they used.
        stop([processes[n] for n in ("gateway",) if n in processes])
        stop([p for n, p in processes.items() if n != "gateway"])
        stop(list(migrations.values()))
        broker.stop()
        otlp.stop()
        receiver.stop()
        await databases.drop()


def container_env_of_job(objects: tuple[dict[str, Any], ...], job: dict[str, Any]) -> dict[str, EnvEntry]:
    return container_env(objects, job["metadata"]["namespace"], job["spec"]["template"]["spec"]["containers"][0])
