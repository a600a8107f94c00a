"""The stack every browser test stands on, and what the tests do in every page.

The gateway runs in a real uvicorn server on a free port; the registration, referral, courses,
partners and monitoring apps are the real apps on SQLite with the session's broker, reached over
ASGI mounts. Playwright drives Debian's ``chromium``; axe-core checks pages for serious and critical violations.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from services.courses.app import create_app as create_courses
from services.monitoring.app import create_app as create_monitoring
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    behind_gateway,
    courses_settings,
    eventually,
    gateway_settings,
    partners_settings,
    referral_settings,
    registration_settings,
    sqlite_url,
)
from tests.service.test_monitoring_api import monitoring_settings

if TYPE_CHECKING:  # imported where a test runs: collecting the other tests needs no Playwright
    from playwright.async_api import Browser, Page, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class Stack:
    def __init__(self, url: str, gateway: Any, shots: Path) -> None:
        self.url = url
        self.gateway = gateway
        self.shots = shots

    def password(self, username: str) -> str:
        return str(self.gateway.state.demo_credentials[username])

    async def bearer(self, client: httpx.AsyncClient, username: str) -> dict[str, str]:
        reply = await client.post("/auth/token", json={"username": username, "password": self.password(username)})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def registered_with_case(self, api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str]:
        """A newcomer registered through the API by the registrar: (person id, case id), once the referral service
        has opened the case and registration lets the caseworker (lotse) read the person (issue 12)."""
        registered = await api.post("/api/v1/registrations", json=body, headers=await self.bearer(api, "registrar"))
        assert registered.status_code == 201, registered.text
        person = str(registered.json()["person_id"])
        as_lotse = await self.bearer(api, "lotse")

        async def case_id() -> str | None:
            found = (await api.get("/api/v1/cases", params={"person_id": person}, headers=as_lotse)).json()
            return str(found["items"][0]["case_id"]) if found.get("items") else None

        case = await eventually(case_id, timeout_s=30)

        async def reachable() -> bool:  # registration learns the case's team from referral's events
            return (await api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

        await eventually(reachable, timeout_s=30)
        return person, case


@pytest.fixture
async def stack(broker: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    bootstrap = broker.bootstrap_servers
    apps = {
        "registration": create_registration(registration_settings(sqlite_url(tmp_path, "registration"), bootstrap)),
        "referral": create_referral(referral_settings(sqlite_url(tmp_path, "referral"), bootstrap, demo_data=True)),
        "courses": create_courses(courses_settings(sqlite_url(tmp_path, "courses"), bootstrap, demo_data=True)),
        "partners": create_partners(partners_settings(sqlite_url(tmp_path, "partners"), bootstrap, demo_data=True)),
        "monitoring": create_monitoring(monitoring_settings(sqlite_url(tmp_path, "monitoring"), bootstrap)),
    }
    gateway = create_app(gateway_settings(tmp_path, demo_data=True))  # environment "test": Secure cookies
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    async with AsyncExitStack() as stack:
        await behind_gateway(stack, gateway, apps)
        server = uvicorn.Server(uvicorn.Config(gateway, lifespan="off", log_level="warning", access_log=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await eventually(lambda: _true(server.started), timeout_s=10)
        shots = tmp_path / "screenshots"
        shots.mkdir()
        try:
            yield Stack(f"http://127.0.0.1:{sock.getsockname()[1]}", gateway, shots)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()


async def _true(value: bool) -> bool:
    return value


def launch_args() -> dict[str, Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


class Browsing:
    """Screenshots and accessibility checks for one test, and signing in as a demo user."""

    def __init__(self, stack: Stack) -> None:
        from axe_playwright_python.async_playwright import Axe

        self.stack = stack
        self.axe = Axe()
        self.checked: dict[str, list[str]] = {}

    async def shot(self, page: Any, name: str) -> None:
        await page.screenshot(path=str(self.stack.shots / f"{name}.png"), full_page=True)

    async def accessible(self, page: Any, name: str) -> None:
        """axe-core finds no serious or critical violation (issue 14's bar, for every page)."""
        results = await self.axe.run(page)
        violations = results.response["violations"]
        failing = {"critical", "serious"}
        critical = [
            f"{v['id']} ({v.get('impact')}): {v['help']} {[n['target'] for n in v['nodes']][:3]}"
            for v in violations
            if v.get("impact") in failing
        ]
        assert not critical, f"{name}: {' or '.join(sorted(failing))} accessibility violations {critical}"
        self.checked[name] = [f"{v['id']} ({v.get('impact')})" for v in violations]

    async def sign_in(self, page: Any, username: str) -> None:
        await page.goto(f"{self.stack.url}/ui/sign-in")
        await page.get_by_label("Benutzername").fill(username)
        await page.get_by_label("Passwort").fill(self.stack.password(username))
        await page.get_by_role("button", name="Anmelden").click()
        await page.wait_for_load_state()

    async def on_a_phone(self, browser: Browser, username: str, path: str, shot: str, name: str) -> Page:
        """``username`` signed in on a phone at ``path``: a screenshot, axe-core's check and no script on the page."""
        phone = await browser.new_page(viewport=PHONE)
        await self.sign_in(phone, username)
        await phone.goto(f"{self.stack.url}{path}")
        await self.shot(phone, shot)
        await self.accessible(phone, name)
        assert await phone.locator("script").count() == 0, "the pages work without JavaScript"
        return phone

    def report(self) -> None:
        print(f"\nscreenshots: {self.stack.shots}\naxe violations (none serious) per page: {self.checked}")


#: A phone's viewport (CSS pixels).
PHONE: ViewportSize = {"width": 390, "height": 844}


@asynccontextmanager
async def chromium(stack: Stack) -> AsyncIterator[tuple[Browser, Browsing, httpx.AsyncClient]]:
    """(Chromium, the test's screenshots and checks, an API client of the stack); the browser closes at the end,
    and the screenshots and axe-core's findings are reported once the test passed."""
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        browser = await p.chromium.launch(**launch_args())
        try:
            yield browser, browsing, api
        finally:
            await browser.close()
    browsing.report()
