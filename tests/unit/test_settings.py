"""Settings: per-service prefixes, platform-wide broker, production unless told otherwise, no development
secrets or demo data in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chassis.settings import ServiceSettings
from gateway.app import GatewaySettings
from services.referral.app import ReferralSettings
from services.registration.app import RegistrationSettings


def test_development_defaults_are_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="internal_token_secret still has its development default"):
        RegistrationSettings()
    monkeypatch.setenv("INTERNAL_TOKEN_SECRET", "a-real-secret-from-a-kubernetes-secret")
    assert RegistrationSettings().environment == "production"


def test_development_allows_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("INTERNAL_TOKEN_SECRET", raising=False)
    assert ServiceSettings().environment == "development"


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
