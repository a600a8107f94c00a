"""Metrics in OpenTelemetry: sent over OTLP like the traces (when ``OTEL_EXPORTER=otlp``) and served at ``/metrics``
in Prometheus' text format, whatever the exporter setting, so that a cluster's Prometheus can scrape every process.

One meter provider per process (:func:`setup_metrics`), like the tracer provider. What a process measures:

- requests per route (:class:`RequestMetrics`): ``http_server_request_duration_seconds`` (a histogram: its
  ``_count`` is the rate, its buckets the latency, ``http_response_status_code`` the errors), labelled with the
  route's template (``/api/v1/cases/{case_id}``), never the raw path (a path holds ids: one series each);
- a service's state (:class:`ServiceMetrics`, refreshed on each scrape and every :data:`REFRESH_SECONDS` for OTLP):
  consumer lag, handled and dead-lettered events per topic, dead letters open, the outbox backlog and the age of
  its oldest unpublished row, the database pool's connections in use and its limit;
- what a service adds of its own through :func:`gauge` (the partners service: webhook deliveries pending/failed).

Every series carries a ``service`` label, so that one Prometheus query reads them all. No label holds personal
data: topics, routes, methods, status codes, service names only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Observation
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.errors import Problem
from chassis.settings import ServiceSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from chassis.consumer import EventConsumer
    from chassis.outbox import MessagingTables, OutboxRelay

log = logging.getLogger(__name__)

#: How often a service's state is read for the OTLP exporter (a scrape of ``/metrics`` reads it anew).
REFRESH_SECONDS = 15.0
#: Latency buckets in seconds, from a cached read to a slow upstream.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Attributes = tuple[tuple[str, str], ...]
#: Label pairs of a series, without ``service`` (which :func:`set_values` adds).
Labels = tuple[tuple[str, str], ...]

_state: dict[str, Any] = {"provider": None}
#: Observed values per instrument name: attributes (always with ``service``) -> value. Set by whoever knows them.
_values: dict[str, dict[Attributes, float]] = {}
_instruments: dict[str, Any] = {}


def setup_metrics(settings: ServiceSettings) -> None:
    """Install the meter provider once per process: a Prometheus reader always, an OTLP exporter when set."""
    if _state["provider"] is not None:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    # No scope labels: the names are ours, and three more labels on every series only cost.
    readers: list[MetricReader] = [PrometheusMetricReader(scope_info_enabled=False)]
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        # endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, like the spans'
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    provider = MeterProvider(resource=Resource.create({"service.name": settings.service_name}), metric_readers=readers)
    metrics.set_meter_provider(provider)
    _state["provider"] = provider


def _meter() -> metrics.Meter:
    return metrics.get_meter("landsberg.integration")


def _attributes(service: str, labels: Mapping[str, str] | None = None) -> Attributes:
    return (("service", service), *sorted((labels or {}).items()))


def gauge(name: str, description: str, unit: str = "", *, kind: str = "gauge") -> None:
    """Declare an observed instrument (once per process; again is harmless). ``kind``: gauge or counter (a
    cumulative count that only grows; Prometheus then names it ``<name>_total``)."""
    if name in _instruments:
        return
    values = _values.setdefault(name, {})

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(attrs)) for attrs, value in list(values.items())]

    create = _meter().create_observable_counter if kind == "counter" else _meter().create_observable_gauge
    _instruments[name] = create(name, callbacks=[observe], unit=unit, description=description)


def set_values(name: str, service: str, values: Mapping[Labels, float]) -> None:
    """Replace what ``service`` reports for instrument ``name``: label pairs (without ``service``) -> value."""
    current = _values.setdefault(name, {})
    for attrs in [a for a in current if a[0] == ("service", service)]:
        del current[attrs]
    for labels, value in values.items():
        current[_attributes(service, dict(labels))] = value


def forget(service: str) -> None:
    """Drop everything ``service`` reported (its app stopped; another may run in this process, as in tests)."""
    for current in _values.values():
        for attrs in [a for a in current if a[0] == ("service", service)]:
            del current[attrs]


def dependencies_up(service: str, states: Mapping[str, bool]) -> None:
    """What ``/readyz`` found of each dependency (a service's database and broker, the gateway's upstreams): 1 up,
    0 away. Readiness says only whether the process can serve; this says which dependency is missing."""
    gauge("dependency_up", "Whether a dependency answered the last readiness check (1) or not (0).")
    set_values("dependency_up", service, {(("dependency", name),): 1.0 if up else 0.0 for name, up in states.items()})


def by_topic(counts: Mapping[str, float], topics: Iterable[str] = ()) -> dict[Labels, float]:
    """Label pairs per topic; every topic in ``topics`` is reported, with 0 if it has no count (a series that
    exists from the start, so that ``increase`` and absence alerts work)."""
    return {(("topic", topic),): float(counts.get(topic, 0)) for topic in sorted(set(counts) | set(topics))}


# --- a service's state ----------------------------------------------------------------------------------


def _declare_service_instruments() -> None:
    gauge("dead_letters_open", "Dead letters not yet replayed or discarded, by the topic they came from.")
    gauge("dead_letters", "Records this process dead-lettered since it started, by topic.", kind="counter")
    gauge("consumer_events_handled", "Events this process handled (effect committed), by topic.", kind="counter")
    gauge("consumer_lag", "Records on the broker not yet handled by this process's consumer, by topic.")
    gauge("outbox_backlog", "Outbox rows not yet published to the broker.")
    gauge("outbox_oldest_unpublished_age", "Age of the oldest outbox row not yet published (0: none).", "s")
    gauge("db_pool_connections_in_use", "Database connections checked out of this process's pool.")
    gauge("db_pool_connections_limit", "The most connections this process's pool opens (size + overflow).")


def refresh_seconds() -> float:
    """:data:`REFRESH_SECONDS`, or the OTLP export interval (milliseconds, the SDK's variable) when shorter."""
    try:
        export = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "")) / 1000
    except ValueError:
        return REFRESH_SECONDS
    return min(REFRESH_SECONDS, max(0.1, export))


