"""The web UI's sign-in at a real OpenID provider: authorization code flow with PKCE (S256), state and nonce.

The provider is django-oauth-toolkit, configured like the city's Keycloak realm (tests/oidc_provider.py): it issues
JWT access tokens for the audience ``landsberg-gateway`` with the realm roles and the team.

httpx plays the browser: one cookie jar for the gateway (an ASGI app at https://gateway.test) and the provider.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from gateway.app import create_app
from gateway.oidc import LOGIN_COOKIE, REFRESH_COOKIE, SignInFailed
from gateway.ui.kit import CSRF_COOKIE, SESSION_COOKIE
from tests.conftest import gateway_settings, referral_settings, running_app, sqlite_url
from tests.oidc_provider import OpenIdProvider, only_form

GATEWAY = "https://gateway.test"
CALLBACK = f"{GATEWAY}/ui/oidc/callback"
CLIENT_ID = "landsberg-gateway"
CLIENT_SECRET = secrets.token_urlsafe(32)  # as a provider makes one
#: The provider's accounts: what Keycloak keeps as users with realm roles and the attribute "team".
ACCOUNTS: dict[str, dict[str, Any]] = {
    "lotse.oidc": {"password": "Lotse-Passwort-1", "roles": ["caseworker"], "team": "integration-nord"},
    "statistik.oidc": {"password": "Statistik-Passwort-1", "roles": ["analyst"], "team": None},
    # Keycloak with many groups and mappers makes tokens this large; a cookie cannot hold them.
    "many.mappers": {
        "password": "Viele-Mapper-1",
        "roles": ["caseworker"],
        "team": "integration-nord",
        "padding": "x" * 5000,
    },
}


# --- the provider ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(openid_provider: OpenIdProvider) -> OpenIdProvider:
    """The session's provider (tests/oidc_provider.py) with this module's accounts and the gateway's client, which
    asks for consent here (the refusal test needs the consent page)."""
    for username, account in ACCOUNTS.items():
        openid_provider.add_account(
            username,
            account["password"],
            account["roles"],
            attributes={"team": account["team"]} if account["team"] else {},
            extra_claims={"groups": [account["padding"]]} if "padding" in account else {},
        )
    openid_provider.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[f"{GATEWAY}/ui/"],
        consent_required=True,
    )
    return openid_provider


# --- the gateway and the browser -------------------------------------------------------------------------------


@asynccontextmanager
async def gateway_with_oidc(
    provider: OpenIdProvider,
    tmp_path: Path,
    *,
    services: dict[str, Any] | None = None,
    caplog: pytest.LogCaptureFixture | None = None,
    **overrides: Any,
) -> AsyncIterator[Any]:
    """The real gateway in OIDC mode (no embedded sign-in); ``services`` are ASGI apps by host name."""
    values: dict[str, Any] = {
        "oidc_issuer": provider.issuer,
        "oidc_jwks_url": provider.jwks_url,
        "oidc_audience": CLIENT_ID,
        "oidc_algorithms": ["RS256"],
        "oidc_client_secret": CLIENT_SECRET,
        "public_url": GATEWAY,
    }
    app = create_app(gateway_settings(tmp_path, **(values | overrides)))
    async with running_app(app):
        if caplog is not None:  # the gateway's logging set-up replaced the root logger's handlers
            logging.getLogger().addHandler(caplog.handler)
        if services:
            await app.state.client.aclose()
            app.state.client = httpx.AsyncClient(
                mounts={f"http://{name}": httpx.ASGITransport(app=service) for name, service in services.items()},
                timeout=30,
            )
        yield app


def browser(gateway: Any) -> httpx.AsyncClient:
    """One cookie jar for both sites, as a browser has; redirects are followed by the tests, step by step."""
    return httpx.AsyncClient(mounts={GATEWAY: httpx.ASGITransport(app=gateway)}, timeout=30)


async def at_the_provider(client: httpx.AsyncClient, authorize_url: str, username: str, *, allow: bool = True) -> str:
    """What a person does at the provider: sign in (unless signed in there already) and consent. Returns the
    address the provider sends the browser back to."""
    page = await client.get(authorize_url)
    if page.status_code == 302 and "/accounts/login/" in page.headers["location"]:
        login = await client.get(urljoin(authorize_url, page.headers["location"]))
        action, fields = only_form(login)
        fields |= {"username": username, "password": ACCOUNTS[username]["password"]}
        signed_in = await client.post(action, data=fields)
        assert signed_in.status_code == 302, signed_in.text
        page = await client.get(urljoin(authorize_url, signed_in.headers["location"]))
    assert page.status_code == 200, page.text  # the consent form
    action, fields = only_form(page)
    if allow:
        fields["allow"] = "Authorize"
    answer = await client.post(action, data=fields)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


async def start(client: httpx.AsyncClient, next_path: str = "/ui/") -> str:
    """The gateway's login: to the provider's authorization endpoint. Returns that address."""
    reply = await client.get(f"{GATEWAY}/ui/oidc/login", params={"next": next_path})
    assert reply.status_code == 303, reply.text
    return str(reply.headers["location"])


async def signed_in(client: httpx.AsyncClient, username: str, next_path: str = "/ui/") -> httpx.Response:
    """The whole flow up to the gateway's answer to the callback."""
    callback = await at_the_provider(client, await start(client, next_path), username)
    return await client.get(callback)


