"""Wiring of the referral service: settings, reference data, the response clock, the app factory.

Run: ``uvicorn --factory services.referral.app:create_app``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select

from chassis.clock import Clock, run_every, system_clock
from chassis.identity import Signer
from chassis.service import ServiceRuntime, ServiceSpec, create_service_app
from contracts import referral as events
from services.referral import api, directory, workflow
from services.referral.handlers import CONSUMED_TOPICS, make_handlers
from services.referral.models import CaseworkerRow, PartnerOfferRow, messaging
from services.referral.runtime import ReferralRuntime, ReferralSettings

log = logging.getLogger(__name__)


async def seed_reference_data(runtime: ServiceRuntime) -> None:
    """With DEMO_DATA: Landsberg's partner directory and a demo roster into empty tables."""
    async with runtime.session_factory() as session, session.begin():
        if not await session.scalar(select(func.count()).select_from(PartnerOfferRow)):
            session.add_all(PartnerOfferRow(**offer) for offer in directory.LANDSBERG_PARTNER_OFFERS)
        if not await session.scalar(select(func.count()).select_from(CaseworkerRow)):
            session.add_all(CaseworkerRow(**worker, active=True) for worker in directory.DEMO_ROSTER)


async def check_clocks(runtime: ServiceRuntime) -> dict[str, int]:
    settings: ReferralSettings = runtime.settings  # type: ignore[assignment]
    async with runtime.unit_of_work() as uow:
        w = workflow.Workflow(uow=uow, now=runtime.clock(), expiry_days=settings.referral_expiry_days)
        counts = await workflow.run_clocks(w)
        await uow.commit()
    return counts


def create_app(settings: ReferralSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or ReferralSettings()

    async def on_startup(runtime: ServiceRuntime) -> None:
        runtime.own = ReferralRuntime(identity=Signer(settings.identity_signing_key(), "referral"))
        if settings.demo_data:
            await seed_reference_data(runtime)
        checks = run_every(settings.clock_interval_seconds, lambda: check_clocks(runtime), "response clock check")
        runtime.start_task(checks, "referral-clock")

    spec = ServiceSpec(
        name="referral",
        title="Referral service",
        description="Cases, the integration navigator, routing rules and closed-loop referrals to partners.",
        tables=messaging,
        migrations_dir=Path(__file__).parent / "migrations",
        published_topics=[events.CASES_TOPIC, events.REFERRALS_TOPIC],
        routers=[api.router, api.partner_router],
        handlers=lambda runtime: make_handlers(runtime.clock, settings),
        consumed_topics=CONSUMED_TOPICS,
        clock=clock,
        on_startup=on_startup,
    )
    return create_service_app(spec, settings)
