"""A service's readiness means "this process can serve": its own database. The broker's state is in the body
(tests/reliability/test_broker_outage.py: ready with the broker away); the database away makes it NotReady. Both
states are in the metrics as well (``dependency_up``)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services.registration.app import create_app
from tests.conftest import fresh_postgres_database, registration_settings, running_app
from tests.scrape import parse, value


async def test_ready_with_its_database_and_not_without(postgres_server: str | None, broker: Any) -> None:
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    async with fresh_postgres_database(postgres_server) as (url, name):
        app = create_app(registration_settings(url, broker.bootstrap_servers))
        async with running_app(app) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["broker"] == "ok"
            up = parse((await client.get("/metrics")).text)
            assert value(up, "dependency_up", service="registration", dependency="database") == 1
            assert value(up, "dependency_up", service="registration", dependency="broker") == 1

            admin = await asyncpg.connect(make_url(postgres_server).render_as_string(hide_password=False))
            try:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            finally:
                await admin.close()
            await app.state.runtime.engine.dispose()  # the pool's connections are gone; new ones are refused
            away = await client.get("/readyz")
            assert away.status_code == 503, away.text
            assert away.json()["checks"]["database"].startswith("unavailable")
            # In the metrics too, which the alerting reads (/metrics still answers: it keeps the last state values).
            down = parse((await client.get("/metrics")).text)
            assert value(down, "dependency_up", service="registration", dependency="database") == 0
