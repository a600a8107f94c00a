"""The web UI's sign-in at the city's OpenID provider (Keycloak): the authorization code flow with PKCE (S256),
``state`` and ``nonce``, as a confidential client (with a client secret) or a public one (without).

Nothing of a sign-in in progress lives in server memory: state, nonce and the PKCE verifier travel in a short-lived
cookie that is encrypted and authenticated under a key derived from the gateway's cookie secret
(``GATEWAY_COOKIE_SECRET``), so any gateway replica can finish a sign-in that another began. The session
afterwards is the provider's access token in the same cookie the embedded sign-in sets, checked on every request
by the same ``TokenVerifier`` as a bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chassis.http import UNTRUSTED_CERTIFICATE_HINT, untrusted_certificate
from chassis.identity import Identity
from gateway.auth import TokenVerifier, Unauthenticated

log = logging.getLogger(__name__)

#: The sign-in in progress (state, nonce, PKCE verifier); only the callback path receives it.
LOGIN_COOKIE = "lip_oidc"
LOGIN_COOKIE_PATH = "/ui/oidc/"
LOGIN_SECONDS = 600
#: The refresh token, sealed; only the sign-in page receives it, where an expired session is renewed.
REFRESH_COOKIE = "lip_refresh"
REFRESH_COOKIE_PATH = "/ui/sign-in"
#: When the provider does not say how long its refresh token lives: one working day.
DEFAULT_REFRESH_SECONDS = 8 * 3600
#: Browsers keep cookies of at most 4096 bytes (name and value); a larger token would silently not be stored.
MAX_TOKEN_BYTES = 4000
DISCOVERY_SECONDS = 3600


class SignInFailed(Exception):
    """A sign-in that cannot finish. ``reason`` is for the log: it never holds a token, code or secret."""

    def __init__(self, reason: str, *, unreachable: bool = False, untrusted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The provider cannot be reached; ``untrusted``: it can, but its certificate is not trusted (a setting).
        self.unreachable = unreachable or untrusted
        self.untrusted = untrusted


@dataclass(frozen=True)
class Provider:
    """What discovery says about the provider, as far as the relying party needs it."""

    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


@dataclass(frozen=True)
class Attempt:
    """One sign-in between the redirect to the provider and its callback."""

    state: str
    nonce: str
    code_verifier: str
    next: str
    redirect_uri: str

    @property
    def code_challenge(self) -> str:
        """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
        digest = hashlib.sha256(self.code_verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    """A finished sign-in: who, the access token for the session cookie, and how long each part lives."""

    identity: Identity
    subject: str
    access_token: str
    expires_in: int
    refresh_token: str | None
    refresh_expires_in: int


class Sealer:
    """Encrypts and authenticates small JSON values for cookies (Fernet: AES-CBC with HMAC-SHA256).

    The key is derived (HKDF) from the gateway's cookie secret with its own purpose label, so every replica shares
    it, and it opens nothing that was sealed for another purpose.
    """

    def __init__(self, secret: str, purpose: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: dict[str, Any], lifetime: int) -> str:
        return self._fernet.encrypt(json.dumps(value | {"until": int(time.time()) + lifetime}).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, Any] | None:
        """The value, or None when missing, forged, tampered with or past its lifetime."""
        if not sealed:
            return None
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            return None
        if not isinstance(value, dict) or not isinstance(value.get("until"), int) or value["until"] < time.time():
            return None
        return value


class RelyingParty:
    """The gateway as an OpenID Connect client of the provider that issues its staff tokens."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scopes: str,
        verifier: TokenVerifier,
        secret: str,
        public_url: str | None,
        display_name: str = "Keycloak",
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = scopes if "openid" in scopes.split() else f"openid {scopes}"
        self.verifier = verifier
        self.public_url = public_url.rstrip("/") if public_url else None
        self.display_name = display_name
        self._sealer = Sealer(secret, "landsberg-gateway/ui-oidc-cookies/v1")
        self._provider: tuple[float, Provider] | None = None

    def __repr__(self) -> str:  # never the client secret
        return f"RelyingParty(issuer={self.issuer!r}, client_id={self.client_id!r})"

    # --- discovery -------------------------------------------------------------------------

    async def provider(self, client: httpx.AsyncClient) -> Provider:
        """The provider's endpoints from its discovery document (OpenID Connect Discovery 1.0), kept an hour."""
        if self._provider is not None and time.monotonic() - self._provider[0] < DISCOVERY_SECONDS:
            return self._provider[1]
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            reply = await client.get(url, timeout=5)
        except httpx.HTTPError as exc:
            if untrusted_certificate(exc):
                raise SignInFailed(
                    f"discovery at {url}: the server's certificate is not trusted; {UNTRUSTED_CERTIFICATE_HINT}",
                    untrusted=True,
                ) from exc
            raise SignInFailed(f"discovery at {url} failed: {type(exc).__name__}", unreachable=True) from exc
        try:
            document = reply.json() if reply.status_code == 200 else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise SignInFailed(f"discovery at {url} answered {reply.status_code}", unreachable=True)
        # Discovery §4.3: the document must name exactly the issuer asked for, or tokens would not match either.
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise SignInFailed(f"discovery names issuer {document.get('issuer')!r}, not {self.issuer!r}")
        try:
            found = Provider(
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                end_session_endpoint=document.get("end_session_endpoint"),
            )
        except KeyError as exc:
            raise SignInFailed(f"discovery document lacks {exc.args[0]}") from exc
        self._provider = (time.monotonic(), found)
        return found

    # --- the flow --------------------------------------------------------------------------

    def redirect_uri(self, base_url: str) -> str:
        """The callback address registered at the provider; the request's own only where no public URL is set."""
        return f"{self.public_url or base_url.rstrip('/')}/ui/oidc/callback"

    def begin(self, next_path: str, redirect_uri: str) -> Attempt:
        return Attempt(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            next=next_path,
            redirect_uri=redirect_uri,
        )

    async def authorization_url(self, client: httpx.AsyncClient, attempt: Attempt) -> str:
        provider = await self.provider(client)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": attempt.redirect_uri,
                "scope": self.scopes,
                "state": attempt.state,
                "nonce": attempt.nonce,
                "code_challenge": attempt.code_challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{separator}{query}"

    def seal_attempt(self, attempt: Attempt) -> str:
        return self._sealer.seal({"attempt": asdict(attempt)}, LOGIN_SECONDS)

    def open_attempt(self, sealed: str | None) -> Attempt | None:
        value = self._sealer.open(sealed)
        try:
            return Attempt(**value["attempt"]) if value else None
        except (KeyError, TypeError):
            return None

    async def finish(self, client: httpx.AsyncClient, attempt: Attempt, code: str) -> Session:
        """Exchanges the code (with the PKCE verifier) and checks the ID token and the access token."""
        tokens = await self._token_request(
            client,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": attempt.redirect_uri,
                "code_verifier": attempt.code_verifier,
            },
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the token response has no ID token (is the scope 'openid' granted?)")
        id_claims = await self._id_token_claims(id_token, attempt.nonce)
        return await self._session(tokens, expected_subject=str(id_claims["sub"]))

    async def refresh(self, client: httpx.AsyncClient, sealed: str | None) -> Session | None:
        """A new session from the sealed refresh token, or None when there is none or the provider refuses it."""
        value = self._sealer.open(sealed)
        if not value or not isinstance(value.get("refresh_token"), str):
            return None
        try:
            tokens = await self._token_request(
                client, {"grant_type": "refresh_token", "refresh_token": value["refresh_token"]}
            )
            return await self._session(
                tokens, expected_subject=str(value.get("sub")), keep_refresh=value["refresh_token"]
            )
        except SignInFailed as exc:
            log.info("UI: session not renewed: %s", exc.reason)
            return None

    def seal_refresh(self, session: Session) -> str | None:
        if session.refresh_token is None:
            return None
        return self._sealer.seal(
            {"refresh_token": session.refresh_token, "sub": session.subject}, session.refresh_expires_in
        )

    async def end_session_url(self, client: httpx.AsyncClient, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout at the provider, when it offers one."""
        try:
            provider = await self.provider(client)
        except SignInFailed:
            return None
        if not provider.end_session_endpoint:
            return None
        query = urlencode({"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri})
        separator = "&" if "?" in provider.end_session_endpoint else "?"
        return f"{provider.end_session_endpoint}{separator}{query}"

    # --- the parts -------------------------------------------------------------------------

    async def _token_request(self, client: httpx.AsyncClient, form: dict[str, str]) -> dict[str, Any]:
        provider = await self.provider(client)
        auth: httpx.Auth | None = None
        if self._client_secret is not None:
            # client_secret_basic; RFC 6749 §2.3.1 form-encodes both parts before Base64.
            auth = httpx.BasicAuth(quote_plus(self.client_id), quote_plus(self._client_secret))
        else:
            form = form | {"client_id": self.client_id}  # a public client names itself; PKCE binds the code
        try:
            reply = await client.post(
                provider.token_endpoint,
                data=form,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                timeout=10,
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            if untrusted_certificate(exc):
                raise SignInFailed(
                    f"token endpoint {provider.token_endpoint}: the server's certificate is not "
                    f"trusted; {UNTRUSTED_CERTIFICATE_HINT}",
                    untrusted=True,
                ) from exc
            raise SignInFailed(f"token endpoint unreachable: {type(exc).__name__}", unreachable=True) from exc
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SignInFailed(f"token endpoint answered {reply.status_code} without JSON")
        if reply.status_code != 200:
            error = str(body.get("error", "unknown"))[:64]
            description = str(body.get("error_description", ""))[:200]
            raise SignInFailed(f"token endpoint refused ({reply.status_code} {error}): {description}")
        if not isinstance(body.get("access_token"), str):
            raise SignInFailed("the token response has no access token")
        return body

    async def _id_token_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7: signature from the provider's keys, issuer, audience (this client),
        expiry, and the nonce of this sign-in, so an ID token made for another sign-in is not accepted here."""
        verifier = self.verifier
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") not in verifier.algorithms:
                raise SignInFailed(f"ID token algorithm {header.get('alg')!r} not accepted")
            if header.get("kid") in verifier.local_keys:
                key = verifier.local_keys[header["kid"]]
            elif verifier.jwks is not None:
                key = (await asyncio.to_thread(verifier.jwks.get_signing_key_from_jwt, id_token)).key
            else:
                raise SignInFailed("ID token signed by an unknown key")
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=verifier.algorithms,
                audience=self.client_id,
                issuer=verifier.issuer,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"ID token refused: {type(exc).__name__}") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise SignInFailed("ID token nonce does not match this sign-in")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInFailed("ID token has several audiences and another authorized party")
        return claims

    async def _session(
        self, tokens: dict[str, Any], *, expected_subject: str, keep_refresh: str | None = None
    ) -> Session:
        access_token: str = tokens["access_token"]
        if len(access_token) > MAX_TOKEN_BYTES:
            # A cookie this large is dropped by browsers without a word; say so instead of a sign-in loop.
            raise SignInFailed(
                f"the access token has {len(access_token)} bytes, more than a cookie holds ({MAX_TOKEN_BYTES}); "
                "remove client scopes or mappers the gateway does not need"
            )
        try:
            identity = await self.verifier.verify(access_token)
        except Unauthenticated as exc:
            raise SignInFailed(f"the access token is not accepted: {exc}") from exc
        # Verified just above; read again only for the two claims the Identity does not keep.
        claims = jwt.decode(access_token, options={"verify_signature": False})
        if str(claims.get("sub")) != expected_subject:
            raise SignInFailed("the access token and the ID token name different subjects")
        expires_in = int(claims["exp"]) - int(time.time())
        if expires_in <= 0:
            raise SignInFailed("the access token has expired already")
        refresh_token = tokens.get("refresh_token") if isinstance(tokens.get("refresh_token"), str) else keep_refresh
        refresh_expires_in = tokens.get("refresh_expires_in")
        if not isinstance(refresh_expires_in, int) or refresh_expires_in <= 0:
            refresh_expires_in = DEFAULT_REFRESH_SECONDS
        return Session(
            identity=identity,
            subject=expected_subject,
            access_token=access_token,
            expires_in=expires_in,
            refresh_token=refresh_token,
            refresh_expires_in=refresh_expires_in,
        )
