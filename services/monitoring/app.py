"""Wiring of the monitoring service: settings, the clock, demo reference data, the consumer group.

Run: ``uvicorn --factory services.monitoring.app:create_app``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import func, select

from chassis.clock import Clock, system_clock
from chassis.service import ServiceRuntime, ServiceSpec, create_service_app
from chassis.settings import ServiceSettings
from reference import HERE as REFERENCE
from services.monitoring import api, council_api, planning_api, workflow
from services.monitoring.handlers import CONSUMED_TOPICS, make_handlers
from services.monitoring.models import BlockPopulation, DistrictPopulation, SurveyFigures, messaging
from services.monitoring.runtime import MonitoringRuntime
from services.monitoring.schemas import BlockReferenceUpdate, DistrictReferenceUpdate, SurveyQuestion, SurveyUpdate

log = logging.getLogger(__name__)

#: Population per Ortsteil is not published in the sources found: these demo figures add up to
#: the city's 30,038 inhabitants (end of 2024) and are marked illustrative wherever they are used.
ILLUSTRATIVE_DISTRICTS = {
    "Altstadt": 2600,
    "Katharinenvorstadt": 3900,
    "Neuerpfting": 2700,
    "Weststadt": 7800,
    "Schwaighofsiedlung": 3400,
    "Bayervorstadt": 2900,
    "Sandau": 900,
    "Pössing": 250,
    "Ellighofen": 600,
    "Erpfting": 1500,
    "Friedheim": 250,
    "Geratshof": 150,
    "Mittelstetten": 300,
    "Pitzling": 1400,
    "Pöring": 300,
    "Reisch": 800,
    "Thalhofen": 288,
}

#: The citizens' survey figures quoted in the seed (minutes of 24 July 2017).
SEED_SURVEY = SurveyUpdate(
    year=2017,
    source="Bürgerbefragung Landsberg 2035, as quoted in the dialogue meeting of 24 July 2017",
    german_citizens_percent=98.53,
    questions=[
        SurveyQuestion(
            question="Living together of Germans and other nationals",
            very_satisfied=7.15,
            satisfied=55.53,
            less_satisfied=26.46,
            dissatisfied=10.86,
        ),
        SurveyQuestion(
            question="Integration of refugees",
            very_satisfied=8.15,
            satisfied=46.57,
            less_satisfied=29.50,
            dissatisfied=15.78,
        ),
        SurveyQuestion(
            question="Integration of new citizens",
            very_satisfied=10.37,
            satisfied=57.86,
            less_satisfied=21.84,
            dissatisfied=9.94,
        ),
    ],
)


#: The city's residential blocks as shipped (illustrative): registration's default block reference too.
LANDSBERG_BLOCKS = REFERENCE / "landsberg" / "blocks.json"


def block_reference(document: dict[str, Any]) -> BlockReferenceUpdate:
    """The monitoring's part of a block reference file: id, name, district and residents (no streets)."""
    return BlockReferenceUpdate(
        source=document["source"],
        illustrative=bool(document.get("illustrative", False)),
        blocks=[{k: b[k] for k in ("block_id", "name", "district", "population")} for b in document["blocks"]],
    )


class MonitoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore")

    service_name: str = "monitoring"
    port: int = 8005
    database_url: str = "sqlite+aiosqlite:///var/monitoring.db"
    #: Cells with fewer persons than this are withheld.
    k_anonymity: int = Field(5, ge=2, le=100)


async def seed_reference(runtime: ServiceRuntime) -> None:
    """With DEMO_DATA: the illustrative district population, the shipped blocks and the seed's survey figures into
    an empty database. Without it the real figures are entered with PUT /api/v1/monitoring/reference/districts,
    PUT /api/v1/monitoring/reference/blocks and PUT /api/v1/monitoring/survey."""
    async with runtime.session_factory() as session:
        has_districts = await session.scalar(select(func.count()).select_from(DistrictPopulation))
        has_survey = await session.scalar(select(func.count()).select_from(SurveyFigures))
    if not has_districts:
        await api.store_districts(
            runtime,
            DistrictReferenceUpdate(
                source="Illustrative demo figures (population per Ortsteil is not published)",
                illustrative=True,
                districts=ILLUSTRATIVE_DISTRICTS,
            ),
        )
    if not has_survey:
        await api.store_survey(runtime, SEED_SURVEY)
    async with runtime.session_factory() as session:
        has_blocks = await session.scalar(select(func.count()).select_from(BlockPopulation))
    if not has_blocks:  # the shipped (illustrative) Landsberg blocks, the file registration reads by default
        await api.store_blocks(runtime, block_reference(json.loads(LANDSBERG_BLOCKS.read_text(encoding="utf-8"))))


def create_app(settings: MonitoringSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or MonitoringSettings()

    async def on_startup(runtime: ServiceRuntime) -> None:
        runtime.own = MonitoringRuntime(make_handlers=make_handlers, topics=CONSUMED_TOPICS)
        async with runtime.session_factory() as session:
            group = await workflow.stored_consumer_group(session)
        if group is not None:  # a rebuild switched groups: continue with that one
            settings.kafka_consumer_group = group
        if settings.demo_data:
            await seed_reference(runtime)

    spec = ServiceSpec(
        name="monitoring",
        title="Monitoring service",
        description="Anonymised integration and demographic indicators, planning data and the council report.",
        tables=messaging,
        migrations_dir=Path(__file__).parent / "migrations",
        published_topics=[],
        routers=[api.router, council_api.router, planning_api.router],
        handlers=lambda runtime: make_handlers(),
        consumed_topics=CONSUMED_TOPICS,
        clock=clock,
        on_startup=on_startup,
    )
    return create_service_app(spec, settings)
