"""Migrations are history: a version file imports nothing of the project (chassis, contracts, services, gateway),
so that changing a helper later cannot change what an old revision builds (eingefrorene Migrationen)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILES = sorted(ROOT.glob("services/*/migrations/versions/*.py"))
PROJECT_PACKAGES = {"chassis", "contracts", "services", "gateway", "reference"}


def project_imports(path: Path) -> list[str]:
    """Every import of a project package anywhere in the file (also inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # a relative import reaches into the project as well
            names = [node.module or "."] if node.level == 0 else [f"{'.' * node.level}{node.module or ''}"]
        else:
            continue
        found += [name for name in names if name.startswith(".") or name.split(".")[0] in PROJECT_PACKAGES]
    return found


def test_there_are_version_files_to_check() -> None:
    assert len(VERSION_FILES) > 20


@pytest.mark.parametrize("path", VERSION_FILES, ids=lambda p: str(p.relative_to(ROOT / "services")))
def test_a_migration_version_imports_nothing_of_the_project(path: Path) -> None:
    assert project_imports(path) == [], f"{path.relative_to(ROOT)}: copy what it needs into the file instead"


def test_the_check_finds_a_chassis_import(tmp_path: Path) -> None:
    version = tmp_path / "0099_example.py"
    version.write_text(
        "from alembic import op\nfrom chassis.migrations import x\n\ndef upgrade():\n    import contracts.topics\n"
        "    from . import helpers\n"
    )
    assert project_imports(version) == ["chassis.migrations", "contracts.topics", "."]
