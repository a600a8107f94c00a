"""The signed identity: the gateway's for one audience and a few seconds, a service's only as that service,
and the plain headers a service makes of it (the team travels with the roles; no plain identity header a
client sent survives next to a token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import Message

from chassis import identity
from chassis.identity import (
    HEADER,
    PLAIN_HEADERS,
    Identity,
    InternalIdentity,
    Signer,
    plain_headers,
    service_token,
    sign,
    verify,
)

GATEWAY_KEY = Ed25519PrivateKey.generate()
REFERRAL_KEY = Ed25519PrivateKey.generate()
#: What registration trusts: the gateway, and referral for its internal route.
TRUSTED = {"gateway": [GATEWAY_KEY.public_key()], "referral": [REFERRAL_KEY.public_key()]}
LOTSE = Identity(subject="lotse", roles=frozenset({"caseworker"}), team="integration-nord")
ADMIN = Identity(subject="admin", roles=frozenset({"admin"}))


def for_registration(token: str) -> Identity:
    return verify(token, audience="registration", trusted=TRUSTED)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_team_is_signed_and_forwarded_as_a_plain_header() -> None:
    assert for_registration(sign(LOTSE, GATEWAY_KEY, audience="registration")) == LOTSE
    assert plain_headers(LOTSE) == [
        (b"x-actor", b"user:lotse"),
        (b"x-role", b"caseworker"),
        (b"x-team", b"integration-nord"),
    ]
    assert b"x-team" not in dict(plain_headers(ADMIN)), "no team, no header"
    assert b"x-team" in PLAIN_HEADERS, "the middleware drops a client's X-Team like the other identity headers"


def test_the_token_names_issuer_audience_id_and_a_short_life() -> None:
    token = sign(LOTSE, GATEWAY_KEY, audience="referral", now=1_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == ("gateway", "referral", 30)
    assert len(claims["jti"]) == 32
    assert (
        claims["jti"]
        != jwt.decode(sign(LOTSE, GATEWAY_KEY, audience="referral"), options={"verify_signature": False})["jti"]
    )


def test_a_token_for_another_service_is_refused() -> None:
    with pytest.raises(jwt.InvalidAudienceError):
        for_registration(sign(ADMIN, GATEWAY_KEY, audience="referral"))


def test_an_expired_token_is_refused() -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        for_registration(sign(ADMIN, GATEWAY_KEY, audience="registration", now=time.time() - 60))


def test_a_key_nobody_trusts_is_refused_whatever_issuer_it_claims() -> None:
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(jwt.InvalidSignatureError):
        for_registration(sign(ADMIN, stranger, audience="registration"))
    with pytest.raises(jwt.InvalidSignatureError):
        for_registration(service_token(stranger, "referral", "registration"))
    # An issuer registration does not know, with its own key: refused before any key is tried.
    with pytest.raises(jwt.InvalidIssuerError):
        for_registration(service_token(stranger, "courses", "registration"))
    with pytest.raises(jwt.InvalidIssuerError):
        for_registration(jwt.encode({"sub": "admin", "aud": "registration"}, stranger, algorithm="EdDSA"))


def test_a_service_signs_as_itself_and_cannot_claim_a_user_a_role_or_a_partner() -> None:
    assert for_registration(service_token(REFERRAL_KEY, "referral", "registration")) == Identity(
        subject="referral", kind="service"
    )
    forged = Identity(subject="admin", roles=frozenset({"admin"}), partner_id="caritas", kind="user")
    seen = for_registration(sign(forged, REFERRAL_KEY, audience="registration", issuer="referral"))
    assert (seen.kind, seen.subject, seen.roles, seen.partner_id) == ("service", "referral", frozenset(), None)
    assert seen.actor == "service:referral"
    # Referral's key cannot pass for the gateway's, nor the gateway speak for a service.
    with pytest.raises(jwt.InvalidSignatureError):
        for_registration(sign(ADMIN, REFERRAL_KEY, audience="registration", issuer="gateway"))
    with pytest.raises(jwt.InvalidTokenError):
        for_registration(sign(Identity("referral", kind="service"), GATEWAY_KEY, audience="registration"))


def test_alg_none_and_hmac_with_the_public_key_as_secret_are_refused() -> None:
    now = int(time.time())
    claims = {
        "iss": "gateway",
        "aud": "registration",
        "sub": "admin",
        "roles": ["admin"],
        "jti": "x",
        "iat": now,
        "exp": now + 30,
    }
    payload = b64url(json.dumps(claims).encode())
    unsigned = f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
    with pytest.raises(jwt.InvalidAlgorithmError):
        for_registration(unsigned)
    # Algorithm confusion: HS256 with the (public) verification key as the HMAC secret.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    for secret in (
        GATEWAY_KEY.public_key().public_bytes_raw(),
        identity.encode_public(GATEWAY_KEY.public_key()).encode(),
    ):
        signature = b64url(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        with pytest.raises(jwt.InvalidAlgorithmError):
            for_registration(f"{header}.{payload}.{signature}")
    with pytest.raises(jwt.InvalidTokenError):
        for_registration("not a token")


def test_development_keys_are_the_same_in_every_process_and_differ_per_name() -> None:
    assert (
        identity.development_key("gateway").private_bytes_raw()
        == identity.development_key("gateway").private_bytes_raw()
    )
    assert (
        identity.development_key("gateway").private_bytes_raw()
        != identity.development_key("referral").private_bytes_raw()
    )


def test_keys_decode_to_32_bytes_or_are_refused() -> None:
    encoded = identity.encode_public(GATEWAY_KEY.public_key())
    assert identity.public_key(encoded).public_bytes_raw() == GATEWAY_KEY.public_key().public_bytes_raw()
    for wrong in ("not base64!", base64.b64encode(b"x" * 31).decode(), base64.b64encode(b"x" * 64).decode()):
        with pytest.raises(ValueError):
            identity.raw_key(wrong)


def test_the_signer_reuses_a_token_per_identity_and_audience_for_a_few_seconds() -> None:
    signer = Signer(GATEWAY_KEY, "gateway", reuse_seconds=10)
    first = signer.token(LOTSE, "referral")
    assert signer.token(LOTSE, "referral") == first
    assert signer.token(LOTSE, "registration") != first
    assert signer.token(ADMIN, "referral") != first
    own = Signer(REFERRAL_KEY, "referral").as_itself("registration")
    assert for_registration(own).actor == "service:referral"


# --- the middleware --------------------------------------------------------------------------------------


async def seen_headers(
    headers: list[tuple[bytes, bytes]], *, required: bool = False, path: str = "/api/v1/cases"
) -> list[tuple[bytes, bytes]]:
    """The headers the service behind the middleware gets, or the refusal's status as ``[(b"status", ...)]``."""
    seen: list[tuple[bytes, bytes]] = []

    async def service(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 204:
            seen.append((b"status", str(message["status"]).encode()))

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
    await InternalIdentity(service, audience="registration", trusted=TRUSTED, required=required)(scope, receive, send)
    return seen


def token_header(token: str) -> tuple[bytes, bytes]:
    return (HEADER.encode(), token.encode())


async def test_a_token_replaces_every_plain_identity_header_the_client_sent() -> None:
    made_up = [(b"x-team", b"integration-sued"), (b"x-role", b"admin"), (b"x-actor", b"user:admin")]
    token = sign(LOTSE, GATEWAY_KEY, audience="registration")
    seen = await seen_headers([*made_up, (b"accept", b"*/*"), token_header(token)])
    identity_headers = [(k, v) for k, v in seen if k in PLAIN_HEADERS]
    assert sorted(identity_headers) == sorted(plain_headers(LOTSE))
    assert (b"accept", b"*/*") in seen


async def test_without_a_token_plain_headers_pass_only_where_identity_is_not_required() -> None:
    sent = [(b"x-team", b"integration-sued"), (b"x-role", b"caseworker")]
    assert await seen_headers(sent) == sent, "development and tests"
    assert await seen_headers(sent, required=True) == [(b"status", b"401")]
    forged = sign(ADMIN, Ed25519PrivateKey.generate(), audience="registration")
    assert await seen_headers([*sent, token_header(forged)]) == [(b"status", b"401")]
    elsewhere = sign(ADMIN, GATEWAY_KEY, audience="referral")
    assert await seen_headers([*sent, token_header(elsewhere)]) == [(b"status", b"401")]


async def test_internal_routes_take_a_service_identity_and_public_routes_never_do() -> None:
    internal = "/api/internal/persons/p/contact"
    referral = token_header(service_token(REFERRAL_KEY, "referral", "registration"))
    gateway = token_header(sign(ADMIN, GATEWAY_KEY, audience="registration"))
    assert (b"x-actor", b"service:referral") in await seen_headers([referral], path=internal)
    assert await seen_headers([gateway], path=internal) == [(b"status", b"403")]
    assert await seen_headers([(b"x-actor", b"service:referral")], path=internal) == [(b"status", b"401")], (
        "an internal route needs a token even where identity is not required"
    )
    assert await seen_headers([referral]) == [(b"status", b"403")], "referral's identity reaches no public route"


# --- rotating a key pair without an outage (deploy/README.md, section 12) ----------------------------------------


def test_during_a_rotation_tokens_of_the_old_and_the_new_key_are_accepted_and_after_it_only_the_new() -> None:
    old, new = GATEWAY_KEY, Ed25519PrivateKey.generate()
    by_old, by_new = sign(LOTSE, old, audience="registration"), sign(LOTSE, new, audience="registration")
    before = {"gateway": [old.public_key()]}
    during = {"gateway": [new.public_key(), old.public_key()]}  # step 1: every service trusts both
    after = {"gateway": [new.public_key()]}  # step 3: the old one removed
    assert verify(by_old, audience="registration", trusted=before) == LOTSE
    with pytest.raises(jwt.InvalidSignatureError):
        verify(by_new, audience="registration", trusted=before)  # why the services come first
    assert verify(by_old, audience="registration", trusted=during) == LOTSE
    assert verify(by_new, audience="registration", trusted=during) == LOTSE
    assert verify(by_new, audience="registration", trusted=after) == LOTSE
    with pytest.raises(jwt.InvalidSignatureError):
        verify(by_old, audience="registration", trusted=after)
    # Every key of the list is checked as strictly as one: another audience or an expired token is refused.
    with pytest.raises(jwt.InvalidAudienceError):
        verify(sign(LOTSE, old, audience="referral"), audience="registration", trusted=during)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(
            sign(LOTSE, old, audience="registration", now=time.time() - 300), audience="registration", trusted=during
        )
    # A key trusted for one issuer is not trusted for another.
    forged = service_token(old, "referral", "registration")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, audience="registration", trusted=during | {"referral": [REFERRAL_KEY.public_key()]})


