"""Composes a service: settings, engine, migrations, outbox relay, consumer, app.

Nothing is built at import time: :func:`create_service_app` returns an app whose
lifespan builds the runtime and tears it down in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis import clock, deadletters, idempotency
from chassis import metrics as service_metrics
from chassis.clock import Clock, run_every, system_clock
from chassis.consumer import EventConsumer, Handler
from chassis.db import make_engine, make_session_factory
from chassis.errors import install_problem_handlers
from chassis.health import router as health_router
from chassis.heap import startup_objects_frozen
from chassis.http import BodySizeLimit, SecurityHeaders
from chassis.identity import InternalIdentity
from chassis.kafka import check_client_options
from chassis.migrations import upgrade_to_head, wait_for_head
from chassis.outbox import MessagingTables, Outbox, OutboxRelay, utcnow
from chassis.settings import ServiceSettings
from chassis.telemetry import install_dumps, instrument_app, setup_logging, setup_tracing
from chassis.uow import UnitOfWork

log = logging.getLogger(__name__)
Own = TypeVar("Own")


def background(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task that runs until shutdown. One that ends with an error says so in the log at once: nobody awaits it
    before shutdown, and asyncio would report it only when the task is garbage (never: ``tasks`` holds it)."""
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(_report_error)
    return task


def _report_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task %s ended with an error; it does not run again", task.get_name(), exc_info=error)


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    tables: MessagingTables
    relay: OutboxRelay
    consumer: EventConsumer | None = None
    #: Stored responses to writes with an ``Idempotency-Key`` (:mod:`chassis.idempotency`).
    idempotency: idempotency.IdempotencyStore | None = None
    #: What ``/metrics`` and the OTLP exporter read of this service (:mod:`chassis.metrics`).
    metrics: service_metrics.ServiceMetrics | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: Decides every "now" of the service (expiry, deadlines, "today"); tests pass a fixed one.
    clock: Clock = system_clock
    #: What the service itself adds (its signer, keys, deliverer...), one typed object made by its ``on_startup``;
    #: read it with :meth:`own_as`.
    own: object | None = None

    def own_as(self, kind: type[Own]) -> Own:
        """The service's own part, typed; a mismatch is a wiring error, not a request's."""
        if not isinstance(self.own, kind):
            raise RuntimeError(f"the runtime holds {type(self.own).__name__}, not {kind.__name__}")
        return self.own

    def start_task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run a service's own background ``work`` (a clock, a deliverer) until shutdown cancels it. It goes first
        in ``tasks``: the consumer's task stays last, the one shutdown waits for."""
        self.tasks.insert(0, background(work, name=name))

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory,
            Outbox(self.tables.outbox),
            self.relay.wake,
            self.idempotency,
            self.tables.dead_letters,
        )


