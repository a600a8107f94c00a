"""Dead letters of all services in one list, for the admins' API and page.

Each service keeps its own (``chassis.deadletters``) behind ``/api/v1/admin/dead-letters``, where it checks
the admin role itself from the identity the gateway signs for it. The gateway asks every service at once and
merges: each item names its service; ``open`` and ``total`` add up; a service that does not answer is named
in ``unavailable`` (its letters are not lost, only not shown now).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from chassis.errors import Problem
from chassis.identity import ANONYMOUS, Identity
from gateway import policy
from gateway.admission import Gate
from gateway.forward import Forwarder, IdentityHeaders, not_found, request_id, unreachable

log = logging.getLogger(__name__)

#: The services that consume events, and a path segment each owns (which names the service's base URL and the
#: audience of the identity signed for it).
SEGMENT_OF_SERVICE = {
    "registration": "registrations",
    "referral": "cases",
    "courses": "courses",
    "partners": "partners",
    "monitoring": "monitoring",
}
STATUSES = ("open", "replayed", "discarded")
ACTIONS = ("replay", "discard")
PATH = "api/v1/admin/dead-letters"


async def merged(
    client: httpx.AsyncClient,
    routes: dict[str, str],
    identity_headers: IdentityHeaders,
    caller: Identity,
    *,
    status: str | None = None,
    request_id: str = "",
) -> dict[str, Any]:
    """``{"items": [...], "open": N, "total": N, "unavailable": [service, ...]}``, newest failures first."""
    params = {"status": status} if status else {}

    async def ask(service: str, segment: str) -> tuple[str, dict[str, Any] | None]:
        headers = [*identity_headers(caller, segment), ("x-request-id", request_id)]
        try:
            reply = await client.get(f"{routes[segment]}/{PATH}", params=params, headers=headers, timeout=5.0)
        except httpx.HTTPError:
            log.warning("dead letters of %s: service unreachable", service)
            return service, None
        if reply.status_code != 200:
            log.warning("dead letters of %s: answer %s", service, reply.status_code)
            return service, None
        return service, reply.json()

    answers = await asyncio.gather(*(ask(s, seg) for s, seg in SEGMENT_OF_SERVICE.items() if seg in routes))
    items: list[dict[str, Any]] = []
    counts = {"open": 0, "total": 0}
    unavailable = []
    for service, body in answers:
        if body is None:
            unavailable.append(service)
            continue
        items += [{**item, "service": service} for item in body.get("items", [])]
        for name in counts:
            counts[name] += int(body.get(name, 0))
    items.sort(key=lambda item: str(item.get("last_failed_at", "")), reverse=True)
    return {"items": items, **counts, "unavailable": unavailable}


async def act(
    client: httpx.AsyncClient,
    routes: dict[str, str],
    identity_headers: IdentityHeaders,
    caller: Identity,
    service: str,
    letter_id: str,
    action: str,
    *,
    json: Any = None,
    content: bytes | None = None,
    request_id: str = "",
) -> httpx.Response | None:
    """Replay or discard one service's dead letter; the service's answer, or None when it is unreachable."""
    segment = SEGMENT_OF_SERVICE[service]
    headers = [*identity_headers(caller, segment), ("x-request-id", request_id)]
    if content is not None:
        headers.append(("content-type", "application/json"))
    url = f"{routes[segment]}/{PATH}/{quote(letter_id, safe='')}/{action}"
    try:
        # A replay runs the handler: give it the time a handler may take.
        return await client.post(url, json=json, content=content, headers=headers, timeout=30.0)
    except httpx.HTTPError:
        log.warning("dead letter %s of %s: service unreachable", action, service)
        return None


def router(forwarder: Forwarder, gate: Gate) -> APIRouter:
    """The admins' API over all services' dead letters (the services check the role again)."""
    routes = forwarder.routes
    letters = APIRouter(include_in_schema=False)

    @letters.get("/api/v1/admin/dead-letters")
    async def dead_letters(request: Request, status: str | None = None) -> Response:
        caller = await gate.admitted(request)
        if status is not None and status not in STATUSES:
            raise Problem(422, f"status is one of {', '.join(STATUSES)}.", kind="validation-error")
        found = await merged(
            request.app.state.client,
            routes,
            forwarder.identity_headers,
            caller or ANONYMOUS,
            status=status,
            request_id=request_id(request),
        )
        return JSONResponse(found)

    @letters.post("/api/v1/admin/dead-letters/{service}/{letter_id}/{action}")
    async def dead_letter_action(service: str, letter_id: str, action: str, request: Request) -> Response:
        if policy.bent(request.scope.get("raw_path") or b""):
            raise not_found()
        caller = await gate.admitted(request)
        if service not in SEGMENT_OF_SERVICE or action not in ACTIONS:
            raise Problem(404, "No such dead letter.", kind="not-found")
        if SEGMENT_OF_SERVICE[service] not in routes:
            raise Problem(404, f"No {service} service here.", kind="not-found")
        reply = await act(
            request.app.state.client,
            routes,
            forwarder.identity_headers,
            caller or ANONYMOUS,
            service,
            letter_id,
            action,
            content=await request.body() if action == "discard" else None,
            request_id=request_id(request),
        )
        if reply is None:
            raise unreachable(service)
        return Response(
            reply.content,
            status_code=reply.status_code,
            media_type=reply.headers.get("content-type", "application/json"),
        )

    return letters
