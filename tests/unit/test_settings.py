"""Settings: per-service prefixes, platform-wide broker, production unless told otherwise; outside development
no development secret or key, no missing one, no secret that is short or visibly not random, and no demo data."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from chassis import identity
from chassis.settings import EMBEDDED_CLUSTER_PREFIX, ServiceSettings, estimated_entropy_bits, secret_weakness
from gateway.app import GatewaySettings
from services.courses.runtime import CoursesSettings
from services.partners.app import PartnersSettings
from services.referral.runtime import ReferralSettings
from services.registration.app import RegistrationSettings

GATEWAY_KEY = Ed25519PrivateKey.generate()
REFERRAL_KEY = Ed25519PrivateKey.generate()
COURSES_KEY = Ed25519PrivateKey.generate()
#: What registration needs outside development, as environment variables.
REGISTRATION_ENV = {
    "INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY": identity.encode_public(GATEWAY_KEY.public_key()),
    "REGISTRATION_IDEMPOTENCY_SECRET": secrets.token_urlsafe(32),
    "REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY": identity.encode_public(REFERRAL_KEY.public_key()),
    "REGISTRATION_INTERNAL_IDENTITY_COURSES_PUBLIC_KEY": identity.encode_public(COURSES_KEY.public_key()),
}
GATEWAY_PUBLIC_KEY = REGISTRATION_ENV["INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY"]


def environment(monkeypatch: pytest.MonkeyPatch, name: str, **variables: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", name)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("name", ["production", "test"])
def test_outside_development_each_missing_key_or_secret_is_named(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    environment(monkeypatch, name)
    for variable, value in REGISTRATION_ENV.items():
        with pytest.raises(ValidationError, match=f"set {variable} before running with ENVIRONMENT={name}"):
            RegistrationSettings()
        monkeypatch.setenv(variable, value)
    settings = RegistrationSettings()
    assert settings.environment == name
    assert (
        settings.identity_trusted_keys()["referral"][0].public_bytes_raw()
        == REFERRAL_KEY.public_key().public_bytes_raw()
    )
    assert (
        settings.identity_trusted_keys()["courses"][0].public_bytes_raw() == COURSES_KEY.public_key().public_bytes_raw()
    )


def test_referral_courses_and_the_gateway_need_their_own_signing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    environment(
        monkeypatch,
        "production",
        INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY=GATEWAY_PUBLIC_KEY,
        REFERRAL_IDEMPOTENCY_SECRET=secrets.token_urlsafe(32),
    )
    with pytest.raises(ValidationError, match="set REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY"):
        ReferralSettings()
    monkeypatch.setenv("REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY", identity.encode_private(REFERRAL_KEY))
    assert ReferralSettings().identity_signing_key().private_bytes_raw() == REFERRAL_KEY.private_bytes_raw()

    # Courses signs as itself when it asks registration for a pass holder's name.
    monkeypatch.setenv("COURSES_IDEMPOTENCY_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("COURSES_PASS_SIGNING_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    with pytest.raises(ValidationError, match="set COURSES_INTERNAL_IDENTITY_SIGNING_KEY"):
        CoursesSettings()
    monkeypatch.setenv("COURSES_INTERNAL_IDENTITY_SIGNING_KEY", identity.encode_private(COURSES_KEY))
    assert CoursesSettings().identity_signing_key().private_bytes_raw() == COURSES_KEY.private_bytes_raw()

    monkeypatch.setenv("GATEWAY_LOCAL_SIGNING_KEY", identity.encode_private(Ed25519PrivateKey.generate()))
    with pytest.raises(ValidationError, match="set GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY"):
        GatewaySettings()
    monkeypatch.setenv("GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY", identity.encode_private(GATEWAY_KEY))
    with pytest.raises(ValidationError, match="set GATEWAY_COOKIE_SECRET"):
        GatewaySettings()
    cookie_secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("GATEWAY_COOKIE_SECRET", cookie_secret)
    gateway = GatewaySettings()
    assert gateway.cookie_key() == cookie_secret
    assert gateway.identity_signing_key().public_key().public_bytes_raw() == GATEWAY_KEY.public_key().public_bytes_raw()


@pytest.mark.parametrize("name", ["production", "test"])
def test_the_published_development_keys_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    environment(monkeypatch, name, **REGISTRATION_ENV)
    development_gateway = identity.encode_public(identity.development_key("gateway").public_key())
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", development_gateway)
    with pytest.raises(ValidationError, match="INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY is a published development key"):
        RegistrationSettings()
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", REGISTRATION_ENV["INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY"])
    monkeypatch.setenv(
        "REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY",
        identity.encode_public(identity.development_key("referral").public_key()),
    )
    with pytest.raises(ValidationError, match="REFERRAL_PUBLIC_KEY is a published development key"):
        RegistrationSettings()
    monkeypatch.setenv(
        "REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY", identity.encode_private(identity.development_key("referral"))
    )
    monkeypatch.setenv("REFERRAL_IDEMPOTENCY_SECRET", secrets.token_urlsafe(32))
    with pytest.raises(ValidationError, match="REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY is a published development key"):
        ReferralSettings()


def test_with_environment_unset_every_process_refuses_the_development_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image sets no ENVIRONMENT: each of its processes must then refuse what development would accept."""
    from services.monitoring.app import MonitoringSettings

    monkeypatch.delenv("ENVIRONMENT", raising=False)
    development_gateway = identity.encode_public(identity.development_key("gateway").public_key())
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", development_gateway)
    monkeypatch.setenv(
        "GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY", identity.encode_private(identity.development_key("gateway"))
    )
    for settings in (RegistrationSettings, ReferralSettings, CoursesSettings, PartnersSettings, MonitoringSettings):
        with pytest.raises(
            ValidationError, match="INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY is a published development key"
        ):
            settings()
    monkeypatch.delenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY")
    with pytest.raises(ValidationError, match="GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY is a published development key"):
        GatewaySettings()


