"""OpenTelemetry set-up and JSON logs that carry the trace id."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import sys
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from pythonjsonlogger.json import JsonFormatter

from chassis.settings import ServiceSettings

log = logging.getLogger(__name__)

_state = {"kafka": False, "provider": False, "httpx": False}


def kafka_instrumented() -> bool:
    """True when the aiokafka instrumentation injects ``traceparent`` itself."""
    return _state["kafka"]


class TraceIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        return True


def setup_logging(settings: ServiceSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
                rename_fields={"levelname": "level", "asctime": "time"},
                static_fields={"service": settings.service_name},
            )
        )
    else:
        # The time of day: which line came before a fault and which after it is most of reading a log.
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # Drivers that log each statement (aiosqlite with its parameters: personal data) stay quiet whatever
    # LOG_LEVEL says; SQLAlchemy's engine logs statements from INFO on, and its errors hide parameters (chassis.db).
    for driver in ("aiosqlite", "asyncpg", "sqlalchemy.engine"):
        logging.getLogger(driver).setLevel(max(logging.WARNING, root.level))


def install_dumps(signum: int = signal.SIGUSR1) -> None:
    """Let a process that went quiet or died say where it was.

    - ``kill -USR1 PID`` (``signum``) logs where every asyncio task waits: a consumer or relay that stopped moving
      shows which await holds it. Installed in the lifespan, where the loop runs.
    - ``kill -USR2 PID`` writes every thread's Python stack to stderr, even when the event loop itself is blocked.
    - A crash in C code (SIGSEGV, SIGABRT, ...) writes the stacks to stderr before the process ends.
    """
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals there (Windows, a thread's loop)
        asyncio.get_running_loop().add_signal_handler(signum, _dump_tasks)
    # A blocked loop runs no handler: SIGUSR2 writes every thread's Python stack to stderr from C, whatever it does.
    with contextlib.suppress(AttributeError, RuntimeError, ValueError):
        faulthandler.register(signal.SIGUSR2, all_threads=True)
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)


def _dump_tasks() -> None:
    lines = [f"{task.get_name()}: {' < '.join(_awaiting(task.get_coro()))}" for task in asyncio.all_tasks()]
    log.warning("%d tasks, each with the awaits it is in (innermost last):\n%s", len(lines), "\n".join(sorted(lines)))


def _awaiting(coro: Any) -> list[str]:
    """The chain of awaits a suspended coroutine is in: its own frame, then what it awaits, and so on."""
    chain: list[str] = []
    while coro is not None and len(chain) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            chain.append(type(coro).__name__)
            break
        path = frame.f_code.co_filename
        chain.append(f"{'/'.join(path.split('/')[-2:])}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return chain


def _exporter(settings: ServiceSettings) -> SpanExporter | None:
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint from OTEL_EXPORTER_OTLP_ENDPOINT
    return None


def setup_tracing(settings: ServiceSettings) -> None:
    """Install the tracer provider and instrument the libraries, once per process."""
    if not _state["provider"]:
        exporter = _exporter(settings)
        # Without an exporter no span is ever read: spans are not recorded (which is most of their cost), but
        # still made, so that trace ids stand in the logs and travel on with the requests and events. A trace
        # that a caller records (its traceparent says "sampled") is recorded here too, for whoever exports it.
        sampler = None if exporter is not None else ParentBased(ALWAYS_OFF)
        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}), sampler=sampler)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _state["provider"] = True
    if settings.otel_exporter != "none" and not _state["kafka"]:
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        AIOKafkaInstrumentor().instrument()
        HTTPXClientInstrumentor().instrument()
        _state["kafka"] = True


def traced_transport(transport: httpx.AsyncBaseTransport, settings: ServiceSettings) -> httpx.AsyncBaseTransport:
    """An httpx transport of our own, with the client spans and ``traceparent`` that HTTPXClientInstrumentor
    gives httpx's own transports (it patches those classes only)."""
    if settings.otel_exporter == "none":
        return transport
    from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

    return AsyncOpenTelemetryTransport(transport)


def instrument_app(app: Any, engine: Any, settings: ServiceSettings, tracer_provider: Any = None) -> None:
    """Spans for the app's requests and the engine's statements (``tracer_provider``: the global one unless given)."""
    if settings.otel_exporter == "none":
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    # Spans only: requests are measured by chassis.metrics.RequestMetrics (with the service's label), and the
    # instrumentation's histogram of the same name would double every series.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz", meter_provider=NoOpMeterProvider(), tracer_provider=tracer_provider
    )
    # The instrumentation declares SQLAlchemy < 2.1 and, without skip_dep_check, instruments nothing on 2.1 (one
    # ERROR line at start, no statement spans); its engine events work on 2.1 (tests/unit/test_telemetry.py).
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=tracer_provider, skip_dep_check=True)
