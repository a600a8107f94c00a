"""Trust of the city's own CA: the gateway signs staff in at a Keycloak whose certificate a private CA issued.

The identity provider here is a small OpenID provider served over real TLS (``ssl`` in a thread) with a certificate
from a CA made by ``trustme``, as the city's CA would issue one: discovery, the keys (JWKS), an authorization
endpoint that signs the one account in at once, and the token endpoint. The OpenID flow itself is tested against a
complete provider in test_oidc_sign_in.py; what is under test here is whom the gateway's HTTPS clients trust.
Without ``HTTP_SSL_CAFILE`` the sign-in fails and says what to set; with it, the same sign-in works. (The partners
service's webhook client, courses' and referral's take the same ``verify=`` from ``ServiceSettings.http_verify``.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

from chassis.http import tls_context
from gateway.app import create_app
from gateway.ui.kit import SESSION_COOKIE
from tests.conftest import gateway_settings, running_app

GATEWAY = "https://gateway.test"
CLIENT_ID = "landsberg-gateway"
CLIENT_SECRET = secrets.token_urlsafe(32)
REALM = "landsberg"


@dataclass
class TlsProvider:
    """An OpenID provider at ``https://127.0.0.1:<port>/realms/landsberg`` (Keycloak's paths)."""

    origin: str
    key: rsa.RSAPrivateKey
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"{self.origin}/realms/{REALM}"

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}/protocol/openid-connect/{name}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("auth"),
            "token_endpoint": self.endpoint("token"),
            "jwks_uri": self.endpoint("certs"),
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [jwk | {"kid": "city", "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict[str, str]) -> str:
        """Signs the one account in at once (no login page: not under test) and sends the browser back."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        asked = self.codes.pop(form.get("code", ""), None)
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if asked is None or authorization != f"Basic {expected}":
            return 400, {"error": "invalid_grant"}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=")
        if challenge.decode() != asked["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        common = {"iss": self.issuer, "sub": "f3a1", "iat": now, "exp": now + 300, "azp": CLIENT_ID}
        access = common | {
            "aud": CLIENT_ID,
            "typ": "Bearer",
            "preferred_username": "lotse.stadt",
            "realm_access": {"roles": ["caseworker"]},
            "team": "integration-nord",
        }
        id_token = common | {"aud": CLIENT_ID, "typ": "ID", "nonce": asked["nonce"]}

        def sign(claims: dict[str, Any]) -> str:
            return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "city"})

        return 200, {
            "access_token": sign(access),
            "id_token": sign(id_token),
            "token_type": "Bearer",
            "expires_in": 300,
        }


def serve(context: ssl.SSLContext, handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A threaded HTTPS server on a free port of 127.0.0.1, with the certificate of ``context``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"https://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def city_ca() -> trustme.CA:
    return trustme.CA(organization_name="Stadt Landsberg am Lech")


@pytest.fixture
def ca_file(city_ca: trustme.CA, tmp_path: Path) -> str:
    """The CA's certificate as the prod overlay mounts it (PEM, ``/etc/landsberg/city-ca/ca.crt``)."""
    path = tmp_path / "city-ca.crt"
    city_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_provider(city_ca: trustme.CA) -> Iterator[TlsProvider]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    city_ca.issue_cert("127.0.0.1").configure_cert(context)
    provider = TlsProvider(origin="", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any] | None = None, location: str | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if location:
                self.send_header("location", location)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, query = self.path.partition("?")[::2]
            provider.requests.append(path)
            if path == f"/realms/{REALM}/.well-known/openid-configuration":
                self.answer(200, provider.discovery())
            elif path == urlsplit(provider.endpoint("certs")).path:
                self.answer(200, provider.jwks())
            elif path == urlsplit(provider.endpoint("auth")).path:
                self.answer(302, location=provider.authorize({k: v[0] for k, v in parse_qs(query).items()}))
            else:
                self.answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            provider.requests.append(self.path)
            length = int(self.headers.get("content-length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path == urlsplit(provider.endpoint("token")).path:
                self.answer(*provider.token(form, self.headers.get("authorization", "")))
            else:
                self.answer(404, {"error": "not_found"})

    server, provider.origin = serve(context, Handler)
    yield provider
    server.shutdown()
    server.server_close()


def gateway_at(provider: TlsProvider, tmp_path: Path, **overrides: Any) -> Any:
    return create_app(
        gateway_settings(
            tmp_path,
            oidc_issuer=provider.issuer,
            oidc_jwks_url=provider.endpoint("certs"),
            oidc_audience=CLIENT_ID,
            oidc_algorithms=["RS256"],
            oidc_client_secret=CLIENT_SECRET,
            public_url=GATEWAY,
            **overrides,
        )
    )


def browser(gateway: Any, city_ca: trustme.CA) -> httpx.AsyncClient:
    """The staff member's browser: its computer trusts the city's CA (the city rolls it out to its desktops)."""
    trusting = ssl.create_default_context()
    city_ca.configure_trust(trusting)
    return httpx.AsyncClient(mounts={GATEWAY: httpx.ASGITransport(app=gateway)}, verify=trusting, timeout=30)


async def test_without_the_city_ca_the_sign_in_fails_and_the_log_says_what_to_set(
    tls_provider: TlsProvider, city_ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_at(tls_provider, tmp_path)
    async with running_app(gw), browser(gw, city_ca) as client:
        logging.getLogger().addHandler(caplog.handler)  # the gateway's logging set-up replaced the root's handlers
        caplog.set_level(logging.WARNING)
        page = await client.get(f"{GATEWAY}/ui/oidc/login", params={"lang": "en"})
        assert page.status_code == 502, page.text
        assert "its certificate is not recognised" in page.text and "contact the city" in page.text
        said = [r.getMessage() for r in caplog.records if "certificate is not trusted" in r.getMessage()]
        assert said and "HTTP_SSL_CAFILE" in said[0] and tls_provider.issuer in said[0], caplog.text
        german = await client.get(f"{GATEWAY}/ui/oidc/login", params={"lang": "de"})
        assert "Zertifikat wird nicht anerkannt" in german.text

        # A bearer token from that provider is refused too, and the log names the setting once more.
        _, body = tls_provider.token(*await _code_for(tls_provider))
        caplog.clear()
        refused = await client.get(
            f"{GATEWAY}/api/v1/cases", headers={"authorization": f"Bearer {body['access_token']}"}
        )
        assert refused.status_code == 401
        assert any("JWKS" in r.getMessage() and "HTTP_SSL_CAFILE" in r.getMessage() for r in caplog.records)


async def _code_for(provider: TlsProvider) -> tuple[dict[str, str], str]:
    """A code the provider issued, and the form and client authentication that redeem it."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    location = provider.authorize(
        {"redirect_uri": f"{GATEWAY}/ui/oidc/callback", "state": "s", "nonce": "n", "code_challenge": challenge}
    )
    code = parse_qs(urlsplit(location).query)["code"][0]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return {"code": code, "code_verifier": verifier}, f"Basic {basic}"


async def test_with_the_city_ca_the_same_sign_in_works(
    tls_provider: TlsProvider, city_ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    gw = gateway_at(tls_provider, tmp_path, http_ssl_cafile=ca_file)
    async with running_app(gw), browser(gw, city_ca) as client:
        tls_provider.requests.clear()
        start = await client.get(f"{GATEWAY}/ui/oidc/login", params={"next": "/ui/"})
        assert start.status_code == 303, start.text
        assert start.headers["location"].startswith(f"{tls_provider.endpoint('auth')}?")
        back = await client.get(start.headers["location"])  # at the provider, over TLS the browser trusts
        assert back.status_code == 302 and back.headers["location"].startswith(f"{GATEWAY}/ui/oidc/callback?")
        reply = await client.get(back.headers["location"])
        assert reply.status_code == 303, reply.text
        assert reply.headers["location"] == "/ui/"
        who = await gw.state.verifier.verify(client.cookies[SESSION_COOKIE])
        assert who.subject == "lotse.stadt" and who.roles == {"caseworker"}
        # Discovery, the keys and the token exchange all went to the provider over TLS.
        paths = set(tls_provider.requests)
        assert {urlsplit(tls_provider.endpoint(n)).path for n in ("auth", "token", "certs")} <= paths
        assert f"/realms/{REALM}/.well-known/openid-configuration" in paths


def test_a_ca_file_that_is_no_pem_certificate_is_refused_at_start(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("this is no certificate\n")
    for value in (str(not_pem), str(tmp_path / "missing.crt")):
        with pytest.raises(ValueError, match=r"HTTP_SSL_CAFILE=.* is not a readable file of PEM certificates"):
            gateway_settings(tmp_path, http_ssl_cafile=value)


def organisation(subject: Any) -> str | None:
    """The organizationName of a certificate's subject as ``ssl`` gives it: relative names of (name, value) pairs."""
    names: tuple[tuple[tuple[str, str], ...], ...] = subject
    return dict(pair for relative in names for pair in relative).get("organizationName")


def test_the_city_ca_is_trusted_beside_the_public_cas(ca_file: str) -> None:
    """Partners' webhook receivers are on the internet: adding the city's CA must not drop the public ones."""
    plain = tls_context(None)
    with_city = tls_context(ca_file)
    public = {c["serialNumber"] for c in plain.get_ca_certs()}
    assert public and public <= {c["serialNumber"] for c in with_city.get_ca_certs()}
    organisations = [organisation(c["subject"]) for c in with_city.get_ca_certs()]
    assert "Stadt Landsberg am Lech" in organisations
    assert with_city.check_hostname and with_city.verify_mode == ssl.CERT_REQUIRED
