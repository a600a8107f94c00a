"""The production configuration (deploy/k8s/overlays/prod) running on this machine, once per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.k8s import render
from tests.oidc_provider import OpenIdProvider
from tests.production import harness


@pytest.fixture(scope="module")
async def production(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str | None, openid_provider: OpenIdProvider
) -> AsyncIterator[harness.Production]:
    if postgres_server is None:  # CI fails in postgres_server instead: there PostgreSQL is required
        pytest.skip("the production configuration runs on PostgreSQL; none is reachable here (TEST_POSTGRES_URL)")
    objects = render(harness.OVERLAY)
    directory = tmp_path_factory.mktemp("production")
    async with harness.production(objects, directory, postgres_server, openid_provider) as running:
        print(running.table_text())
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows the table of what differs from the cluster and the tail of every process's log."""
    outcome: Any = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("production")
    if report.failed and isinstance(running, harness.Production):
        report.sections.append(("production: what differs from the cluster", running.table_text()))
        report.sections.append(("production: process logs", running.tails()))