def set_cookies(reply: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in reply.headers.get_list("set-cookie")}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- the tests ---------------------------------------------------------------------------------------------------


async def test_a_caseworker_signs_in_at_the_provider_and_sees_the_dashboard(
    provider: OpenIdProvider, tmp_path: Path, broker: Any
) -> None:
    from services.referral.app import create_app as create_referral

    referral = create_referral(referral_settings(sqlite_url(tmp_path, "referral"), broker.bootstrap_servers))
    async with (
        running_app(referral),
        gateway_with_oidc(provider, tmp_path, services={"referral": referral}) as gw,
        browser(gw) as client,
    ):
        authorize = await start(client)
        asked = query(authorize)
        assert authorize.startswith(f"{provider.authorization_endpoint}?")
        assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
        assert asked["redirect_uri"] == CALLBACK and "openid" in asked["scope"].split()
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
        login_cookie = set_cookies(await client.get(f"{GATEWAY}/ui/oidc/login"))[LOGIN_COOKIE]
        for attribute in ("HttpOnly", "Path=/ui/oidc/", "SameSite=lax", "Secure", "Max-Age=600"):
            assert attribute in login_cookie
        client.cookies.delete(LOGIN_COOKIE)

        authorize = await start(client)
        state = query(authorize)["state"]
        sealed = client.cookies[LOGIN_COOKIE]
        assert state not in sealed and query(authorize)["nonce"] not in sealed  # sealed, not merely signed
        callback = await at_the_provider(client, authorize, "lotse.oidc")
        assert callback.startswith(CALLBACK) and query(callback)["state"] == state
        reply = await client.get(callback)
        assert reply.status_code == 303 and reply.headers["location"] == "/ui/"
        cookies = set_cookies(reply)
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
            assert attribute in cookies[SESSION_COOKIE]
        assert f'{LOGIN_COOKIE}=""' in cookies[LOGIN_COOKIE] and "Max-Age=0" in cookies[LOGIN_COOKIE]

        # The session is the provider's access token, checked like any bearer token of the city's Keycloak.
        who = await gw.state.verifier.verify(client.cookies[SESSION_COOKIE])
        assert who.subject == "lotse.oidc" and who.roles == {"caseworker"} and who.team == "integration-nord"
        dashboard = await client.get(f"{GATEWAY}/ui/")
        assert dashboard.status_code == 200, dashboard.text
        assert "<strong>lotse.oidc</strong>" in dashboard.text
        assert "Fälle meines Teams" in dashboard.text and "<h1>Übersicht</h1>" in dashboard.text
        assert 'action="/ui/sign-out"' in dashboard.text


async def test_the_sign_in_page_offers_the_provider_and_no_password_form(
    provider: OpenIdProvider, tmp_path: Path
) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        page = await client.get(f"{GATEWAY}/ui/sign-in", params={"next": "/ui/statistics"})
        assert page.status_code == 200
        assert 'href="/ui/oidc/login?next=/ui/statistics"' in page.text
        assert "Mit Keycloak anmelden" in page.text
        assert 'type="password"' not in page.text and 'action="/ui/sign-in"' not in page.text
        english = await client.get(f"{GATEWAY}/ui/sign-in", params={"lang": "en"})
        assert "Sign in with Keycloak" in english.text
        refused = await client.post(
            f"{GATEWAY}/ui/sign-in",
            data={"csrf_token": client.cookies[CSRF_COOKIE], "username": "lotse.oidc", "password": "Lotse-Passwort-1"},
        )
        assert refused.status_code == 404 and SESSION_COOKIE not in client.cookies
        token = await client.post(f"{GATEWAY}/auth/token", json={"username": "lotse.oidc", "password": "x"})
        assert token.status_code == 404


