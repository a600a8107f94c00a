"""The role x route policy's rules for partners' API keys: a key does only what its scopes say."""

from __future__ import annotations

import pytest

from gateway.policy import bent, decide

PARTNER = frozenset({"partner"})


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/partner/referrals", "referrals:read"),
        ("GET", "/api/v1/partner/referrals/r-1", "referrals:read"),
        ("POST", "/api/v1/partner/referrals/r-1/accept", "referrals:write"),
        ("PUT", "/api/v1/partners/vhs-landsberg/services/integration_course/capacity", "capacity:write"),
        ("POST", "/api/v1/partners/vhs-landsberg/webhooks", "webhooks:manage"),
        ("GET", "/api/v1/partners/vhs-landsberg/webhooks/deliveries", "webhooks:manage"),
    ],
)
def test_a_key_needs_the_routes_scope(method: str, path: str, scope: str) -> None:
    assert decide(method, path, PARTNER, frozenset({scope})) is True
    others = frozenset({"referrals:read", "referrals:write", "capacity:write", "webhooks:manage"}) - {scope}
    assert decide(method, path, PARTNER, others) is False
    assert decide(method, path, PARTNER) is True, "a signed-in partner user has no scopes to check"


def test_keys_do_not_manage_keys_or_the_directory_entry() -> None:
    every_scope = frozenset({"referrals:read", "referrals:write", "capacity:write", "webhooks:manage"})
    assert decide("POST", "/api/v1/partners/vhs-landsberg/api-keys", PARTNER, every_scope) is False
    assert decide("PATCH", "/api/v1/partners/vhs-landsberg", PARTNER, every_scope) is False
    assert decide("PATCH", "/api/v1/partners/vhs-landsberg", PARTNER) is True


def test_only_admins_add_partner_organisations() -> None:
    assert decide("POST", "/api/v1/partners", frozenset({"admin"})) is True
    for role in ("partner", "caseworker", "registrar", "course_admin", "analyst"):
        assert decide("POST", "/api/v1/partners", frozenset({role})) is False, role
    assert decide("POST", "/api/v1/partners", None) is None, "signing in first"
    every_scope = frozenset({"referrals:read", "referrals:write", "capacity:write", "webhooks:manage"})
    assert decide("POST", "/api/v1/partners", PARTNER, every_scope) is False
    # An admin keeps any entry and its services (the service checks the object: a partner only its own).
    assert decide("PATCH", "/api/v1/partners/vhs-landsberg", frozenset({"admin"})) is True
    assert decide("PUT", "/api/v1/partners/vhs-landsberg/services/integration_course", frozenset({"admin"})) is True
    assert decide("DELETE", "/api/v1/partners/vhs-landsberg/services/integration_course", PARTNER) is True
    assert decide("DELETE", "/api/v1/partners/vhs-landsberg/services/integration_course", PARTNER, every_scope) is False


def test_only_admins_keep_the_roster() -> None:
    assert decide("PUT", "/api/v1/caseworkers/n.rahimi", frozenset({"admin"})) is True
    assert decide("PUT", "/api/v1/caseworkers/n.rahimi", frozenset({"caseworker"})) is False
    assert decide("GET", "/api/v1/caseworkers", frozenset({"caseworker"})) is True


def test_public_routes_need_no_scope() -> None:
    assert decide("GET", "/api/v1/courses", PARTNER, frozenset()) is True
    assert decide("GET", "/api/v1/partners/vhs-landsberg", None) is True
    assert decide("PATCH", "/api/v1/partners/vhs-landsberg", None) is None


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/partner/referrals/x%2F..%2F..%2Fcaseworkers",
        "/api/v1/partner/referrals/x/../../caseworkers",
        "/api/v1/partner/referrals/%2e%2e/routing-rules",
        "/api/v1/persons/a%5c..%5crouting-rules",
        "cases/..",
        "cases/./x",
    ],
)
def test_bent_paths_are_recognised(path: str) -> None:
    assert bent(path) and bent(path.encode())


@pytest.mark.parametrize("path", ["/api/v1/partner/referrals/r-1/accept", "cases/c.1", "persons/..x", "info-packs/de"])
def test_straight_paths_pass(path: str) -> None:
    assert not bent(path)


def test_anyone_verifies_a_pass_and_reads_the_revocation_list() -> None:
    """An employer or a school checks a pass offline with the public key and the status list, signed in or not."""
    for method, path in (
        ("GET", "/api/v1/education-passes/status"),
        ("GET", "/api/v1/education-passes/public-key"),
        ("POST", "/api/v1/education-passes/verify"),
        ("GET", "/api/v1/education-passes/verify/ABCD-EFGH-IJKL"),
    ):
        assert decide(method, path, None) is True, path
        assert decide(method, path, PARTNER, frozenset()) is True, path