def test_a_refusal_does_not_repeat_the_settings_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error lands in the log of a process that will not start: it names the setting, not the values."""
    environment(monkeypatch, "production", **REGISTRATION_ENV)
    monkeypatch.setenv("REGISTRATION_IDEMPOTENCY_SECRET", "too-short")
    with pytest.raises(ValidationError) as refused:
        RegistrationSettings()
    assert "REGISTRATION_IDEMPOTENCY_SECRET" in str(refused.value)
    for value in (*REGISTRATION_ENV.values(), "too-short"):
        assert value not in str(refused.value) and value[-12:] not in str(refused.value)


def test_in_development_the_published_key_pairs_stand_in_and_match_across_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    for variable in (
        "INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY",
        "GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY",
        "REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY",
        "REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY",
        "COURSES_INTERNAL_IDENTITY_SIGNING_KEY",
        "REGISTRATION_INTERNAL_IDENTITY_COURSES_PUBLIC_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    trusted = RegistrationSettings().identity_trusted_keys()
    gateway = GatewaySettings().identity_signing_key()
    referral = ReferralSettings().identity_signing_key()
    courses = CoursesSettings().identity_signing_key()
    assert trusted["gateway"][0].public_bytes_raw() == gateway.public_key().public_bytes_raw()
    assert trusted["referral"][0].public_bytes_raw() == referral.public_key().public_bytes_raw()
    assert trusted["courses"][0].public_bytes_raw() == courses.public_key().public_bytes_raw()
    assert len({k.private_bytes_raw() for k in (gateway, referral, courses)}) == 3
    assert ServiceSettings().environment == "development"


@pytest.mark.parametrize(
    "weak",
    ["a" * 44, "ab" * 22, "short-but-random-" + secrets.token_hex(4), "development-only-this-is-not-a-secret"],
    # fixed ids: pytest-xdist's workers must collect the same names, and the random one differs per process
    ids=["one-letter", "two-letters", "short-but-random", "development-only"],
)
def test_a_short_or_visibly_not_random_secret_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    environment(monkeypatch, "production", **REGISTRATION_ENV)
    monkeypatch.setenv("REGISTRATION_IDEMPOTENCY_SECRET", weak)
    with pytest.raises(ValidationError, match=r"REGISTRATION_IDEMPOTENCY_SECRET .*openssl rand -base64 32"):
        RegistrationSettings()
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert RegistrationSettings().idempotency_key() == weak, "development takes what it is given"


def test_every_secret_of_every_service_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    environment(
        monkeypatch,
        "production",
        INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY=GATEWAY_PUBLIC_KEY,
        PARTNERS_IDEMPOTENCY_SECRET=secrets.token_urlsafe(32),
        PARTNERS_API_KEY_PEPPER=secrets.token_urlsafe(32),
        PARTNERS_WEBHOOK_SECRET_KEY="x" * 40,
    )
    with pytest.raises(ValidationError, match="PARTNERS_WEBHOOK_SECRET_KEY does not look random"):
        PartnersSettings()
    monkeypatch.setenv("PARTNERS_WEBHOOK_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("PARTNERS_API_KEY_PEPPER", "pepper")
    with pytest.raises(ValidationError, match="PARTNERS_API_KEY_PEPPER is shorter than 32 bytes"):
        PartnersSettings()
    monkeypatch.setenv("PARTNERS_API_KEY_PEPPER", secrets.token_urlsafe(32))
    assert PartnersSettings().environment == "production"


def test_ed25519_keys_must_decode_to_32_bytes_in_every_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", base64.b64encode(b"k" * 16).decode())
    with pytest.raises(ValidationError, match="INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY decodes to 16 bytes"):
        RegistrationSettings()
    monkeypatch.delenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY")
    monkeypatch.setenv("COURSES_PASS_SIGNING_KEY", "not base64 at all")
    with pytest.raises(ValidationError, match="COURSES_PASS_SIGNING_KEY is not base64"):
        CoursesSettings()


def test_the_entropy_estimate_passes_random_secrets_and_refuses_patterns() -> None:
    for _ in range(200):
        assert secret_weakness(base64.b64encode(secrets.token_bytes(32)).decode()) is None
        assert secret_weakness(secrets.token_hex(32)) is None
    assert estimated_entropy_bits("a" * 64) == 0
    assert estimated_entropy_bits("ab" * 32) < 70
    assert secret_weakness("x" * 31) == "is shorter than 32 bytes"


def test_without_environment_a_process_runs_as_production_and_refuses_demo_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.setenv("DEMO_DATA", "true")
    for settings in (ServiceSettings, RegistrationSettings, ReferralSettings, GatewaySettings):
        with pytest.raises(ValidationError, match="DEMO_DATA=true is refused with ENVIRONMENT=production"):
            settings()
    with pytest.raises(ValidationError, match="DEMO_DATA=true is refused"):
        ServiceSettings(environment="production", demo_data=True)


def test_demo_data_is_one_unprefixed_switch_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("DEMO_DATA", raising=False)
    assert not any(s().demo_data for s in (RegistrationSettings, ReferralSettings, GatewaySettings))
    monkeypatch.setenv("DEMO_DATA", "true")
    assert all(s().demo_data for s in (RegistrationSettings, ReferralSettings, GatewaySettings))


def test_service_settings_use_their_prefix_and_the_broker_is_platform_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("REGISTRATION_DATABASE_URL", "postgresql://db.example/registration")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///ignored.db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("REGISTRATION_DISTRICTS", '["Mitte", "Nord"]')
    settings = RegistrationSettings()
    assert settings.database_url == "postgresql://db.example/registration"
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.districts == ["Mitte", "Nord"]
    assert settings.port == 8001


def test_a_public_key_setting_holds_the_new_and_the_old_key_during_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/README.md, section 12: first every verifier trusts both keys, then the signer switches, then the old
    key goes. Signing keys stay one key each: a process signs with exactly one."""
    new = Ed25519PrivateKey.generate()
    both = f"{identity.encode_public(new.public_key())},{REGISTRATION_ENV['INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY']}"
    environment(monkeypatch, "production", **REGISTRATION_ENV)
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", both)
    monkeypatch.setenv(
        "REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY",
        f"{both.split(',')[0]}, {REGISTRATION_ENV['REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY']}",
    )
    trusted = RegistrationSettings().identity_trusted_keys()
    assert [k.public_bytes_raw() for k in trusted["gateway"]] == [
        new.public_key().public_bytes_raw(),
        GATEWAY_KEY.public_key().public_bytes_raw(),
    ]
    assert len(trusted["referral"]) == 2 and len(trusted["courses"]) == 1
    # Each key of the list is checked like a single one: a development key among them is refused by its place.
    development = identity.encode_public(identity.development_key("gateway").public_key())
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", f"{both},{development}")
    with pytest.raises(ValidationError, match=r"INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY \(key 3 of 3\) is a published"):
        RegistrationSettings()
    monkeypatch.setenv("INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", f"{both},not-a-key")
    with pytest.raises(ValidationError, match=r"INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY \(key 3 of 3\)"):
        RegistrationSettings()
    environment(
        monkeypatch,
        "production",
        INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY=GATEWAY_PUBLIC_KEY,
        REFERRAL_IDEMPOTENCY_SECRET=secrets.token_urlsafe(32),
        REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY=f"{identity.encode_private(new)},"
        f"{identity.encode_private(REFERRAL_KEY)}",
    )
    with pytest.raises(ValidationError, match=r"REFERRAL_INTERNAL_IDENTITY_SIGNING_KEY must hold exactly one key"):
        ReferralSettings()


