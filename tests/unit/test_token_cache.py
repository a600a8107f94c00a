"""The gateway takes a token it verified a moment ago as verified, but never past its expiry, never for
longer than a short while, and never for an account that was disabled since."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import auth
from gateway.auth import LocalIssuer, TokenVerifier, Unauthenticated, load_or_create_users


def issuer_and_verifier(path: Path) -> tuple[LocalIssuer, TokenVerifier]:
    users, _ = load_or_create_users(path, demo_data=True)
    issuer = LocalIssuer(
        "http://gateway/auth", "integration-gateway", users, Ed25519PrivateKey.generate(), token_minutes=1
    )
    verifier = TokenVerifier(
        issuer=issuer.issuer, audience=issuer.audience, algorithms=["EdDSA"], local_keys=issuer.verifier_keys()
    )
    return issuer, verifier


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_verified_token_is_not_verified_again_until_a_while_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, verifier = issuer_and_verifier(tmp_path / "users.json")
    password = await issuer.create_account("s.rahimi", ["caseworker"])
    token = await issuer.sign_in("s.rahimi", password)
    checks = 0
    decode = jwt.decode

    def counting_decode(*args: object, **kwargs: object) -> object:
        nonlocal checks
        checks += 1
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("gateway.auth.jwt.decode", counting_decode)
    clock = Clock()
    monkeypatch.setattr("gateway.auth.time.time", clock)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first and checks == 1, "the second time from the cache"
    clock.now += auth._VERIFIED_SECONDS + 1
    assert await verifier.verify(token) == first and checks == 2, "verified again after a while"


async def test_an_expired_token_is_refused_though_it_was_verified_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, verifier = issuer_and_verifier(tmp_path / "users.json")
    password = await issuer.create_account("s.rahimi", ["caseworker"])
    token = await issuer.sign_in("s.rahimi", password)
    await verifier.verify(token)
    clock = Clock()
    clock.now = jwt.decode(token, options={"verify_signature": False})["exp"] + auth._LEEWAY + 1
    # jwt itself reads the clock through datetime: let it see the same moment.
    monkeypatch.setattr(jwt.api_jwt, "datetime", _frozen_datetime(clock.now - time.time()))
    monkeypatch.setattr("gateway.auth.time.time", clock)
    with pytest.raises(Unauthenticated, match="ExpiredSignatureError"):
        await verifier.verify(token)


async def test_a_disabled_account_is_refused_at_once_though_its_token_was_verified(tmp_path: Path) -> None:
    issuer, verifier = issuer_and_verifier(tmp_path / "users.json")
    password = await issuer.create_account("s.rahimi", ["caseworker"])
    token = await issuer.sign_in("s.rahimi", password)
    await verifier.verify(token)
    await verifier.verify(token)
    await issuer.set_active("s.rahimi", False, by="admin")
    with pytest.raises(Unauthenticated, match="disabled"):
        await verifier.verify(token)


def _frozen_datetime(offset: float) -> type:
    import datetime as real

    class Shifted(real.datetime):
        @classmethod
        def now(cls, tz: real.tzinfo | None = None) -> Shifted:
            moment = real.datetime.now(tz) + real.timedelta(seconds=offset)
            return cls.fromtimestamp(moment.timestamp(), tz)

    return Shifted