@pytest.mark.parametrize("tampering", ["other_state", "no_state", "no_cookie", "forged_cookie"])
async def test_a_callback_that_does_not_match_this_browsers_sign_in_is_refused(
    provider: OpenIdProvider, tmp_path: Path, tampering: str
) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        callback = await at_the_provider(client, await start(client), "lotse.oidc")
        code = query(callback)["code"]
        params = {"code": code, "state": query(callback)["state"]}
        if tampering == "other_state":
            # Another first character (a random state starts with "A" once in 64 runs: then "A" would change nothing).
            params["state"] = ("B" if params["state"].startswith("A") else "A") + params["state"][1:]
        elif tampering == "no_state":
            del params["state"]
        elif tampering == "no_cookie":
            client.cookies.delete(LOGIN_COOKIE)
        else:
            sealed = client.cookies[LOGIN_COOKIE]
            client.cookies.delete(LOGIN_COOKIE)
            client.cookies.set(
                LOGIN_COOKIE,
                sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB"),
                domain="gateway.test",
                path="/ui/oidc/",
            )
        reply = await client.get(CALLBACK, params=params)
        assert reply.status_code == 403
        assert "Die Anmeldung ist abgelaufen oder wurde nicht in diesem Browser begonnen" in reply.text
        assert 'href="/ui/oidc/login?next=/ui/"' in reply.text  # and a way to start again
        assert SESSION_COOKIE not in set_cookies(reply) and SESSION_COOKIE not in client.cookies


async def test_a_replayed_callback_is_refused(provider: OpenIdProvider, tmp_path: Path) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        callback = await at_the_provider(client, await start(client), "lotse.oidc")
        sealed = client.cookies[LOGIN_COOKIE]
        first = await client.get(callback)
        assert first.status_code == 303 and SESSION_COOKIE in set_cookies(first)

        # The same browser again (reload, back button): its sign-in is used up.
        again = await client.get(callback)
        assert again.status_code == 403 and SESSION_COOKIE not in set_cookies(again)

        # Someone who kept the sign-in cookie and the address: the provider takes a code only once.
        async with browser(gw) as thief:
            thief.cookies.set(LOGIN_COOKIE, sealed, domain="gateway.test", path="/ui/oidc/")
            stolen = await thief.get(callback)
            assert stolen.status_code == 502
            assert "Die Anmeldung beim Anmeldedienst ist fehlgeschlagen" in stolen.text
            assert SESSION_COOKIE not in thief.cookies


