"""Who is calling: staff tokens (OpenID Connect, or the embedded sign-in issuing the same shape)
and partner API keys (verified with the partners service, cached briefly).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import OKPAlgorithm

from chassis.http import UNTRUSTED_CERTIFICATE_HINT, untrusted_certificate
from chassis.identity import Identity

ROLES = ("registrar", "caseworker", "course_admin", "partner", "analyst", "privacy_officer", "admin")
#: The roles whose account names a partner organisation (``partner_id``): partner staff, and course admins, whose
#: organisation is the course provider.
PARTNER_ID_ROLES = frozenset({"partner", "course_admin"})
API_KEY_PREFIX = "lip_"
#: Local user names: lower case (as Keycloak keeps them), 2 to 64 characters, no spaces.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
#: Teams and partner ids are slugs such as ``integration-nord`` and ``caritas-landsberg``.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")

T = TypeVar("T")
log = logging.getLogger(__name__)


class Unauthenticated(Exception):
    """No valid credentials; the message says why (never echoing a secret)."""


class Expired(Unauthenticated):
    """A token whose signature is right but whose time is up (a session that ended, not a guess)."""


class CannotCheck(Unauthenticated):
    """The credential cannot be checked right now (the partners service does not answer): not the caller's fault."""


class Busy(Exception):
    """The password hashing is at its bound and enough sign-ins wait for it: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("password hashing is busy")
        self.retry_after = retry_after


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


#: Clock skew allowed on a token's times (exp, iat, nbf).
_LEEWAY = 30
#: How long a verified token is taken as verified, and how many are kept.
_VERIFIED_SECONDS = 30.0
_VERIFIED_TOKENS = 10_000


class TokenVerifier:
    """One check for both paths: signature from the issuer's keys, issuer, audience, expiry, algorithm."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        jwks_url: str | None = None,
        local_keys: dict[str, Any] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms  # never "none": only what is listed is accepted
        self.local_keys = local_keys or {}
        self.jwks_url = jwks_url
        self.jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, ssl_context=ssl_context) if jwks_url else None
        )
        #: sha256 of a verified token -> its claims, identity, whether the embedded issuer signed it, and until when
        #: the verification stands (at most _VERIFIED_SECONDS; the JWKS above is kept five minutes anyway).
        self._verified: dict[bytes, tuple[dict[str, Any], Identity, bool, float]] = {}

    def cached(self, token: str) -> Identity | None:
        """The identity of a token verified a moment ago, without the work; None when it must be verified.

        The signature check is most of the cost of a forwarded request's sign-in. Only what can change is checked
        anew: expiry, and for the embedded issuer's tokens whether the account still honours them (disabled,
        password reset), which raises Unauthenticated."""
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        cached = self._verified.get(digest)
        if cached is None:
            return None
        claims, identity, signed_here, until = cached
        if now < until and now < claims["exp"] + _LEEWAY:  # as jwt.decode: expired at exp + leeway
            if signed_here and not self._local_issuer_honours(claims):
                raise Unauthenticated("token refused: the account was disabled or its password reset")
            return identity
        del self._verified[digest]
        return None

    async def verify(self, token: str) -> Identity:
        identity = self.cached(token)
        if identity is not None:
            return identity
        now = time.time()
        digest = hashlib.sha256(token.encode()).digest()
        claims, signed_here = await self._verify_signature(token)
        identity = identity_from_claims(claims)
        if len(self._verified) >= _VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[digest] = (claims, identity, signed_here, now + _VERIFIED_SECONDS)
        return identity

    def _local_issuer_honours(self, claims: dict[str, Any]) -> bool:
        local = self.local_keys if isinstance(self.local_keys, LocalKeys) else None
        return local is None or local.issuer.honours(claims)

    async def _verify_signature(self, token: str) -> tuple[dict[str, Any], bool]:
        """The token's claims after every check; and whether the embedded issuer signed it."""
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
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "sub"]},
                leeway=_LEEWAY,
            )
            # An ID token (Keycloak: "typ" "ID") tells the client who signed in; it is signed by the same keys and,
            # with the default client id, for the same audience, but it is no bearer token (access tokens: "Bearer").
            if claims.get("typ", "Bearer") != "Bearer":
                raise Unauthenticated(f"token refused: typ {str(claims.get('typ'))[:20]!r} is not an access token")
        except jwt.ExpiredSignatureError as exc:  # PyJWT checks the signature before the times
            raise Expired("token refused: ExpiredSignatureError") from exc
        except jwt.PyJWKClientConnectionError as exc:
            # Not the caller's fault: every token is refused until the keys can be fetched. Say why, once a fetch.
            if untrusted_certificate(exc):
                log.error(
                    "JWKS at %s: the server's certificate is not trusted; %s", self.jwks_url, UNTRUSTED_CERTIFICATE_HINT
                )
            else:
                log.warning("JWKS at %s unreachable: %s", self.jwks_url, exc)
            raise Unauthenticated(f"token refused: {type(exc).__name__}") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token refused: {type(exc).__name__}") from exc
        local = self.local_keys if isinstance(self.local_keys, LocalKeys) else None
        signed_here = local is not None and kid in local
        if signed_here and not self._local_issuer_honours(claims):
            raise Unauthenticated("token refused: the account was disabled or its password reset")
        return claims, signed_here


