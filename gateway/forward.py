"""The one way a request reaches a service: the public API's proxy and the web UI's pages both call through here.

A forwarded call is refused unless the path is plain (``policy.bent``) and a service owns its first segment; the
role policy decides who may make it; the caller's identity goes along signed for that service alone, with the
request id (and the trace) of the request that caused it; an upstream that cannot be reached is a 503 Problem
(one that does not answer in time a 504), raised as ``chassis.errors.Problem`` for the app's one handler.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import Request, Response
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from chassis import identity as internal
from chassis.errors import Problem
from chassis.identity import Identity
from gateway import policy

log = logging.getLogger(__name__)

#: Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; identity headers are never taken from clients.
HOP_BY_HOP = frozenset(
    {
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
)
#: Identity headers only the gateway sets (the plain ones from the signed identity), and credentials.
NOT_FROM_CLIENTS = frozenset(
    {h.decode() for h in internal.PLAIN_HEADERS} | {internal.HEADER, "authorization", "x-api-key", "cookie"}
)
#: As the ASGI server gives them (lower-case bytes): a client's headers are passed on without decoding them.
NOT_FORWARDED = frozenset(h.encode() for h in HOP_BY_HOP | NOT_FROM_CLIENTS | {"x-request-id"})
#: What a path segment may carry unencoded (RFC 3986 pchar, and the slash between segments).
PATH_SAFE = "/:@!$&'()*+,;="
#: Answers up to this size are read whole before they are passed on; larger ones are streamed.
WHOLE_REPLY_BYTES = 1024 * 1024

#: The caller's identity headers for a call to the service that owns a path's first segment.
IdentityHeaders = Callable[[Identity, str], list[tuple[str, str]]]
Headers = list[tuple[str, str]] | list[tuple[bytes, bytes]]


def request_id(request: Request) -> str:
    """The client's request id, or a new one: the services log it, and the answer carries it back."""
    return request.headers.get("x-request-id") or str(uuid.uuid4())


def unreachable(segment: str) -> Problem:
    return Problem(
        503,
        f"The {segment} service is not reachable; try again shortly.",
        kind="upstream-unavailable",
        headers={"Retry-After": "5"},
    )


def too_slow(segment: str) -> Problem:
    return Problem(504, f"The {segment} service did not answer in time.", kind="upstream-timeout")


def not_found() -> Problem:
    return Problem(404, "No such API resource.", kind="not-found")


def refused(method: str, path: str, caller: Identity | None, key_scopes: frozenset[str] | None = None) -> None:
    """Raises the 401 or 403 Problem unless the role policy (and an API key's scopes) allow this call."""
    roles = caller.roles if caller else None
    verdict = policy.decide(method, path, roles, key_scopes)
    if verdict is None:
        raise Problem(
            401, "Sign in or send an API key.", kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        )
    if not verdict:
        lacking = (
            "This API key's scopes do not"
            if key_scopes is not None and policy.decide(method, path, roles)
            else "Your role does not"
        )
        raise Problem(403, f"{lacking} allow this.", kind="forbidden")


class Forwarder:
    """Calls the service that owns a path, as the caller; ``routes`` maps a first segment to a service's address."""

    def __init__(self, routes: dict[str, str], identity_headers: IdentityHeaders) -> None:
        self.routes = routes
        self.identity_headers = identity_headers

    def base(self, path: str, raw_path: bytes = b"") -> str:
        """The address of the service that owns ``path`` (after ``/api/v1/``); raises a 404 Problem for a bent path
        (the policy judges this path: the upstream must get exactly it, not a normalised other one) or one no
        service owns."""
        if policy.bent(raw_path) or policy.bent(path):
            raise not_found()
        segment = path.split("/", 1)[0]
        base = self.routes.get(segment)
        if base is None:
            raise Problem(404, f"No API resource '/api/v1/{segment}'.", kind="not-found")
        return base

    def headers(
        self, request: Request, caller: Identity | None, segment: str, rid: str, passed: Headers | None = None
    ) -> Headers:
        """``passed`` (the client's own headers, or the UI's), the request id, the trace and the signed identity."""
        sent: list[Any] = list(passed or [])
        sent.append(("x-request-id", rid))
        if passed is None and (trace := request.headers.get("traceparent")):
            sent.append(("traceparent", trace))
        sent += self.identity_headers(caller or internal.ANONYMOUS, segment)
        return sent

    async def send(self, client: httpx.AsyncClient, upstream: httpx.Request, segment: str) -> httpx.Response:
        """The service's answer, its body still to read; raises the 503 or 504 Problem."""
        try:
            return await client.send(upstream, stream=True)
        except httpx.TimeoutException:
            raise too_slow(segment) from None
        except httpx.TransportError:
            log.warning("upstream %s unreachable", upstream.url.host)
            raise unreachable(segment) from None

    async def call(
        self,
        request: Request,
        caller: Identity | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> httpx.Response:
        """A call of the gateway's own (the web UI's), as ``caller``, read whole; raises a Problem when the policy
        refuses it or the service cannot answer (a 503: the UI has no use for a 504)."""
        base = self.base(path)
        refused(method, f"/api/v1/{path}", caller)
        segment = path.split("/", 1)[0]
        client: httpx.AsyncClient = request.app.state.client
        rid = request_id(request)
        sent = self.headers(request, caller, segment, rid, passed=None)
        try:
            return await client.request(
                method, f"{base}/api/v1/{path}", json=json, params=params, headers=[*headers, *sent]
            )
        except httpx.HTTPError:
            log.warning("UI: upstream %s unreachable", base)
            raise unreachable(segment) from None

    async def proxy(self, request: Request, base: str, path: str, caller: Identity | None) -> Response:
        """The client's request as it came (less hop-by-hop and identity headers), answered as the service answers."""
        client: httpx.AsyncClient = request.app.state.client
        rid = request_id(request)
        segment = path.split("/", 1)[0]
        passed = [(k, v) for k, v in request.headers.raw if k not in NOT_FORWARDED]
        upstream = client.build_request(
            # Re-encoded: a decoded '?', '#' or control character must stay part of the path.
            request.method,
            f"{base}/api/v1/{quote(path, safe=PATH_SAFE)}",
            # Without a query string none is parsed and merged: that is a good part of building the request.
            params=request.query_params if request.scope.get("query_string") else None,
            headers=self.headers(request, caller, segment, rid, passed=passed),
            content=await request.body(),
        )
        reply = await self.send(client, upstream, segment)
        return await relay(reply, rid, segment)


async def relay(reply: httpx.Response, rid: str, segment: str) -> Response:
    """A service's answer as the client's: small ones whole, large ones streamed; the request id added."""
    headers = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
    headers["x-request-id"] = rid
    declared = reply.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= WHOLE_REPLY_BYTES:
        # Most answers are small: read them whole and answer at once, without a streaming response's
        # task group and a message per chunk.
        try:
            content = b"".join([chunk async for chunk in reply.aiter_raw()])  # as sent: no decoding
        except httpx.TimeoutException:
            raise too_slow(segment) from None
        except httpx.TransportError:
            log.warning("upstream %s failed while answering", segment)
            raise unreachable(segment) from None
        finally:
            await reply.aclose()
        return Response(content, status_code=reply.status_code, headers=headers)
    return StreamingResponse(
        reply.aiter_raw(), status_code=reply.status_code, headers=headers, background=BackgroundTask(reply.aclose)
    )
