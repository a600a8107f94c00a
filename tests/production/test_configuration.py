"""The production test's first check, without starting anything: a key a process needs, removed from a ConfigMap,
fails by the process's and the variable's name (tests/production/harness.py runs the same check before it starts
the processes)."""

from __future__ import annotations

import copy
from typing import Any

from tests.k8s import cluster_settings, env_names, missing_settings, our_workloads, render, settings_class
from tests.production.harness import OVERLAY


def without(objects: tuple[dict[str, Any], ...], configmap: str, key: str) -> tuple[dict[str, Any], ...]:
    changed = copy.deepcopy(objects)
    for o in changed:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap:
            del o["data"][key]
    return changed


def test_a_needed_key_removed_from_a_configmap_fails_by_name() -> None:
    objects = render(OVERLAY)
    removed = 0
    for workload in our_workloads(objects):
        cls = settings_class(workload.app)
        needed = {name for field in cluster_settings(cls) for name in env_names(cls, field)}
        for variable, entry in workload.env.items():
            if entry.configmap is None or variable.upper() not in needed:
                continue
            assert entry.key is not None
            after = {w.name: w for w in our_workloads(without(objects, entry.configmap, entry.key))}
            problems = missing_settings(after[workload.name])
            assert any(p.startswith(f"{workload.name}: {variable}") for p in problems), (variable, problems)
            removed += 1
    assert removed >= 7  # the gateway's five upstreams, referral's registration URL, the broker for each service
