"""The first gateway: forwards ``/api/v1/...`` to the service that owns the resource.

Run: ``uvicorn --factory gateway.app:create_app``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, Response
from pydantic_settings import SettingsConfigDict
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from chassis.errors import install_problem_handlers, problem_response
from chassis.http import BodySizeLimit, SecurityHeaders
from chassis.settings import ServiceSettings
from chassis.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)

#: Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    port: int = 8000
    registration_url: str = "http://127.0.0.1:8001"
    referral_url: str = "http://127.0.0.1:8002"
    courses_url: str = "http://127.0.0.1:8003"
    partners_url: str = "http://127.0.0.1:8004"
    upstream_timeout_seconds: float = 10.0

    def routes(self) -> dict[str, str]:
        """First path segment after ``/api/v1/`` → the service that owns it."""
        return {
            "registrations": self.registration_url,
            "persons": self.registration_url,
            "info-packs": self.registration_url,
            "cases": self.referral_url,
            "referrals": self.referral_url,
            "routing-rules": self.referral_url,
            "caseworkers": self.referral_url,
            "partner": self.referral_url,
            "courses": self.courses_url,
            "education-passes": self.courses_url,
            "learners": self.courses_url,
            "partners": self.partners_url,
        }


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = settings.routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings)
        setup_tracing(settings)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        ) as client:
            app.state.client = client
            yield

    app = FastAPI(title="Landsberg integration platform: gateway", version="1.0.0", lifespan=lifespan)
    install_problem_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        client: httpx.AsyncClient = request.app.state.client
        checks = {}
        for base in sorted(set(routes.values())):
            try:
                checks[base] = (await client.get(f"{base}/healthz", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                checks[base] = False
        ready = all(checks.values())
        return (
            problem_response(503, f"upstreams down: {[b for b, ok in checks.items() if not ok]}")
            if not ready
            else Response('{"status":"ready"}', media_type="application/json")
        )

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, object]:
        return {
            "service": "Landsberg am Lech integration platform",
            "api": "/api/v1/",
            "resources": sorted(routes),
            "info_packs": "/api/v1/info-packs",
        }

    @app.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def forward(path: str, request: Request) -> Response:
        segment = path.split("/", 1)[0]
        base = routes.get(segment)
        if base is None:
            return problem_response(404, f"No API resource '/api/v1/{segment}'.", kind="not-found")
        client: httpx.AsyncClient = request.app.state.client
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if "x-request-id" not in request.headers:
            headers.append(("x-request-id", request_id))
        upstream = client.build_request(
            request.method,
            f"{base}/api/v1/{path}",
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        try:
            reply = await client.send(upstream, stream=True)
        except httpx.TimeoutException:
            return problem_response(504, f"The {segment} service did not answer in time.", kind="upstream-timeout")
        except httpx.TransportError:
            log.warning("upstream %s unreachable", base)
            return problem_response(
                503,
                f"The {segment} service is not reachable; try again shortly.",
                kind="upstream-unavailable",
                headers={"Retry-After": "5"},
            )
        reply_headers = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
        reply_headers["x-request-id"] = request_id
        return StreamingResponse(
            reply.aiter_raw(),
            status_code=reply.status_code,
            headers=reply_headers,
            background=BackgroundTask(reply.aclose),
        )

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app
