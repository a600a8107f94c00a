"""The admins' pages of the web UI, through the real gateway in front of the real referral and partners
apps (over ASGI): who may see them, the routing rules edited as JSON (refused whole when invalid, a new
version when valid), and the embedded sign-in's accounts (create, sign in, disable, enable, reset).

A small user agent keeps the cookies and posts forms with the session's CSRF token. The gateway runs
with ``environment="test"`` and so sets Secure cookies; the agent speaks https to keep them.
"""

from __future__ import annotations

import json
import logging
import re
import stat
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.vocabulary import NeedCategory
from gateway.app import create_app
from gateway.auth import load_or_create_users
from services.partners.app import create_app as create_partners
from services.referral.app import create_app as create_referral
from tests.conftest import gateway_settings, partners_settings, referral_settings, running_app


class Agent:
    """One person's browser, without the browser: cookies, forms with the CSRF token, redirects by hand."""

    def __init__(self, app: Any) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver", timeout=30
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        if "lip_csrf" not in self.client.cookies:
            await self.client.get("/ui/sign-in")  # any page hands out the CSRF cookie
        return await self.client.post(path, data={**data, "csrf_token": self.client.cookies["lip_csrf"]})

    async def sign_in(self, username: str, password: str) -> httpx.Response:
        return await self.post("/ui/sign-in", {"username": username, "password": password, "next": "/ui/"})

    @property
    def session(self) -> str:
        return str(self.client.cookies["lip_session"])


class Stack:
    def __init__(self, app: Any, users_file: Path) -> None:
        self.app = app
        self.users_file = users_file
        self.agents: list[Agent] = []

    def password(self, username: str) -> str:
        return str(self.app.state.demo_credentials[username])

    async def agent(self, username: str | None = None) -> Agent:
        agent = Agent(self.app)
        self.agents.append(agent)
        if username is not None:
            signed = await agent.sign_in(username, self.password(username))
            assert signed.status_code == 303, signed.text
        return agent

    async def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="https://testserver") as c:
            return await c.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    async def token(self, username: str, password: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="https://testserver") as c:
            return await c.post("/auth/token", json={"username": username, "password": password})


