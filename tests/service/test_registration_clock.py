"""Registration's "today" comes from its injected clock (issue 17), not from the machine's date: a birth date in
the future, a person's age band and a consent's expiry are judged against the clock the service was given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from chassis.embedded_broker import EmbeddedBroker
from tests.conftest import newcomer, registration_settings, running_app

ARRIVED = "2019-09-02"  # before every day the clock shows here


def person(**overrides: str) -> dict[str, object]:
    return newcomer(arrival_date=ARRIVED, **overrides)


class MovableClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime(2020, 6, 1, 12, tzinfo=UTC))


@pytest.fixture
async def registration(
    database_url: str, broker: EmbeddedBroker, clock: MovableClock
) -> AsyncIterator[httpx.AsyncClient]:
    from services.registration.app import create_app

    app = create_app(registration_settings(database_url, broker.bootstrap_servers), clock=clock)
    async with running_app(app) as client:
        yield client


async def test_a_birth_date_is_in_the_future_relative_to_the_clock(
    registration: httpx.AsyncClient, clock: MovableClock
) -> None:
    born = person(birth_date="2021-03-14")  # in the past by the machine's date, after the clock's day
    refused = await registration.post("/api/v1/registrations", json=born)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["location"] == ["body", "birth_date"] and "future" in error["message"]

    clock.moment = datetime(2030, 6, 1, 12, tzinfo=UTC)
    accepted = await registration.post("/api/v1/registrations", json=person(birth_date="2021-03-14"))
    assert accepted.status_code == 201, accepted.text


async def test_the_age_band_and_the_registration_day_follow_the_clock(
    registration: httpx.AsyncClient, clock: MovableClock
) -> None:
    clock.moment = datetime(2030, 6, 1, 12, tzinfo=UTC)
    reply = await registration.post("/api/v1/registrations", json=person(birth_date="2012-01-01"))
    assert reply.status_code == 201, reply.text
    person_id = reply.json()["person_id"]
    read = (await registration.get(f"/api/v1/persons/{person_id}")).json()
    assert read["age_band"] == "18-26"  # 18 on the clock's day (14 on the machine's in 2026)
    assert read["registration_date"] == "2030-06-01"

    clock.moment = datetime(2040, 6, 1, 12, tzinfo=UTC)
    read = (await registration.get(f"/api/v1/persons/{person_id}")).json()
    assert read["age_band"] == "27-44"


async def test_a_consent_expired_relative_to_the_clock_is_refused(
    registration: httpx.AsyncClient, clock: MovableClock
) -> None:
    person_id = (await registration.post("/api/v1/registrations", json=person())).json()["person_id"]
    consent = {"partner_id": "caritas-landsberg", "purpose": "counselling", "expires_on": "2025-01-01"}
    assert (await registration.post(f"/api/v1/persons/{person_id}/consents", json=consent)).status_code == 201

    clock.moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    refused = await registration.post(f"/api/v1/persons/{person_id}/consents", json=consent)
    assert refused.status_code == 422, refused.text
    assert "past" in refused.text