class AccountRefused(ValueError):
    """A change to the local accounts that is not made: ``field`` is what it is about, ``code`` says why."""

    def __init__(self, field: str, code: str) -> None:
        super().__init__(f"{field}: {code}")
        self.field = field
        self.code = code


class UserFile(dict[str, dict[str, Any]]):
    """The local accounts by user name, and the file they were read from (None: kept in memory only)."""

    def __init__(self, users: dict[str, dict[str, Any]], path: Path | None = None) -> None:
        super().__init__(users)
        self.path = path


class HashingSlots:
    """At most ``concurrency`` argon2 computations at once, and at most ``queue`` sign-ins waiting for one.

    Each computation takes argon2-cffi's 64 MiB and a core for a moment, in a thread: without a bound, a burst of
    sign-ins takes as many threads (and their memory) as the thread pool has. A sign-in that would wait behind a
    full queue is refused at once (``Busy``) rather than queued without end; the admins' account changes
    (``wait=True``) always wait their turn."""

    def __init__(self, concurrency: int = 2, queue: int = 16) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self.waiting = 0

    async def run(self, work: Callable[..., T], *args: Any, wait: bool = False) -> T:
        if not wait and self._slots.locked() and self.waiting >= self.queue:
            raise Busy(retry_after=1)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            future = asyncio.get_running_loop().run_in_executor(None, functools.partial(work, *args))
        except BaseException:
            self._slots.release()
            raise
        # The slot is freed when the thread is done, not when the caller stops waiting: a cancelled request's
        # hash still runs to its end, and counts until then.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(future)