class ServiceMetrics:
    """Reads a service's runtime into the observed instruments: on each scrape, and every few seconds."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        tables: MessagingTables,
        relay: OutboxRelay,
        consumer: Callable[[], EventConsumer | None],
        now: Callable[[], datetime],
    ) -> None:
        self.service = service
        self.engine = engine
        self.session_factory = session_factory
        self.tables = tables
        self.relay = relay
        self.consumer = consumer
        self.now = now
        #: What a service adds (:func:`gauge` and :func:`set_values` in it), run on each refresh.
        self.extra: list[Callable[[], Awaitable[None]]] = []
        self._lock = asyncio.Lock()
        _declare_service_instruments()

    async def refresh(self) -> None:
        async with self._lock:  # concurrent scrapes read once
            await self._refresh()

    async def _refresh(self) -> None:
        service = self.service
        outbox = self.tables.outbox
        async with self.session_factory() as session:
            from chassis.deadletters import open_by_topic

            open_now = await open_by_topic(session, self.tables.dead_letters)
            backlog, oldest = (
                await session.execute(
                    select(func.count(), func.min(outbox.c.occurred_at)).where(outbox.c.published_at.is_(None))
                )
            ).one()
        consumer = self.consumer()
        topics = consumer.topics if consumer is not None else []
        set_values("dead_letters_open", service, by_topic(open_now, topics))
        set_values("dead_letters", service, by_topic(consumer.dead_lettered_by_topic if consumer else {}, topics))
        set_values("consumer_events_handled", service, by_topic(consumer.handled_by_topic if consumer else {}, topics))
        set_values("consumer_lag", service, by_topic(consumer.lag_by_topic() if consumer else {}, topics))
        set_values("outbox_backlog", service, {(): float(backlog or 0)})
        age = 0.0
        if oldest is not None:
            # SQLite hands back naive datetimes (stored as UTC)
            oldest = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=self.now().tzinfo)
            age = max(0.0, (self.now() - oldest).total_seconds())
        set_values("outbox_oldest_unpublished_age", service, {(): age})
        pool = self.engine.sync_engine.pool
        in_use = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        overflow = getattr(pool, "_max_overflow", 0)
        if callable(in_use) and callable(size):
            set_values("db_pool_connections_in_use", service, {(): float(in_use())})
            set_values("db_pool_connections_limit", service, {(): float(size() + max(0, overflow))})
        for extra in self.extra:
            await extra()

    async def run(self) -> None:
        """Refresh for the OTLP exporter, which reads on its own schedule: every :data:`REFRESH_SECONDS`, or as
        often as it exports when that is more often (``OTEL_METRIC_EXPORT_INTERVAL``)."""
        while True:
            try:
                await self.refresh()
            except Exception:  # the database away: the next round tries again
                log.info("metrics refresh failed; next round tries again", exc_info=True)
            await asyncio.sleep(refresh_seconds())


# --- requests per route ---------------------------------------------------------------------------------


class RequestMetrics:
    """ASGI middleware: each HTTP request's duration, by method, route template and status code."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self._histogram: Histogram | None = None

    def histogram(self) -> Histogram:
        if self._histogram is None:  # made on first use: after setup_metrics, which runs in the lifespan
            self._histogram = _meter().create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP requests, by route template, method and status code.",
                explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
            )
        return self._histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception that escapes is answered 500 by the server

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # The template the router matched; a path no route matched is "other" (a raw path would make a
            # series per id, and per scanner's guess).
            template = getattr(route, "path", None) or "other"
            if template not in ("/metrics", "/healthz", "/readyz"):
                self.histogram().record(
                    time.perf_counter() - start,
                    {
                        "service": self.service,
                        "http.request.method": scope.get("method", ""),
                        "http.route": template,
                        "http.response.status_code": status,
                    },
                )


# --- /metrics ---------------------------------------------------------------------------------------------

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    """Prometheus' text format: the service's state read now, then every instrument of this process.

    For the cluster's Prometheus, which scrapes the pod itself: a request that came through the edge (it names
    the client it forwards) is answered 404, so the public never reads the gateway's."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        raise Problem(404, "Not found.")
    source: ServiceMetrics | None = getattr(request.app.state, "metrics", None)
    if source is not None:
        with contextlib.suppress(Exception):  # the database away: the last values, and the request metrics
            await source.refresh()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
