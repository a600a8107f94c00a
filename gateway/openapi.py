"""One OpenAPI for the whole public API, merged from the services' own, and the readable reference's address."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from starlette.datastructures import State
from starlette.responses import JSONResponse, RedirectResponse

from gateway.forward import NOT_FROM_CLIENTS

#: The merged document is kept this long: the services' documents change only when they are deployed.
KEPT_SECONDS = 60.0


class PublicOpenAPI:
    """The merged document, fetched again after a minute; the web UI's API reference reads it too."""

    def __init__(self, routes: dict[str, str], state: State) -> None:
        self.routes = routes
        self.state = state  # the app's: its pooled client is there while it runs
        self._fetched_at = 0.0
        self._document: dict[str, Any] | None = None

    async def __call__(self) -> dict[str, Any]:
        if self._document is None or time.monotonic() - self._fetched_at > KEPT_SECONDS:
            self._document = await merged_openapi(self.state.client, self.routes)
            self._fetched_at = time.monotonic()
        return self._document


router = APIRouter(include_in_schema=False)


@router.get("/api/v1/openapi.json")
async def openapi(request: Request) -> Response:
    return JSONResponse(await request.app.state.public_openapi())


@router.get("/api/v1/docs")
async def docs() -> Response:
    """The readable reference: a server-rendered page of the web UI (no script, same CSP)."""
    return RedirectResponse("/ui/api", status_code=307)


async def merged_openapi(client: httpx.AsyncClient, routes: dict[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Landsberg am Lech integration platform",
            "version": "1.0.0",
            "description": "The public API. Staff: bearer token; partners: API key (Bearer lip_...).",
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
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
        kept = [
            p
            for p in operation["parameters"]
            if not (p.get("in") == "header" and p["name"].lower() in NOT_FROM_CLIENTS)
        ]
        return {**operation, "parameters": kept}
    return operation
