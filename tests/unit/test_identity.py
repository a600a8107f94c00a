"""The signed identity the gateway forwards and the plain headers a service makes of it: the team travels
with the roles, and no plain identity header a client sent survives next to a token."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from chassis.identity import HEADER, PLAIN_HEADERS, Identity, InternalIdentity, plain_headers, sign, verify

SECRET = "secret-for-unit-tests-only-32-bytes"
LOTSE = Identity(subject="lotse", roles=frozenset({"caseworker"}), team="integration-nord")


def test_the_team_is_signed_and_forwarded_as_a_plain_header() -> None:
    assert verify(sign(LOTSE, SECRET), SECRET) == LOTSE
    assert plain_headers(LOTSE) == [
        (b"x-actor", b"user:lotse"),
        (b"x-role", b"caseworker"),
        (b"x-team", b"integration-nord"),
    ]
    admin = Identity(subject="admin", roles=frozenset({"admin"}))
    assert b"x-team" not in dict(plain_headers(admin)), "no team, no header"
    assert b"x-team" in PLAIN_HEADERS, "the middleware drops a client's X-Team like the other identity headers"
    with pytest.raises(jwt.InvalidTokenError):
        verify(sign(LOTSE, SECRET), "another-secret-of-at-least-32-bytes")


async def seen_headers(headers: list[tuple[bytes, bytes]], *, required: bool = False) -> list[tuple[bytes, bytes]]:
    """The headers the service behind the middleware gets, or the refusal's status as ``[(b"status", ...)]``."""
    seen: list[tuple[bytes, bytes]] = []

    async def service(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 204:
            seen.append((b"status", str(message["status"]).encode()))

    scope = {"type": "http", "method": "GET", "path": "/api/v1/cases", "headers": headers, "query_string": b""}
    await InternalIdentity(service, SECRET, required)(scope, receive, send)
    return seen


async def test_a_token_replaces_every_plain_identity_header_the_client_sent() -> None:
    made_up = [(b"x-team", b"integration-sued"), (b"x-role", b"admin"), (b"x-actor", b"user:admin")]
    seen = await seen_headers([*made_up, (b"accept", b"*/*"), (HEADER.encode(), sign(LOTSE, SECRET).encode())])
    identity = [(k, v) for k, v in seen if k in PLAIN_HEADERS]
    assert sorted(identity) == sorted(plain_headers(LOTSE))
    assert (b"accept", b"*/*") in seen


async def test_without_a_token_plain_headers_pass_only_where_identity_is_not_required() -> None:
    sent = [(b"x-team", b"integration-sued"), (b"x-role", b"caseworker")]
    assert await seen_headers(sent) == sent, "development and tests"
    assert await seen_headers(sent, required=True) == [(b"status", b"401")]
    forged = sign(Identity(subject="admin", roles=frozenset({"admin"})), "another-secret-of-at-least-32-bytes")
    assert await seen_headers([*sent, (HEADER.encode(), forged.encode())]) == [(b"status", b"401")]
