"""Each process's ``/metrics``: OpenTelemetry instruments served in Prometheus' text format.

Real registration and referral apps (the parametrized database, the session's broker): a registration is counted
under its route's template (never the raw path with an id), the referral service's consumer counts the event it
handled on its topic with its lag back at 0, and the outbox, dead-letter and database-pool series are
there with the service's label. A request that came through the edge (forwarded) gets no metrics.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from services.referral.app import create_app as create_referral
from tests.conftest import eventually, newcomer, referral_settings, running_app
from tests.scrape import parse, value

PERSONS = "registration.persons.v1"


async def scrape(client: httpx.AsyncClient) -> Any:
    reply = await client.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return parse(reply.text)


async def test_requests_events_and_state_are_measured(
    registration: httpx.AsyncClient, broker: Any, tmp_path: Path
) -> None:
    referral_app = create_referral(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", broker.bootstrap_servers)
    )
    async with running_app(referral_app) as referral:
        # Counts are the process's since it started (another test's apps may have run in it): compare.
        before = await scrape(registration)

        def more(after: Any, name: str, **labels: str) -> float:
            return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

        reply = await registration.post("/api/v1/registrations", json=newcomer())
        assert reply.status_code == 201, reply.text
        unknown = uuid.uuid4()
        assert (await registration.get(f"/api/v1/persons/{unknown}")).status_code == 404
        assert (await registration.get("/no/such/page")).status_code == 404

        text = (await registration.get("/metrics")).text
        series = parse(text)
        created = more(
            series,
            "http_server_request_duration_seconds_count",
            service="registration",
            http_route="/api/v1/registrations",
            http_request_method="POST",
            http_response_status_code="201",
        )
        assert created == 1
        assert (
            more(
                series,
                "http_server_request_duration_seconds_count",
                service="registration",
                http_route="/api/v1/persons/{person_id}",
                http_request_method="GET",
                http_response_status_code="404",
            )
            == 1
        )
        assert (
            more(
                series,
                "http_server_request_duration_seconds_count",
                service="registration",
                http_route="other",
                http_request_method="GET",
                http_response_status_code="404",
            )
            == 1
        )
        assert str(unknown) not in text  # the template, never the path
        assert (
            more(
                series,
                "http_server_request_duration_seconds_bucket",
                service="registration",
                http_route="/api/v1/registrations",
                http_request_method="POST",
                http_response_status_code="201",
                le="10.0",
            )
            == 1
        )
        assert value(series, "outbox_backlog", service="registration") is not None
        assert value(series, "outbox_oldest_unpublished_age_seconds", service="registration") is not None
        limit = value(series, "db_pool_connections_limit", service="registration")
        assert limit is not None and limit > 0
        assert value(series, "db_pool_connections_in_use", service="registration") is not None

        async def handled() -> Any:
            found = await scrape(referral)
            done = value(found, "consumer_events_handled_total", service="referral", topic=PERSONS)
            return found if done and done >= 1 else None

        found = await eventually(handled)
        assert value(found, "consumer_lag", service="referral", topic=PERSONS) == 0
        assert value(found, "dead_letters_open", service="referral", topic=PERSONS) == 0
        assert value(found, "dead_letters_total", service="referral", topic=PERSONS) == 0
        # The registration was published: no backlog left, and the age of the oldest unpublished row is 0.
        published = await scrape(registration)
        assert value(published, "outbox_backlog", service="registration") == 0
        assert value(published, "outbox_oldest_unpublished_age_seconds", service="registration") == 0

        through_edge = await referral.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert through_edge.status_code == 404
        assert through_edge.headers["content-type"] == "application/problem+json"
