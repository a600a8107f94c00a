"""The services' traces reach the database: statement spans on the installed SQLAlchemy (2.1, which the
instrumentation does not declare), beside the request spans."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.settings import ServiceSettings
from chassis.telemetry import instrument_app


async def test_a_request_that_queries_the_database_leaves_a_statement_span(caplog: pytest.LogCaptureFixture) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    engine = create_async_engine("sqlite+aiosqlite://")
    app = FastAPI()

    @app.get("/one")
    async def one() -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())

    with caplog.at_level(logging.ERROR):
        settings = ServiceSettings(environment="development", otel_exporter="console")
        instrument_app(app, engine, settings, tracer_provider=provider)
    assert not [r for r in caplog.records if "instrument" in r.getMessage()], "the instrumentation refused itself"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert (await client.get("/one")).json() == 1
    finally:
        await engine.dispose()
    names = [span.name for span in exported.get_finished_spans()]
    assert "SELECT" in names, names
    assert any(name.startswith("GET /one") for name in names), names
