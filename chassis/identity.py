"""The caller's identity as the gateway vouches for it: a short-lived token signed with the
internal secret, so that a service can trust who calls without trusting plain headers.

The gateway strips the plain identity headers (``X-Actor``, ``X-Partner-Id``, ``X-Role``, ``X-Team``)
from what clients send and sets them, with ``X-Internal-Identity``, from the verified sign-in or API
key. A service verifies the token and rewrites all the plain headers from it, so that none a client
made up survives next to a token; where identity is required (production), a call without a valid
token is refused. Services make their object-level checks from these headers (a partner's own
referral, the cases of a caseworker's team).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.types import ASGIApp, Receive, Scope, Send

from chassis.errors import problem_response

HEADER = "x-internal-identity"
#: Where a token comes, these are replaced by what it says (any copies sent alongside are dropped).
PLAIN_HEADERS = (b"x-actor", b"x-partner-id", b"x-role", b"x-team")
AUDIENCE = "landsberg-internal"
TTL_SECONDS = 60


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: frozenset[str] = frozenset()
    partner_id: str | None = None
    team: str | None = None
    kind: str = "user"  # "user" or "api_key"
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.subject}"


def sign(identity: Identity, secret: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": identity.subject, "roles": sorted(identity.roles), "partner_id": identity.partner_id,
        "team": identity.team, "kind": identity.kind, "scopes": sorted(identity.scopes),
        "aud": AUDIENCE, "iat": issued, "exp": issued + TTL_SECONDS,
    }  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(token: str, secret: str) -> Identity:
    """Raises ``jwt.InvalidTokenError`` for anything not signed by us, expired or malformed."""
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "sub"]})
    return Identity(
        subject=str(claims["sub"]),
        roles=frozenset(claims.get("roles") or ()),
        partner_id=claims.get("partner_id"),
        team=claims.get("team"),
        kind=str(claims.get("kind", "user")),
        scopes=frozenset(claims.get("scopes") or ()),
    )


def plain_headers(identity: Identity) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-actor", identity.actor.encode()), (b"x-role", ",".join(sorted(identity.roles)).encode())]
    if identity.partner_id:
        headers.append((b"x-partner-id", identity.partner_id.encode()))
    if identity.team:
        headers.append((b"x-team", identity.team.encode()))
    return headers


class InternalIdentity:
    """Service middleware: trust the plain identity headers only as the signed token says."""

    def __init__(self, app: ASGIApp, secret: str, required: bool) -> None:
        self.app = app
        self.secret = secret
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        token = next((v for k, v in headers if k == HEADER.encode()), None)
        if token is None:
            if self.required:
                await problem_response(401, "Calls reach this service through the gateway.", kind="unauthenticated")(
                    scope, receive, send
                )
                return
            await self.app(scope, receive, send)  # development and tests: plain headers as sent
            return
        try:
            identity = verify(token.decode(), self.secret)
        except jwt.InvalidTokenError:
            await problem_response(401, "The caller's identity token is not valid.", kind="unauthenticated")(
                scope, receive, send
            )
            return
        kept = [(k, v) for k, v in headers if k not in PLAIN_HEADERS]
        scope = dict(scope, headers=kept + plain_headers(identity))
        await self.app(scope, receive, send)
