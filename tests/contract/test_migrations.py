"""Every service's migrations build exactly the schema its models describe (with the chassis' own tables,
such as the stored idempotent responses), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chassis.db import make_engine
from chassis.migrations import upgrade_to_head
from tests.service.test_migrations_once import schema_differences

SERVICES = ["registration", "referral", "courses", "partners", "monitoring"]


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_models(service: str, database_url: str) -> None:
    root = Path(__file__).resolve().parents[2] / "services" / service
    await asyncio.to_thread(upgrade_to_head, root / "migrations", database_url, f"alembic_version_{service}")
    assert await schema_differences(database_url, service) == []


async def test_partners_learn_the_person_of_deliveries_made_before_erasure_existed(database_url: str) -> None:
    """Partners' migration 0003 fills in the person of earlier deliveries from their payload, so that erasure
    finds those too; a payload without a person (a directory event) leaves it empty."""
    from alembic import command
    from sqlalchemy import text

    from chassis.migrations import alembic_config

    root = Path(__file__).resolve().parents[2] / "services" / "partners" / "migrations"
    config = alembic_config(root, database_url, "alembic_version_partners")
    await asyncio.to_thread(command.upgrade, config, "0002")
    engine = make_engine(database_url)
    referral = '{"type":"t","id":"e1","time":"t","data":{"referral_id":"r","person_id":"p-123"}}'
    directory = '{"type":"t","id":"e2","time":"t","data":{"partner_id":"vhs-landsberg"}}'
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO partners (id, name, category, languages, locations, contacts, version, created_at,"
                    " updated_at) VALUES ('vhs-landsberg', 'VHS', 'adult_education', '[]', '[]', '[]', 1, :at, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
            await conn.execute(
                text(
                    "INSERT INTO webhook_subscriptions (id, partner_id, url, event_types, secret_encrypted, active,"
                    " created_at) VALUES ('w1', 'vhs-landsberg', 'https://x.example', '[]', 's', true, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
            for delivery_id, event_id, payload in (("d1", "e1", referral), ("d2", "e2", directory)):
                await conn.execute(
                    text(
                        "INSERT INTO webhook_deliveries (id, subscription_id, partner_id, event_id, event_type,"
                        " payload, status, attempts, replays, created_at)"
                        " VALUES (:id, 'w1', 'vhs-landsberg', :event, 't', :payload, 'delivered', 1, 0, :at)"
                    ),
                    {"id": delivery_id, "event": event_id, "payload": payload, "at": datetime.now(UTC)},
                )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            found: dict[str, str | None] = dict(
                (await conn.execute(text("SELECT id, person_id FROM webhook_deliveries"))).all()
            )
    finally:
        await engine.dispose()
    assert found == {"d1": "p-123", "d2": None}
