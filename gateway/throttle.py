"""Limits on guessing: sign-in attempts, and failed authentication with bearer tokens and API keys.

**Who the client is.** The socket peer, unless it is one of the trusted proxies (``GATEWAY_TRUSTED_PROXIES``,
addresses and networks): then the X-Forwarded-For hops are read from the right, and the first that is not a trusted
proxy is the client (a client's own X-Forwarded-For is to the left of what the proxies append, so it is never
believed). ``TrustedProxies`` sets that as the request's client, so that everything after it (limits, logs) sees
the same address. IPv6 clients are counted by their /64: one host usually has a whole one.

**Sign-in** (``SignInThrottle``, for ``/auth/token`` and the web UI's form). Failed attempts are counted per minute:

- per client address (``sign_in_failures_per_address``): spraying passwords over many user names from one address
  ends there;
- per user name (``sign_in_failures_per_username``) and for all names together (``sign_in_failures_per_minute``):
  guessing one account's password from many addresses, and spraying from many, end there. These two do not apply
  to an address the user has signed in from before (for ``sign_in_known_address_days``): whoever floods a name
  with wrong passwords from elsewhere locks that name out only for addresses it has not been used from, and only
  while the flood lasts; the user's usual address still signs in.

An attempt counts before its password is checked and is taken back when it succeeds, so that parallel attempts
cannot overrun a budget; an attempt refused by the limit costs no hashing and does not count. Past a budget the
answer is 429 with Retry-After (the rest of the minute).

**Failed authentication** (``FailedAuthThrottle``): a bearer token or API key that is refused counts against the
client address (``auth_failures_per_address`` a minute); past it, 429 before any check, so random keys do not
reach the partners service and random tokens cost no verification. A credential found good a moment ago (the
verifier's and the key cache's) costs no count at all; an expired token (signed by the issuer, so not a guess)
and a partners service that does not answer are not the client's failures. The web UI's session cookie is checked
the same way (past the budget it reads as signed out).

With ``REDIS_URL`` the counts and the known addresses are shared by every replica; in memory each replica has its
own, and a restart forgets the known addresses (their users then meet the ordinary budgets).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Iterable
from typing import Protocol

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from chassis.identity import Identity
from gateway.auth import CannotCheck, Expired, LocalIssuer, Unauthenticated
from gateway.ratelimit import Limiter

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Throttled(Exception):
    """Past a budget: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: float, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))
        self.detail = detail


def networks(entries: Iterable[str]) -> list[Network]:
    """Addresses and networks (``10.244.0.0/16``, ``192.0.2.7``) as networks; raises ValueError for anything else."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


class TrustedProxies:
    """ASGI middleware: behind a trusted proxy, the client named by X-Forwarded-For (and the scheme named by
    X-Forwarded-Proto) become the request's; from anyone else both headers are ignored."""

    def __init__(self, app: ASGIApp, trusted: list[Network]) -> None:
        self.app = app
        self.trusted = trusted
        self._warned = False

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] == "http" and self.trusted and peer and self._trusts(peer[0]):
            hops = [
                hop.strip()
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
                for hop in value.decode("latin-1").split(",")
            ]
            client = peer[0]
            for hop in reversed(hops):
                try:
                    client = str(ipaddress.ip_address(hop))
                except ValueError:
                    break  # not an address: whatever stands left of it is not vouched for either
                if not self._trusts(client):
                    break
            proto = next((v.decode("latin-1").strip() for n, v in scope["headers"] if n == b"x-forwarded-proto"), None)
            scope = {**scope, "client": (client, 0)}
            if proto in ("http", "https"):
                scope["scheme"] = proto
        elif scope["type"] == "http" and not self._warned and any(n == b"x-forwarded-for" for n, _ in scope["headers"]):
            # Behind a proxy that is not listed, every client counts as the proxy's address: one budget for all.
            self._warned = True
            log.warning(
                "X-Forwarded-For from a peer that is not a trusted proxy, ignored; behind a proxy, list it in "
                "GATEWAY_TRUSTED_PROXIES"
            )
        await self.app(scope, receive, send)


