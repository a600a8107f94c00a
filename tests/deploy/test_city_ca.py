"""The city's own CA in the manifests: where a process is told to trust it (HTTP_SSL_CAFILE), the file is there.

A setting that names a file no volume puts there stops the pod at start (chassis/settings.py refuses it); a mount
without the setting trusts nothing more. Both are caught here, without a cluster. The trust itself is a real TLS
handshake in tests/service/test_city_ca.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s import NAMESPACE, by_name, container_env, of_kind, render, required_secrets

OVERLAYS = ["dev", "prod"]
#: The processes that call out over HTTPS beyond the cluster: the gateway (Keycloak's public sso host) and partners
#: (webhook receivers). The others call only in-cluster services over plain http.
OUTBOUND_HTTPS = ("gateway", "partners")


def mounted_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Path of each file a container has from a Secret or ConfigMap -> (kind, its name, key)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files: dict[str, tuple[str, str, str]] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        for kind, source, name_field in (
            ("Secret", volume.get("secret"), "secretName"),
            ("ConfigMap", volume.get("configMap"), "name"),
        ):
            if source is None:
                continue
            assert mount.get("readOnly") and "subPath" not in mount, f"{mount} (subPath never sees a renewal)"
            for item in source.get("items", []):
                files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = (kind, source[name_field], item["key"])
    return files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ca_file_a_process_is_told_to_trust_is_mounted_from_the_city_ca(overlay: str) -> None:
    objects = render(overlay)
    ca_secrets = {
        e["name"] for e in required_secrets() if e["format"] == "ca-cert" and overlay in e.get("overlays", OVERLAYS)
    }
    told = []
    for o in [*of_kind(objects, "Deployment"), *of_kind(objects, "Job")]:
        if o["metadata"]["namespace"] != NAMESPACE:
            continue
        pod = o["spec"]["template"]["spec"]
        for container in pod["containers"]:
            env = container_env(objects, NAMESPACE, container)
            files = mounted_files(pod, container)
            city_mounts = {path for path, (kind, name, _) in files.items() if kind == "Secret" and name in ca_secrets}
            where = f"{o['kind']}/{o['metadata']['name']}"
            if "HTTP_SSL_CAFILE" not in env:
                assert not city_mounts, f"{where} mounts the city's CA at {city_mounts} but no HTTP_SSL_CAFILE uses it"
                continue
            path = env["HTTP_SSL_CAFILE"].value
            assert path in files, f"{where}: HTTP_SSL_CAFILE={path}, but no volume puts a file there"
            kind, name, key = files[path]
            assert kind == "Secret" and name in ca_secrets and key == "ca.crt", f"{where}: {path} is {files[path]}"
            told.append(o["metadata"]["name"])
    # Keycloak's certificate may be one of the city's CA (in dev, for .test names, it always is one made by hand):
    # the gateway must trust it, and partners the city's own webhook receivers.
    assert sorted(told) == sorted(OUTBOUND_HTTPS), told
    gateway = by_name(objects, "ConfigMap", "gateway-config")["data"]
    assert gateway["GATEWAY_OIDC_ISSUER"].startswith("https://")
    print(f"{overlay}: HTTP_SSL_CAFILE set and mounted from the Secret city-ca for {sorted(told)}")
