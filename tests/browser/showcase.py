"""What the tests of the partner, course admin and analyst pages add to ``Browsing``: screenshots kept in
``docs/screenshots/`` (linked from the README, so they stay current with every run) and an axe check that
fails on serious violations too, not only critical ones."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.courses.app import create_app as create_courses
from services.referral import api as referral_api
from tests.browser import conftest as browser_conftest
from tests.browser.conftest import Browsing

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def document(browsing: Browsing, page: Any, name: str) -> None:
    """A screenshot for the README (``docs/screenshots/<name>.png``) and one in the test's own directory."""
    DOCS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
    await browsing.shot(page, name)


async def strictly_accessible(browsing: Browsing, page: Any, name: str) -> None:
    results = await browsing.axe.run(page)
    violations = results.response["violations"]
    grave = [
        f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']][:3]})"
        for v in violations
        if v.get("impact") in ("serious", "critical")
    ]
    assert not grave, f"{name}: serious or critical accessibility violations {grave}"
    browsing.checked[name] = [f"{v['id']} ({v.get('impact')})" for v in violations]


@pytest.fixture
def registration_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the ``stack`` requested after it: the services that ask registration in their own signed name (referral
    for a partner's contact data, courses for names) reach the stack's registration app in-process, as they would
    over the network."""
    made: dict[str, Any] = {}
    create_registration = browser_conftest.create_registration  # type: ignore[attr-defined]

    def registration(settings: Any) -> Any:
        made["app"] = create_registration(settings)
        return made["app"]

    class ToRegistration(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await httpx.ASGITransport(app=made["app"]).handle_async_request(request)

    def to_registration(**kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=ToRegistration(), **kwargs)

    def courses(settings: Any) -> Any:
        return create_courses(settings, registration_transport=ToRegistration())

    monkeypatch.setattr(browser_conftest, "create_registration", registration)
    monkeypatch.setattr(browser_conftest, "create_courses", courses)
    monkeypatch.setattr(
        referral_api, "httpx", types.SimpleNamespace(AsyncClient=to_registration, HTTPError=httpx.HTTPError)
    )
