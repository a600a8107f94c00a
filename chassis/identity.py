"""Who calls a service, as a short-lived token signed with Ed25519, so that a service can trust who calls
without trusting plain headers, and no service can speak for another.

**The gateway** signs the caller it verified (a sign-in or an API key) with its own private key, for one
audience (the service the call goes to) and :data:`TTL_SECONDS`: ``iss`` "gateway", ``aud`` the service's
name, ``jti``, ``iat``, ``exp`` and the caller (subject, roles, partner, team, kind, scopes). It strips the
plain identity headers (``X-Actor``, ``X-Partner-Id``, ``X-Role``, ``X-Team``) from what clients send and sets
them, with ``X-Internal-Identity``, from the verified caller.

**A service that calls another** signs as itself with its own private key (``iss`` its name). Such a token
carries no user, role or partner whatever its claims say: the one who verifies makes of it the service
identity ``service:<issuer>`` and nothing more, and lets it reach only the ``/api/internal/`` routes, which
in turn name the services they serve (:func:`require_service`). The gateway forwards only ``/api/v1/``, so
no client reaches an internal route, and a gateway token is refused there.

**A service** holds only public keys: the gateway's, and those of the services it serves. It accepts a
token whose issuer it trusts, whose signature is that issuer's (EdDSA only: no ``none``, no HMAC with a
public key for a secret), whose ``aud`` is its own name and which has not expired; it then rewrites all the
plain headers from the token, so that none a client made up survives next to it. Where identity is required
(production) a call without a valid token is refused. Services make their object-level checks from these
headers (a partner's own referral, the cases of a caseworker's team).

A service may trust several keys of one issuer (the settings hold them comma-separated): during a key rotation
the new and the old, so that the signer can switch without a moment in which its tokens are refused
(deploy/README.md, section 12). A signer always signs with one key.

A token may be used more than once within its short life (the gateway reuses one per caller and audience for
a few seconds); ``jti`` names it for traces and logs, it is not a one-time nonce.

In development, processes without configured keys use key pairs derived from :data:`DEVELOPMENT_SEED`,
which is public: the settings refuse them anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from chassis.errors import Problem, problem_response

HEADER = "x-internal-identity"
#: Where a token comes, these are replaced by what it says (any copies sent alongside are dropped).
PLAIN_HEADERS = (b"x-actor", b"x-partner-id", b"x-role", b"x-team")
GATEWAY = "gateway"
ALGORITHM = "EdDSA"
TTL_SECONDS = 30
#: Clocks of two pods differ a little; a token is not refused for a second or two of it.
LEEWAY_SECONDS = 5
#: Routes for service identities only; the gateway never forwards here.
INTERNAL_PREFIX = "/api/internal/"
#: Where the verified identity waits in the ASGI scope for :func:`require_service`.
SCOPE_KEY = "internal_identity"
#: Public on purpose: ``make run`` needs no configuration. Keys derived from it are refused outside development.
DEVELOPMENT_SEED = b"landsberg-integration/development-only-identity-keys/v1"


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: frozenset[str] = frozenset()
    partner_id: str | None = None
    team: str | None = None
    kind: str = "user"  # "user", "api_key", "service" or "anonymous"
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.subject}"


def service_identity(name: str) -> Identity:
    return Identity(subject=name, kind="service")


#: A caller of a public route who did not sign in. The gateway vouches for it all the same: a service that requires
#: the signed identity (production) then knows the call came through the gateway's policy and rate limits.
ANONYMOUS = Identity(subject="anonymous", kind="anonymous")


# --- keys ----------------------------------------------------------------------------------------------


def development_key(name: str) -> Ed25519PrivateKey:
    """The development key pair of the process ``name`` ("gateway", "referral"...): the same in every process."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(DEVELOPMENT_SEED + b"/" + name.encode()).digest())


