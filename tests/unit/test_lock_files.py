"""The lock files (Sperrdateien) hold what pyproject.toml asks for: every direct dependency at a version inside its
range, every version with its hashes, and the image's lock agreeing with the developers'. A dependency added to
pyproject.toml without `make lock` fails here, not on the next fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ; (.+?))?(?: \\)?$")


def locked(name: str) -> dict[str, tuple[str, str | None]]:
    """Each locked project: its version and its environment marker, if any."""
    found: dict[str, tuple[str, str | None]] = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := ENTRY.match(line):
            found[canonicalize_name(match[1])] = (match[2], match[3])
    return found


def hashes_per_entry(name: str) -> list[tuple[str, int]]:
    """Each locked project with the number of hashes that follow it."""
    entries: list[tuple[str, int]] = []
    for line in (ROOT / name).read_text().splitlines():
        if match := ENTRY.match(line):
            entries.append((match[1], 0))
        elif line.strip().startswith("--hash=sha256:") and entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + 1)
    return entries


RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
BUILD = [Requirement(r) for r in PYPROJECT["dependency-groups"]["build"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]


def in_lock(requirement: Requirement, lock: dict[str, tuple[str, str | None]]) -> str | None:
    """Why ``requirement`` is not met by ``lock``, or None."""
    entry = lock.get(canonicalize_name(requirement.name))
    if entry is None:
        return f"{requirement.name} is not locked"
    version, marker = entry
    if not requirement.specifier.contains(version, prereleases=True):
        return f"{requirement.name}=={version} is outside {requirement.specifier}"
    if requirement.marker is not None and (marker is None or Marker(marker) != requirement.marker):
        return f"{requirement.name}: locked for {marker!r}, asked for {str(requirement.marker)!r}"
    return None


@pytest.mark.parametrize(
    ("lock_file", "requirements"),
    [("requirements.lock", RUNTIME + BUILD), ("requirements-dev.lock", RUNTIME + BUILD + DEV)],
)
def test_every_direct_dependency_is_locked_inside_its_range(lock_file: str, requirements: list[Requirement]) -> None:
    lock = locked(lock_file)
    problems = [p for r in requirements if (p := in_lock(r, lock))]
    assert problems == [], f"{lock_file}: {problems}; run `make lock`"


@pytest.mark.parametrize("lock_file", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_version_has_hashes(lock_file: str) -> None:
    entries = hashes_per_entry(lock_file)
    assert len(entries) > 50
    assert [name for name, count in entries if count == 0] == []


def test_the_image_lock_agrees_with_the_developers_lock() -> None:
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    assert {n: v for n, (v, _) in runtime.items() if dev.get(n, ("",))[0] != v} == {}


def test_the_image_lock_holds_no_dev_tool() -> None:
    tools = {"pytest", "pytest-cov", "ruff", "mypy", "playwright", "django", "uv", "pre-commit", "schemathesis"}
    assert tools & set(locked("requirements.lock")) == set()
    assert tools <= set(locked("requirements-dev.lock"))


def test_the_parser_sees_an_entry_outside_its_range() -> None:
    lock = {"fastapi": ("0.99.0", None), "uvloop": ("0.23.0", "sys_platform != 'win32'")}
    assert in_lock(Requirement("fastapi>=0.163.2,<0.164"), lock) == "fastapi==0.99.0 is outside <0.164,>=0.163.2"
    assert in_lock(Requirement("httpx>=0.28"), lock) == "httpx is not locked"
    assert in_lock(Requirement("uvloop>=0.23; sys_platform != 'win32'"), lock) is None