def test_consumers_take_their_partitions_themselves_only_where_they_run_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto``: manual assignment against the embedded broker (`make run`, one process per service) outside
    production, the group's assignment against any other broker; ``manual`` is refused in production, where the
    manifests run several replicas of a service."""
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("KAFKA_CONSUMER_ASSIGNMENT", raising=False)
    settings = RegistrationSettings()
    assert settings.kafka_consumer_assignment == "auto"
    assert settings.manual_assignment(f"{EMBEDDED_CLUSTER_PREFIX}0f3c")
    assert not settings.manual_assignment("strimzi-cluster-id") and not settings.manual_assignment(None)
    monkeypatch.setenv("KAFKA_CONSUMER_ASSIGNMENT", "group")
    assert not RegistrationSettings().manual_assignment(f"{EMBEDDED_CLUSTER_PREFIX}0f3c")
    monkeypatch.setenv("KAFKA_CONSUMER_ASSIGNMENT", "manual")
    assert RegistrationSettings().manual_assignment("strimzi-cluster-id")

    production = ServiceSettings(
        environment="production",
        idempotency_secret=secrets.token_urlsafe(32),
        internal_identity_gateway_public_key=GATEWAY_PUBLIC_KEY,
        kafka_consumer_assignment="auto",
    )
    assert not production.manual_assignment(f"{EMBEDDED_CLUSTER_PREFIX}0f3c")
    with pytest.raises(ValidationError, match="KAFKA_CONSUMER_ASSIGNMENT=manual is refused with ENVIRONMENT=prod"):
        ServiceSettings(environment="production", kafka_consumer_assignment="manual")
