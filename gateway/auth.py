"""Who is calling: staff tokens (OpenID Connect, or the embedded sign-in issuing the same shape)
and partner API keys (verified with the partners service, cached briefly).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from chassis.identity import Identity

ROLES = ("registrar", "caseworker", "course_admin", "partner", "analyst", "admin")
API_KEY_PREFIX = "lip_"


class Unauthenticated(Exception):
    """No valid credentials; the message says why (never echoing a secret)."""


# --- tokens --------------------------------------------------------------------------------


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    """Keycloak puts realm roles in ``realm_access.roles`` (or, with a mapper, ``roles``); the embedded
    issuer uses the former."""
    granted = [*(claims.get("realm_access") or {}).get("roles", []), *(claims.get("roles") or [])]
    roles = frozenset(r for r in granted if r in ROLES)
    return Identity(
        subject=str(claims.get("preferred_username") or claims["sub"]),
        roles=roles,
        partner_id=claims.get("partner_id"),
        team=claims.get("team"),
        kind="user",
    )


class TokenVerifier:
    """One check for both paths: signature from the issuer's keys, issuer, audience, expiry, algorithm."""

    def __init__(self, *, issuer: str, audience: str, algorithms: list[str], jwks_url: str | None = None,
                 local_keys: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms  # never "none": only what is listed is accepted
        self.local_keys = local_keys or {}
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.algorithms:
                raise Unauthenticated("token algorithm not accepted")
            kid = header.get("kid")
            if kid in self.local_keys:
                key = self.local_keys[kid]
            elif self.jwks is not None:
                key = (await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)).key
            else:
                raise Unauthenticated("token signed by an unknown key")
            claims = jwt.decode(
                token, key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "sub"]}, leeway=30,
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token refused: {type(exc).__name__}") from exc
        return identity_from_claims(claims)


class LocalIssuer:
    """The embedded default's identity provider: argon2-hashed users, EdDSA tokens of Keycloak's shape."""

    def __init__(self, issuer: str, audience: str, users: dict[str, dict[str, Any]], key: Ed25519PrivateKey,
                 token_minutes: int = 15) -> None:  # fmt: skip
        self.issuer = issuer
        self.audience = audience
        self.users = users
        self.key = key
        self.kid = "local-" + secrets.token_hex(4)
        self.token_minutes = token_minutes
        self.hasher = PasswordHasher()

    def public_jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def verifier_keys(self) -> dict[str, Any]:
        return {self.kid: self.key.public_key()}

    async def sign_in(self, username: str, password: str) -> str:
        user = self.users.get(username)
        stored = user["password_hash"] if user else _DUMMY_HASH  # same work whether the user exists or not
        try:
            await asyncio.to_thread(self.hasher.verify, stored, password)
        except VerificationError as exc:
            raise Unauthenticated("wrong user name or password") from exc
        if user is None:
            raise Unauthenticated("wrong user name or password")
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": user["id"], "preferred_username": username,
            "iat": now, "exp": now + self.token_minutes * 60, "realm_access": {"roles": user["roles"]},
        }  # fmt: skip
        for optional in ("partner_id", "team"):
            if user.get(optional):
                claims[optional] = user[optional]
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


_DUMMY_HASH = PasswordHasher().hash(secrets.token_urlsafe(16))


# --- demo users for the embedded default ---------------------------------------------------

DEMO_USERS = [
    {"username": "registrar", "roles": ["registrar"]},
    {"username": "lotse", "roles": ["caseworker"], "team": "integration-nord"},
    {"username": "vhs", "roles": ["course_admin"]},
    {"username": "caritas", "roles": ["partner"], "partner_id": "caritas-landsberg"},
    {"username": "jobcenter", "roles": ["partner"], "partner_id": "jobcenter-landsberg"},
    {"username": "vhs-partner", "roles": ["partner"], "partner_id": "vhs-landsberg"},
    {"username": "statistik", "roles": ["analyst"]},
    {"username": "admin", "roles": ["admin"]},
]


def load_or_create_users(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Users with argon2 hashes from ``path``; made once with random passwords, which go to a file
    beside it (readable by its owner only) so that ``make run`` can print the demo sign-ins."""
    credentials_path = path.with_suffix(".credentials.txt")
    if not path.exists():
        hasher = PasswordHasher()
        path.parent.mkdir(parents=True, exist_ok=True)
        users, credentials = {}, {}
        for demo in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            credentials[demo["username"]] = password
            users[demo["username"]] = {**demo, "id": demo["username"], "password_hash": hasher.hash(password)}
        _write_private(path, json.dumps(users, indent=2))
        _write_private(credentials_path, "".join(f"{u} {p}\n" for u, p in credentials.items()))
    users = json.loads(path.read_text())
    credentials = dict(line.split(" ", 1) for line in credentials_path.read_text().splitlines() if " " in line)
    return users, credentials


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --- partner API keys ----------------------------------------------------------------------


@dataclass
class _Cached:
    identity: Identity | None
    until: float


class ApiKeys:
    """Verifies partner API keys with the partners service; answers are cached a few seconds, so a
    revoked key stops working within ``ttl`` seconds."""

    def __init__(self, client: httpx.AsyncClient, partners_url: str, ttl: float = 4.0) -> None:
        self.client = client
        self.partners_url = partners_url
        self.ttl = ttl
        self._cache: dict[str, _Cached] = {}

    async def verify(self, key: str) -> Identity:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is None or cached.until < now:
            cached = _Cached(await self._ask(key), now + self.ttl)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = cached
        if cached.identity is None:
            raise Unauthenticated("API key refused (unknown, revoked or expired)")
        return cached.identity

    async def _ask(self, key: str) -> Identity | None:
        try:
            reply = await self.client.post(
                f"{self.partners_url}/internal/api-keys/verify", json={"key": key}, timeout=3
            )
        except httpx.HTTPError as exc:
            raise Unauthenticated("API keys cannot be checked right now; try again shortly") from exc
        if reply.status_code != 200:
            return None
        body = reply.json()
        return Identity(
            subject=f"{body['partner_id']}/{key[:16]}",
            roles=frozenset({"partner"}),
            partner_id=body["partner_id"],
            kind="api_key",
            scopes=frozenset(body.get("scopes", [])),
        )