@pytest.fixture
async def stack(database_url: str, broker: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway in front of the real referral app (on the parametrized database: the routing rule
    versions live there) and the real partners app (the directory a partner account must name)."""
    referral_app = create_referral(referral_settings(database_url, broker.bootstrap_servers, demo_data=True))
    partners_app = create_partners(
        partners_settings(f"sqlite+aiosqlite:///{tmp_path / 'partners.db'}", broker.bootstrap_servers, demo_data=True)
    )
    settings = gateway_settings(tmp_path, demo_data=True)
    app = create_app(settings)
    async with running_app(referral_app), running_app(partners_app), running_app(app):
        await app.state.client.aclose()
        app.state.client = httpx.AsyncClient(
            mounts={
                "http://referral": httpx.ASGITransport(app=referral_app),
                "http://partners": httpx.ASGITransport(app=partners_app),
            }
        )
        stack = Stack(app, settings.local_users_file)
        try:
            yield stack
        finally:
            for agent in stack.agents:
                await agent.client.aclose()
            await app.state.client.aclose()


ADMIN_PAGES = (
    "/ui/admin",
    "/ui/admin/routing-rules",
    "/ui/admin/users",
    "/ui/admin/partners",
    "/ui/admin/partners/caritas-landsberg",
    "/ui/admin/roster",
)
NEW_PARTNER = {
    "partner_id": "caritas-kaufering",
    "name": "Caritas Kaufering",
    "category": "charity",
    "languages": ["de", "ar"],
    "services": ["migration_counselling"],
}
NEW_NAVIGATOR = {
    "username": "n.rahimi",
    "name": "Nadia Rahimi",
    "team": "integration-nord",
    "languages": ["de", "fa"],
    "max_cases": "30",
    "active": "yes",
}


def revealed_password(page: httpx.Response) -> str:
    found = re.search(r'id="new-password" readonly autocomplete="off" spellcheck="false" value="([^"]+)"', page.text)
    assert found, page.text
    return unescape(found.group(1))


def without_nulls(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "when": {k: v for k, v in r["when"].items() if v is not None}} for r in rules]


def textarea(page: httpx.Response) -> str:
    found = re.search(r'<textarea id="f-rules"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert found, page.text
    return unescape(found.group(1))


async def test_the_admin_pages_are_for_admins_only(stack: Stack) -> None:
    anonymous = await stack.agent()
    for path in ADMIN_PAGES:
        away = await anonymous.get(path)
        assert away.status_code == 303 and away.headers["location"] == f"/ui/sign-in?next={path}"

    rules_before = (await stack.api("GET", "/api/v1/routing-rules/versions", await admin_token(stack))).json()
    partners_before = (await stack.api("GET", "/api/v1/partners", await admin_token(stack))).json()["total"]
    for username in ("lotse", "registrar", "caritas", "statistik", "vhs"):
        agent = await stack.agent(username)
        for path in ADMIN_PAGES:
            refused = await agent.get(path)
            assert refused.status_code == 403, (username, path)
            assert "Dafür fehlt Ihnen die Berechtigung." in refused.text
        posted = await agent.post("/ui/admin/routing-rules", {"rules": "[]"})
        assert posted.status_code == 403
        created = await agent.post("/ui/admin/users", {"username": f"by-{username}", "roles": ["admin"]})
        assert created.status_code == 403
        reset = await agent.post("/ui/admin/users/admin/reset-password", {})
        assert reset.status_code == 403
        partner = await agent.post("/ui/admin/partners", {**NEW_PARTNER, "partner_id": f"by-{username}"})
        assert partner.status_code == 403
        edited = await agent.post(
            "/ui/admin/partners/caritas-landsberg", {"name": "x", "category": "charity", "languages": "de"}
        )
        assert edited.status_code == 403
        withdrawn = await agent.post("/ui/admin/partners/caritas-landsberg/services/migration_counselling/withdraw", {})
        assert withdrawn.status_code == 403
        rostered = await agent.post("/ui/admin/roster", {**NEW_NAVIGATOR, "username": f"by-{username}"})
        assert rostered.status_code == 403
    assert (await stack.api("GET", "/api/v1/routing-rules/versions", await admin_token(stack))).json() == rules_before
    assert not any(name.startswith("by-") for name in stack.app.state.issuer.users)
    token = await admin_token(stack)
    assert (await stack.api("GET", "/api/v1/partners", token)).json()["total"] == partners_before
    roster = (await stack.api("GET", "/api/v1/caseworkers?include_inactive=true", token)).json()
    assert not any(c["id"].startswith("by-") for c in roster)

    admin = await stack.agent("admin")
    home = await admin.get("/ui/admin")
    assert home.status_code == 200
    assert 'href="/ui/admin/routing-rules"' in home.text and 'href="/ui/admin/users"' in home.text
    assert 'href="/ui/admin/partners"' in home.text and 'href="/ui/admin/roster"' in home.text
    # A form without the session's CSRF token is refused, even for an admin.
    forged = await admin.client.post("/ui/admin/users", data={"username": "forged", "roles": "admin"})
    assert forged.status_code == 403 and "forged" not in stack.app.state.issuer.users


async def admin_token(stack: Stack) -> str:
    reply = await stack.token("admin", stack.password("admin"))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


async def test_invalid_rules_show_their_errors_and_save_nothing_a_valid_edit_is_a_new_version(stack: Stack) -> None:
    admin = await stack.agent("admin")
    token = await admin_token(stack)
    page = await admin.get("/ui/admin/routing-rules")
    assert page.status_code == 200
    assert 'data-version="0"' in page.text and "Voreinstellung" in page.text
    assert 'id="rule-course-with-childcare"' in page.text and "Kurs mit Kinderbetreuung" in page.text
    rules = json.loads(textarea(page))
    assert rules == without_nulls((await stack.api("GET", "/api/v1/routing-rules", token)).json()["rules"])
    assert '"need_any": null' not in textarea(page), "conditions that are not set are left out"
    # The conditions in German: need categories by the catalogue's names, never the service's (English) codes.
    conditions = re.findall(r'<ul class="timeline conditions">(.*?)</ul>', page.text, re.S)
    assert len(conditions) == len(rules) and "Bedarf (einer von): Wohnen" in "".join(conditions)
    words = set(re.findall(r"[a-z_]+", re.sub(r"<[^>]*>", " ", "".join(conditions))))
    assert not words & {c.value for c in NeedCategory}, f"English category codes on the page: {words}"

    # Not JSON at all: said with line and column, the text kept, nothing sent.
    broken = textarea(page).replace('"id"', "id", 1)
    answer = await admin.post("/ui/admin/routing-rules", {"rules": broken})
    assert answer.status_code == 422
    assert 'id="rules-errors"' in answer.text and "kein gültiges JSON (Zeile 3, Spalte" in answer.text
    assert textarea(answer) == broken and 'aria-invalid="true"' in answer.text

    # JSON, but not a valid rule set: the service's errors next to the textarea, naming the rule, worded from the
    # catalogue by the error's code (never the service's English message).
    invalid = [dict(rule) for rule in rules]
    invalid[1] = {**invalid[1], "service_type": "palm_reading", "when": {}}
    text = json.dumps(invalid, indent=2)
    answer = await admin.post("/ui/admin/routing-rules", {"rules": text})
    assert answer.status_code == 422
    shown = unescape(answer.text)
    assert f"Regel 2 ({invalid[1]['id']}), service_type: Bitte einen der angebotenen Werte wählen." in shown
    assert f"Regel 2 ({invalid[1]['id']}), when: Eine Regel braucht mindestens eine Bedingung." in shown
    assert "Input should be" not in shown and "at least one condition" not in shown
    assert textarea(answer) == text
    twice = [*rules, {**rules[0]}]  # the same id twice: the repeat is named
    answer = await admin.post("/ui/admin/routing-rules?lang=en", {"rules": json.dumps(twice)})
    shown = unescape(answer.text)
    assert f"Rule {len(twice)} ({rules[0]['id']}), id: A rule further up has this id already." in shown
    assert "must be unique" not in shown
    await admin.get("/ui/admin/routing-rules?lang=de")  # the language cookie: back to German
    empty = await admin.post("/ui/admin/routing-rules", {"rules": "[]"})
    assert empty.status_code == 422 and "Regeln sind nicht gültig" in empty.text
    assert (await stack.api("GET", "/api/v1/routing-rules/versions", token)).json() == [], "nothing was saved"

    # A valid edit: one explanation changed; version 1, then version 2 with the change listed.
    changed = [dict(rule) for rule in rules]
    changed[0]["description"] = "Asylsuchende und Geduldete: Asylsozialberatung der Caritas (geprüft)"
    saved = await admin.post("/ui/admin/routing-rules", {"rules": json.dumps(changed, indent=2)})
    assert saved.status_code == 303 and saved.headers["location"] == "/ui/admin/routing-rules?saved=1"
    in_force = (await stack.api("GET", "/api/v1/routing-rules", token)).json()
    assert in_force["version"] == 1 and in_force["rules"][0]["description"].endswith("(geprüft)")
    page = await admin.get(saved.headers["location"])
    assert "Gespeichert als Version 1." in page.text and 'data-version="1"' in page.text
    assert "Caritas (geprüft)" in page.text and 'id="version-1"' in page.text
    # A saved rule reads like a shipped one: its parts in the catalogue's words, the admin's text as a note.
    why = re.search(rf'<tr id="rule-{changed[0]["id"]}">.*?<td class="explanation">(.*?)</td>', page.text, re.S)
    assert why and "Aufenthaltsstatus (einer von): Asylbewerber/in, Duldung → Asylsozialberatung" in why.group(1)
    assert "Notiz: Asylsuchende und Geduldete: Asylsozialberatung der Caritas (geprüft)" in why.group(1)
    assert "Notiz: Junge Menschen unter 27" in page.text, "a shipped description left as it was: in German"
    assert json.loads(textarea(page)) == without_nulls(in_force["rules"])

    changed[2] = {**changed[2], "shares_personal_data": False}
    saved = await admin.post("/ui/admin/routing-rules", {"rules": json.dumps(changed)})
    assert saved.headers["location"] == "/ui/admin/routing-rules?saved=2"
    page = await admin.get("/ui/admin/routing-rules?lang=en")
    versions = re.search(r'<tr id="version-2">(.*?)</tr>', page.text, re.S)
    assert versions and f"changed: <code>{changed[2]['id']}</code>" in versions.group(1)
    assert [v["version"] for v in (await stack.api("GET", "/api/v1/routing-rules/versions", token)).json()] == [2, 1]


async def test_accounts_are_created_disabled_enabled_and_reset(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    admin = await stack.agent("admin")
    page = await admin.get("/ui/admin/users")
    assert page.status_code == 200
    assert 'id="account-lotse"' in page.text and 'id="account-admin"' in page.text
    assert 'action="/ui/admin/users/admin/disable"' not in page.text, "no button to disable oneself"
    assert 'id="caseworker-lotse-m.wagner"' in page.text and "Maria Wagner" in page.text and "0 / 60" in page.text

    # Refused with the reason next to the field; nothing made.
    for form, field, message in (
        ({"username": "Neue Lotsin", "roles": ["caseworker"]}, "username", "Bitte 2 bis 64 Zeichen"),
        ({"username": "lotse", "roles": ["caseworker"]}, "username", "gibt es schon"),
        ({"username": "ohne-rolle"}, "roles", "mindestens eine Rolle"),
        ({"username": "p1", "roles": ["partner"]}, "partner_id", "ist die Partner-Kennung Pflicht"),
        ({"username": "p2", "roles": ["partner"], "partner_id": "nowhere-gmbh"}, "partner_id", "gibt es im Partner"),
        ({"username": "p3", "roles": ["analyst"], "partner_id": "caritas-landsberg"}, "partner_id", "nur mit der"),
        ({"username": "t1", "roles": ["caseworker"], "team": "Team Süd"}, "team", "Bitte Kleinbuchstaben"),
    ):
        answer = await admin.post("/ui/admin/users", form)
        assert answer.status_code == 422, form
        error = re.search(rf'<p class="field-error" id="e-{field}">([^<]*)</p>', answer.text)
        assert error and message in unescape(error.group(1)), (form, answer.text)
        assert form["username"] not in stack.app.state.issuer.users or form["username"] == "lotse"
    kept = await admin.post("/ui/admin/users", {"username": "p4", "roles": ["partner", "caseworker"]})
    assert 'value="p4"' in kept.text and re.search(r'value="caseworker" checked', kept.text), "the form is kept"

    # Created: the password is shown once, stored only as an argon2 hash, in a file only its owner reads.
    created = await admin.post(
        "/ui/admin/users", {"username": "neue.lotsin", "roles": ["caseworker"], "team": "integration-sued"}
    )
    assert created.status_code == 201, created.text
    password = revealed_password(created)
    assert len(password) >= 16 and 'id="account-neue.lotsin"' in created.text
    assert stat.S_IMODE(stack.users_file.stat().st_mode) == 0o600
    stored = json.loads(stack.users_file.read_text())["neue.lotsin"]
    assert stored["roles"] == ["caseworker"] and stored["team"] == "integration-sued" and stored["active"] is True
    assert stored["password_hash"].startswith("$argon2") and password not in stack.users_file.read_text()
    assert (await admin.get("/ui/admin/users")).text.count(password) == 0, "shown once"
    partner = await admin.post(
        "/ui/admin/users", {"username": "caritas2", "roles": ["partner"], "partner_id": "caritas-landsberg"}
    )
    assert partner.status_code == 201
    assert (await stack.token("caritas2", revealed_password(partner))).status_code == 200
    # Names, not ids: the account's organisation by its name; the form offers the directory's by name, and the
    # roster's teams as suggestions.
    row = re.search(r'<tr id="account-caritas2".*?</tr>', partner.text, re.S)
    assert row and "Caritasverband" in row.group(0) and "(caritas-landsberg)" in row.group(0), partner.text
    choice = re.search(r'<select id="f-partner_id" name="partner_id".*?</select>', partner.text, re.S)
    assert choice and re.search(r'<option value="caritas-landsberg">Caritasverband[^<]*</option>', choice.group(0))
    assert '<option value="">\u2013 keine \u2013</option>' in choice.group(0)
    assert '<datalist id="known-teams">' in partner.text and '<option value="integration-nord">' in partner.text

    # The new account signs in, in the UI and for the API, and works as a caseworker.
    lotsin = await stack.agent()
    signed = await lotsin.sign_in("neue.lotsin", password)
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
    assert (await lotsin.get("/ui/")).status_code == 200
    api_token = (await stack.token("neue.lotsin", password)).json()["access_token"]
    assert (await stack.api("GET", "/api/v1/caseworkers", api_token)).status_code == 200

    # An admin cannot disable themself.
    own = await admin.post("/ui/admin/users/admin/disable", {})
    assert own.status_code == 409 and "eigene Konto" in own.text
    assert stack.app.state.issuer.users["admin"].get("active", True)

    # Disabled: no sign-in, and the sessions it has end at once (UI and API).
    disabled = await admin.post("/ui/admin/users/neue.lotsin/disable", {})
    assert disabled.status_code == 200 and 'id="account-neue.lotsin" data-active="false"' in disabled.text
    assert json.loads(stack.users_file.read_text())["neue.lotsin"]["active"] is False
    assert (await stack.token("neue.lotsin", password)).status_code == 401
    assert (await (await stack.agent()).sign_in("neue.lotsin", password)).status_code == 401
    assert (await stack.api("GET", "/api/v1/caseworkers", api_token)).status_code == 401
    back_to_sign_in = await lotsin.get("/ui/admin")
    assert back_to_sign_in.status_code == 303 and back_to_sign_in.headers["location"].startswith("/ui/sign-in")

    # Enabled again: signing in works; the session from before the disabling stays ended.
    enabled = await admin.post("/ui/admin/users/neue.lotsin/enable", {})
    assert enabled.status_code == 200 and 'id="account-neue.lotsin" data-active="true"' in enabled.text
    assert (await stack.token("neue.lotsin", password)).status_code == 200
    assert (await stack.api("GET", "/api/v1/caseworkers", api_token)).status_code == 401

    # A new password: the old one stops working, the new one works; a demo user's printed one is dropped.
    reset = await admin.post("/ui/admin/users/neue.lotsin/reset-password", {})
    new_password = revealed_password(reset)
    assert new_password != password
    assert (await stack.token("neue.lotsin", password)).status_code == 401
    assert (await stack.token("neue.lotsin", new_password)).status_code == 200
    credentials = stack.users_file.with_suffix(".credentials.txt")
    assert "statistik " in credentials.read_text()
    statistik = revealed_password(await admin.post("/ui/admin/users/statistik/reset-password", {}))
    assert "statistik " not in credentials.read_text() and "registrar " in credentials.read_text()
    assert (await stack.token("statistik", statistik)).status_code == 200
    unknown = await admin.post("/ui/admin/users/nobody/reset-password", {})
    assert unknown.status_code == 404

    # What was changed is in the file, as a restart reads it; no password ever reached the log.
    users, _ = load_or_create_users(stack.users_file, demo_data=True)
    assert users["neue.lotsin"]["active"] is True and users["caritas2"]["partner_id"] == "caritas-landsberg"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "neue.lotsin" in logged, "account changes are logged (who did what)"
    for secret in (password, new_password, statistik):
        assert secret not in logged


async def test_with_the_citys_keycloak_the_page_only_points_there(stack: Stack) -> None:
    admin = await stack.agent("admin")
    stack.app.state.issuer = None  # as when GATEWAY_OIDC_ISSUER is set: no embedded sign-in
    page = await admin.get("/ui/admin/users")
    assert page.status_code == 200
    assert 'id="keycloak"' in page.text and "Keycloak" in page.text
    assert '<form method="post" action="/ui/admin/users' not in page.text and 'id="accounts"' not in page.text
    assert 'id="roster"' in page.text, "the caseworker roster is shown either way"
    refused = await admin.post("/ui/admin/users", {"username": "neu", "roles": ["admin"]})
    assert refused.status_code == 409 and 'id="keycloak"' in refused.text


def field_error(page: httpx.Response, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="e-{re.escape(field)}">([^<]*)</p>', page.text)
    assert found, (field, page.text)
    return unescape(found.group(1))


async def test_an_admin_adds_a_partner_and_keeps_its_entry_and_services(stack: Stack) -> None:
    admin = await stack.agent("admin")
    token = await admin_token(stack)
    page = await admin.get("/ui/admin/partners")
    assert page.status_code == 200
    # Chosen from lists with their labels, not typed as codes.
    assert '<option value="charity">Wohlfahrtsverband</option>' in page.text
    assert re.search(r'value="fa"[^>]*>\s*<label for="f-languages-fa" lang="de">Persisch</label>', page.text)
    assert re.search(r'value="migration_counselling"[^>]*>\s*<label[^>]*>Migrationsberatung \(MBE\)</label>', page.text)
    english = await admin.get("/ui/admin/partners?lang=en")
    assert "Add a partner organisation" in english.text and ">Persian</label>" in english.text
    assert ">Migration counselling</label>" in english.text and "Kind of organisation" in english.text
    await admin.get("/ui/admin/partners?lang=de")  # the language is remembered: back to German

    # Refused: each reason next to its field, the form kept, nothing made.
    refused = await admin.post("/ui/admin/partners", {**NEW_PARTNER, "partner_id": "Caritas Kaufering", "category": ""})
    assert refused.status_code == 422
    assert "Kleinbuchstaben, Ziffern, Bindestriche" in field_error(refused, "f-partner_id")
    assert "Bitte eine Art wählen" in field_error(refused, "f-category")
    assert 'value="Caritas Kaufering"' in refused.text and re.search(r'value="ar" checked', refused.text)
    no_name = await admin.post("/ui/admin/partners", {**NEW_PARTNER, "name": "", "languages": []})
    assert no_name.status_code == 422
    assert field_error(no_name, "f-name") == "Bitte ausfüllen."
    assert field_error(no_name, "f-languages") == "Bitte mindestens eine Sprache wählen."
    assert (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).status_code == 404

    # Added, with its service; then on its own page.
    added = await admin.post("/ui/admin/partners", NEW_PARTNER)
    assert added.status_code == 303, added.text
    assert added.headers["location"] == "/ui/admin/partners/caritas-kaufering?notice=created#main"
    entry = (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).json()
    assert (entry["name"], entry["category"], entry["languages"]) == ("Caritas Kaufering", "charity", ["de", "ar"])
    assert [(s["service_type"], s["languages"], s["free_places"]) for s in entry["services"]] == [
        ("migration_counselling", ["de", "ar"], None)
    ]
    own = await admin.get(added.headers["location"])
    assert "Die Partnerorganisation ist angelegt." in own.text and 'id="service-migration_counselling"' in own.text
    listed = await admin.get("/ui/admin/partners")
    row = re.search(r'<tr id="partner-caritas-kaufering">(.*?)</tr>', listed.text, re.S)
    assert row and "Wohlfahrtsverband" in row.group(1) and "Deutsch, Arabisch" in row.group(1)
    taken = await admin.post("/ui/admin/partners", NEW_PARTNER)
    assert taken.status_code == 409 and field_error(taken, "f-partner_id") == "Diese Kennung ist schon vergeben."

    # The entry: name, kind, a location and a contact point; a wrong postal code is said at its field.
    base = "/ui/admin/partners/caritas-kaufering"
    form = {
        "name": "Caritas-Beratung Kaufering",
        "category": "volunteer_group",
        "languages": ["de", "ar", "uk"],
        "loc-0-name": "Beratungsstelle",
        "loc-0-city": "Kaufering",
        "loc-0-postal_code": "8691#",
        "con-0-title": "Beratungsstelle",
        "con-0-email": "beratung@example.org",
    }
    wrong = await admin.post(base, form)
    assert wrong.status_code == 422 and field_error(wrong, "loc-0-postal_code") == "Das Format stimmt nicht."
    assert 'value="8691#"' in wrong.text, "what was typed stays"
    saved = await admin.post(base, {**form, "loc-0-postal_code": "86916"})
    assert saved.status_code == 303 and saved.headers["location"] == f"{base}?notice=saved#main"
    entry = (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).json()
    assert (entry["name"], entry["category"], entry["version"]) == ("Caritas-Beratung Kaufering", "volunteer_group", 2)
    assert entry["locations"] == [
        {
            "name": "Beratungsstelle",
            "address_1": None,
            "city": "Kaufering",
            "postal_code": "86916",
            "country": "DE",
            "opening_hours": None,
            "district": None,
        }
    ]
    assert entry["contacts"][0]["email"] == "beratung@example.org"
    # The location emptied: removed.
    cleared = await admin.post(base, {**form, "loc-0-name": "", "loc-0-city": "", "loc-0-postal_code": ""})
    assert cleared.status_code == 303
    assert (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).json()["locations"] == []

    # A service's terms, another service, and one withdrawn.
    service = f"{base}/services/migration_counselling"
    terms = {
        "name": "Migrationsberatung (MBE)",
        "languages": ["de", "ar"],
        "response_days": "3",
        "free_places": "viele",
    }
    bad = await admin.post(service, terms)
    assert bad.status_code == 422
    assert field_error(bad, "s-migration_counselling-free_places") == "Bitte eine ganze Zahl angeben."
    changed = await admin.post(service, {**terms, "free_places": "7"})
    assert changed.status_code == 303
    assert changed.headers["location"] == f"{base}?saved_service=migration_counselling#service-migration_counselling"
    box = re.search(
        r'<article class="card" id="service-migration_counselling".*?</article>',
        (await admin.get(changed.headers["location"])).text,
        re.S,
    )
    assert box and "Das Angebot ist gespeichert." in box.group(0), "said where the page opens"
    housing = {
        "service_type": "housing_advice",
        "name": "Wohnberatung",
        "languages": ["de"],
        "response_days": "5",
        "free_places": "",
    }
    offered = await admin.post(f"{base}/services", housing)
    assert offered.status_code == 303 and offered.headers["location"].endswith("#service-housing_advice")
    services = {
        s["service_type"]: s
        for s in (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).json()["services"]
    }
    assert (services["migration_counselling"]["free_places"], services["migration_counselling"]["response_days"]) == (
        7,
        3,
    )
    assert services["housing_advice"]["free_places"] is None
    page = await admin.get(base)
    assert '<option value="housing_advice"' not in page.text, "only services not offered yet to choose from"
    withdrawn = await admin.post(f"{base}/services/housing_advice/withdraw", {})
    assert withdrawn.status_code == 303 and withdrawn.headers["location"] == f"{base}?notice=service_withdrawn#main"
    services = (await stack.api("GET", "/api/v1/partners/caritas-kaufering", token)).json()["services"]
    assert [s["service_type"] for s in services] == ["migration_counselling"]

    # A form without the session's CSRF token changes nothing.
    forged = await admin.client.post(f"{base}/services/migration_counselling/withdraw", data={})
    assert forged.status_code == 403
    assert (await admin.get("/ui/admin/partners/nobody-here")).status_code == 404


async def test_an_admin_puts_caseworkers_on_the_roster_and_takes_them_off(stack: Stack) -> None:
    admin = await stack.agent("admin")
    token = await admin_token(stack)
    page = await admin.get("/ui/admin/roster")
    assert (
        page.status_code == 200
        and 'id="f-username"' in page.text
        and 'id="f-active" name="active" value="yes" checked' in page.text
    )

    for form, field, message in (
        ({**NEW_NAVIGATOR, "username": "N R"}, "f-username", "Bitte 2 bis 64 Zeichen"),
        ({**NEW_NAVIGATOR, "team": "Team Süd"}, "f-team", "Bitte Kleinbuchstaben"),
        ({**NEW_NAVIGATOR, "team": ""}, "f-team", "Bitte ausfüllen."),
        ({**NEW_NAVIGATOR, "max_cases": ""}, "f-max_cases", "Bitte ausfüllen."),
        ({**NEW_NAVIGATOR, "max_cases": "900"}, "f-max_cases", "zu groß"),
        ({**NEW_NAVIGATOR, "name": ""}, "f-name", "Bitte ausfüllen."),
    ):
        refused = await admin.post("/ui/admin/roster", form)
        assert refused.status_code == 422, form
        assert message in field_error(refused, field), (form, field_error(refused, field))
    roster = (await stack.api("GET", "/api/v1/caseworkers?include_inactive=true", token)).json()
    assert "n.rahimi" not in {c["id"] for c in roster}

    saved = await admin.post("/ui/admin/roster", NEW_NAVIGATOR)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/ui/admin/roster?notice=caseworker_saved")
    entry = {c["id"]: c for c in (await stack.api("GET", "/api/v1/caseworkers", token)).json()}["n.rahimi"]
    assert (entry["name"], entry["team"], entry["languages"], entry["max_cases"]) == (
        "Nadia Rahimi",
        "integration-nord",
        ["de", "fa"],
        30,
    )
    listed = await admin.get("/ui/admin/roster")
    row = re.search(r'<tr id="caseworker-n.rahimi" data-active="true">(.*?)</tr>', listed.text, re.S)
    assert row and "Deutsch, Persisch" in row.group(1) and "0 / 30" in row.group(1)

    # Taken off (inactive): still listed for the admin, to be put back; no new cases.
    editing = await admin.get("/ui/admin/roster?edit=n.rahimi")
    assert 'value="Nadia Rahimi"' in editing.text and 'name="editing" value="yes"' in editing.text
    off = await admin.post("/ui/admin/roster", {**NEW_NAVIGATOR, "editing": "yes", "active": ""})
    assert off.status_code == 303
    assert "n.rahimi" not in {c["id"] for c in (await stack.api("GET", "/api/v1/caseworkers", token)).json()}
    listed = await admin.get("/ui/admin/roster")
    assert '<tr id="caseworker-n.rahimi" data-active="false">' in listed.text

    # A new caseworker account leads straight to the roster, its name and team filled in.
    created = await admin.post(
        "/ui/admin/users", {"username": "neue.lotsin", "roles": ["caseworker"], "team": "integration-sued"}
    )
    link = re.search(r'<a href="([^"]+)" id="put-on-roster">', created.text)
    assert link and unescape(link.group(1)) == "/ui/admin/roster?username=neue.lotsin&team=integration-sued"
    prefilled = await admin.get(unescape(link.group(1)))
    assert 'value="neue.lotsin"' in prefilled.text and 'value="integration-sued"' in prefilled.text
    assert '<option value="neue.lotsin">' in prefilled.text, "caseworker accounts not on the roster are offered"


async def test_the_account_form_asks_for_a_partners_id_while_the_directory_does_not_answer(stack: Stack) -> None:
    admin = await stack.agent("admin")
    client = stack.app.state.client
    mounts = {pattern.pattern: transport for pattern, transport in client._mounts.items()}
    # The partners service away: its name resolves to nothing, as while its pods are down.
    referral_only = httpx.AsyncClient(mounts={**mounts, "http://partners": httpx.AsyncHTTPTransport()})
    stack.app.state.client = referral_only
    try:
        page = await admin.get("/ui/admin/users")
    finally:
        stack.app.state.client = client
        await referral_only.aclose()
    assert page.status_code == 200, page.text
    assert '<select id="f-partner_id"' not in page.text
    assert re.search(r'<label for="f-partner_id">Partner-Kennung</label>', page.text)
    assert '<input id="f-partner_id" name="partner_id"' in page.text
