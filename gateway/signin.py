"""The embedded sign-in (development, and a city without an identity provider): ``/auth/token`` and its keys."""

from __future__ import annotations

import base64
import contextlib
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from chassis.errors import Problem
from gateway.auth import LocalIssuer
from gateway.settings import GatewaySettings
from gateway.throttle import SignInThrottle, client_key

router = APIRouter(include_in_schema=False)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


@router.post("/auth/token")
async def token(body: SignIn, request: Request) -> Response:
    """The embedded sign-in: a bearer token of the same shape the city's Keycloak issues. Refusals (Unauthenticated,
    Throttled, Busy) are raised to the app's handlers (``gateway.admission.install``)."""
    issuer: LocalIssuer | None = request.app.state.issuer
    if issuer is None:
        raise Problem(404, "Sign in with the city's identity provider.", kind="not-found")
    sign_ins: SignInThrottle = request.app.state.sign_ins
    access_token = await sign_ins.sign_in(issuer, body.username, body.password, client_key(request))
    return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": issuer.token_minutes * 60})


@router.get("/auth/jwks.json")
async def jwks(request: Request) -> Response:
    issuer: LocalIssuer | None = request.app.state.issuer
    return JSONResponse(issuer.public_jwks() if issuer else {"keys": []})


def local_key(settings: GatewaySettings) -> Ed25519PrivateKey:
    if settings.local_signing_key is not None:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(settings.local_signing_key.get_secret_value()))
    # Development only (the settings refuse an unset key elsewhere). Kept in a file, not made per process: `make run`
    # is a small city's production, and a gateway that crashed and came back must not sign every user out (the
    # fault-injection suite, tests/faults, found every token refused after a restart).
    path = settings.local_users_file.with_name("gateway-token-signing.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        draft = path.with_name(f"{path.name}.{os.getpid()}.new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(raw).decode())
        try:
            with contextlib.suppress(FileExistsError):  # another gateway made it first: use theirs
                os.link(draft, path)  # whole or not at all: nobody reads a half-written key
        finally:
            draft.unlink()
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))