class LocalIssuer:
    """The embedded default's identity provider: argon2-hashed users, EdDSA tokens of Keycloak's shape."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        users: dict[str, dict[str, Any]],
        key: Ed25519PrivateKey,
        token_minutes: int = 15,
        hashing: HashingSlots | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.users = users if isinstance(users, UserFile) else UserFile(users)
        self.key = key
        # Named by the key itself, so that a gateway restarted with the same key (kept in development, set
        # elsewhere) still honours the tokens it signed before.
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = "local-" + hashlib.sha256(raw).hexdigest()[:8]
        self.token_minutes = token_minutes
        self.hasher = PasswordHasher()
        self.hashing = hashing or HashingSlots()
        _dummy_hash()  # made now: the first unknown user's sign-in then costs what every other one does
        self._changing = asyncio.Lock()  # one change to the accounts (and their file) at a time

    def public_jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def verifier_keys(self) -> LocalKeys:
        return LocalKeys(self)

    async def sign_in(self, username: str, password: str) -> str:
        """A token for the account; raises Unauthenticated, or Busy when too many sign-ins wait for the hashing."""
        user = self.users.get(username)
        stored = user["password_hash"] if user else _dummy_hash()  # same work whether the user exists or not
        try:
            await self.hashing.run(self.hasher.verify, stored, password)
        except VerificationError as exc:
            raise Unauthenticated("wrong user name or password") from exc
        if user is None:
            raise Unauthenticated("wrong user name or password")
        if not user.get("active", True):  # said only to whoever knows the password
            raise Unauthenticated("this account is disabled")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user["id"],
            "preferred_username": username,
            "iat": now,
            "exp": now + self.token_minutes * 60,
            "realm_access": {"roles": user["roles"]},
            "session_generation": int(user.get("session_generation", 0)),
        }
        for optional in ("partner_id", "team"):
            if user.get(optional):
                claims[optional] = user[optional]
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def honours(self, claims: dict[str, Any]) -> bool:
        """Whether a token this issuer signed still stands: its account exists (the same one, not a new
        account of the same name), is active, and was not disabled or given a new password since (each
        of which counts the account's session generation up)."""
        user = self.users.get(str(claims.get("preferred_username", "")))
        return (
            user is not None
            and user.get("id") == claims.get("sub")
            and bool(user.get("active", True))
            and claims.get("session_generation", 0) == user.get("session_generation", 0)
        )

    # --- the accounts, managed by admins in the web UI ------------------------------------------

    def accounts(self) -> list[dict[str, Any]]:
        """Every local account by user name, without its password hash."""
        return [
            {
                "username": name,
                "roles": [r for r in ROLES if r in user.get("roles", [])],
                "team": user.get("team"),
                "partner_id": user.get("partner_id"),
                "active": bool(user.get("active", True)),
            }
            for name, user in sorted(self.users.items())
        ]

    async def create_account(
        self, username: str, roles: Iterable[str], team: str | None = None, partner_id: str | None = None
    ) -> str:
        """A new active account; returns its generated password, which is stored only as a hash."""
        record = new_account(username, roles, team, partner_id)
        if username in self.users:  # said before the hashing's work; checked again below, under the lock
            raise AccountRefused("username", "taken")
        password = secrets.token_urlsafe(12)
        record["password_hash"] = await self.hashing.run(self.hasher.hash, password, wait=True)
        async with self._changing:
            if username in self.users:
                raise AccountRefused("username", "taken")
            await self._put(username, record)
        return password

    async def set_active(self, username: str, active: bool, *, by: str) -> None:
        """Disable or enable an account. Disabling ends its sessions; enabling does not revive them."""
        if username == by:
            raise AccountRefused("username", "own_account")  # an admin cannot lock themself out
        async with self._changing:
            user = self._account(username)
            changed = {**user, "active": active}
            if not active:
                changed["session_generation"] = int(user.get("session_generation", 0)) + 1
            await self._put(username, changed)

    async def reset_password(self, username: str) -> str:
        """A new generated password for the account; sessions signed in with the old one end."""
        password = secrets.token_urlsafe(12)
        hashed = await self.hashing.run(self.hasher.hash, password, wait=True)
        async with self._changing:
            user = self._account(username)
            generation = int(user.get("session_generation", 0)) + 1
            await self._put(username, {**user, "password_hash": hashed, "session_generation": generation})
            if self.users.path is not None:  # the demo sign-ins beside it would now be wrong
                await asyncio.to_thread(_forget_demo_password, self.users.path, username)
        return password

    def _account(self, username: str) -> dict[str, Any]:
        user = self.users.get(username)
        if user is None:
            raise AccountRefused("username", "unknown")
        return user

    async def _put(self, username: str, record: dict[str, Any]) -> None:
        """Replace one account and write the file; when writing fails, the account stays as it was."""
        before = self.users.get(username)
        self.users[username] = record
        try:
            if self.users.path is not None:
                await asyncio.to_thread(_replace_private, self.users.path, json.dumps(self.users, indent=2))
        except BaseException:
            if before is None:
                del self.users[username]
            else:
                self.users[username] = before
            raise


class LocalKeys(dict[str, Any]):
    """The embedded issuer's public key by key id, together with the issuer, so that the verifier can ask
    it whether a token it signed still stands (the account may have been disabled since)."""

    def __init__(self, issuer: LocalIssuer) -> None:
        super().__init__({issuer.kid: issuer.key.public_key()})
        self.issuer = issuer


def new_account(username: str, roles: Iterable[str], team: str | None, partner_id: str | None) -> dict[str, Any]:
    """A checked account record without its password hash; raises AccountRefused naming the field."""
    if not USERNAME.fullmatch(username):
        raise AccountRefused("username", "format")
    asked = set(roles)
    if not asked:
        raise AccountRefused("roles", "missing")
    if asked - set(ROLES):
        raise AccountRefused("roles", "unknown")
    if team and not SLUG.fullmatch(team):
        raise AccountRefused("team", "format")
    # Partner staff belong to their organisation, a course admin to their course provider (a partner organisation
    # too, such as vhs-landsberg): the courses service lets them work that provider's courses only.
    if asked & PARTNER_ID_ROLES and not partner_id:
        raise AccountRefused("partner_id", "missing")
    if partner_id and not asked & PARTNER_ID_ROLES:
        raise AccountRefused("partner_id", "without_partner_role")
    if partner_id and not SLUG.fullmatch(partner_id):
        raise AccountRefused("partner_id", "format")
    record: dict[str, Any] = {
        "username": username,
        "roles": [r for r in ROLES if r in asked],
        "id": str(uuid.uuid4()),
        "active": True,
    }
    if team:
        record["team"] = team
    if partner_id:
        record["partner_id"] = partner_id
    return record


@functools.cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against; made with the first embedded issuer, not at import (a
    production-cost hash is a second of CPU in every process that imports the gateway, OpenID Connect or not)."""
    return PasswordHasher().hash(secrets.token_urlsafe(16))


# --- the embedded sign-in's accounts: demo users, or made by an operator ----------------------

#: Where the embedded sign-in keeps its accounts (GATEWAY_LOCAL_USERS_FILE moves it).
DEFAULT_USERS_FILE = Path("var/gateway-users.json")

DEMO_USERS = [
    {"username": "registrar", "roles": ["registrar"]},
    {"username": "lotse", "roles": ["caseworker"], "team": "integration-nord"},
    {"username": "vhs", "roles": ["course_admin"], "partner_id": "vhs-landsberg"},
    {"username": "caritas", "roles": ["partner"], "partner_id": "caritas-landsberg"},
    {"username": "jobcenter", "roles": ["partner"], "partner_id": "jobcenter-landsberg"},
    {"username": "vhs-partner", "roles": ["partner"], "partner_id": "vhs-landsberg"},
    {"username": "statistik", "roles": ["analyst"]},
    {"username": "datenschutz", "roles": ["privacy_officer"]},
    {"username": "admin", "roles": ["admin"]},
]


def load_or_create_users(path: Path, *, demo_data: bool) -> tuple[UserFile, dict[str, str]]:
    """The accounts in ``path`` (argon2 hashes) and the demo sign-ins beside it.

    With ``demo_data`` and no file yet, one demo user per role is made with a random password; the
    passwords go to a file beside it (readable by its owner only) so that ``make run`` can print them.
    Without it the accounts are what the file holds, none when there is no file: the first admin is made
    with ``python -m gateway.auth create-user`` and makes the others in the web UI."""
    if not demo_data:
        return UserFile(json.loads(path.read_text()) if path.exists() else {}, path), {}
    credentials_path = path.with_suffix(".credentials.txt")
    if not path.exists():
        hasher = PasswordHasher()
        path.parent.mkdir(parents=True, exist_ok=True)
        made: dict[str, dict[str, Any]] = {}
        passwords: dict[str, str] = {}
        for demo in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            passwords[str(demo["username"])] = password
            made[str(demo["username"])] = {**demo, "id": demo["username"], "password_hash": hasher.hash(password)}
        _write_private(path, json.dumps(made, indent=2))
        _write_private(credentials_path, "".join(f"{u} {p}\n" for u, p in passwords.items()))
    users = UserFile(json.loads(path.read_text()), path)
    lines = credentials_path.read_text().splitlines() if credentials_path.exists() else []
    credentials = dict(line.split(" ", 1) for line in lines if " " in line)
    return users, credentials


def add_account(
    path: Path, username: str, roles: Iterable[str], team: str | None = None, partner_id: str | None = None
) -> str:
    """A new active account in the users file, made while no gateway has the file open (a running gateway
    keeps its accounts in memory and writes them back whole); returns its generated password."""
    users = json.loads(path.read_text()) if path.exists() else {}
    record = new_account(username, roles, team, partner_id)
    if username in users:
        raise AccountRefused("username", "taken")
    password = secrets.token_urlsafe(12)
    record["password_hash"] = PasswordHasher().hash(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_private(path, json.dumps({**users, username: record}, indent=2))
    return password


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _replace_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``path`` (owner only) and rename it over ``path``: a reader, or
    a crash halfway, sees the old file or the new one, never a torn one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # made 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _forget_demo_password(users_path: Path, username: str) -> None:
    """Drop a demo user's line from the credentials file once that password no longer works."""
    credentials_path = users_path.with_suffix(".credentials.txt")
    if not credentials_path.exists():
        return
    lines = credentials_path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.split(" ", 1)[0] != username]
    if kept != lines:
        _replace_private(credentials_path, "".join(kept))