def raw_key(value: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 key; ValueError for anything else."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"decodes to {len(raw)} bytes, not the 32 of an Ed25519 key")
    return raw


def private_key(value: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw_key(value))


def public_key(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw_key(value))


def key_values(value: str) -> list[str]:
    """The keys of a setting that may hold several, comma-separated: the current first, then the previous ones a
    key rotation still honours (deploy/README.md, section 12). Base64 has no commas."""
    return [part.strip() for part in value.split(",") if part.strip()]


def public_keys(value: str) -> list[Ed25519PublicKey]:
    return [public_key(part) for part in key_values(value)]


def encode_private(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.private_bytes_raw()).decode()


def encode_public(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes_raw()).decode()


# --- tokens --------------------------------------------------------------------------------------------


def sign(
    identity: Identity, key: Ed25519PrivateKey, *, audience: str, issuer: str = GATEWAY, now: float | None = None
) -> str:
    """A token for one audience. Only the gateway's (``issuer`` "gateway") can speak for a user."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": identity.subject,
        "jti": uuid.uuid4().hex,
        "iat": issued,
        "exp": issued + TTL_SECONDS,
        "kind": identity.kind,
        "roles": sorted(identity.roles),
        "partner_id": identity.partner_id,
        "team": identity.team,
        "scopes": sorted(identity.scopes),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def service_token(key: Ed25519PrivateKey, service: str, audience: str, now: float | None = None) -> str:
    """The token a service sends as itself to another."""
    return sign(service_identity(service), key, audience=audience, issuer=service, now=now)


def verify(token: str, *, audience: str, trusted: Mapping[str, Sequence[Ed25519PublicKey]]) -> Identity:
    """The identity in a token for ``audience`` signed by a trusted issuer, with any of that issuer's keys (the
    current one and, while a rotation is under way, the previous ones).

    Raises ``jwt.InvalidTokenError`` for an unknown issuer, another issuer's key, another audience, an
    expired or malformed token, or any algorithm but EdDSA. A token from a service (any issuer but the
    gateway) is that service's identity only, whatever else it claims.
    """
    return verify_until(token, audience=audience, trusted=trusted)[0]


def verify_until(
    token: str, *, audience: str, trusted: Mapping[str, Sequence[Ed25519PublicKey]]
) -> tuple[Identity, float]:
    """:func:`verify`, and until when (epoch seconds) the token is accepted: its expiry and the leeway."""
    # Only to choose the key: nothing of it is trusted before the signature is checked with that key.
    issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    if not isinstance(issuer, str) or issuer not in trusted:
        raise jwt.InvalidIssuerError("the token's issuer is not trusted here")
    claims = _decode(token, trusted[issuer], audience=audience, issuer=issuer)
    until = float(claims["exp"]) + LEEWAY_SECONDS
    if issuer != GATEWAY:
        return service_identity(issuer), until
    kind = str(claims.get("kind", "user"))
    if kind == "service":  # the gateway speaks for users and API keys, never for a service
        raise jwt.InvalidTokenError("the gateway does not vouch for services")
    identity = Identity(
        subject=str(claims["sub"]),
        roles=frozenset(claims.get("roles") or ()),
        partner_id=claims.get("partner_id"),
        team=claims.get("team"),
        kind=kind,
        scopes=frozenset(claims.get("scopes") or ()),
    )
    return identity, until


def _decode(token: str, keys: Sequence[Ed25519PublicKey], *, audience: str, issuer: str) -> dict[str, Any]:
    """The claims, checked with the first key whose signature matches. The signature is checked before the claims,
    so a token of another key fails here on it alone and the next key is tried; one key: one check, as before."""
    if not keys:
        raise jwt.InvalidSignatureError("no key for this issuer")
    for key in keys[:-1]:
        try:
            return _decode_with(token, key, audience=audience, issuer=issuer)
        except jwt.InvalidSignatureError:
            continue
    return _decode_with(token, keys[-1], audience=audience, issuer=issuer)


def _decode_with(token: str, key: Ed25519PublicKey, *, audience: str, issuer: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=issuer,
        leeway=LEEWAY_SECONDS,
        options={"require": ["iss", "aud", "sub", "exp", "iat", "jti"], "verify_aud": True},
    )
    return claims


def plain_headers(identity: Identity) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-actor", identity.actor.encode()), (b"x-role", ",".join(sorted(identity.roles)).encode())]
    if identity.partner_id:
        headers.append((b"x-partner-id", identity.partner_id.encode()))
    if identity.team:
        headers.append((b"x-team", identity.team.encode()))
    return headers


class Signer:
    """Signs as one issuer and reuses a token per identity and audience for ``reuse_seconds``: signing is a good
    part of a forwarded request's CPU, and a token stays valid for :data:`TTL_SECONDS`. A service receiving a
    reused token still has at least ``TTL_SECONDS - reuse_seconds`` to accept it (it checks the expiry only)."""

    def __init__(self, key: Ed25519PrivateKey, issuer: str, reuse_seconds: float = 10.0) -> None:
        assert reuse_seconds < TTL_SECONDS - LEEWAY_SECONDS
        self._key = key
        self.issuer = issuer
        self.reuse_seconds = reuse_seconds
        self._cache: dict[tuple[Identity, str], tuple[float, str]] = {}

    def token(self, identity: Identity, audience: str) -> str:
        now = time.time()
        cached = self._cache.get((identity, audience))
        if cached is None or now - cached[0] > self.reuse_seconds:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            token = sign(identity, self._key, audience=audience, issuer=self.issuer, now=now)
            cached = self._cache[(identity, audience)] = (now, token)
        return cached[1]

    def as_itself(self, audience: str) -> str:
        return self.token(service_identity(self.issuer), audience)


# --- the service's side --------------------------------------------------------------------------------


class InternalIdentity:
    """Service middleware: trust the plain identity headers only as the signed token says."""

    def __init__(
        self, app: ASGIApp, *, audience: str, trusted: Mapping[str, Sequence[Ed25519PublicKey]], required: bool
    ) -> None:
        self.app = app
        self.audience = audience
        self.trusted = {issuer: list(keys) for issuer, keys in trusted.items()}
        self.required = required
        #: Tokens verified already, with the identity and until when each is accepted: the gateway reuses a token
        #: per identity and audience for seconds (:class:`Signer`), and checking its signature again was a tenth
        #: of a service's CPU per request (py-spy, issue 16). The keys are this instance's for good.
        self._verified: dict[str, tuple[Identity, float]] = {}

    def identity(self, token: str) -> Identity:
        """The token's identity (raises ``jwt.InvalidTokenError`` as :func:`verify`), once per token and expiry."""
        known = self._verified.get(token)
        if known is not None and time.time() <= known[1]:
            return known[0]
        identity, until = verify_until(token, audience=self.audience, trusted=self.trusted)
        if len(self._verified) >= 10_000:  # bounded: a forged flood of valid-looking tokens fails above anyway
            self._verified.clear()
        self._verified[token] = (identity, until)
        return identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        internal = path.startswith(INTERNAL_PREFIX)
        headers = list(scope.get("headers", []))
        token = next((v for k, v in headers if k == HEADER.encode()), None)
        if token is None:
            if self.required or internal:
                detail = (
                    "Internal routes need a service's signed identity."
                    if internal
                    else "Calls reach this service through the gateway."
                )
                await problem_response(401, detail, kind="unauthenticated")(scope, receive, send)
                return
            await self.app(scope, receive, send)  # development and tests: plain headers as sent
            return
        try:
            identity = self.identity(token.decode("latin-1"))
        except jwt.InvalidTokenError:
            await problem_response(401, "The caller's identity token is not valid.", kind="unauthenticated")(
                scope, receive, send
            )
            return
        if (identity.kind == "service") != internal:
            detail = (
                "Internal routes serve other services, not calls through the gateway."
                if internal
                else "A service's identity reaches internal routes only."
            )
            await problem_response(403, detail, kind="forbidden")(scope, receive, send)
            return
        kept = [(k, v) for k, v in headers if k not in PLAIN_HEADERS]
        scope = dict(scope, headers=kept + plain_headers(identity))
        scope[SCOPE_KEY] = identity
        await self.app(scope, receive, send)


def require_service(*services: str) -> Any:
    """A route dependency: the call comes from one of ``services``, as its own signed token says."""

    def calling_service(request: Request) -> Identity:
        identity: Identity | None = request.scope.get(SCOPE_KEY)
        if identity is None or identity.kind != "service":
            raise Problem(401, "This route needs a service's signed identity.", kind="unauthenticated")
        if identity.subject not in services:
            raise Problem(403, f"The {identity.subject} service may not call this route.", kind="forbidden")
        return identity

    return Depends(calling_service)