async def test_the_pkce_verifier_binds_the_code_to_the_browser_that_asked_for_it(
    provider: OpenIdProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A code injected into another browser's sign-in (with that browser's state) fails at the provider, because
    the gateway sends that sign-in's verifier; the same code with its own sign-in's verifier works."""
    async with (
        gateway_with_oidc(provider, tmp_path, caplog=caplog) as gw,
        browser(gw) as victim,
        browser(gw) as attacker,
    ):
        victims_state = query(await start(victim))["state"]
        attackers_callback = await at_the_provider(attacker, await start(attacker), "statistik.oidc")
        injected = await victim.get(
            CALLBACK, params={"code": query(attackers_callback)["code"], "state": victims_state}
        )
        assert injected.status_code == 502 and SESSION_COOKIE not in victim.cookies
        assert "invalid_grant" in caplog.text
        own = await attacker.get(attackers_callback)  # the code itself was good
        assert own.status_code == 303 and SESSION_COOKIE in attacker.cookies
        assert (await gw.state.verifier.verify(attacker.cookies[SESSION_COOKIE])).roles == {"analyst"}


async def test_an_id_token_made_for_another_sign_in_is_refused(provider: OpenIdProvider, tmp_path: Path) -> None:
    """The nonce: an ID token is taken only for the sign-in that asked for it."""
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        relying_party = gw.state.oidc
        attempt = relying_party.begin("/ui/", CALLBACK)
        callback = await at_the_provider(client, await relying_party.authorization_url(client, attempt), "lotse.oidc")
        other = dataclasses.replace(attempt, nonce="the-nonce-of-another-sign-in")
        with pytest.raises(SignInFailed, match="nonce"):
            await relying_party.finish(client, other, query(callback)["code"])


async def test_an_unreachable_provider_is_said_so(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once this is closed
    nowhere = OpenIdProvider(origin=closed, realm={"realm": "landsberg"}, key_pem="", kid="")
    async with gateway_with_oidc(nowhere, tmp_path) as gw, browser(gw) as client:
        reply = await client.get(f"{GATEWAY}/ui/oidc/login", params={"next": "/ui/courses"})
        assert reply.status_code == 503 and "Der Anmeldedienst ist gerade nicht erreichbar" in reply.text
        assert LOGIN_COOKIE not in client.cookies


async def test_a_failed_code_exchange_gives_a_clear_page_and_logs_no_secret(
    provider: OpenIdProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_secret = secrets.token_urlsafe(32)  # not the one the provider made
    async with (
        gateway_with_oidc(provider, tmp_path, caplog=caplog, oidc_client_secret=wrong_secret) as gw,
        browser(gw) as client,
    ):
        reply = await signed_in(client, "lotse.oidc", "/ui/courses")
        assert reply.status_code == 502
        assert "Die Anmeldung beim Anmeldedienst ist fehlgeschlagen" in reply.text
        assert 'href="/ui/oidc/login?next=/ui/courses"' in reply.text
        assert SESSION_COOKIE not in client.cookies
        assert "invalid_client" in caplog.text and wrong_secret not in caplog.text and "code=" not in caplog.text


async def test_a_refusal_at_the_provider_is_said_so(provider: OpenIdProvider, tmp_path: Path) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        callback = await at_the_provider(client, await start(client), "lotse.oidc", allow=False)
        assert query(callback)["error"] == "access_denied"
        reply = await client.get(callback)
        assert reply.status_code == 401 and "abgebrochen oder vom Anmeldedienst abgelehnt" in reply.text
        assert SESSION_COOKIE not in client.cookies


async def test_a_token_too_large_for_a_cookie_is_refused_with_a_clear_page(
    provider: OpenIdProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_with_oidc(provider, tmp_path, caplog=caplog) as gw, browser(gw) as client:
        reply = await signed_in(client, "many.mappers")
        assert reply.status_code == 502 and SESSION_COOKIE not in client.cookies
        assert "more than a cookie holds" in caplog.text


@pytest.mark.parametrize(
    ("asked", "landing"),
    [
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui/\\evil.example", "/ui/"),
        ("/ui/courses", "/ui/courses"),
    ],
)
async def test_next_never_leads_off_site(provider: OpenIdProvider, tmp_path: Path, asked: str, landing: str) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        reply = await signed_in(client, "lotse.oidc", asked)
        assert reply.status_code == 303 and reply.headers["location"] == landing


async def test_an_expired_session_is_renewed_with_the_refresh_token(provider: OpenIdProvider, tmp_path: Path) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        reply = await signed_in(client, "lotse.oidc")
        refresh_cookie = set_cookies(reply)[REFRESH_COOKIE]
        for attribute in ("HttpOnly", "Path=/ui/sign-in", "SameSite=lax", "Secure"):
            assert attribute in refresh_cookie
        first = client.cookies[SESSION_COOKIE]
        client.cookies.delete(SESSION_COOKIE)  # as the browser does when the access token's time is up

        renewed = await client.get(f"{GATEWAY}/ui/sign-in", params={"next": "/ui/courses"})
        assert renewed.status_code == 303 and renewed.headers["location"] == "/ui/courses"
        second = client.cookies[SESSION_COOKIE]
        assert second != first and (await gw.state.verifier.verify(second)).subject == "lotse.oidc"

        # A refresh token the provider no longer takes (used: the provider rotates them) leads to the button.
        client.cookies.delete(SESSION_COOKIE)
        client.cookies.delete(REFRESH_COOKIE)
        client.cookies.set(
            REFRESH_COOKIE, refresh_cookie.split(";")[0].split("=", 1)[1], domain="gateway.test", path="/ui/sign-in"
        )
        stale = await client.get(f"{GATEWAY}/ui/sign-in")
        assert stale.status_code == 200 and "Mit Keycloak anmelden" in stale.text
        assert "Max-Age=0" in set_cookies(stale)[REFRESH_COOKIE] and SESSION_COOKIE not in client.cookies


async def test_signing_out_ends_the_session_and_offers_the_providers_sign_out(
    provider: OpenIdProvider, tmp_path: Path
) -> None:
    async with gateway_with_oidc(provider, tmp_path) as gw, browser(gw) as client:
        await signed_in(client, "lotse.oidc")
        assert {SESSION_COOKIE, REFRESH_COOKIE} <= set(client.cookies.keys())
        out = await client.post(f"{GATEWAY}/ui/sign-out", data={"csrf_token": client.cookies[CSRF_COOKIE]})
        assert out.status_code == 303 and out.headers["location"] == "/ui/signed-out"
        assert SESSION_COOKIE not in client.cookies and REFRESH_COOKIE not in client.cookies
        page = await client.get(f"{GATEWAY}/ui/signed-out")
        assert page.status_code == 200 and "Sie sind von der Plattform abgemeldet." in page.text
        assert "An einem gemeinsam genutzten Rechner beenden Sie bitte auch Ihre Sitzung bei Keycloak." in page.text
        end_session = f'href="{provider.end_session_endpoint}?client_id={CLIENT_ID}&amp;post_logout_redirect_uri='
        assert end_session + "https%3A%2F%2Fgateway.test%2Fui%2F" in page.text
