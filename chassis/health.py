"""``/healthz`` (alive) and ``/readyz`` (this process can serve: its database answers).

Readiness decides whether Kubernetes sends requests to a pod, so it means only what this process needs to answer
them: its own database. The broker's state, the outbox backlog and the consumer are in the body (and for the
operator to watch), but a broker outage does not make a service NotReady: writes still succeed, their events wait
in the outbox, and the consumer resumes where it was. Taking every service out of its Service because Kafka is
away would turn one outage into the whole platform's.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from chassis import metrics
from chassis.kafka import broker_reachable

router = APIRouter(tags=["health"])

_BROKER_CHECK_TTL = 5.0


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
    now = time.monotonic()
    cached = getattr(runtime, "_broker_check", None)
    if cached is None or now - cached[0] > _BROKER_CHECK_TTL:
        cached = (now, await broker_reachable(runtime.settings))
        runtime._broker_check = cached
    checks["broker"] = "ok" if cached[1] else "unavailable"
    checks["outbox_backlog"] = runtime.relay.backlog
    # Events published again because the broker had lost them (the embedded broker forgets when it stops).
    checks["outbox_republished"] = runtime.relay.republished_total
    consumer = runtime.consumer
    if consumer is not None:
        # Waiting is not unready: the process still serves, and the events wait safely in the broker.
        checks["consumer"] = (
            "consuming"
            if consumer.waiting_since is None
            else f"waiting for the infrastructure ({consumer.waiting_reason})"
        )
        checks["consumer_infrastructure_failures"] = consumer.infrastructure_failures_total
        checks["consumer_dead_lettered"] = consumer.dead_lettered_total
        checks["consumer_broker_losses"] = consumer.broker_losses_total
    ready = checks["database"] == "ok"
    metrics.dependencies_up(runtime.settings.service_name, {"database": ready, "broker": bool(cached[1])})
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