def test_only_course_admins_and_admins_revoke_a_pass() -> None:
    revoke = "/api/v1/education-passes/7d0c2a7e-0000-4000-8000-000000000000/revoke"
    assert decide("POST", revoke, frozenset({"course_admin"})) is True
    assert decide("POST", revoke, frozenset({"admin"})) is True
    for role in ("partner", "caseworker", "registrar", "analyst"):
        assert decide("POST", revoke, frozenset({role})) is False, role
    assert decide("POST", revoke, None) is None, "signing in first"


PERSON = "/api/v1/persons/p-1"


@pytest.mark.parametrize(
    ("method", "path", "roles"),
    [
        ("POST", "/api/v1/registrations", {"registrar", "admin"}),
        ("GET", "/api/v1/persons", {"registrar", "caseworker", "privacy_officer", "admin"}),
        ("GET", PERSON, {"registrar", "caseworker", "privacy_officer", "admin"}),
        ("PATCH", PERSON, {"registrar", "caseworker", "admin"}),
        ("GET", f"{PERSON}/consents", {"registrar", "caseworker", "privacy_officer", "admin"}),
        ("POST", f"{PERSON}/consents", {"registrar", "caseworker", "admin"}),
        ("POST", f"{PERSON}/consents/c-1/withdrawal", {"registrar", "caseworker", "admin"}),
        ("GET", f"{PERSON}/needs-assessments", {"caseworker", "privacy_officer", "admin"}),
        ("POST", f"{PERSON}/needs-assessments", {"caseworker", "admin"}),
        ("GET", f"{PERSON}/access-log", {"caseworker", "privacy_officer", "admin"}),
        ("GET", f"{PERSON}/export", {"privacy_officer", "admin"}),
        ("POST", f"{PERSON}/move-away", {"privacy_officer", "admin"}),
        ("DELETE", PERSON, {"privacy_officer", "admin"}),
        ("POST", "/api/v1/persons/lookup", {"caseworker", "admin"}),
        ("POST", "/api/v1/cases/c-1/closing", {"caseworker", "admin"}),
        ("POST", "/api/v1/cases/c-1/reopening", {"caseworker", "admin"}),
        ("DELETE", f"{PERSON}/consents", set()),
        ("PUT", PERSON, set()),
        ("GET", f"{PERSON}/anything-else", set()),
    ],
)
def test_who_reaches_a_persons_data(method: str, path: str, roles: set[str]) -> None:
    """The role half of issue 12 (the registration service checks the object: a caseworker's team's persons)."""
    every_role = {"registrar", "caseworker", "course_admin", "partner", "analyst", "privacy_officer", "admin"}
    allowed = {role for role in every_role if decide(method, path, frozenset({role}))}
    assert allowed == roles, (method, path)
    if roles:
        assert decide(method, path, None) is None, "signing in first"


def test_the_privacy_officer_role_survives_the_sign_in() -> None:
    """Realm roles outside ``gateway.auth.ROLES`` are dropped from a token; the new role is not (issue 12)."""
    from gateway.auth import identity_from_claims

    claims = {"sub": "u-1", "preferred_username": "d.schutz", "realm_access": {"roles": ["privacy_officer", "x"]}}
    assert identity_from_claims(claims).roles == {"privacy_officer"}
    assert identity_from_claims({"sub": "u-2", "roles": ["privacy_officer"]}).roles == {"privacy_officer"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/dead-letters"),
        ("POST", "/api/v1/admin/dead-letters/referral/d-1/replay"),
        ("POST", "/api/v1/admin/dead-letters/referral/d-1/discard"),
    ],
)
def test_only_admins_see_and_handle_dead_letters(method: str, path: str) -> None:
    every_role = {"registrar", "caseworker", "course_admin", "partner", "analyst", "privacy_officer", "admin"}
    assert {role for role in every_role if decide(method, path, frozenset({role}))} == {"admin"}
    assert decide(method, path, None) is None, "signing in first"


def test_dead_letters_take_no_other_action_or_method() -> None:
    admin = frozenset({"admin"})
    assert decide("POST", "/api/v1/admin/dead-letters/referral/d-1/delete", admin) is False
    assert decide("DELETE", "/api/v1/admin/dead-letters", admin) is False
    assert decide("POST", "/api/v1/admin/dead-letters", admin) is False
