"""The first gateway: forwarding, clear errors when a service is down, limits and headers."""

from __future__ import annotations

import httpx

from chassis.embedded_broker import free_port
from gateway.app import GatewaySettings, create_app
from tests.conftest import TEST_SECRET, newcomer, running_app


def gateway_to(registration_url: str) -> GatewaySettings:
    return GatewaySettings(
        registration_url=registration_url, environment="test", internal_token_secret=TEST_SECRET, log_json=False
    )


async def test_a_service_that_is_down_gives_503_problem_details_at_once() -> None:
    app = create_app(gateway_to(f"http://127.0.0.1:{free_port()}"))
    async with running_app(app) as client:
        reply = await client.post("/api/v1/registrations", json=newcomer())
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/upstream-unavailable")
    assert reply.headers["retry-after"] == "5"


async def test_unknown_resource_is_404_problem_details() -> None:
    app = create_app(gateway_to(f"http://127.0.0.1:{free_port()}"))
    async with running_app(app) as client:
        reply = await client.get("/api/v1/nothing-here")
    assert reply.status_code == 404
    assert reply.json()["detail"] == "No API resource '/api/v1/nothing-here'."


async def test_oversized_body_is_refused_before_forwarding() -> None:
    app = create_app(gateway_to(f"http://127.0.0.1:{free_port()}"))
    async with running_app(app) as client:
        reply = await client.post(
            "/api/v1/registrations", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
        )
    assert reply.status_code == 413  # not 503: the upstream is never asked


async def test_forwards_to_the_registration_service(registration: httpx.AsyncClient) -> None:
    """The gateway in front of the real registration app (both over ASGI)."""
    upstream_app = registration.app  # type: ignore[attr-defined]
    app = create_app(gateway_to("http://registration"))
    async with running_app(app) as client:
        app.state.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream_app))
        reply = await client.post("/api/v1/registrations", json=newcomer(), headers={"x-request-id": "req-42"})
        assert reply.status_code == 201, reply.text
        assert reply.headers["x-request-id"] == "req-42"
        assert reply.headers["x-content-type-options"] == "nosniff"
        person = await client.get(reply.headers["location"])
        assert person.status_code == 200 and person.json()["family_name"] == "Haddad"
        await app.state.client.aclose()
