"""A real OpenID provider for the tests, shaped like the city's Keycloak realm (keycloak/landsberg-realm.json).

django-oauth-toolkit (on oauthlib) is a complete OAuth 2 / OpenID Connect server: accounts with passwords, a login
form and a consent form, PKCE, RS256 ID tokens with the nonce, JWKS, discovery, refresh tokens, RP-initiated logout.
Here it runs in a thread on a free port with its own SQLite database, at Keycloak's paths
(``/realms/<realm>/protocol/openid-connect/{auth,token,certs,userinfo,logout}``), so that the gateway's production
configuration reaches it by changing only the origin of its Keycloak addresses. Access tokens are JWTs with what the
realm's client configures: the audience of its audience mapper, the realm roles (``realm_access`` and the claim of
its role mapper) and the user attributes of its attribute mappers (``team``, ``partner_id``).
(oidc-provider-mock, the first choice, cannot serve here: its 0.4 releases need Python 3.12, and no release checks
PKCE or issues JWT access tokens.)

Django is configured once per process, so there is one provider per test session (``start``); each test module
adds the accounts and the client it needs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urljoin
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REALM_FILE = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "keycloak" / "landsberg-realm.json"

LOGIN_TEMPLATE = """<!doctype html><title>Landsberg SSO</title>
<form method="post" action="">{% csrf_token %}{{ form.as_p }}
<input type="hidden" name="next" value="{{ next }}"><button type="submit">Anmelden</button></form>"""


@dataclass
class Account:
    password: str
    roles: list[str]
    #: User attributes, as Keycloak keeps them (``team``, ``partner_id``); the realm's mappers make claims of them.
    attributes: dict[str, str] = field(default_factory=dict)
    #: Claims beyond what the realm maps (e.g. many groups, to make a token too large for a cookie).
    extra_claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpenIdProvider:
    origin: str
    realm: dict[str, Any]
    key_pem: str
    kid: str
    accounts: dict[str, Account] = field(default_factory=dict)
    server: Any = None
    thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return f"{self.origin}/realms/{self.realm['realm']}"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def end_session_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/logout"

    def add_account(
        self,
        username: str,
        password: str,
        roles: list[str],
        *,
        attributes: dict[str, str] | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> None:
        """A user with realm roles and attributes; again for the same name replaces it."""
        from django.contrib.auth.models import User

        self.accounts[username] = Account(password, list(roles), dict(attributes or {}), dict(extra_claims or {}))
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()

    def add_client(
        self,
        client_id: str,
        secret: str,
        *,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
        consent_required: bool,
    ) -> None:
        """A confidential client (authorization code flow); again for the same id replaces its secret and adds the
        addresses. ``consent_required`` as the realm's client says (Keycloak's default: no consent page)."""
        from oauth2_provider.models import Application

        app = Application.objects.filter(client_id=client_id).first()
        known = set(app.redirect_uris.split()) if app else set()
        logout = set(app.post_logout_redirect_uris.split()) if app else set()
        if app is None:
            app = Application(client_id=client_id, name=client_id)
        app.client_secret = secret  # hashed when saved
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        app.algorithm = Application.RS256_ALGORITHM
        app.redirect_uris = " ".join(sorted(known | set(redirect_uris)))
        app.post_logout_redirect_uris = " ".join(sorted(logout | set(post_logout_redirect_uris)))
        app.skip_authorization = not consent_required
        app.save()

    # --- what the realm's client puts in tokens ----------------------------------------------------------------

    def _client(self, client_id: str) -> dict[str, Any]:
        return next((c for c in self.realm.get("clients", []) if c["clientId"] == client_id), {"clientId": client_id})

    def claims(self, client_id: str, username: str, token: str) -> dict[str, Any]:
        """The claims of the realm's mappers for the access token (``token="access"``) or the ID token (``"id"``)."""
        client = self._client(client_id)
        account = self.accounts[username]
        found: dict[str, Any] = {"preferred_username": username}
        audiences: list[str] = []
        for mapper in client.get("protocolMappers", []):
            config = mapper.get("config", {})
            if config.get(f"{token}.token.claim") != "true":
                continue
            kind = mapper["protocolMapper"]
            if kind == "oidc-audience-mapper":
                audiences.append(config["included.client.audience"])
            elif kind == "oidc-usermodel-realm-role-mapper":
                found[config["claim.name"]] = list(account.roles)
            elif kind == "oidc-usermodel-attribute-mapper" and config["user.attribute"] in account.attributes:
                found[config["claim.name"]] = account.attributes[config["user.attribute"]]
        if token == "access":
            if "roles" in client.get("defaultClientScopes", ["roles"]):
                found["realm_access"] = {"roles": list(account.roles)}
            if audiences:
                found["aud"] = audiences[0] if len(audiences) == 1 else audiences
            found |= account.extra_claims
        return found

    def access_token(self, request: Any) -> str:
        """Access tokens as Keycloak makes them; oauthlib calls this for every access token it issues."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(request.user.pk),
            "azp": request.client_id,
            "iat": now,
            "exp": now + int(self.realm.get("accessTokenLifespan", 300)),
            "jti": str(uuid.uuid4()),
            "scope": " ".join(request.scopes),
            "typ": "Bearer",
        }
        claims |= self.claims(request.client_id, request.user.username, "access")
        return jwt.encode(claims, self.key_pem, algorithm="RS256", headers={"kid": self.kid, "typ": "at+jwt"})

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


_PROVIDER: OpenIdProvider | None = None


def start(directory: Path) -> OpenIdProvider:
    """The session's provider (started on the first call; Django can be configured only once per process)."""
    global _PROVIDER
    if _PROVIDER is not None:
        return _PROVIDER
    import django
    from django.conf import settings

    if settings.configured:
        raise RuntimeError("Django is configured already: the provider needs a process of its own settings")
    server = make_server("127.0.0.1", 0, _not_yet, server_class=_ThreadingServer, handler_class=_QuietHandler)
    realm = json.loads(REALM_FILE.read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    provider = OpenIdProvider(origin=f"http://127.0.0.1:{server.server_port}", realm=realm, key_pem=pem, kid="")
    lifespan = int(realm.get("accessTokenLifespan", 300))
    settings.configure(
        DEBUG=False,
        SECRET_KEY=uuid.uuid4().hex,
        ALLOWED_HOSTS=["127.0.0.1"],
        USE_TZ=True,
        ROOT_URLCONF=_Urls(realm["realm"]),
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "oauth2_provider",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(directory / "provider.db")}},
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "context_processors": ["django.template.context_processors.request"],
                    "loaders": [
                        ("django.template.loaders.locmem.Loader", {"login.html": LOGIN_TEMPLATE}),
                        "django.template.loaders.app_directories.Loader",
                    ],
                },
            }
        ],
        LOGIN_URL="/accounts/login/",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast; the hash is not under test
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        OAUTH2_PROVIDER={
            "OIDC_ENABLED": True,
            "OIDC_ISS_ENDPOINT": provider.issuer,
            "OIDC_RSA_PRIVATE_KEY": pem,
            "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
            "PKCE_REQUIRED": True,
            "SCOPES": {"openid": "OpenID Connect", "profile": "Name and user name"},
            "DEFAULT_SCOPES": ["openid"],
            "ACCESS_TOKEN_EXPIRE_SECONDS": lifespan,
            "ID_TOKEN_EXPIRE_SECONDS": lifespan,
            "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
            "ACCESS_TOKEN_GENERATOR": provider.access_token,
            "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
        },
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from jwcrypto import jwk
    from oauth2_provider.oauth2_validators import OAuth2Validator

    class RealmClaims(OAuth2Validator):  # type: ignore[misc]
        """The ID token carries what the realm's mappers put there (user name, realm roles, team, partner id)."""

        oidc_claim_scope = None  # every claim below, whatever the scopes (as the realm's mappers do)

        def get_additional_claims(self, request: Any) -> dict[str, Any]:
            return provider.claims(request.client_id, request.user.username, "id")

    # Read by the toolkit when it first builds its server, after this; the class needs the models loaded.
    settings.OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = RealmClaims
    call_command("migrate", verbosity=0)
    provider.kid = jwk.JWK.from_pem(pem.encode()).thumbprint()
    server.set_app(WSGIHandler())
    provider.server = server
    provider.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    provider.thread.start()
    _PROVIDER = provider
    return provider


