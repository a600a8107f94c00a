"""Metrics over OTLP: what a service process sends to the collector, received and decoded as the collector would.

The receiver is a small OTLP/HTTP server (``POST /v1/metrics``, protobuf ``ExportMetricsServiceRequest`` decoded with
``opentelemetry-proto``, the exporter's own message types). The referral service runs as its own process (the meter
provider is one per process) with ``OTEL_EXPORTER=otlp``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the receiver
and a short ``OTEL_METRIC_EXPORT_INTERVAL``. A registration (in this process) reaches its consumer, its handler opens
a case whose events go through its outbox, and a request is answered: the request, consumer and outbox series
arrive with their names, the ``service`` label and the resource's ``service.name``.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from chassis.embedded_broker import free_port
from tests.conftest import eventually, newcomer, running_app

ROOT = Path(__file__).resolve().parents[2]
PERSONS = "registration.persons.v1"


@dataclass
class Point:
    metric: str
    attributes: dict[str, Any]
    value: float
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """Every metric data point received, decoded; the paths asked for (traces arrive too, and are answered)."""

    url: str = ""
    points: list[Point] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_metrics in request.resource_metrics:
            resource = {a.key: _value(a.value) for a in resource_metrics.resource.attributes}
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        attributes = {a.key: _value(a.value) for a in point.attributes}
                        if kind == "histogram":
                            number = float(point.count)
                        else:
                            number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                        found.append(Point(metric.name, attributes, float(number), resource))
        with self.lock:
            self.points.extend(found)

    def latest(self, metric: str, **attributes: Any) -> Point | None:
        with self.lock:
            matching = [
                p
                for p in self.points
                if p.metric == metric and all(p.attributes.get(k) == v for k, v in attributes.items())
            ]
        return matching[-1] if matching else None


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            found.paths.append(self.path)
            if self.path == "/v1/metrics":
                assert self.headers.get("content-type") == "application/x-protobuf"
                found.receive(body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    found.url = f"http://127.0.0.1:{server.server_port}"
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def referral_process(receiver: OtlpReceiver, broker: Any, tmp_path: Path) -> Iterator[str]:
    """The referral service as ``make run`` starts it (uvicorn), sending metrics over OTLP every half second."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REFERRAL_", "KAFKA_"))},
        "ENVIRONMENT": "development",
        "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "REFERRAL_KAFKA_CONSUMER_GROUP": f"referral-otlp-{uuid.uuid4().hex[:8]}",
        "REFERRAL_KAFKA_CONSUMER_OFFSET_RESET": "latest",  # this test's events only, not the session's history
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "LOG_JSON": "false",
        "OTEL_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    log = (tmp_path / "referral.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "services.referral.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        if process.returncode not in (0, -15):
            print((tmp_path / "referral.log").read_text()[-4000:])


async def test_request_consumer_and_outbox_metrics_arrive_over_otlp(
    receiver: OtlpReceiver, referral_process: str, broker: Any, tmp_path: Path
) -> None:
    from services.registration.app import create_app as create_registration
    from tests.conftest import registration_settings

    async with httpx.AsyncClient(base_url=referral_process, timeout=10) as referral:

        async def ready() -> bool:
            try:
                reply = await referral.get("/readyz")
            except httpx.TransportError:
                return False
            return reply.status_code == 200 and "consuming" in reply.text

        await eventually(ready, timeout_s=60)
        # A request answered (with a route template), which the next export carries.
        rules = await referral.get("/api/v1/routing-rules", headers={"x-actor": "user:lotse", "x-role": "caseworker"})
        assert rules.status_code == 200, rules.text

        registration_app = create_registration(
            registration_settings(f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}", broker.bootstrap_servers)
        )
        async with running_app(registration_app) as registration:

            async def handled() -> Point | None:
                reply = await registration.post("/api/v1/registrations", json=newcomer())
                assert reply.status_code == 201, reply.text
                point = receiver.latest("consumer_events_handled", service="referral", topic=PERSONS)
                return point if point is not None and point.value >= 1 else None

            point = await eventually(handled, timeout_s=60, interval_s=1.0)

    assert point.resource.get("service.name") == "referral"
    request = receiver.latest(
        "http.server.request.duration", service="referral", **{"http.route": "/api/v1/routing-rules"}
    )
    assert request is not None and request.value >= 1
    assert request.attributes["http.request.method"] == "GET" and request.attributes["http.response.status_code"] == 200
    for name in ("consumer_lag", "dead_letters_open", "dead_letters"):
        assert receiver.latest(name, service="referral", topic=PERSONS) is not None, name
    for name in (
        "outbox_backlog",
        "outbox_oldest_unpublished_age",
        "db_pool_connections_in_use",
        "db_pool_connections_limit",
    ):
        assert receiver.latest(name, service="referral") is not None, name
    assert "/v1/metrics" in receiver.paths
