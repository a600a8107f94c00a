"""The gateway's settings: where the services are, how callers sign in, the limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import DEVELOPMENT_SECRET, ServiceSettings
from gateway.auth import DEFAULT_USERS_FILE
from gateway.throttle import networks

#: First path segment after ``/api/v1/`` -> the service that owns it; its name is the audience of the
#: identity the gateway signs for the call.
SERVICE_OF_SEGMENT = {
    "registrations": "registration",
    "persons": "registration",
    "info-packs": "registration",
    "cases": "referral",
    "referrals": "referral",
    "routing-rules": "referral",
    "caseworkers": "referral",
    "partner": "referral",
    "courses": "courses",
    "education-passes": "courses",
    "learners": "courses",
    "partners": "partners",
    "monitoring": "monitoring",
}


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    port: int = 8000
    registration_url: str = "http://127.0.0.1:8001"
    referral_url: str = "http://127.0.0.1:8002"
    courses_url: str = "http://127.0.0.1:8003"
    partners_url: str = "http://127.0.0.1:8004"
    monitoring_url: str = "http://127.0.0.1:8005"
    upstream_timeout_seconds: float = 10.0

    #: OpenID Connect (Keycloak) in production: the issuer, its JWKS and this client's audience.
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str = "integration-gateway"
    oidc_algorithms: list[str] = ["RS256", "EdDSA", "ES256"]
    #: The web UI's sign-in at that provider (authorization code flow with PKCE). The client id defaults to the
    #: audience: Keycloak's client "landsberg-gateway" is both.
    oidc_client_id: str | None = None
    #: The confidential client's secret (Keycloak: Clients, landsberg-gateway, Credentials), from a Secret; unset
    #: for a public client, which PKCE alone protects.
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile"
    #: The provider's name on the sign-in button.
    oidc_display_name: str = "Keycloak"
    #: Where browsers reach the gateway (https://integration.landsberg.de): the provider sends them back to
    #: ``{public_url}/ui/oidc/callback``. Needed in production with OIDC; elsewhere the request's own address serves.
    public_url: str | None = None
    #: The embedded sign-in (development default; off when an OIDC issuer is set).
    local_issuer: str = "http://127.0.0.1:8000/auth"
    local_users_file: Path = DEFAULT_USERS_FILE
    #: Base64 of a 32-byte Ed25519 key for the embedded sign-in's tokens; in development one is made once and kept
    #: next to the users file (``gateway-token-signing.key``). Not needed with an OIDC issuer.
    local_signing_key: SecretStr | None = None
    #: Seals what the web UI keeps in cookies (the OIDC sign-in in progress, the refresh token): random, 32 bytes
    #: or more, the same on every replica. ``GATEWAY_COOKIE_SECRET``.
    cookie_secret: SecretStr | None = None

    #: The gateway signs identities (``GATEWAY_INTERNAL_IDENTITY_SIGNING_KEY``) and seals cookies; it keeps no
    #: idempotent answers and verifies no internal identity.
    NEEDED_OUTSIDE_DEVELOPMENT = ("internal_identity_signing_key", "cookie_secret")
    OTHER_ED25519_KEYS = ("local_signing_key",)

    def cookie_key(self) -> str:
        if self.cookie_secret is not None:
            return self.cookie_secret.get_secret_value()
        return DEVELOPMENT_SECRET  # development only: the settings refuse an unset one elsewhere

    @model_validator(mode="after")
    def _sign_in_configured(self) -> GatewaySettings:
        if self.oidc_issuer is None and self.local_signing_key is None and self.environment != "development":
            raise ValueError(
                "set GATEWAY_OIDC_ISSUER and GATEWAY_OIDC_JWKS_URL (the city's Keycloak), or "
                "GATEWAY_LOCAL_SIGNING_KEY for the embedded sign-in"
            )
        if self.oidc_issuer is not None and self.oidc_jwks_url is None:
            raise ValueError("GATEWAY_OIDC_JWKS_URL is needed with GATEWAY_OIDC_ISSUER")
        if self.oidc_issuer is not None and self.public_url is None and self.environment == "production":
            # Behind the ingress the request's own address is http and internal: the provider would refuse it.
            raise ValueError("GATEWAY_PUBLIC_URL (https://...) is needed with GATEWAY_OIDC_ISSUER in production")
        return self

    rate_limit_per_minute_user: int = 600
    rate_limit_per_minute_api_key: int = 1200
    rate_limit_per_minute_anonymous: int = 120
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")

    #: Limits on guessing (gateway/throttle.py says how they work together). Failed sign-ins a minute from one
    #: client address; for one user name, and for all names together, from addresses that name has not signed in
    #: from within ``sign_in_known_address_days``.
    sign_in_failures_per_address: int = Field(10, ge=1)
    sign_in_failures_per_username: int = Field(10, ge=1)
    sign_in_failures_per_minute: int = Field(300, ge=1)
    sign_in_known_address_days: float = Field(30, ge=0)
    #: Password hashes (argon2, 64 MiB each) computed at once, and sign-ins waiting for one; more get 503 with
    #: Retry-After at once.
    password_hashing_concurrency: int = Field(2, ge=1)
    password_hashing_queue: int = Field(16, ge=0)
    #: Refused bearer tokens and API keys a minute from one client address; past it 429, without checking.
    auth_failures_per_address: int = Field(30, ge=1)
    #: The proxies in front of the gateway (the ingress controller's pods), as addresses or networks
    #: (``GATEWAY_TRUSTED_PROXIES='["10.244.0.0/16"]'``): from them, X-Forwarded-For names the client. Empty: the
    #: socket peer is the client, and X-Forwarded-For is ignored.
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        networks(value)  # a typo must not quietly trust nobody (or everybody)
        return value

    def service_urls(self) -> dict[str, str]:
        return {
            "registration": self.registration_url,
            "referral": self.referral_url,
            "courses": self.courses_url,
            "partners": self.partners_url,
            "monitoring": self.monitoring_url,
        }

    def routes(self) -> dict[str, str]:
        """First path segment after ``/api/v1/`` → the address of the service that owns it."""
        urls = self.service_urls()
        return {segment: urls[service] for segment, service in SERVICE_OF_SEGMENT.items()}
