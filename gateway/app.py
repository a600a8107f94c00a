"""The gateway: one entry for partners and caseworkers. It knows who calls (staff tokens, partner
API keys), checks the role for the route, limits the rate, forwards to the service that owns the
resource with the caller's identity signed, and serves one OpenAPI for the public API.

This module assembles it: what the process holds while it runs (``lifespan``), and the routers of
``signin``, ``health``, ``openapi``, ``deadletters``, ``proxy`` and the web UI, around one
``forward.Forwarder`` and one ``admission.Gate``. Refusals are raised as Problems.

Run: ``uvicorn --factory gateway.app:create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from chassis import identity as internal
from chassis import metrics as process_metrics
from chassis.errors import install_problem_handlers
from chassis.heap import startup_objects_frozen
from chassis.http import BodySizeLimit, CookielessClient, SecurityHeaders, UpstreamTransport
from chassis.identity import Identity
from chassis.telemetry import install_dumps, setup_logging, setup_tracing, traced_transport
from gateway import admission, deadletters, health, openapi, proxy, signin, ui
from gateway.admission import Gate, RateLimits
from gateway.auth import ApiKeys, HashingSlots, LocalIssuer, TokenVerifier, load_or_create_users
from gateway.forward import Forwarder
from gateway.oidc import RelyingParty
from gateway.ratelimit import MemoryLimiter, RedisLimiter
from gateway.settings import SERVICE_OF_SEGMENT, GatewaySettings
from gateway.throttle import FailedAuthThrottle, SignInThrottle, TrustedProxies, networks

__all__ = ["GatewaySettings", "create_app"]

#: A caller's signed identity is reused for this long: a service then still has at least
#: internal.TTL_SECONDS - this to accept it (it checks the expiry only).
SIGNED_IDENTITY_REUSE_SECONDS = 10.0
#: Connections to the services, all together and kept open.
MAX_CONNECTIONS = 200
MAX_KEEPALIVE = 100


def upstream_transport() -> httpx.AsyncBaseTransport:
    """The pool for the services (plain http): httpcore's cost most of the gateway's CPU per forwarded request."""
    return UpstreamTransport(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)


def create_app(
    settings: GatewaySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The gateway; ``transport`` carries the calls to the services (plain http), the default pool without it."""
    settings = settings or GatewaySettings()
    routes = settings.routes()
    signer = internal.Signer(settings.identity_signing_key(), internal.GATEWAY, SIGNED_IDENTITY_REUSE_SECONDS)

    def identity_headers(caller: Identity, segment: str) -> list[tuple[str, str]]:
        """The caller's identity for the service that owns ``segment``: signed for it alone, and as plain headers."""
        headers = [(internal.HEADER, signer.token(caller, SERVICE_OF_SEGMENT[segment]))]
        return headers + [(k.decode(), v.decode()) for k, v in internal.plain_headers(caller)]

    forwarder = Forwarder(routes, identity_headers)
    gate = Gate(
        RateLimits(
            user=settings.rate_limit_per_minute_user,
            api_key=settings.rate_limit_per_minute_api_key,
            anonymous=settings.rate_limit_per_minute_anonymous,
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings)
        install_dumps()
        setup_tracing(settings)
        process_metrics.setup_metrics(settings)
        async with CookielessClient(
            timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE),
            verify=settings.http_verify(),  # the identity provider's https: public CAs and HTTP_SSL_CAFILE
            # The services (plain http) through the upstream pool; https (an identity provider) keeps httpx's own.
            mounts={"http://": traced_transport(transport or upstream_transport(), settings)},
        ) as client:
            app.state.client = client
            app.state.api_keys = ApiKeys(client, settings.partners_url)
            issuer = None
            if settings.oidc_issuer is None:
                users, credentials = await asyncio.to_thread(
                    load_or_create_users, settings.local_users_file, demo_data=settings.demo_data
                )
                hashing = HashingSlots(settings.password_hashing_concurrency, settings.password_hashing_queue)
                issuer = LocalIssuer(
                    settings.local_issuer, settings.oidc_audience, users, signin.local_key(settings), hashing=hashing
                )
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
                    issuer=settings.oidc_issuer,
                    client_id=settings.oidc_client_id or settings.oidc_audience,
                    client_secret=secret_value,
                    scopes=settings.oidc_scopes,
                    verifier=app.state.verifier,
                    secret=settings.cookie_key(),
                    public_url=settings.public_url,
                    display_name=settings.oidc_display_name,
                )
            redis_client = None
            if settings.redis_url:
                import redis.asyncio as redis

                redis_client = redis.from_url(settings.redis_url)
                app.state.limiter = RedisLimiter(redis_client)
            else:
                app.state.limiter = MemoryLimiter()
            app.state.sign_ins = SignInThrottle(
                app.state.limiter,
                per_address=settings.sign_in_failures_per_address,
                per_username=settings.sign_in_failures_per_username,
                per_minute=settings.sign_in_failures_per_minute,
                known_address_days=settings.sign_in_known_address_days,
                secret=settings.cookie_key(),
            )
            app.state.failed_auth = FailedAuthThrottle(app.state.limiter, settings.auth_failures_per_address)
            try:
                with startup_objects_frozen():
                    yield
            finally:
                if redis_client is not None:
                    await redis_client.aclose()

    # FastAPI's own request metrics off: chassis.metrics.RequestMetrics measures them, with the process's label.
    app = FastAPI(
        title="Landsberg integration platform: gateway",
        version="1.0.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry={"metrics": False},
    )
    install_problem_handlers(app)
    admission.install(app)
    app.state.public_openapi = openapi.PublicOpenAPI(routes, app.state)  # the web UI's API reference reads it too
    app.include_router(process_metrics.router)
    app.include_router(health.router(settings))
    app.include_router(signin.router)
    app.include_router(openapi.router)
    app.include_router(deadletters.router(forwarder, gate))
    app.router.routes.append(proxy.route(forwarder, gate))  # after the other /api/v1/ routes: it takes every path
    # The web UI: server-rendered pages with cookie sessions, over the same policy and forwarding.
    app.include_router(
        ui.make_router(
            routes=routes,
            identity_headers=identity_headers,
            secure_cookies=settings.environment != "development",
            rate_limit_per_minute=settings.rate_limit_per_minute_user,
        )
    )
    app.mount("/ui/static", ui.static_files(), name="ui-static")

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Outermost: everything inside (limits, logs) sees the client the trusted proxy names.
    app.add_middleware(TrustedProxies, trusted=networks(settings.trusted_proxies))
    app.add_middleware(process_metrics.RequestMetrics, service=settings.service_name)
    return app