@dataclass(frozen=True)
class ServiceSpec:
    """What a service tells the chassis about itself."""

    name: str
    title: str
    #: The service's messaging tables, defined in its own metadata (:func:`~chassis.outbox.define_messaging_tables`).
    tables: MessagingTables
    migrations_dir: Path
    published_topics: list[str]
    routers: list[APIRouter]
    #: The version of the service's HTTP API (its OpenAPI document's).
    version: str = "1.0.0"
    #: Builds the event handlers once the runtime exists (they may need its clock or settings).
    handlers: Callable[[ServiceRuntime], Mapping[str, Handler]] | None = None
    consumed_topics: list[str] = field(default_factory=list)
    description: str = ""
    #: Runs after migrations, before the consumer starts (seed reference data, start timers, set ``runtime.own``).
    on_startup: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    #: The service's clock (``runtime.clock``); tests pass a fixed one.
    clock: Clock = system_clock


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings)
        install_dumps()
        setup_tracing(settings)
        check_client_options(settings)  # unreadable Kafka certificates end the start here, by name
        service_metrics.setup_metrics(settings)
        version_table = f"alembic_version_{spec.name}"
        if settings.migrate_at_start:
            await asyncio.to_thread(upgrade_to_head, spec.migrations_dir, settings.database_url, version_table)
        else:
            await wait_for_head(
                spec.migrations_dir, settings.database_url, version_table, settings.migration_wait_seconds
            )
        # The overflow's connections stay in the pool once opened (as many in all as the settings allow): QueuePool
        # closes an overflow connection whenever it comes back to a full pool, and under load that was a new
        # connection every dozen requests (a server process's start, its statements prepared anew; measured 142
        # in 8 s of registrations, more of PostgreSQL's CPU than the registrations' own statements).
        overflow = settings.database_max_overflow
        connections = settings.database_pool_size + (settings.database_pool_size if overflow is None else overflow)
        engine = make_engine(settings.database_url, connections, 0)
        instrument_app(app, engine, settings)
        session_factory = make_session_factory(engine)
        relay = OutboxRelay(
            settings=settings,
            session_factory=session_factory,
            table=spec.tables.outbox,
            high_water=spec.tables.high_water,
            source=f"/services/{spec.name}",
            topics=spec.published_topics,
            lock_key=zlib.crc32(spec.name.encode()),
        )
        runtime = ServiceRuntime(settings, engine, session_factory, spec.tables, relay, clock=spec.clock)
        # The service's own clock decides expiry, so that tests can move it.
        store = idempotency.IdempotencyStore(engine, settings.idempotency_key(), clock=lambda: runtime.clock())
        runtime.idempotency = store
        app.state.runtime = runtime
        await relay.count_backlog()
        runtime.metrics = service_metrics.ServiceMetrics(
            service=spec.name,
            engine=engine,
            session_factory=session_factory,
            tables=spec.tables,
            relay=relay,
            consumer=lambda: runtime.consumer,
            now=utcnow,
        )
        app.state.metrics = runtime.metrics
        runtime.tasks.append(background(runtime.metrics.run(), name=f"{spec.name}-metrics"))
        runtime.tasks.append(background(relay.run(), name=f"{spec.name}-outbox-relay"))
        sweep = run_every(idempotency.SWEEP_SECONDS, store.purge_expired, "sweep of expired idempotency keys")
        runtime.tasks.append(background(sweep, name=f"{spec.name}-idempotency-sweep"))
        if spec.on_startup is not None:
            await spec.on_startup(runtime)
        handlers = spec.handlers(runtime) if spec.handlers is not None else {}
        if handlers:
            runtime.consumer = EventConsumer(
                settings=settings,
                unit_of_work=runtime.unit_of_work,
                inbox=spec.tables.inbox,
                group_id=settings.kafka_consumer_group or spec.name,
                handlers=handlers,
                topics=spec.consumed_topics,
                dead_letters=spec.tables.dead_letters,
            )
            runtime.tasks.append(background(runtime.consumer.run(), name=f"{spec.name}-consumer"))
        log.info("%s ready on %s:%s", spec.name, settings.host, settings.port)
        try:
            with startup_objects_frozen():
                yield
        finally:
            # Graceful: stop consuming, let the handler in hand finish and commit, flush the outbox.
            if runtime.consumer is not None:
                await runtime.consumer.stop()
                consumer_task = runtime.tasks[-1]
                # A consumer between batches is cancelled by stop(); one in a batch finishes it.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(consumer_task), 15)
            await relay.stop()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            service_metrics.forget(spec.name)
            await engine.dispose()

    # FastAPI's own request metrics off: chassis.metrics.RequestMetrics measures the same histogram, with the
    # service's label (two of one name would double every series).
    # Every route first puts the service's clock in the request's context (use_clock, below): validators of a
    # body, which run before the handler, read "today" from it.
    app = FastAPI(
        title=spec.title,
        version=spec.version,
        description=spec.description,
        lifespan=lifespan,
        telemetry={"metrics": False},
        dependencies=[Depends(use_clock)],
    )
    # What the service publishes and consumes, for whoever checks the deployment against the code (tests/deploy:
    # the KafkaUsers' ACLs).
    app.state.spec = spec
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(service_metrics.router)
    app.include_router(deadletters.router)
    for router in spec.routers:
        app.include_router(router)
    document_idempotency(app)

    def idempotency_store() -> idempotency.IdempotencyStore | None:
        runtime: ServiceRuntime | None = getattr(app.state, "runtime", None)
        return runtime.idempotency if runtime is not None else None

    # Added first, so it runs inside the identity middleware: keys belong to the verified caller.
    app.add_middleware(idempotency.IdempotencyKeys, store=idempotency_store)
    app.add_middleware(
        InternalIdentity,
        audience=spec.name,
        trusted=settings.identity_trusted_keys(),
        required=settings.identity_required,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Outermost: a request refused by a limit above is counted too.
    app.add_middleware(service_metrics.RequestMetrics, service=spec.name)
    return app


def document_idempotency(app: FastAPI) -> None:
    """Every write under /api/ accepts an Idempotency-Key; say so in the app's OpenAPI (the gateway merges it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = idempotency.document(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def use_clock(request: Request) -> None:
    """Put the service's clock into this request's context (:data:`chassis.clock.current`). Async on purpose: a
    sync dependency runs in a thread, and what it sets would not reach the validators."""
    runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
    clock.current.set(runtime.clock if runtime is not None else system_clock)