# --- partner API keys ----------------------------------------------------------------------


#: A partner API key's shape (the partners service makes them so): anything else is refused without asking.
API_KEY_SHAPE = re.compile(r"^lip_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")
#: The partners service's answers that mean "not a valid key"; any other is "cannot check now".
_REFUSALS = {401, 403, 404, 422}


@dataclass
class _Cached:
    identity: Identity
    until: float


class ApiKeys:
    """Verifies partner API keys with the partners service. A valid key's answer is kept ``ttl`` seconds, so a
    revoked key stops working within that; a refusal is kept ``refused_ttl`` seconds, and one lookup serves every
    request that asks about the same key meanwhile, so that repeating a wrong key asks the service once. (Random
    keys, each new, are held off by the gateway's failed-authentication limit before they get here.)"""

    def __init__(
        self, client: httpx.AsyncClient, partners_url: str, ttl: float = 4.0, refused_ttl: float = 30.0
    ) -> None:
        self.client = client
        self.partners_url = partners_url
        self.ttl = ttl
        self.refused_ttl = refused_ttl
        self._cache: dict[str, _Cached] = {}
        self._refused: dict[str, float] = {}  # apart, so that a flood of wrong keys does not push out valid ones
        self._asking: dict[str, asyncio.Future[Identity | None]] = {}  # lookups under way, by key

    def cached(self, key: str) -> Identity | None:
        """The identity of a key verified a moment ago, without asking; None when it must be asked about.
        Raises Unauthenticated for a malformed key or one refused a moment ago."""
        if not API_KEY_SHAPE.fullmatch(key):
            raise Unauthenticated("API key refused (not an API key of this platform)")
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit.until >= now:
            return hit.identity
        refused_until = self._refused.get(key)
        if refused_until is not None and refused_until >= now:
            raise Unauthenticated("API key refused (unknown, revoked or expired)")
        return None

    async def verify(self, key: str) -> Identity:
        identity = self.cached(key)
        if identity is not None:
            return identity
        asking = self._asking.get(key)
        if asking is None:
            # Its own task: a caller that goes away does not end the lookup the others wait for.
            asking = asyncio.ensure_future(self._ask(key))
            self._asking[key] = asking
            asking.add_done_callback(lambda done: self._settled(key, done))
        answer = await asyncio.shield(asking)
        if answer is None:
            raise Unauthenticated("API key refused (unknown, revoked or expired)")
        return answer

    def _settled(self, key: str, done: asyncio.Future[Identity | None]) -> None:
        self._asking.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every caller may have gone away

    async def _ask(self, key: str) -> Identity | None:
        """The key's identity, or None when the service refuses it; both are kept. Raises CannotCheck."""
        try:
            reply = await self.client.post(
                f"{self.partners_url}/internal/api-keys/verify", json={"key": key}, timeout=3
            )
        except httpx.HTTPError as exc:
            raise CannotCheck("API keys cannot be checked right now; try again shortly") from exc
        now = time.monotonic()
        if reply.status_code in _REFUSALS:
            if len(self._refused) > 10_000:
                self._refused.clear()
            self._refused[key] = now + self.refused_ttl
            return None
        if reply.status_code != 200:
            raise CannotCheck("API keys cannot be checked right now; try again shortly")
        body = reply.json()
        identity = Identity(
            subject=f"{body['partner_id']}/{key[:16]}",
            roles=frozenset({"partner"}),
            partner_id=body["partner_id"],
            kind="api_key",
            scopes=frozenset(body.get("scopes", [])),
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = _Cached(identity, now + self.ttl)
        return identity


# --- the command line: the embedded sign-in's first account ----------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.auth create-user NAME --role admin``: an account for the embedded sign-in.

    Run it before the gateway starts (or restart the gateway after): the gateway reads the file once."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gateway.auth", description="The embedded sign-in's accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="add an account and print its generated password once")
    create.add_argument("username")
    create.add_argument(
        "--role", dest="roles", action="append", choices=ROLES, required=True, help="repeat for several roles"
    )
    create.add_argument("--team", help="a caseworker's team, e.g. integration-nord")
    create.add_argument(
        "--partner-id",
        help="a partner user's organisation or a course admin's provider, e.g. caritas-landsberg, vhs-landsberg",
    )
    create.add_argument(
        "--users-file",
        type=Path,
        default=Path(os.environ.get("GATEWAY_LOCAL_USERS_FILE", DEFAULT_USERS_FILE)),
        help="default: GATEWAY_LOCAL_USERS_FILE, else %(default)s",
    )
    args = parser.parse_args(argv)
    try:
        password = add_account(args.users_file, args.username, args.roles, args.team, args.partner_id)
    except AccountRefused as refused:
        parser.exit(2, f"not created: {refused}\n")
    except (OSError, ValueError) as exc:  # an unreadable or unwritable users file
        parser.exit(1, f"not created: {args.users_file}: {exc}\n")
    print(f"created {args.username} in {args.users_file}; password (shown once): {password}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
