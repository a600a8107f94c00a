"""The public API: every ``/api/v1/...`` request no other gateway route answers goes to the service that owns it."""

from __future__ import annotations

from fastapi import Request, Response
from starlette.responses import JSONResponse
from starlette.routing import Route

from chassis.errors import Problem
from chassis.identity import Identity
from gateway import privacy
from gateway.admission import Gate
from gateway.forward import Forwarder, request_id


def route(forwarder: Forwarder, gate: Gate) -> Route:
    """``/api/v1/{path}``: a plain Starlette route, since FastAPI's parameter solving and validation would be work on
    every forwarded request for nothing (the path is the only parameter, and the service validates the body). Add it
    to the app's routes after the gateway's own ``/api/v1/`` routes: it takes every path."""

    async def forward(request: Request) -> Response:
        path: str = request.path_params["path"]
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

    proxy = Route("/api/v1/{path:path}", forward, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    assert proxy.methods is not None
    proxy.methods.discard("HEAD")  # which Starlette adds to GET: the policy names no HEAD, and the API answers 405
    return proxy