def client_key(request: Request) -> str:
    """The client's address as a limit counts it: IPv4 as it is, IPv6 by its /64."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class SignInThrottle:
    """The embedded sign-in's limits (see the module's description)."""

    def __init__(
        self,
        limiter: Limiter,
        *,
        per_address: int,
        per_username: int,
        per_minute: int,
        known_address_days: float,
        secret: str,
    ) -> None:
        self.limiter = limiter
        self.per_address = per_address
        self.per_username = per_username
        self.per_minute = per_minute
        self.known_seconds = known_address_days * 24 * 3600
        # The remembered user name and address pairs outlive the counters: kept as a keyed hash, not as they are.
        self._secret = hashlib.sha256(b"gateway sign-in known addresses\0" + secret.encode()).digest()

    def _known(self, username: str, address: str) -> str:
        pair = f"{username}\0{address}".encode()
        return "signin-known:" + hmac.new(self._secret, pair, hashlib.sha256).hexdigest()[:40]

    async def sign_in(self, issuer: LocalIssuer, username: str, password: str, address: str) -> str:
        """A token, or Unauthenticated, Throttled (a budget is spent) or Busy (the password hashing is)."""
        known = await self.limiter.recalls(self._known(username, address))
        counted: list[str] = []
        refusal: Throttled | None = None
        budgets = [
            (f"signin-fail:address:{address}", self.per_address, True),
            (f"signin-fail:username:{username}", self.per_username, not known),
            ("signin-fail:all", self.per_minute, not known),
        ]
        for key, budget, applies in budgets:
            retry = await self.limiter.hit(key, budget)
            counted.append(key)
            if retry is not None and applies:
                refusal = Throttled(retry, "Too many failed sign-ins; try again later.")
                break
        if refusal is not None:
            await self._forgive(counted)
            raise refusal
        try:
            token = await issuer.sign_in(username, password)
        except Unauthenticated:
            raise  # counted
        except BaseException:  # Busy, or the request went away: no password was found wrong
            await self._forgive(counted)
            raise
        await self._forgive(counted)
        await self.limiter.remember(self._known(username, address), self.known_seconds)
        return token

    async def _forgive(self, keys: list[str]) -> None:
        for key in keys:
            await self.limiter.forgive(key)


class Checker(Protocol):
    def cached(self, credential: str) -> Identity | None: ...

    async def verify(self, credential: str) -> Identity: ...


class FailedAuthThrottle:
    """Counts refused bearer tokens and API keys per client address and refuses past ``per_address`` a minute."""

    def __init__(self, limiter: Limiter, per_address: int) -> None:
        self.limiter = limiter
        self.per_address = per_address

    async def verified(self, checker: Checker, credential: str, address: str) -> Identity:
        """The credential's identity; raises Unauthenticated (CannotCheck when the check itself failed) or
        Throttled."""
        key = f"auth-fail:address:{address}"
        try:
            identity = checker.cached(credential)
        except Unauthenticated:  # refused a moment ago (or malformed): a failure, but no work to hold off
            await self._count(key)
            raise
        if identity is not None:
            return identity
        await self._count(key)  # before the work: parallel attempts cannot overrun the budget
        return await self._forgiven_unless_refused(key, checker.verify(credential))

    async def _count(self, key: str) -> None:
        retry = await self.limiter.hit(key, self.per_address)
        if retry is not None:
            await self.limiter.forgive(key)  # a refused attempt is not counted twice
            raise Throttled(retry, "Too many failed authentications from this address; try again later.")

    async def _forgiven_unless_refused(self, key: str, checking: Awaitable[Identity]) -> Identity:
        try:
            identity = await checking
        except (Expired, CannotCheck):
            await self.limiter.forgive(key)
            raise
        except Unauthenticated:
            raise
        except BaseException:
            await self.limiter.forgive(key)
            raise
        await self.limiter.forgive(key)
        return identity
