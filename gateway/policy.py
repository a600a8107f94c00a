"""Who may call what: the role x route matrix of the public API. Pure data and one function.

The gateway checks the role, and for a partner's API key also the key's scopes; the services
check the object (a partner's own referral, a course admin's own course, a caseworker team's
case), from the identity the gateway forwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PUBLIC = frozenset({"*"})
STAFF = frozenset({"registrar", "caseworker", "course_admin", "privacy_officer", "admin"})


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    path: re.Pattern[str]
    roles: frozenset[str]


def rule(methods: str, path: str, *roles: str) -> Rule:
    return Rule(frozenset(methods.split()), re.compile(f"^/api/v1/{path}$"), frozenset(roles) or PUBLIC)


READ = "GET"
WRITE = "POST PUT PATCH DELETE"
ANY = "GET POST PUT PATCH DELETE"

#: First match wins; a path no rule names is refused (deny by default).
RULES: tuple[Rule, ...] = (
    rule(READ, r"openapi\.json"),
    rule(READ, r"info-packs(/[^/]+)?"),
    rule(READ, r"courses(/[^/]+)?"),  # the public catalogue
    rule("POST", r"partners", "admin"),  # a new partner organisation
    rule("PATCH", r"partners/[^/]+", "partner", "admin"),  # a partner's own directory entry; an admin's any
    rule(READ, r"partners(/export/hsds|/[^/]+)?"),  # the public directory
    rule(ANY, r"education-passes/(verify(/[^/]+)?|public-key|status)"),  # verifying, and the revocation list
    rule(READ, r"education-passes/[^/]+/page", "course_admin", "registrar", "admin"),
    rule("POST", r"education-passes/[^/]+/revoke", "course_admin", "admin"),
    rule("POST", r"registrations", "registrar", "admin"),
    # A person's data (the registration service checks the object: a caseworker only the persons of the team's
    # open cases). Needs and the access log are not the registrars'; erasure and move-away are the privacy
    # officers' and admins' alone.
    rule("POST", r"persons/lookup", "caseworker", "admin"),  # a case list's names, in one audited read
    rule("DELETE", r"persons/[^/]+", "privacy_officer", "admin"),
    rule("POST", r"persons/[^/]+/move-away", "privacy_officer", "admin"),
    rule(READ, r"persons/[^/]+/(needs-assessments|access-log)", "caseworker", "privacy_officer", "admin"),
    # Everything every service holds on the person (Art. 15): the data protection office's answer to them.
    rule(READ, r"persons/[^/]+/export", "privacy_officer", "admin"),
    rule("POST", r"persons/[^/]+/needs-assessments", "caseworker", "admin"),
    rule(READ, r"persons(/[^/]+(/consents)?)?", "registrar", "caseworker", "privacy_officer", "admin"),
    rule("PATCH", r"persons/[^/]+", "registrar", "caseworker", "admin"),
    rule("POST", r"persons/[^/]+/consents(/[^/]+/withdrawal)?", "registrar", "caseworker", "admin"),
    rule(WRITE, r"caseworkers/[^/]+", "admin"),  # the roster
    rule(ANY, r"(cases|caseworkers)(/.*)?", "caseworker", "admin"),
    rule(READ, r"referrals(/.*)?", "caseworker", "admin"),
    rule("POST", r"referrals(/.*)?", "caseworker", "admin"),
    rule(READ, r"routing-rules(/.*)?", "caseworker", "admin"),
    rule("PUT", r"routing-rules", "admin"),
    rule(ANY, r"partner/.*", "partner"),  # the partner side of referrals: own objects only
    rule(ANY, r"partners/[^/]+/.*", "partner", "admin"),
    rule(READ, r"courses/[^/]+/enrolments(/.*)?", "course_admin", "caseworker", "admin"),
    rule("POST", r"courses/[^/]+/enrolments", "course_admin", "caseworker", "admin"),
    rule(ANY, r"courses(/.*)?", "course_admin", "admin"),
    rule(ANY, r"learners/.*", "course_admin", "caseworker", "admin"),
    rule(ANY, r"monitoring/.*", "analyst", "admin"),
    # Dead letters of all services (the gateway merges them; each service checks the role again).
    rule(READ, r"admin/dead-letters", "admin"),
    rule("POST", r"admin/dead-letters/[^/]+/[^/]+/(replay|discard)", "admin"),
)


#: What a partner's API key needs beyond the partner role, by route (first match wins). A route
#: no entry names (managing API keys, editing the directory entry) takes a signed-in person.
KEY_SCOPES: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = tuple(
    (frozenset(methods.split()), re.compile(f"^/api/v1/{path}$"), scope)
    for methods, path, scope in (
        (READ, r"partner/referrals(/.*)?", "referrals:read"),
        (WRITE, r"partner/referrals(/.*)?", "referrals:write"),
        ("PUT", r"partners/[^/]+/services/[^/]+/capacity", "capacity:write"),
        (ANY, r"partners/[^/]+/webhooks(/.*)?", "webhooks:manage"),
    )
)


def decide(
    method: str, path: str, roles: frozenset[str] | None, key_scopes: frozenset[str] | None = None
) -> bool | None:
    """True: allowed; False: the caller lacks the role; None: signing in is needed first.

    ``key_scopes`` are given for an API key (and only then): a route that is not public also
    needs the scope ``KEY_SCOPES`` names for it.
    """
    for r in RULES:
        if method in r.methods and r.path.match(path):
            if r.roles is PUBLIC:
                return True
            if roles is None:
                return None
            if not r.roles & roles:
                return False
            return key_scopes is None or _key_may(method, path, key_scopes)
    return False if roles is not None else None


def _key_may(method: str, path: str, scopes: frozenset[str]) -> bool:
    for methods, pattern, scope in KEY_SCOPES:
        if method in methods and pattern.match(path):
            return scope in scopes
    return False


def bent(raw_path: bytes | str) -> bool:
    """A path whose decoded form would reach another route than the one the policy checks.

    Dot segments and encoded slashes or backslashes: an HTTP client normalises ``a/x/../b`` to
    ``a/b`` after the policy has judged ``a/...`` (found by fuzzing the gateway).
    """
    text = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    lowered = text.lower()
    return (
        "%2f" in lowered
        or "%5c" in lowered
        or "\\" in text
        or any(part in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for part in lowered.split("/"))
    )
