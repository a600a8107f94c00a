"""The chassis's typed dependencies (issue 17): one rule each for the caller, the role check, the actor and the
clock, on a small app behind the real identity middleware (no database, no broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Request
from pydantic import AfterValidator, BaseModel

from chassis import clock
from chassis.deps import ActorDep, Caller, CallerDep, ClockDep, require_role
from chassis.errors import install_problem_handlers
from chassis.identity import HEADER, Identity, InternalIdentity, sign
from chassis.service import use_clock

GATEWAY_KEY = Ed25519PrivateKey.generate()
FIXED = datetime(2020, 6, 1, 12, tzinfo=UTC)


class Runtime:
    """The part of a service's runtime the dependencies read."""

    clock = staticmethod(lambda: FIXED)


def not_in_future(value: date) -> date:
    if value > clock.now().date():
        raise ValueError("the date lies in the future")
    return value


class Body(BaseModel):
    day: Annotated[date, AfterValidator(not_in_future)]


def make_app(*, required: bool = False) -> FastAPI:
    app = FastAPI(dependencies=[Depends(use_clock)])
    app.state.runtime = Runtime()
    install_problem_handlers(app)

    @app.get("/api/caller")
    def caller(who: CallerDep, actor: ActorDep) -> dict[str, object]:
        return {
            "actor": who.actor,
            "as": actor,
            "roles": sorted(who.roles or ()) if who.roles is not None else None,
            "team": who.team,
            "verified": who.verified,
        }

    @app.get("/api/analysts", dependencies=[require_role("analyst", "admin")])
    def analysts() -> str:
        return "ok"

    @app.get("/api/now")
    def now(clock: ClockDep) -> str:
        return clock().isoformat()

    @app.post("/api/days")
    async def days(body: Body, request: Request) -> str:
        return body.day.isoformat()

    app.add_middleware(
        InternalIdentity, audience="svc", trusted={"gateway": [GATEWAY_KEY.public_key()]}, required=required
    )
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


def token(identity: Identity) -> dict[str, str]:
    return {HEADER: sign(identity, GATEWAY_KEY, audience="svc")}


async def test_the_caller_is_the_signed_identity_and_a_clients_headers_beside_it_are_dropped() -> None:
    lotse = Identity(subject="lotse", roles=frozenset({"caseworker", "analyst"}), team="nord")
    async with client(make_app(required=True)) as svc:
        reply = await svc.get(
            "/api/caller", headers={**token(lotse), "X-Actor": "user:someone-else", "X-Role": "admin"}
        )
    assert reply.json() == {
        "actor": "user:lotse",
        "as": "user:lotse",
        "roles": ["analyst", "caseworker"],
        "team": "nord",
        "verified": True,
    }


async def test_without_a_token_development_reads_the_plain_headers_and_none_is_unauthenticated() -> None:
    async with client(make_app()) as svc:
        plain = (await svc.get("/api/caller", headers={"X-Actor": "user:a", "X-Role": "admin, analyst"})).json()
        nobody = (await svc.get("/api/caller")).json()
        too_long = await svc.get("/api/caller", headers={"X-Actor": "x" * 201})
    assert plain == {"actor": "user:a", "as": "user:a", "roles": ["admin", "analyst"], "team": None, "verified": False}
    assert nobody == {"actor": None, "as": "unauthenticated", "roles": None, "team": None, "verified": False}
    assert too_long.status_code == 422


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Role": "analyst"}, 200),
        ({"X-Role": "caseworker,admin"}, 200),  # one of several roles is enough
        ({"X-Role": "caseworker"}, 403),
        ({"X-Role": ""}, 403),
        ({}, 403),  # no identity at all: refused too (the stricter rule)
    ],
)
async def test_require_role_wants_one_of_the_roles(headers: dict[str, str], status: int) -> None:
    async with client(make_app()) as svc:
        reply = await svc.get("/api/analysts", headers=headers)
    assert reply.status_code == status, reply.text
    if status == 403:
        assert reply.headers["content-type"].startswith("application/problem+json")


async def test_the_clock_is_the_runtimes_also_for_a_bodys_validators() -> None:
    async with client(make_app()) as svc:
        assert (await svc.get("/api/now")).json() == FIXED.isoformat()
        assert (await svc.post("/api/days", json={"day": "2020-06-01"})).status_code == 200
        # Past by the machine's date, but after the runtime clock's day.
        assert (await svc.post("/api/days", json={"day": "2021-01-01"})).status_code == 422


def test_a_caller_without_roles_has_none() -> None:
    assert not Caller(actor=None, roles=None).has_any("admin")
    assert Caller(actor=None, roles=None).roles_header is None
    assert Caller(actor="user:a", roles=frozenset({"b", "a"})).roles_header == "a,b"
