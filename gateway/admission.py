"""Who calls, and whether they may: credentials, the role policy, the rate limit. Refusals are raised.

``Gate.admitted`` is the public API's check before anything is forwarded; ``install`` turns the sign-in's and the
credential checks' exceptions into Problem Details, in one place for every route that raises them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chassis.errors import Problem, problem_response
from chassis.identity import Identity
from gateway.auth import Busy, CannotCheck, Unauthenticated
from gateway.forward import refused
from gateway.throttle import FailedAuthThrottle, Throttled, client_key


@dataclass(frozen=True)
class RateLimits:
    """Requests a minute a signed-in user, a partner's API key and an anonymous client address may make."""

    user: int
    api_key: int
    anonymous: int


class Gate:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

    @staticmethod
    async def who(request: Request) -> Identity | None:
        """The verified caller, or None for an anonymous one; raises Unauthenticated for bad credentials (CannotCheck
        when they cannot be checked now) and Throttled past the failed-authentication budget."""
        headers = request.headers
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        failed_auth: FailedAuthThrottle = request.app.state.failed_auth
        if auth[:7].lower() == "bearer ":
            credential = auth[7:].strip()
            if credential.startswith("lip_"):
                key = credential
            else:
                return await failed_auth.verified(request.app.state.verifier, credential, client_key(request))
        if key:
            return await failed_auth.verified(request.app.state.api_keys, key, client_key(request))
        return None

    async def admitted(self, request: Request) -> Identity | None:
        """The verified caller whom the policy lets make this request (None: an anonymous one, where that is
        allowed) within the rate limit; raises what refuses the request."""
        caller = await self.who(request)
        key_scopes = caller.scopes if caller is not None and caller.kind == "api_key" else None
        refused(request.method, request.url.path, caller, key_scopes)
        if caller is None:
            limit_key, limit = f"ip:{client_key(request)}", self.limits.anonymous
        elif caller.kind == "api_key":
            limit_key, limit = f"key:{caller.subject}", self.limits.api_key
        else:
            limit_key, limit = f"user:{caller.subject}", self.limits.user
        retry = await request.app.state.limiter.hit(limit_key, limit)
        if retry is not None:
            raise Problem(
                429,
                f"More than {limit} requests a minute.",
                kind="rate-limited",
                headers={"Retry-After": str(int(retry))},
            )
        return caller


def install(app: FastAPI) -> None:
    """Problem Details for the refusals of sign-in and credentials, wherever they are raised."""

    @app.exception_handler(Throttled)
    async def _throttled(request: Request, exc: Throttled) -> JSONResponse:
        return problem_response(
            429,
            exc.detail,
            kind="rate-limited",
            instance=request.url.path,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return problem_response(
            503,
            "Too many sign-ins at once; try again in a moment.",
            kind="sign-in-busy",
            instance=request.url.path,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        if isinstance(exc, CannotCheck):  # the identity provider is away: not the caller's fault
            return problem_response(
                503, str(exc), kind="upstream-unavailable", instance=request.url.path, headers={"Retry-After": "5"}
            )
        return problem_response(
            401, str(exc), kind="unauthenticated", instance=request.url.path, headers={"WWW-Authenticate": "Bearer"}
        )
