"""The gateway: one entry for partners and caseworkers. It knows who calls (staff tokens, partner
API keys), checks the role for the route, limits the rate, forwards to the service that owns the
resource with the caller's identity signed, and serves one OpenAPI for the public API.

Run: ``uvicorn --factory gateway.app:create_app``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, RedirectResponse, StreamingResponse

from chassis import identity as internal
from chassis import metrics as process_metrics
from chassis.errors import install_problem_handlers, problem_response
from chassis.http import BodySizeLimit, SecurityHeaders, UpstreamTransport
from chassis.identity import Identity
from chassis.settings import DEVELOPMENT_SECRET, ServiceSettings
from chassis.telemetry import setup_logging, setup_tracing, traced_transport
from gateway import deadletters, policy, privacy, ui
from gateway.auth import (
    DEFAULT_USERS_FILE,
    ApiKeys,
    Busy,
    CannotCheck,
    HashingSlots,
    LocalIssuer,
    TokenVerifier,
    Unauthenticated,
    load_or_create_users,
)
from gateway.oidc import RelyingParty
from gateway.ratelimit import MemoryLimiter, RedisLimiter
from gateway.throttle import FailedAuthThrottle, SignInThrottle, Throttled, TrustedProxies, client_key, networks

log = logging.getLogger(__name__)

#: Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; identity headers are never taken from clients.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
#: Identity headers only the gateway sets (the plain ones from the signed identity), and credentials.
NOT_FROM_CLIENTS = {h.decode() for h in internal.PLAIN_HEADERS} | {
    internal.HEADER,
    "authorization",
    "x-api-key",
    "cookie",
}
NOT_FORWARDED = frozenset(HOP_BY_HOP | NOT_FROM_CLIENTS)
#: What a path segment may carry unencoded (RFC 3986 pchar, and the slash between segments).
PATH_SAFE = "/:@!$&'()*+,;="
#: Answers up to this size are read whole before they are passed on; larger ones are streamed.
WHOLE_REPLY_BYTES = 1024 * 1024
#: A caller's signed identity is reused for this long: a service then still has at least
#: internal.TTL_SECONDS - this to accept it (it checks the expiry only).
SIGNED_IDENTITY_REUSE_SECONDS = 10.0
#: First path segment after ``/api/v1/`` -> the service that owns it; its name is the audience of the
#: identity the gateway signs for the call.
SERVICE_OF_SEGMENT = {
    "registrations": "registration", "persons": "registration", "info-packs": "registration",
    "cases": "referral", "referrals": "referral", "routing-rules": "referral", "caseworkers": "referral",
    "partner": "referral", "courses": "courses", "education-passes": "courses", "learners": "courses",
    "partners": "partners", "monitoring": "monitoring",
}  # fmt: skip


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    port: int = 8000
    registration_url: str = "http://127.0.0.1:8001"
    referral_url: str = "http://127.0.0.1:8002"
    courses_url: str = "http://127.0.0.1:8003"
    partners_url: str = "http://127.0.0.1:8004"
    monitoring_url: str = "http://127.0.0.1:8005"
    upstream_timeout_seconds: float = 10.0

    #: OpenID Connect (Keycloak) in production: the issuer, its JWKS and this client's audience.
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str = "integration-gateway"
    oidc_algorithms: list[str] = ["RS256", "EdDSA", "ES256"]
    #: The web UI's sign-in at that provider (authorization code flow with PKCE). The client id defaults to the
    #: audience: Keycloak's client "landsberg-gateway" is both.
    oidc_client_id: str | None = None
    #: The confidential client's secret (Keycloak: Clients, landsberg-gateway, Credentials), from a Secret; unset
    #: for a public client, which PKCE alone protects.
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile"
    #: The provider's name on the sign-in button.
    oidc_display_name: str = "Keycloak"
    #: Where browsers reach the gateway (https://integration.landsberg.de): the provider sends them back to
    #: ``{public_url}/ui/oidc/callback``. Needed in production with OIDC; elsewhere the request's own address serves.
    public_url: str | None = None
    #: The embedded sign-in (development default; off when an OIDC issuer is set).
    local_issuer: str = "http://127.0.0.1:8000/auth"
    local_users_file: Path = DEFAULT_USERS_FILE
    #: Base64 of a 32-byte Ed25519 key for the embedded sign-in's tokens; in development one is made once and kept
    #: next to the users file (``gateway-token-signing.key``). Not needed with an OIDC issuer.
    local_signing_key: SecretStr | None = None
    #: Seals what the web UI keeps in cookies (the OIDC sign-in in progress, the refresh token): random, 32 bytes
    #: or more, the same on every replica. ``GATEWAY_COOKIE_SECRET``.
    cookie_secret: SecretStr | None = None

    #: The gateway signs identities (``GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY``) and seals cookies; it keeps no
    #: idempotent answers and verifies no internal identity.
    NEEDED_OUTSIDE_DEVELOPMENT = ("internal_identity_signing_key", "cookie_secret")
    OTHER_ED25519_KEYS = ("local_signing_key",)

    def cookie_key(self) -> str:
        if self.cookie_secret is not None:
            return self.cookie_secret.get_secret_value()
        return DEVELOPMENT_SECRET  # development only: the settings refuse an unset one elsewhere

    @model_validator(mode="after")
    def _sign_in_configured(self) -> GatewaySettings:
        if self.oidc_issuer is None and self.local_signing_key is None and self.environment != "development":
            raise ValueError(
                "set GATEWAY_OIDC_ISSUER and GATEWAY_OIDC_JWKS_URL (the city's Keycloak), or "
                "GATEWAY_LOCAL_SIGNING_KEY for the embedded sign-in"
            )
        if self.oidc_issuer is not None and self.oidc_jwks_url is None:
            raise ValueError("GATEWAY_OIDC_JWKS_URL is needed with GATEWAY_OIDC_ISSUER")
        if self.oidc_issuer is not None and self.public_url is None and self.environment == "production":
            # Behind the ingress the request's own address is http and internal: the provider would refuse it.
            raise ValueError("GATEWAY_PUBLIC_URL (https://...) is needed with GATEWAY_OIDC_ISSUER in production")
        return self

    rate_limit_per_minute_user: int = 600
    rate_limit_per_minute_api_key: int = 1200
    rate_limit_per_minute_anonymous: int = 120
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")

    #: Limits on guessing (gateway/throttle.py says how they work together). Failed sign-ins a minute from one
    #: client address; for one user name, and for all names together, from addresses that name has not signed in
    #: from within ``sign_in_known_address_days``.
    sign_in_failures_per_address: int = Field(10, ge=1)
    sign_in_failures_per_username: int = Field(10, ge=1)
    sign_in_failures_per_minute: int = Field(300, ge=1)
    sign_in_known_address_days: float = Field(30, ge=0)
    #: Password hashes (argon2, 64 MiB each) computed at once, and sign-ins waiting for one; more get 503 with
    #: Retry-After at once.
    password_hashing_concurrency: int = Field(2, ge=1)
    password_hashing_queue: int = Field(16, ge=0)
    #: Refused bearer tokens and API keys a minute from one client address; past it 429, without checking.
    auth_failures_per_address: int = Field(30, ge=1)
    #: The proxies in front of the gateway (the ingress controller's pods), as addresses or networks
    #: (``GATEWAY_TRUSTED_PROXIES='["10.244.0.0/16"]'``): from them, X-Forwarded-For names the client. Empty: the
    #: socket peer is the client, and X-Forwarded-For is ignored.
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        networks(value)  # a typo must not quietly trust nobody (or everybody)
        return value

    def service_urls(self) -> dict[str, str]:
        return {
            "registration": self.registration_url, "referral": self.referral_url, "courses": self.courses_url,
            "partners": self.partners_url, "monitoring": self.monitoring_url,
        }  # fmt: skip

    def routes(self) -> dict[str, str]:
        """First path segment after ``/api/v1/`` → the address of the service that owns it."""
        urls = self.service_urls()
        return {segment: urls[service] for segment, service in SERVICE_OF_SEGMENT.items()}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


def _local_key(settings: GatewaySettings) -> Ed25519PrivateKey:
    if settings.local_signing_key is not None:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(settings.local_signing_key.get_secret_value()))
    # Development only (the settings refuse an unset key elsewhere). Kept in a file, not made per process: `make run`
    # is a small city's production, and a gateway that crashed and came back must not sign every user out (the
    # fault-injection suite, tests/faults, found every token refused after a restart).
    path = settings.local_users_file.with_name("gateway-token-signing.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        draft = path.with_name(f"{path.name}.{os.getpid()}.new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(raw).decode())
        try:
            with contextlib.suppress(FileExistsError):  # another gateway made it first: use theirs
                os.link(draft, path)  # whole or not at all: nobody reads a half-written key
        finally:
            draft.unlink()
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = settings.routes()
    signer = internal.Signer(settings.identity_signing_key(), internal.GATEWAY, SIGNED_IDENTITY_REUSE_SECONDS)

    def identity_headers(caller: Identity, segment: str) -> list[tuple[str, str]]:
        """The caller's identity for the service that owns ``segment``: signed for it alone, and as plain headers."""
        headers = [(internal.HEADER, signer.token(caller, SERVICE_OF_SEGMENT[segment]))]
        return headers + [(k.decode(), v.decode()) for k, v in internal.plain_headers(caller)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings)
        setup_tracing(settings)
        process_metrics.setup_metrics(settings)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=2.0),
            limits=limits,
            verify=settings.http_verify(),  # the identity provider's https: public CAs and HTTP_SSL_CAFILE
            # The services (plain http) through our lean pool: httpcore's cost most of the gateway's CPU per
            # forwarded request under load. https (an identity provider) keeps httpx's own transport.
            mounts={
                "http://": traced_transport(
                    UpstreamTransport(max_connections=200, max_keepalive_connections=100), settings
                )
            },
        ) as client:
            app.state.client = client
            app.state.api_keys = ApiKeys(client, settings.partners_url)
            issuer = None
            if settings.oidc_issuer is None:
                users, credentials = await asyncio.to_thread(
                    load_or_create_users, settings.local_users_file, demo_data=settings.demo_data
                )
                hashing = HashingSlots(settings.password_hashing_concurrency, settings.password_hashing_queue)
                issuer = LocalIssuer(settings.local_issuer, settings.oidc_audience, users, _local_key(settings),
                                     hashing=hashing)  # fmt: skip
                app.state.demo_credentials = credentials
            app.state.issuer = issuer
            app.state.verifier = TokenVerifier(
                issuer=settings.oidc_issuer or settings.local_issuer,
                audience=settings.oidc_audience,
                algorithms=settings.oidc_algorithms if settings.oidc_issuer else ["EdDSA"],
                jwks_url=settings.oidc_jwks_url,
                ssl_context=settings.http_verify(),
                local_keys=issuer.verifier_keys() if issuer else None,
            )
            app.state.oidc = None
            if settings.oidc_issuer is not None:
                secret_value = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
                app.state.oidc = RelyingParty(
                    issuer=settings.oidc_issuer, client_id=settings.oidc_client_id or settings.oidc_audience,
                    client_secret=secret_value, scopes=settings.oidc_scopes, verifier=app.state.verifier,
                    secret=settings.cookie_key(), public_url=settings.public_url,
                    display_name=settings.oidc_display_name,
                )  # fmt: skip
            redis_client = None
            if settings.redis_url:
                import redis.asyncio as redis

                redis_client = redis.from_url(settings.redis_url)
                app.state.limiter = RedisLimiter(redis_client)
            else:
                app.state.limiter = MemoryLimiter()
            app.state.sign_ins = SignInThrottle(
                app.state.limiter, per_address=settings.sign_in_failures_per_address,
                per_username=settings.sign_in_failures_per_username, per_minute=settings.sign_in_failures_per_minute,
                known_address_days=settings.sign_in_known_address_days, secret=settings.cookie_key(),
            )  # fmt: skip
            app.state.failed_auth = FailedAuthThrottle(app.state.limiter, settings.auth_failures_per_address)
            app.state.openapi_cache = (0.0, None)
            try:
                yield
            finally:
                if redis_client is not None:
                    await redis_client.aclose()

    # FastAPI's own request metrics off: chassis.metrics.RequestMetrics measures them, with the process's label.
    app = FastAPI(title="Landsberg integration platform: gateway", version="1.0.0", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None, telemetry={"metrics": False})  # fmt: skip
    install_problem_handlers(app)
    app.include_router(process_metrics.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Ready means this process can serve. Each upstream's state is in the body, but one that is away does not
        make the gateway NotReady: its routes answer 502/503 by themselves, every other route still works, and a
        gateway out of its Service would take the whole platform (sign-in, every other service) with it."""
        client: httpx.AsyncClient = request.app.state.client

        async def up(base: str) -> bool:
            try:
                return (await client.get(f"{base}/healthz", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                return False

        used = set(routes.values())
        upstreams = {name: url for name, url in sorted(settings.service_urls().items()) if url in used}
        states = await asyncio.gather(*(up(url) for url in upstreams.values()))
        checks = {name: "ok" if ok else "unavailable" for name, ok in zip(upstreams, states, strict=True)}
        process_metrics.dependencies_up(settings.service_name, dict(zip(upstreams, states, strict=True)))
        return JSONResponse({"status": "ready", "checks": {"upstreams": checks}})

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Any:
        if "text/html" in request.headers.get("accept", ""):  # a browser: the web UI
            return RedirectResponse("/ui/", status_code=303)
        # Where an API client gets a token: the embedded sign-in, or the city's identity provider.
        sign_in = "/auth/token" if request.app.state.issuer is not None else settings.oidc_issuer
        return {"service": "Landsberg am Lech integration platform", "api": "/api/v1/",
                "openapi": "/api/v1/openapi.json", "sign_in": sign_in, "ui": "/ui/"}  # fmt: skip

    # --- sign-in ---------------------------------------------------------------------------

    def throttled(exc: Throttled) -> Response:
        return problem_response(429, exc.detail, kind="rate-limited", headers={"Retry-After": str(exc.retry_after)})

    def busy(exc: Busy) -> Response:
        return problem_response(503, "Too many sign-ins at once; try again in a moment.", kind="sign-in-busy",
                                headers={"Retry-After": str(exc.retry_after)})  # fmt: skip

    @app.post("/auth/token", include_in_schema=False)
    async def token(body: SignIn, request: Request) -> Response:
        """The embedded sign-in: a bearer token of the same shape the city's Keycloak issues."""
        issuer: LocalIssuer | None = request.app.state.issuer
        if issuer is None:
            return problem_response(404, "Sign in with the city's identity provider.", kind="not-found")
        sign_ins: SignInThrottle = request.app.state.sign_ins
        try:
            access_token = await sign_ins.sign_in(issuer, body.username, body.password, client_key(request))
        except Throttled as exc:
            return throttled(exc)
        except Busy as exc:
            return busy(exc)
        except Unauthenticated as exc:
            return problem_response(401, str(exc), kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": issuer.token_minutes * 60}
        )

    @app.get("/auth/jwks.json", include_in_schema=False)
    async def jwks(request: Request) -> Response:
        issuer: LocalIssuer | None = request.app.state.issuer
        return JSONResponse(issuer.public_jwks() if issuer else {"keys": []})

    # --- the public API ----------------------------------------------------------------------

    async def who(request: Request) -> Identity | None:
        """The verified caller, or None for an anonymous one; raises Unauthenticated for bad credentials (CannotCheck
        when they cannot be checked now) and Throttled past the failed-authentication budget."""
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        failed_auth: FailedAuthThrottle = request.app.state.failed_auth
        if auth.lower().startswith("bearer "):
            credential = auth[7:].strip()
            if credential.startswith("lip_"):
                key = credential
            else:
                return await failed_auth.verified(request.app.state.verifier, credential, client_key(request))
        if key:
            return await failed_auth.verified(request.app.state.api_keys, key, client_key(request))
        return None

    async def public_openapi() -> dict[str, Any]:
        """One OpenAPI for the whole public API, merged from the services' own (kept a minute)."""
        fetched_at, cached = app.state.openapi_cache
        if cached is None or time.monotonic() - fetched_at > 60:
            cached = await merged_openapi(app.state.client, routes)
            app.state.openapi_cache = (time.monotonic(), cached)
        return cached  # type: ignore[no-any-return]

    app.state.public_openapi = public_openapi  # the web UI's API reference reads it too

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return JSONResponse(await public_openapi())

    @app.get("/api/v1/docs", include_in_schema=False)
    async def docs() -> Response:
        """The readable reference: a server-rendered page of the web UI (no script, same CSP)."""
        return RedirectResponse("/ui/api", status_code=307)

    async def admitted(request: Request) -> Identity | Response | None:
        """The verified caller whom the policy lets make this request (None: an anonymous one, where that is
        allowed) within the rate limit, or the answer that refuses the request."""
        try:
            caller = await who(request)
        except Throttled as exc:
            return throttled(exc)
        except CannotCheck as exc:
            return problem_response(503, str(exc), kind="upstream-unavailable", headers={"Retry-After": "5"})
        except Unauthenticated as exc:
            return problem_response(401, str(exc), kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        key_scopes = caller.scopes if caller is not None and caller.kind == "api_key" else None
        verdict = policy.decide(request.method, request.url.path, caller.roles if caller else None, key_scopes)
        if verdict is None:
            return problem_response(401, "Sign in or send an API key.", kind="unauthenticated",
                                    headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if not verdict:
            lacking = (
                "This API key's scopes do not"
                if key_scopes is not None
                and policy.decide(request.method, request.url.path, caller.roles if caller else None)
                else "Your role does not"
            )
            return problem_response(403, f"{lacking} allow this.", kind="forbidden")
        if caller is None:
            limit_key, limit = f"ip:{client_key(request)}", settings.rate_limit_per_minute_anonymous
        elif caller.kind == "api_key":
            limit_key, limit = f"key:{caller.subject}", settings.rate_limit_per_minute_api_key
        else:
            limit_key, limit = f"user:{caller.subject}", settings.rate_limit_per_minute_user
        retry = await request.app.state.limiter.hit(limit_key, limit)
        if retry is not None:
            return problem_response(429, f"More than {limit} requests a minute.", kind="rate-limited",
                                    headers={"Retry-After": str(int(retry))})  # fmt: skip
        return caller

    # --- dead letters of all services, for admins (the services check the role again) -----------------
    @app.get("/api/v1/admin/dead-letters", include_in_schema=False)
    async def dead_letters(request: Request, status: str | None = None) -> Response:
        caller = await admitted(request)
        if isinstance(caller, Response):
            return caller
        if status is not None and status not in deadletters.STATUSES:
            return problem_response(422, f"status is one of {', '.join(deadletters.STATUSES)}.",
                                    kind="validation-error")  # fmt: skip
        found = await deadletters.merged(
            request.app.state.client, routes, identity_headers, caller or internal.ANONYMOUS, status=status,
            request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
        )  # fmt: skip
        return JSONResponse(found)

    @app.post("/api/v1/admin/dead-letters/{service}/{letter_id}/{action}", include_in_schema=False)
    async def dead_letter_action(service: str, letter_id: str, action: str, request: Request) -> Response:
        if policy.bent(request.scope.get("raw_path") or b""):
            return problem_response(404, "No such API resource.", kind="not-found")
        caller = await admitted(request)
        if isinstance(caller, Response):
            return caller
        if service not in deadletters.SEGMENT_OF_SERVICE or action not in deadletters.ACTIONS:
            return problem_response(404, "No such dead letter.", kind="not-found")
        if deadletters.SEGMENT_OF_SERVICE[service] not in routes:
            return problem_response(404, f"No {service} service here.", kind="not-found")
        reply = await deadletters.act(
            request.app.state.client, routes, identity_headers, caller or internal.ANONYMOUS, service, letter_id,
            action, content=await request.body() if action == "discard" else None,
            request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
        )  # fmt: skip
        if reply is None:
            return problem_response(503, f"The {service} service is not reachable; try again shortly.",
                                    kind="upstream-unavailable", headers={"Retry-After": "5"})  # fmt: skip
        return Response(reply.content, status_code=reply.status_code,
                        media_type=reply.headers.get("content-type", "application/json"))  # fmt: skip

    @app.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def forward(path: str, request: Request) -> Response:
        segment = path.split("/", 1)[0]
        base = routes.get(segment)
        if policy.bent(request.scope.get("raw_path") or b"") or policy.bent(path):
            # The policy judges this path; the upstream must get exactly it, not a normalised other one.
            return problem_response(404, "No such API resource.", kind="not-found")
        if base is None:
            return problem_response(404, f"No API resource '/api/v1/{segment}'.", kind="not-found")
        caller = await admitted(request)
        if isinstance(caller, Response):
            return caller
        if request.method == "GET" and caller is not None and (person := privacy.MERGED.match(path)):
            return await merge(request, caller, person["person_id"], person["what"])
        return await proxy(request, base, path, caller)

    async def merge(request: Request, caller: Identity, person_id: str, what: str) -> Response:
        """A person's access log or export from every service (``gateway.privacy``), not registration's alone."""
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        answer = await privacy.merged(
            request.app.state.client, routes, identity_headers, caller, person_id, what, request_id
        )
        headers = {**answer.headers, "x-request-id": request_id}
        if answer.unavailable is not None:
            return problem_response(503, answer.unavailable, kind="upstream-unavailable",
                                    headers={**headers, "Retry-After": "5"})  # fmt: skip
        if answer.content is not None:
            return Response(answer.content, status_code=answer.status, headers=headers,
                            media_type=answer.headers.get("content-type") or None)  # fmt: skip
        return JSONResponse(answer.body, status_code=answer.status, headers=headers)

    async def proxy(request: Request, base: str, path: str, caller: Identity | None) -> Response:
        client: httpx.AsyncClient = request.app.state.client
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"] + [("x-request-id", request_id)]
        headers += identity_headers(caller or internal.ANONYMOUS, path.split("/", 1)[0])
        upstream = client.build_request(
            # Re-encoded: a decoded '?', '#' or control character must stay part of the path.
            request.method, f"{base}/api/v1/{quote(path, safe=PATH_SAFE)}", params=request.query_params,
            headers=headers,
            content=await request.body(),
        )  # fmt: skip
        segment = path.split("/", 1)[0]
        try:
            reply = await client.send(upstream, stream=True)
        except httpx.TimeoutException:
            return problem_response(504, f"The {segment} service did not answer in time.", kind="upstream-timeout")
        except httpx.TransportError:
            log.warning("upstream %s unreachable", base)
            return problem_response(
                503, f"The {segment} service is not reachable; try again shortly.", kind="upstream-unavailable",
                headers={"Retry-After": "5"},
            )  # fmt: skip
        reply_headers = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
        reply_headers["x-request-id"] = request_id
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= WHOLE_REPLY_BYTES:
            # Most answers are small: read them whole and answer at once, without a streaming response's
            # task group and a message per chunk.
            try:
                content = b"".join([chunk async for chunk in reply.aiter_raw()])  # as sent: no decoding
            except httpx.TimeoutException:
                return problem_response(504, f"The {segment} service did not answer in time.", kind="upstream-timeout")
            except httpx.TransportError:
                log.warning("upstream %s failed while answering", base)
                return problem_response(
                    503, f"The {segment} service is not reachable; try again shortly.", kind="upstream-unavailable",
                    headers={"Retry-After": "5"},
                )  # fmt: skip
            finally:
                await reply.aclose()
            return Response(content, status_code=reply.status_code, headers=reply_headers)
        return StreamingResponse(
            reply.aiter_raw(),
            status_code=reply.status_code,
            headers=reply_headers,
            background=BackgroundTask(reply.aclose),
        )

    # --- the web UI: server-rendered pages with cookie sessions, over the same policy and forwarding --------
    app.include_router(
        ui.make_router(
            routes=routes, identity_headers=identity_headers, secure_cookies=settings.environment != "development",
            rate_limit_per_minute=settings.rate_limit_per_minute_user,
        )
    )  # fmt: skip
    app.mount("/ui/static", ui.static_files(), name="ui-static")

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Outermost: everything inside (limits, logs) sees the client the trusted proxy names.
    app.add_middleware(TrustedProxies, trusted=networks(settings.trusted_proxies))
    app.add_middleware(process_metrics.RequestMetrics, service=settings.service_name)
    return app


async def merged_openapi(client: httpx.AsyncClient, routes: dict[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Landsberg am Lech integration platform", "version": "1.0.0",
                 "description": "The public API. Staff: bearer token; partners: API key (Bearer lip_...)."},
        "paths": {}, "components": {"schemas": {}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }  # fmt: skip
    for base in sorted(set(routes.values())):
        try:
            spec = (await client.get(f"{base}/openapi.json", timeout=3)).json()
        except (httpx.HTTPError, ValueError):
            continue  # a service that is down is missing from the document until it is back
        prefix = "".join(part.title() for part in spec.get("info", {}).get("title", "Service").split()[:1])
        text = json.dumps(spec)
        for name in spec.get("components", {}).get("schemas", {}):
            text = text.replace(f'"#/components/schemas/{name}"', f'"#/components/schemas/{prefix}{name}"')
        spec = json.loads(text)
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            merged["components"]["schemas"][f"{prefix}{name}"] = schema
        for route, item in spec.get("paths", {}).items():
            if route.startswith("/api/v1/") and routes.get(route.split("/")[3]) == base:
                merged["paths"][route] = {method: without_gateway_headers(op) for method, op in item.items()}
    return merged


def without_gateway_headers(operation: Any) -> Any:
    """The identity headers a service documents are set by the gateway; clients cannot send them."""
    if isinstance(operation, dict) and "parameters" in operation:
        kept = [p for p in operation["parameters"] if not (p.get("in") == "header" and p["name"].lower() in
                                                            NOT_FROM_CLIENTS)]  # fmt: skip
        return {**operation, "parameters": kept}
    return operation
