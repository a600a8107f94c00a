"""deploy/operators.yaml pins every controller and operator; deploy/README.md installs exactly those versions, and
the manifests ask only for what the pinned versions serve (Strimzi runs only the Kafka versions its release lists)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.k8s import ROOT, of_kind, render


def operators() -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in yaml.safe_load((ROOT / "deploy" / "operators.yaml").read_text())["operators"]}


def install_commands() -> list[str]:
    """The shell commands of deploy/README.md, continuation lines joined."""
    guide = (ROOT / "deploy" / "README.md").read_text()
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", guide, re.S))
    return [line.strip() for line in shell.replace("\\\n", " ").splitlines() if line.strip()]


def test_every_chart_is_installed_at_its_pin_and_nothing_unpinned() -> None:
    commands = install_commands()
    installs = [c for c in commands if c.startswith("helm install")]
    assert installs
    for install in installs:
        assert "--version" in install, f"unpinned: {install}"
    for name, operator in operators().items():
        if "chart" not in operator:
            continue
        pinned = [c for c in installs if f" {operator['chart']} " in f"{c} "]
        assert pinned, f"{name}: deploy/README.md does not install {operator['chart']}"
        for install in pinned:
            version = re.search(r"--version (\S+)", install)
            assert version and version.group(1) == operator["version"], f"{name}: {install}"


def test_the_keycloak_operator_is_the_pinned_release() -> None:
    commands = install_commands()
    (pin,) = [c for c in commands if c.startswith("KC=")]
    assert pin.split("=")[1].split()[0] == operators()["keycloak-operator"]["version"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kafka_is_a_version_the_pinned_strimzi_runs(overlay: str) -> None:
    serves = operators()["strimzi"]["serves"]["kafka"]
    for kafka in of_kind(render(overlay), "Kafka"):
        version = kafka["spec"]["kafka"]["version"]
        assert version in serves, f"Strimzi {operators()['strimzi']['version']} does not run Kafka {version}"
        assert kafka["spec"]["kafka"]["metadataVersion"].startswith(".".join(version.split(".")[:2]))
