"""The gateway's own routes for probes and clients that start at ``/``: liveness, readiness, where things are."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse, RedirectResponse

from chassis import metrics as process_metrics
from gateway.settings import GatewaySettings


def router(settings: GatewaySettings) -> APIRouter:
    routes = settings.routes()
    health = APIRouter(include_in_schema=False)

    @health.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @health.get("/readyz")
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

    @health.get("/")
    async def index(request: Request) -> Any:
        if "text/html" in request.headers.get("accept", ""):  # a browser: the web UI
            return RedirectResponse("/ui/", status_code=303)
        # Where an API client gets a token: the embedded sign-in, or the city's identity provider.
        sign_in = "/auth/token" if request.app.state.issuer is not None else settings.oidc_issuer
        return {
            "service": "Landsberg am Lech integration platform",
            "api": "/api/v1/",
            "openapi": "/api/v1/openapi.json",
            "sign_in": sign_in,
            "ui": "/ui/",
        }

    return health