# --- a token verified once per service (issue 16) -------------------------------------------------------------------


def test_a_service_checks_a_reused_token_once_and_refuses_it_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    async def app(*_: Any) -> None:
        pass

    middleware = InternalIdentity(app, audience="registration", trusted=TRUSTED, required=True)
    checks: list[str] = []
    real = identity.verify_until

    def counted(token: str, **kwargs: Any) -> tuple[Identity, float]:
        checks.append(token)
        return real(token, **kwargs)

    monkeypatch.setattr(identity, "verify_until", counted)
    # Accepted for two more seconds (its expiry and the leeway), then refused.
    token = sign(
        LOTSE,
        GATEWAY_KEY,
        audience="registration",
        now=time.time() - identity.TTL_SECONDS - identity.LEEWAY_SECONDS + 2,
    )
    assert middleware.identity(token) == middleware.identity(token) == LOTSE
    assert len(checks) == 1, "the gateway reuses a token for seconds: its signature is checked once"
    time.sleep(2.5)
    with pytest.raises(jwt.ExpiredSignatureError):
        middleware.identity(token)
    assert len(checks) == 2, "an expired token is checked again, and refused"
    with pytest.raises(jwt.InvalidTokenError):
        middleware.identity(sign(ADMIN, GATEWAY_KEY, audience="referral"))
