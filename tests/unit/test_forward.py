"""The gateway's one forwarder (gateway.forward) and the web UI's use of it (gateway.ui.kit.Upstream): what reaches a
service, and how refusals and an unreachable service come back (Problems to the API, Replies to the pages)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from chassis.errors import Problem
from chassis.http import CookielessClient
from chassis.identity import Identity
from gateway.forward import Forwarder
from gateway.ui.kit import Upstream

ROUTES = {"registrations": "http://registration", "persons": "http://registration", "cases": "http://referral"}
REGISTRAR = Identity(subject="u1", kind="user", roles=frozenset({"registrar"}))
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def identity_headers(caller: Identity, segment: str) -> list[tuple[str, str]]:
    return [("x-internal-identity", f"signed:{caller.subject}:{segment}")]


def request(client: httpx.AsyncClient, headers: dict[str, str] | None = None, method: str = "GET") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": "/ui/x",
        "raw_path": b"/ui/x",
        "query_string": b"",
        "headers": raw,
        "app": SimpleNamespace(state=SimpleNamespace(client=client)),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"given_names": "A"}', "more_body": False}

    return Request(scope, receive)


class Streamed(httpx.AsyncByteStream):
    """A body still to read, as a real transport's (httpx reads a Response's own content at once)."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.content


def recording(status: int = 200, body: Any = None) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        content = json.dumps(body if body is not None else {"items": []}).encode()
        headers = {"content-type": "application/json", "content-length": str(len(content))}
        return httpx.Response(status, headers=headers, stream=Streamed(content))

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), seen


async def test_the_ui_calls_as_the_user_with_the_request_id_trace_and_signed_identity() -> None:
    client, seen = recording(body={"items": [1]})
    upstream = Upstream(ROUTES, identity_headers)
    reply = await upstream.call(
        request(client, {"x-request-id": "rid-1", "traceparent": TRACE}),
        REGISTRAR,
        "GET",
        "persons",
        params={"q": "x"},
        headers={"accept-language": "de"},
    )
    assert reply.ok and reply.items() == [1]
    (sent,) = seen
    assert str(sent.url) == "http://registration/api/v1/persons?q=x"
    assert sent.headers["x-request-id"] == "rid-1" and sent.headers["traceparent"] == TRACE
    assert sent.headers["x-internal-identity"] == "signed:u1:persons" and sent.headers["accept-language"] == "de"


@pytest.mark.parametrize(
    ("caller", "path", "status", "kind", "detail"),
    [
        (REGISTRAR, "persons/%2e%2e/cases", 404, "not-found", "not found"),  # bent: must not steer the call elsewhere
        (None, "persons", 401, "unauthenticated", "not allowed"),
        (REGISTRAR, "cases", 403, "forbidden", "not allowed"),
    ],
)
async def test_the_ui_gets_refusals_as_replies_and_nothing_is_sent(
    caller: Identity | None, path: str, status: int, kind: str, detail: str
) -> None:
    client, seen = recording()
    reply = await Upstream(ROUTES, identity_headers).call(request(client), caller, "GET", path)
    assert (reply.status, reply.body) == (status, {"type": kind, "detail": detail}) and seen == []


async def test_an_unreachable_service_is_a_503_problem_and_a_503_reply() -> None:
    def refuse(sent: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=sent)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(Problem) as refused:
        await Forwarder(ROUTES, identity_headers).call(request(client), REGISTRAR, "GET", "persons")
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    assert refused.value.kind == "upstream-unavailable"
    reply = await Upstream(ROUTES, identity_headers).call(request(client), REGISTRAR, "GET", "persons")
    assert (reply.status, reply.body) == (503, {"type": "upstream-unavailable", "detail": "unavailable"})


async def test_the_proxy_passes_the_clients_headers_but_not_its_credentials_or_identity() -> None:
    client, seen = recording(201, {"person_id": "p1"})
    headers = {
        "x-request-id": "rid-2",
        "authorization": "Bearer t",
        "cookie": "a=b",
        "x-actor": "user:forged",
        "x-internal-identity": "forged",
        "content-type": "application/json",
        "idempotency-key": "k1",
    }
    incoming = request(client, headers, method="POST")
    reply = await Forwarder(ROUTES, identity_headers).proxy(incoming, "http://registration", "registrations", None)
    assert reply.status_code == 201 and reply.headers["x-request-id"] == "rid-2"
    (sent,) = seen
    assert sent.headers["idempotency-key"] == "k1" and sent.headers["content-type"] == "application/json"
    assert sent.headers.get_list("x-request-id") == ["rid-2"]
    assert sent.headers["x-internal-identity"] == "signed:anonymous:registrations"
    assert not {"authorization", "cookie", "x-actor"} & set(sent.headers.keys())


async def test_a_bent_or_unowned_path_is_a_404_problem() -> None:
    forwarder = Forwarder(ROUTES, identity_headers)
    for path, raw in (("persons/x", b"/api/v1/persons/%2e%2e/x"), ("nothing/here", b"")):
        with pytest.raises(Problem) as refused:
            forwarder.base(path, raw)
        assert refused.value.status == 404


async def test_the_gateways_client_keeps_no_cookie_an_answer_sets() -> None:
    """One client serves every caller: a Set-Cookie in one answer must not go along with the next request."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "session=secret; Path=/"}, json={})

    async with CookielessClient(transport=httpx.MockTransport(answer)) as client:
        await client.get("http://registration/api/v1/persons")
        await client.get("http://registration/api/v1/persons")
        assert not client.cookies
    assert [r.headers.get("cookie") for r in seen] == [None, None]
