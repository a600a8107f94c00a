"""The typed FastAPI dependencies every service uses, each with one rule (issue 17).

- :data:`RuntimeDep`: the service's runtime (:class:`chassis.service.ServiceRuntime`).
- :data:`ClockDep`: the runtime's injected clock (:mod:`chassis.clock`); services never call ``datetime.now``.
- :data:`UnitOfWorkDep`: one unit of work (a transaction and its events) per request.
- :data:`CallerDep`: who calls (der Aufrufer), as the signed identity says (:mod:`chassis.identity`).
- :data:`ActorDep`: the caller's actor string for audit entries.
- :data:`PartnerDep`: the calling partner organisation.
- :func:`require_role`: the second line behind the gateway's role policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from chassis import audit
from chassis.clock import Clock
from chassis.errors import Problem
from chassis.identity import SCOPE_KEY, Identity
from chassis.service import ServiceRuntime
from chassis.uow import UnitOfWork

# Every dependency here is async although none awaits: FastAPI runs a plain ``def`` dependency in a worker thread.

#: The actor an audit entry names when no identity was forwarded (development and tests only).
UNAUTHENTICATED = "unauthenticated"
#: What the services accepted as a plain X-Actor header before (a header parameter with max_length 200).
MAX_ACTOR = 200


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_clock(runtime: RuntimeDep) -> Clock:
    return runtime.clock


ClockDep = Annotated[Clock, Depends(get_clock)]


async def get_unit_of_work(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    async with runtime.unit_of_work() as uow:
        yield uow


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]


@dataclass(frozen=True)
class Caller:
    """The caller of a request.

    With the signed identity (production, and every call through the gateway) it is what the token says: the
    identity middleware verified it and rewrote the plain headers from it. Without one, which only development and
    tests allow, it is what the plain headers say; ``roles`` None then means no identity was forwarded at all.
    """

    #: ``kind:subject`` ("user:a.berger", "api_key:caritas-1"): who acts, for audit entries and timelines.
    actor: str | None
    roles: frozenset[str] | None
    partner_id: str | None = None
    team: str | None = None
    #: Whether the signed identity vouches for it (else plain headers, development and tests only).
    verified: bool = False

    @property
    def actor_or_unauthenticated(self) -> str:
        return self.actor or UNAUTHENTICATED

    @property
    def roles_header(self) -> str | None:
        """The roles as ``X-Role`` writes them (comma-separated), for rules written against that header."""
        return None if self.roles is None else ",".join(sorted(self.roles))

    def has_any(self, *roles: str) -> bool:
        return self.roles is not None and bool(self.roles & set(roles))


def split_roles(value: str | None) -> frozenset[str] | None:
    """``X-Role`` is comma-separated (:func:`chassis.identity.plain_headers`); None when it was not sent."""
    if value is None:
        return None
    return frozenset(role.strip() for role in value.split(",") if role.strip())


def caller_of(request: Request) -> Caller:
    """Read from the request, not declared as header parameters: clients cannot set them past the middleware."""
    identity: Identity | None = request.scope.get(SCOPE_KEY)
    if identity is not None:
        return Caller(identity.actor, identity.roles, identity.partner_id, identity.team, verified=True)
    headers = request.headers
    if len(headers.get("x-actor", "")) > MAX_ACTOR:
        raise Problem(422, f"X-Actor is longer than {MAX_ACTOR} characters.", kind="validation")
    return Caller(
        actor=headers.get("x-actor") or None,
        roles=split_roles(headers.get("x-role")),
        partner_id=headers.get("x-partner-id") or None,
        team=headers.get("x-team") or None,
    )


async def log_callers_read(uow: UnitOfWork, request: Request, action: str, person_ids: Iterable[str]) -> None:
    """Log the read of these persons' data (:mod:`chassis.audit`) as the caller's, for the purpose the caller's
    roles name, and commit it."""
    caller = caller_of(request)
    purpose = audit.purpose_of(caller.roles_header)
    await audit.audit_read(uow.session, caller.actor_or_unauthenticated, action, person_ids, purpose)
    await uow.commit()


async def get_caller(request: Request) -> Caller:
    return caller_of(request)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_actor(caller: CallerDep) -> str:
    return caller.actor_or_unauthenticated


#: Who acts, for an audit entry: the caller's ``kind:subject``, or "unauthenticated" without an identity.
ActorDep = Annotated[str, Depends(get_actor)]


def partner_of(caller: Caller) -> str:
    """The calling partner organisation (a partner's API key or user names one); 401 without one."""
    if not caller.partner_id:
        raise Problem(401, "This call needs the calling partner's identity (X-Partner-Id).", kind="unauthenticated")
    return caller.partner_id


#: The calling partner's id, for the partner routes (each then checks the object is that partner's).
async def get_partner(caller: CallerDep) -> str:
    return partner_of(caller)


PartnerDep = Annotated[str, Depends(get_partner)]


def require_role(*allowed: str) -> Any:
    """A route dependency: the caller holds one of ``allowed``. The gateway's role policy refuses others first;
    this is the second line. A call without any role is refused too (the stricter of the rules the services had:
    referral let it through, monitoring did not)."""
    wanted = frozenset(allowed)

    async def check(caller: CallerDep) -> Caller:
        if not caller.has_any(*wanted):
            raise Problem(403, f"This needs one of the roles {', '.join(sorted(wanted))}.", kind="forbidden")
        return caller

    return Depends(check)
