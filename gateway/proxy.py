"""The public API: every ``/api/v1/...`` request no other gateway route answers goes to the service that owns it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from chassis.errors import Problem
from chassis.identity import Identity
from gateway import privacy
from gateway.admission import Gate
from gateway.forward import Forwarder, request_id


def router(forwarder: Forwarder, gate: Gate) -> APIRouter:
    proxy = APIRouter(include_in_schema=False)

    @proxy.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def forward(path: str, request: Request) -> Response:
        base = forwarder.base(path, request.scope.get("raw_path") or b"")
        caller = await gate.admitted(request)
        if request.method == "GET" and caller is not None and (person := privacy.MERGED.match(path)):
            return await merge(request, caller, person["person_id"], person["what"])
        return await forwarder.proxy(request, base, path, caller)

    async def merge(request: Request, caller: Identity, person_id: str, what: str) -> Response:
        """A person's access log or export from every service (``gateway.privacy``), not registration's alone."""
        rid = request_id(request)
        answer = await privacy.merged(
            request.app.state.client, forwarder.routes, forwarder.identity_headers, caller, person_id, what, rid
        )
        headers = {**answer.headers, "x-request-id": rid}
        if answer.unavailable is not None:
            raise Problem(503, answer.unavailable, kind="upstream-unavailable", headers={**headers, "Retry-After": "5"})
        if answer.content is not None:
            return Response(
                answer.content,
                status_code=answer.status,
                headers=headers,
                media_type=answer.headers.get("content-type") or None,
            )
        return JSONResponse(answer.body, status_code=answer.status, headers=headers)

    return proxy
