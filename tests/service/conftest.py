"""Registration and referral side by side, as several service tests need them: the service under test on the
parametrized database, the other on its own SQLite file, both on the session's broker; referral with the demo
roster. The services are called directly with the plain identity headers the identity middleware leaves after
verifying the gateway's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis.embedded_broker import EmbeddedBroker
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    ADMIN,
    case_with_referrals,
    eventually,
    ok,
    referral_settings,
    register_with_needs,
    registration_settings,
    running_app,
    sqlite_url,
)

Services = tuple[httpx.AsyncClient, httpx.AsyncClient]


@asynccontextmanager
async def registration_and_referral(
    registration_db: str, referral_db: str, broker: EmbeddedBroker
) -> AsyncIterator[Services]:
    """Clients of registration and referral; ``referral.app`` is referral's app (for a test that writes its tables)."""
    registration_app = create_registration(registration_settings(registration_db, broker.bootstrap_servers))
    referral_app = create_referral(referral_settings(referral_db, broker.bootstrap_servers, demo_data=True))
    async with running_app(registration_app) as registration, running_app(referral_app) as referral:
        referral.app = referral_app  # type: ignore[attr-defined]  # a test's own attribute on httpx's client
        yield registration, referral


@pytest.fixture
async def registration_under_test(database_url: str, broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Services]:
    """(registration, referral): registration on the parametrized database, referral on SQLite."""
    async with registration_and_referral(database_url, sqlite_url(tmp_path, "referral"), broker) as services:
        yield services


@pytest.fixture
async def referral_under_test(database_url: str, broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Services]:
    """(registration, referral): referral on the parametrized database, registration on SQLite."""
    async with registration_and_referral(sqlite_url(tmp_path, "registration"), database_url, broker) as services:
        yield services


async def case_in_team(
    registration: httpx.AsyncClient, referral: httpx.AsyncClient, worker: str, caller: dict[str, str], **person: Any
) -> tuple[str, dict[str, Any]]:
    """A newcomer with needs and proposed referrals, whose case an admin hands to ``worker``: (person id, the case
    with its new team). Returns once registration has the case event, i.e. once ``caller`` (of that team) reads
    the person."""
    person_id = await register_with_needs(registration, [], **person)
    case = await eventually(lambda: case_with_referrals(referral, person_id, 4))
    url = f"/api/v1/cases/{case['case_id']}/assignment"
    moved = ok(await referral.post(url, json={"caseworker_id": worker}, headers=ADMIN))
    await eventually(lambda: reaches(registration, person_id, caller))
    return person_id, case | {"team": moved["team"]}


async def reaches(registration: httpx.AsyncClient, person_id: str, caller: dict[str, str]) -> bool:
    """``caller`` reads the person in registration."""
    return (await registration.get(f"/api/v1/persons/{person_id}", headers=caller)).status_code == 200
