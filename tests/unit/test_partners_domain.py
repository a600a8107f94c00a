"""Partner network rules: Standard Webhooks signatures (checked by the `standardwebhooks` library, not by
our code), the retry schedule and its 24-hour give-up, webhook URL safety, API key format and hashing."""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.partners import domain

PEPPER = b"pepper-for-tests"


# --- signatures -----------------------------------------------------------------------------


def signed(secrets_in_use: list[str], body: bytes, now: datetime | None = None) -> dict[str, str]:
    return domain.webhook_headers(secrets_in_use, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now or datetime.now(UTC), body)


def test_our_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret = domain.new_webhook_secret()
    body = json.dumps({"type": "x", "id": "1", "data": {"partner_id": "vhs-landsberg", "note": "Grüße"}}).encode()
    headers = signed([secret], body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["data"]["note"] == "Grüße"


def test_signature_matches_the_specs_own_example() -> None:
    # The example of the Standard Webhooks specification (and of the library's tests).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert domain.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_a_tampered_body_or_a_wrong_secret_is_rejected_by_the_library() -> None:
    secret = domain.new_webhook_secret()
    headers = signed([secret], b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(domain.new_webhook_secret()).verify(b'{"a":1}', headers)


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new = domain.new_webhook_secret(), domain.new_webhook_secret()
    now = datetime.now(UTC)
    in_use = domain.signing_secrets(new, old, now + timedelta(hours=1), now)
    assert in_use == [new, old]
    headers = signed(in_use, b"{}", now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(b"{}", headers)
    Webhook(new).verify(b"{}", headers)
    # After the grace period only the new secret signs.
    assert domain.signing_secrets(new, old, now - timedelta(seconds=1), now) == [new]
    assert domain.signing_secrets(new, None, None, now) == [new]


def test_webhook_secrets_are_whsec_and_32_random_bytes() -> None:
    secret = domain.new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != domain.new_webhook_secret()


def test_an_event_concerns_only_the_partner_it_names() -> None:
    assert domain.concerns({"partner_id": "vhs-landsberg"}, "vhs-landsberg")
    assert not domain.concerns({"partner_id": "vhs-landsberg"}, "jobcenter-landsberg")
    assert not domain.concerns({"partner_category": "adult_education"}, "vhs-landsberg")


def test_a_course_event_concerns_the_partner_that_runs_the_course() -> None:
    course = {"course_id": "c1", "provider_id": "vhs-landsberg", "category": "integration_course"}
    assert domain.concerns(course, "vhs-landsberg")
    assert not domain.concerns(course, "caritas-landsberg")


# --- retry schedule -------------------------------------------------------------------------

POLICY = domain.RetryPolicy(initial=timedelta(seconds=5), maximum=timedelta(hours=1), give_up_after=timedelta(hours=24))


def test_back_off_starts_at_5_seconds_doubles_and_is_capped() -> None:
    delays = [POLICY.delay(n).total_seconds() for n in range(1, 14)]
    assert delays[:6] == [5, 10, 20, 40, 80, 160]
    assert max(delays) == 3600 and delays[-1] == 3600
    assert POLICY.delay(10_000) == timedelta(hours=1)  # no overflow for a receiver down for long


def test_retries_go_on_for_24_hours_after_the_first_attempt_then_stop() -> None:
    first = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    now, attempts, schedule = first, 1, []
    while (next_at := POLICY.next_attempt(attempts=attempts, first_attempt_at=first, now=now)) is not None:
        assert next_at > now
        schedule.append(next_at)
        now, attempts = next_at, attempts + 1
    assert schedule[-1] == first + timedelta(hours=24), "the last try is at the deadline, not skipped"
    assert now - first == timedelta(hours=24)
    assert 25 < attempts < 40, attempts  # ~12 back-off steps, then hourly


@given(
    attempts=st.integers(min_value=1, max_value=200),
    elapsed=st.integers(min_value=0, max_value=48 * 3600),
)
def test_never_scheduled_beyond_the_window(attempts: int, elapsed: int) -> None:
    first = datetime(2026, 11, 2, tzinfo=UTC)
    now = first + timedelta(seconds=elapsed)
    next_at = POLICY.next_attempt(attempts=attempts, first_attempt_at=first, now=now)
    if elapsed >= 24 * 3600:
        assert next_at is None
    else:
        assert next_at is not None and now < next_at <= first + timedelta(hours=24)


def test_only_2xx_counts_as_delivered() -> None:
    assert domain.is_success(200) and domain.is_success(204)
    assert not any(domain.is_success(code) for code in (301, 302, 400, 410, 500, 503))


# --- webhook URL safety ---------------------------------------------------------------------

UNSAFE = [
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://10.1.2.3/hook",
    "https://192.168.178.20:8443/hook",
    "https://172.16.0.1/hook",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata
    "https://[::ffff:127.0.0.1]/hook",
    "https://[fe80::1]/hook",
    "https://0.0.0.0/hook",
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://localhost/hook",
    "https://printer.local/hook",
    "http://partner.example.org/hook",  # plain http
    "ftp://partner.example.org/hook",
    "https://user:pass@partner.example.org/hook",
    "https:///nohost",
    "https://partner.example.org/" + "a" * 2000,
]


@pytest.mark.parametrize("url", UNSAFE)
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(domain.UnsafeWebhookUrl):
        domain.parse_webhook_url(url, allow_private=False)


def test_public_https_urls_pass_and_the_setting_allows_local_receivers() -> None:
    target = domain.parse_webhook_url("https://hooks.partner.example.org/landsberg?x=1", allow_private=False)
    assert (target.host, target.port) == ("hooks.partner.example.org", 443)
    assert domain.parse_webhook_url("https://93.184.215.14:8443/h", allow_private=False).port == 8443
    assert domain.parse_webhook_url("http://127.0.0.1:9000/h", allow_private=True).port == 9000


def test_a_hostname_resolving_to_any_private_address_is_refused() -> None:
    domain.check_resolved_addresses(
        "hooks.example.org", ["93.184.215.14", "2606:2800:21f:cb07::1"], allow_private=False
    )
    with pytest.raises(domain.UnsafeWebhookUrl, match=r"10\.0\.0\.5"):
        domain.check_resolved_addresses("rebind.example.org", ["93.184.215.14", "10.0.0.5"], allow_private=False)
    with pytest.raises(domain.UnsafeWebhookUrl, match="does not resolve"):
        domain.check_resolved_addresses("nowhere.example.org", [], allow_private=False)
    domain.check_resolved_addresses("receiver.test", ["127.0.0.1"], allow_private=True)


@given(st.ip_addresses())
def test_an_ip_literal_passes_only_when_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    public = (mapped or ip).is_global and not (mapped or ip).is_multicast
    try:
        domain.parse_webhook_url(f"https://{host}/hook", allow_private=False)
        assert public, f"{ip} was accepted"
    except domain.UnsafeWebhookUrl:
        assert not public, f"{ip} was refused"


# --- API keys -------------------------------------------------------------------------------


def test_api_keys_have_a_visible_prefix_and_verify_only_against_their_hash() -> None:
    issued = domain.issue_api_key()
    assert issued.key.startswith(f"lip_{issued.prefix}_")
    assert domain.api_key_prefix(issued.key) == issued.prefix
    stored = domain.hash_api_key(issued.key, PEPPER)
    assert issued.key not in stored and issued.key.split("_", 2)[2] not in stored
    assert domain.api_key_matches(issued.key, PEPPER, stored)
    assert not domain.api_key_matches(issued.key, b"another pepper", stored)
    assert not domain.api_key_matches(domain.issue_api_key().key, PEPPER, stored)


@given(st.text(max_size=120))
def test_malformed_keys_have_no_prefix(text: str) -> None:
    if not text.startswith("lip_"):
        assert domain.api_key_prefix(text) is None


def test_keys_are_unique_and_well_formed() -> None:
    keys = {domain.issue_api_key().key for _ in range(200)}
    assert len(keys) == 200
    assert all(domain.api_key_prefix(k) for k in keys)


def test_revoked_or_expired_keys_are_refused() -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert domain.key_refusal(revoked_at=None, expires_at=None, now=now) is None
    assert domain.key_refusal(revoked_at=None, expires_at=now + timedelta(days=1), now=now) is None
    assert domain.key_refusal(revoked_at=now, expires_at=None, now=now) is domain.KeyRefusal.REVOKED
    assert domain.key_refusal(revoked_at=None, expires_at=now, now=now) is domain.KeyRefusal.EXPIRED