def _not_yet(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("content-type", "text/plain")])
    return [b"starting"]


class _Urls:
    """The provider's URL configuration at Keycloak's paths, built when Django first asks (after ``setup()``)."""

    def __init__(self, realm: str) -> None:
        self.realm = realm

    @property
    def urlpatterns(self) -> list[Any]:
        from django.contrib.auth.views import LoginView
        from django.urls import include, path, re_path
        from oauth2_provider import views

        protocol = "protocol/openid-connect"
        # The toolkit finds its endpoints by these names (discovery lists them), whatever their paths.
        endpoints = [
            re_path(
                r"^\.well-known/openid-configuration/?$",
                views.ConnectDiscoveryInfoView.as_view(),
                name="oidc-connect-discovery-info",
            ),
            path(f"{protocol}/auth", views.AuthorizationView.as_view(), name="authorize"),
            path(f"{protocol}/token", views.TokenView.as_view(), name="token"),
            path(f"{protocol}/certs", views.JwksInfoView.as_view(), name="jwks-info"),
            path(f"{protocol}/userinfo", views.UserInfoView.as_view(), name="user-info"),
            path(f"{protocol}/logout", views.RPInitiatedLogoutView.as_view(), name="rp-initiated-logout"),
            path(f"{protocol}/revoke", views.RevokeTokenView.as_view(), name="revoke-token"),
            path(f"{protocol}/token/introspect", views.IntrospectTokenView.as_view(), name="introspect"),
        ]
        return [
            path(f"realms/{self.realm}/", include((endpoints, "oauth2_provider"), namespace="oauth2_provider")),
            path("accounts/login/", LoginView.as_view(template_name="login.html")),
        ]


# --- a person at the provider -----------------------------------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": found.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and found.get("name") and found.get("type") != "submit":
            self.forms[-1]["fields"][found["name"]] = found.get("value", "")


def only_form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    """The address and fields of the page's one form."""
    parser = _Forms()
    parser.feed(page.text)
    assert len(parser.forms) == 1, page.text
    return urljoin(str(page.url), parser.forms[0]["action"]), parser.forms[0]["fields"]


async def sign_in(client: httpx.AsyncClient, authorize_url: str, username: str, password: str) -> str:
    """What a person does at the provider: sign in and, where the client asks for it, consent. Returns the address
    the provider sends the browser back to (the relying party's callback)."""
    page = await client.get(authorize_url)
    if page.status_code == 302 and "/accounts/login/" in page.headers["location"]:
        login = await client.get(urljoin(authorize_url, page.headers["location"]))
        action, fields = only_form(login)
        signed_in = await client.post(action, data=fields | {"username": username, "password": password})
        assert signed_in.status_code == 302, f"{username} could not sign in at the provider: {signed_in.text}"
        page = await client.get(urljoin(authorize_url, signed_in.headers["location"]))
    if page.status_code == 200:  # the consent form
        action, fields = only_form(page)
        page = await client.post(action, data=fields | {"allow": "Authorize"})
    assert page.status_code == 302, page.text
    return str(page.headers["location"])
