"""Wiring of the partners service: settings, the seeded directory, the webhook loop, the app factory.

Run: ``uvicorn --factory services.partners.app:create_app``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chassis.clock import Clock, system_clock
from chassis.service import ServiceRuntime, ServiceSpec, create_service_app
from chassis.settings import DEVELOPMENT_SECRET, ServiceSettings
from contracts import partners as events
from services.partners import api, directory, domain, workflow
from services.partners.delivery import Deliverer, SecretBox
from services.partners.handlers import CONSUMED_TOPICS, make_handlers
from services.partners.models import messaging
from services.partners.runtime import PartnersRuntime, partners_of


class PartnersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERS_", extra="ignore")

    service_name: str = "partners"
    port: int = 8004
    database_url: str = "sqlite+aiosqlite:///var/partners.db"
    #: Webhooks to private, loopback and link-local addresses, and over plain http. Off in production
    #: (server-side request forgery); the embedded default and the tests turn it on.
    webhook_allow_private_addresses: bool = False
    #: Kept outside the database: a stolen table alone does not let anyone test guesses against key hashes.
    api_key_pepper: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    #: Encrypts webhook secrets at rest (they must be recoverable to sign).
    webhook_secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    webhook_backoff_initial_seconds: float = Field(5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(3600.0, gt=0)
    webhook_give_up_after_hours: float = Field(24.0, gt=0)
    #: The longest sleep of the delivery loop: it knows when the next delivery is due and a new one wakes it, so
    #: this only bounds a wake that never comes (rows of a replica that died before sending them).
    webhook_poll_seconds: float = Field(30.0, gt=0)
    #: How long an attempt in flight holds its row; then another round (or replica) may try again.
    webhook_claim_seconds: float = Field(60.0, gt=0)
    webhook_secret_grace_hours: float = Field(24.0, ge=0)

    @property
    def webhook_secret_grace(self) -> timedelta:
        return timedelta(hours=self.webhook_secret_grace_hours)

    def retry_policy(self) -> domain.RetryPolicy:
        return domain.RetryPolicy(
            initial=timedelta(seconds=self.webhook_backoff_initial_seconds),
            maximum=timedelta(seconds=self.webhook_backoff_max_seconds),
            give_up_after=timedelta(hours=self.webhook_give_up_after_hours),
        )


async def seed_directory(runtime: ServiceRuntime, now: datetime) -> None:
    """With DEMO_DATA: Landsberg's actors into an empty directory, announced like any new partner."""
    async with runtime.unit_of_work() as uow:
        await workflow.seed_directory(uow, now, directory.LANDSBERG_DIRECTORY, directory.LANDSBERG_MEETING_OFFERS)


def create_app(settings: PartnersSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or PartnersSettings()

    async def on_startup(runtime: ServiceRuntime) -> None:
        secret_box = SecretBox(settings.webhook_secret_key.get_secret_value())
        if settings.demo_data:
            await seed_directory(runtime, clock())
        deliverer = Deliverer(
            session_factory=runtime.session_factory,
            clock=clock,
            secret_box=secret_box,
            policy=settings.retry_policy(),
            allow_private=settings.webhook_allow_private_addresses,
            timeout_seconds=settings.webhook_timeout_seconds,
            poll_seconds=settings.webhook_poll_seconds,
            claim_seconds=settings.webhook_claim_seconds,
            verify=settings.http_verify(),
        )
        runtime.own = PartnersRuntime(
            secret_box=secret_box,
            deliverer=deliverer,
            api_key_pepper=settings.api_key_pepper.get_secret_value().encode(),
            webhook_allow_private_addresses=settings.webhook_allow_private_addresses,
            webhook_secret_grace=settings.webhook_secret_grace,
        )
        if runtime.metrics is not None:
            runtime.metrics.extra.append(deliverer.report_metrics)
        runtime.start_task(deliverer.run(), "partners-webhook-delivery")

    spec = ServiceSpec(
        name="partners",
        title="Partner network service",
        description="The partner directory (HSDS), capacity, partners' API keys and signed webhooks.",
        tables=messaging,
        migrations_dir=Path(__file__).parent / "migrations",
        published_topics=[events.PARTNERS_TOPIC],
        routers=[api.router, api.internal_router, api.persons_router],
        handlers=lambda runtime: make_handlers(clock, partners_of(runtime).deliverer.wake),
        consumed_topics=CONSUMED_TOPICS,
        clock=clock,
        on_startup=on_startup,
    )
    return create_service_app(spec, settings)
